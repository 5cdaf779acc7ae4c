"""Time sources: the system's, and a manual one for scenarios and tests.

The gate reads wall time only through a `Clock`, and durations only from its
monotonic side, so scenarios run in virtual time and clock jumps can be
staged. Local time is in the site's zone (``site.timezone``, see
`doorpi.sitetime`), never the system's /etc/localtime.
"""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from typing import Protocol

from doorpi.sitetime import DEFAULT_TIMEZONE, to_epoch, zone


class Clock(Protocol):
    def wall(self) -> float: ...
    def mono(self) -> float: ...
    def local(self, epoch: float) -> datetime: ...
    def epoch(self, local: datetime) -> float: ...


def _tz(tz: tzinfo | str) -> tzinfo:
    return zone(tz) if isinstance(tz, str) else tz


class SystemClock:
    def __init__(self, tz: tzinfo | str = DEFAULT_TIMEZONE) -> None:
        self.tz = _tz(tz)

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.tz)

    def epoch(self, local: datetime) -> float:
        return to_epoch(local, self.tz)


class ManualClock:
    """Virtual time: ``advance()`` moves both clocks, ``set_wall()`` jumps the wall clock."""

    def __init__(self, wall: float, tz: tzinfo | str = DEFAULT_TIMEZONE) -> None:
        self._wall = wall
        self._mono = 1000.0
        self.tz = _tz(tz)

    def wall(self) -> float:
        return self._wall

    def mono(self) -> float:
        return self._mono

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.tz)

    def epoch(self, local: datetime) -> float:
        return to_epoch(local, self.tz)

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def set_wall(self, wall: float) -> None:
        self._wall = wall
