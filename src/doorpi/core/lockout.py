"""Attempt counting with growing back-off, per subject (a keypad, a resident).

After ``threshold`` failures inside ``window`` seconds the subject is locked
for ``base`` seconds, doubling with every further failure up to ``cap``. A
success clears the subject. Pure: time is monotonic seconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    threshold: int = 5
    base: float = 30.0
    cap: float = 900.0
    window: float = 900.0


@dataclass(slots=True)
class _Subject:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class Lockout:
    def __init__(self, policy: LockoutPolicy) -> None:
        self.policy = policy
        self._subjects: dict[str, _Subject] = {}

    def locked_for(self, subject: str, now: float) -> float:
        """Seconds the subject stays locked (0.0 when free)."""
        s = self._subjects.get(subject)
        return max(0.0, s.locked_until - now) if s else 0.0

    def failure(self, subject: str, now: float) -> float:
        """Record a failure; return the lock duration it started (0.0 for none)."""
        s = self._subjects.setdefault(subject, _Subject())
        s.failures = [t for t in s.failures if now - t < self.policy.window]
        s.failures.append(now)
        excess = len(s.failures) - self.policy.threshold
        if excess < 0:
            return 0.0
        duration = min(self.policy.cap, self.policy.base * (2**excess))
        s.locked_until = now + duration
        return duration

    def success(self, subject: str) -> None:
        self._subjects.pop(subject, None)

    def failures(self, subject: str) -> int:
        s = self._subjects.get(subject)
        return len(s.failures) if s else 0
