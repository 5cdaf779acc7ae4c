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

from bisect import bisect_left, bisect_right, insort
from collections import deque
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
    every unknown card makes the reader ignore taps *inside a walk* for ``pause``
    seconds. ``near``: how far (as a big-endian integer, same UID length) a tap
    may lie from an unknown UID of the window and still count as its neighbour;
    ``walk``: how many unknown neighbours in the window make a tap part of a walk;
    ``remember``: how many of the newest unknown UIDs are kept (RAM only)."""

    after: int = 5
    window: float = 900.0
    pause: float = 5.0
    near: int = 65_536
    walk: int = 20
    remember: int = 10_000


class CardPacer:
    """Slows UID enumeration without other people's taps ever blocking an enrolled card.

    An attacker with a UID cloner (Proxmark, Flipper) walks the neighbours of a
    UID he knows: cards of one batch carry consecutive UIDs, so the cards of a
    building sit close together. A resident's phone in the wallet instead gives
    a random UID now and then (``08xxxxxx``, ISO/IEC 14443-3; the gate never
    passes those here, see `doorpi.core.uid`), and other people's transit or
    bank cards give UIDs nowhere near the residents' cards.

    Below ``after`` unknown cards in the window nothing changes. Above it, each
    unknown card starts a ``pause`` during which a tap *inside a walk* is not
    checked at all (the gate answers ``rate_limited``, "try again shortly"): a
    tap with at least ``walk`` (20) unknown UIDs of the window near it (within
    ``near`` = 65,536, i.e. the same upper bytes but the last two, same
    length). A neighbour that is not checked cannot be a guess, so a walker
    gets 20 free guesses and then one per pause (5 s: 720 an hour instead of
    ~7,000). Every other tap is checked as usual: an enrolled card opens at
    once, an unknown one is refused ``unknown_card`` and counted. So a queue of
    visitors whose cards come from the residents' own batch (a handful of
    neighbours, case 04's kind: other people's taps never block a known card)
    does not hold the next resident back; only a sweep of a batch does. Guessing far apart instead samples a 2**32
    (4-byte) or 2**56 (7-byte) space at random, where each checked guess rules
    out one UID, not a batch: ~10 taps a second for a day finds a given card
    with a chance of about 2e-4 (4-byte), so pacing those would block residents
    for no gain. 65,536 covers the last two bytes, i.e. a batch of cards
    numbered consecutively (NXP assigns UIDs in blocks; a site's order of a few
    thousand cards spans far less).

    Enrolled cards neither start nor extend a pause, refused taps do not extend
    it either (so a crowd cannot keep the reader shut), and the slow-down ends
    by itself when the window has no more than ``after - 1`` unknown cards.
    The unknown UIDs are held in RAM only (never on disk or in a log), at most
    the newest ``remember`` (10,000: more than a reader's ~10 reads a second
    fit in a 15-minute window that matters; an older one forgotten makes its
    neighbours checked again, one more guess). One pacer serves every
    configured reader: a device that renames itself gets no fresh counter.
    Pure: ``now`` is monotonic seconds passed in.
    """

    def __init__(self, policy: PacePolicy) -> None:
        self.policy = policy
        self._times: deque[float] = deque()  # every counted unknown card in the window
        self._uids: deque[tuple[float, int, int]] = deque()  # (time, length, value)
        self._sorted: dict[int, list[int]] = {}  # length -> values, sorted (a multiset)
        self._paused_until = 0.0

    def wait(self, now: float, uid: bytes | None = None) -> float:
        """Seconds until a tap of ``uid`` will be checked (0.0: check this one).
        Without ``uid``: how long the pause lasts for taps inside a walk."""
        left = max(0.0, self._paused_until - now)
        if uid is None:
            return left
        self._forget(now)  # the window's UIDs only, also while no pause is on
        return left if left and self.in_walk(uid) else 0.0

    def neighbours(self, uid: bytes) -> int:
        """How many remembered unknown UIDs lie within ``near`` of ``uid`` (same length)."""
        values = self._sorted.get(len(uid))
        if not values:
            return 0
        v = int.from_bytes(uid, "big")
        return bisect_right(values, v + self.policy.near) - bisect_left(
            values, v - self.policy.near
        )

    def in_walk(self, uid: bytes) -> bool:
        """Has ``uid`` at least ``walk`` unknown neighbours in the window (a batch sweep)?"""
        return self.neighbours(uid) >= self.policy.walk

    def unknown(self, now: float, uid: bytes | None = None) -> bool:
        """Record an unknown card checked at ``now``; True if it started a pause."""
        self._forget(now)
        self._times.append(now)
        if uid is not None:
            v = int.from_bytes(uid, "big")
            self._uids.append((now, len(uid), v))
            insort(self._sorted.setdefault(len(uid), []), v)
            while len(self._uids) > self.policy.remember:
                self._drop()
        if len(self._times) < self.policy.after:
            return False
        self._paused_until = now + self.policy.pause
        return True

    def slowed(self, now: float) -> bool:
        """Is the slow-down on (enough unknown cards in the window)?"""
        return sum(1 for t in self._times if now - t < self.policy.window) >= self.policy.after

    def remembered(self) -> int:
        """How many unknown UIDs are held (for tests and status; never the UIDs)."""
        return len(self._uids)

    def _forget(self, now: float) -> None:
        window = self.policy.window
        while self._times and now - self._times[0] >= window:
            self._times.popleft()
        while self._uids and now - self._uids[0][0] >= window:
            self._drop()

    def _drop(self) -> None:
        _, length, v = self._uids.popleft()
        values = self._sorted[length]
        del values[bisect_left(values, v)]
