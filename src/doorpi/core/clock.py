"""Deciding how far to trust the wall clock (system clock, RTC) on a gate.

A Pi boots with the time it had at shutdown (fake-hwclock), with what a
DS3231 RTC reads (sometimes garbage: 2040, 2165, 1900), or with 1970. doorpi
keeps a *floor*: the latest time it can vouch for, persisted by the gate. The
rules, all pure (callers pass wall and monotonic seconds in):

* **Reference time.** After a trusted reading at (wall, mono), the gate can
  vouch for ``wall + (mono_now - mono)``: monotonic time cannot jump. A new
  wall reading within ``slack`` of the reference is trusted, re-anchors the
  reference and raises the floor.
* **Behind.** A wall clock more than ``slack`` behind the reference (reset to
  1970, set back) is not trusted.
* **Ahead.** A wall clock more than ``slack`` ahead of the reference (a bad
  RTC read, a mistyped ``date -s``) is an implausible jump: reported, not
  trusted, and it never raises the floor.
* While not trusted the gate decides on the reference ("effective time": the
  floor plus monotonic time elapsed, a lower bound on the true time), so an
  expired resident stays expired; residents whose schedule is not "always"
  are refused with ``clock_untrusted``. Trust resumes by itself once the wall
  clock agrees with the reference again, or when an admin confirms the time
  (``doorpi clock set`` / ``doorpi clock trust``: `reset`).
* **At start** nothing vouches for the time the gate was off, so the first
  reading is trusted when it lies between ``floor - slack`` and ``floor +
  max_offline`` (a gate without RTC boots near its floor; one with an RTC
  after a normal outage). Further ahead is treated like a jump. A guard with
  no saved floor (first start) trusts its first reading.
* **Signed bundles** carry the admin laptop's time. It may raise the floor by
  at most ``max_offline`` beyond the reference (`offer`); a later time is
  refused as implausible (a laptop clock set to 2040 must not poison gates).

The floor only moves forward, except through `reset`, which the device CLI
offers as an audited, confirmed repair.
"""

from __future__ import annotations

from dataclasses import dataclass

# How far ahead of its floor a gate may find its clock at start, or a signed
# bundle may move the floor, and still be believed. A gate without RTC boots
# near its floor (fake-hwclock); 30 days covers an ordinary outage with an RTC
# fitted, while the garbage RTC reads reported in the field are years off
# (arendst/Tasmota#17799: 2053; Makuna/Rtc#42: 2165).
MAX_OFFLINE_SECONDS = 30 * 86400.0

# Wall-clock disagreement tolerated without calling it a jump: NTP slews, RTC
# drift (a DS3231 drifts about 1 min/year) and scheduling delays.
SLACK_SECONDS = 120.0

OK, BEHIND, AHEAD = "ok", "behind", "ahead"


@dataclass(frozen=True, slots=True)
class ClockReading:
    effective: float  # seconds since the epoch to use for decisions
    trusted: bool
    jumped_by: float = 0.0  # non-zero once, when a jump is first seen
    state: str = OK  # ok | behind | ahead (the wall clock against the reference)
    wall: float = 0.0  # the wall reading this is based on


class ClockGuard:
    def __init__(
        self,
        floor: float = 0.0,
        slack: float = SLACK_SECONDS,
        max_offline: float = MAX_OFFLINE_SECONDS,
    ) -> None:
        self.floor = floor
        self.slack = slack
        self.max_offline = max_offline
        self._ref: tuple[float, float] | None = None  # (vouched time, mono) of last trust
        self._last: tuple[float, float] | None = None  # (wall, mono) of the last reading
        self.state = OK

    def reference(self, mono: float) -> float:
        """The latest time the gate can vouch for at monotonic time ``mono``."""
        if self._ref is None:
            return self.floor
        return max(self.floor, self._ref[0] + max(0.0, mono - self._ref[1]))

    def observe(self, wall: float, mono: float) -> ClockReading:
        jumped = 0.0
        if self._last is not None:
            expected = self._last[0] + (mono - self._last[1])
            if abs(wall - expected) > self.slack:
                jumped = wall - expected
        self._last = (wall, mono)
        if self._ref is None:  # first reading since start or repair
            ahead_ok = self.max_offline if self.floor > 0 else float("inf")
            plausible = self.floor - self.slack <= wall <= self.floor + ahead_ok
            if not plausible and wall > self.floor and not jumped:
                jumped = wall - self.floor
            self._ref = (self.floor, mono)
        else:
            ref = self.reference(mono)
            plausible = abs(wall - ref) <= self.slack
        if plausible:
            self._ref = (wall, mono)
            self.floor = max(self.floor, wall)
            self.state = OK
            return ClockReading(wall, True, jumped, OK, wall)
        ref = self.reference(mono)
        self.floor = ref  # monotonic time elapsed is vouched for
        self._ref = (ref, mono)
        self.state = BEHIND if wall < ref else AHEAD
        return ClockReading(ref, False, jumped, self.state, wall)

    def offer(self, vouched: float, mono: float) -> bool:
        """A signed source (admin bundle) says it is at least ``vouched``.

        Raises the floor when that is within ``max_offline`` of the reference
        (or when there is no floor yet); returns False (floor unchanged) for a
        time the gate cannot believe.
        """
        if self.floor > 0 and vouched > self.reference(mono) + self.max_offline:
            return False
        self.floor = max(self.floor, vouched)
        return True

    def reset(self, floor: float) -> None:
        """The admin's confirmed repair: the floor becomes ``floor`` (even if
        lower) and the next reading is judged as at start."""
        self.floor = floor
        self._ref = None
        self._last = None
        self.state = OK
