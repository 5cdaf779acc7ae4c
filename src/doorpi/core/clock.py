"""Deciding how far to trust the wall clock on a Pi without a real-time clock.

A Pi boots with the time it had at shutdown (fake-hwclock) or 1970 until
something sets it. doorpi keeps a *floor*: the latest wall time it has ever
trusted, persisted by the gate and raised by signed admin bundles. The rules:

* Wall time at or above ``floor - slack`` is trusted and raises the floor.
* Wall time below that is *behind*: the clock was reset or set back. The gate
  then runs on ``floor + monotonic time elapsed`` ("effective time"), so
  expired residents stay expired (validity can only move forward), and any
  resident whose schedule is not "always" is refused with ``clock_untrusted``
  until the clock is right again (set by NTP, `doorpi clock set`, or a sync).
  Unrestricted residents still enter by card and PIN.
* While running, a wall-clock jump that monotonic time does not show
  (more than ``slack``) is reported once as a ``clock_jumped`` notice.

Pure: callers pass wall and monotonic seconds in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClockReading:
    effective: float  # seconds since the epoch to use for decisions
    trusted: bool
    jumped_by: float = 0.0  # non-zero once, when a jump is first seen


class ClockGuard:
    def __init__(self, floor: float = 0.0, slack: float = 120.0) -> None:
        self.floor = floor
        self.slack = slack
        self._anchor: tuple[float, float] | None = None  # (wall, mono) at last reading
        self._untrusted_since: tuple[float, float] | None = None  # (floor, mono)

    def observe(self, wall: float, mono: float) -> ClockReading:
        jumped = 0.0
        if self._anchor is not None:
            expected = self._anchor[0] + (mono - self._anchor[1])
            if abs(wall - expected) > self.slack:
                jumped = wall - expected
        self._anchor = (wall, mono)
        if wall >= self.floor - self.slack:
            self._untrusted_since = None
            self.floor = max(self.floor, wall)
            return ClockReading(wall, True, jumped)
        if self._untrusted_since is None:
            self._untrusted_since = (self.floor, mono)
        base, since = self._untrusted_since
        return ClockReading(base + max(0.0, mono - since), False, jumped)

    def raise_floor(self, trusted_time: float) -> None:
        """A signed source (admin bundle) vouches that it is at least this late."""
        self.floor = max(self.floor, trusted_time)
