"""Attempt counting with growing back-off, per subject (a keypad, a resident),
and the pacing of unknown cards.

After ``threshold`` failures inside ``window`` seconds the subject is locked
for ``base`` seconds, doubling with every further failure up to ``cap``. A
success clears the subject. `Lockout.snapshot` / `Lockout.restore` carry the
state across a restart (the gate stores it; see `doorpi.lockstate`).

Unknown cards are not a lockout: phones and bank cards answer with a random
UID on every read, so counting them against a reader would lock residents
out. `CardPacer` instead slows the checking of cards once many unknown ones
came in (see its docstring). Pure: time is monotonic seconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
        # 2.0**64 already exceeds any cap; an unbounded 2**excess overflows a float
        # after ~1,030 failures in one window (a poster before a continuous camera).
        duration = min(self.policy.cap, self.policy.base * 2.0 ** min(excess, 64))
        s.locked_until = now + duration
        return duration

    def success(self, subject: str) -> None:
        self._subjects.pop(subject, None)

    def failures(self, subject: str) -> int:
        s = self._subjects.get(subject)
        return len(s.failures) if s else 0

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        """The live state relative to ``now``: subject -> {"ages": seconds since each
        failure in the window, "locked_left": seconds still locked}. JSON-able."""
        out: dict[str, dict[str, Any]] = {}
        for name, s in self._subjects.items():
            ages = [round(now - t, 3) for t in s.failures if now - t < self.policy.window]
            left = max(0.0, s.locked_until - now)
            if ages or left:
                out[name] = {"ages": ages, "locked_left": round(left, 3)}
        return out

    def restore(self, snap: dict[str, dict[str, Any]], now: float, elapsed: float) -> None:
        """Load a `snapshot` taken ``elapsed`` seconds ago (>= 0; the caller's
        estimate of the time the gate was down). A lock never grows past ``cap``;
        malformed entries raise ValueError."""
        elapsed = max(0.0, elapsed)
        for name, entry in snap.items():
            ages = [float(a) + elapsed for a in entry.get("ages", [])]
            left = min(float(entry.get("locked_left", 0.0)), self.policy.cap) - elapsed
            ages = [a for a in ages if 0 <= a < self.policy.window]
            if ages or left > 0:
                self._subjects[str(name)] = _Subject(
                    sorted(now - a for a in ages), now + max(0.0, left)
                )


@dataclass(frozen=True, slots=True)
class PacePolicy:
    """``after`` unknown cards inside ``window`` seconds start the slow-down; then
    every unknown card makes the reader ignore taps for ``pause`` seconds."""

    after: int = 5
    window: float = 900.0
    pause: float = 5.0


class CardPacer:
    """Slows UID enumeration without ever locking residents out.

    An attacker with a UID cloner (Proxmark, Flipper) tries a new UID every
    fraction of a second; a resident's phone in the wallet gives a random UID
    now and then. Below ``after`` unknown cards in the window nothing changes.
    Above it, each unknown card starts a ``pause`` during which taps are not
    checked at all (the gate answers ``rate_limited``, "try again shortly"):
    a tap that is not checked cannot be a guess, so an attacker gets one guess
    per pause (5 s: 720 an hour instead of ~7,000), while a resident whose
    phone was read waits at most one pause and taps again. Enrolled cards
    neither start nor extend a pause, refused taps do not extend it either
    (so a crowd cannot keep the reader shut), and the slow-down ends by
    itself when the window has no more than ``after - 1`` unknown cards.
    One pacer serves every configured reader: a device that renames itself
    does not get a fresh counter.
    """

    def __init__(self, policy: PacePolicy) -> None:
        self.policy = policy
        self._unknown: list[float] = []
        self._paused_until = 0.0

    def wait(self, now: float) -> float:
        """Seconds until a tap will be checked again (0.0: check this one)."""
        return max(0.0, self._paused_until - now)

    def unknown(self, now: float) -> bool:
        """Record an unknown card checked at ``now``; True if it started a pause."""
        self._unknown = [t for t in self._unknown if now - t < self.policy.window]
        self._unknown.append(now)
        if len(self._unknown) < self.policy.after:
            return False
        self._paused_until = now + self.policy.pause
        return True

    def slowed(self, now: float) -> bool:
        """Is the slow-down on (enough unknown cards in the window)?"""
        recent = [t for t in self._unknown if now - t < self.policy.window]
        return len(recent) >= self.policy.after
