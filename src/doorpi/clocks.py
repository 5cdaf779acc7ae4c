"""Time sources: the system's, and a manual one for scenarios and tests.

The gate reads wall time only through a `Clock`, and durations only from its
monotonic side, so scenarios run in virtual time and clock jumps can be
staged.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def wall(self) -> float: ...
    def mono(self) -> float: ...
    def local(self, epoch: float) -> datetime: ...
    def epoch(self, local: datetime) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch)

    def epoch(self, local: datetime) -> float:
        return local.timestamp()


class ManualClock:
    """Virtual time: ``advance()`` moves both clocks, ``set_wall()`` jumps the wall clock."""

    def __init__(self, wall: float, tz_offset_hours: float = 0.0) -> None:
        self._wall = wall
        self._mono = 1000.0
        self._tz = tz_offset_hours * 3600

    def wall(self) -> float:
        return self._wall

    def mono(self) -> float:
        return self._mono

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch + self._tz, tz=UTC).replace(tzinfo=None)

    def epoch(self, local: datetime) -> float:
        return local.replace(tzinfo=UTC).timestamp() - self._tz

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def set_wall(self, wall: float) -> None:
        self._wall = wall
