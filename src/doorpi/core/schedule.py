"""Weekly time windows: "mon-fri 07:00-19:00", "daily 06:00-23:00", "sat,sun 09:00-12:00".

A window whose end is earlier than its start runs overnight: "daily
22:00-06:00" (night guard, cleaners) opens at 22:00 on each listed day and
closes at 06:00 the next morning, so "fri 22:00-06:00" covers Saturday until
06:00. Parsed once from config into `Schedule` objects; `allows()` is pure and
takes local wall time in the site's zone (already vetted by `ClockGuard`), so
windows follow the local clock across DST changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleError(ValueError):
    """A window that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes since midnight, inclusive
    end_min: int  # exclusive; 1440 = end of day; below start_min: the next morning

    @property
    def overnight(self) -> bool:
        return self.end_min < self.start_min

    def contains(self, when: datetime) -> bool:
        minute = when.hour * 60 + when.minute
        day = when.weekday()
        if not self.overnight:
            return day in self.days and self.start_min <= minute < self.end_min
        if minute >= self.start_min:
            return day in self.days
        return minute < self.end_min and (day - 1) % 7 in self.days


def _parse_days(text: str) -> frozenset[int]:
    if text == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise ScheduleError(f"unknown day in {part!r} (use mon..sun)")
            i, j = DAYS.index(a), DAYS.index(b)
            if i > j:
                raise ScheduleError(f"day range {part!r} runs backwards")
            days.update(range(i, j + 1))
        elif part in DAYS:
            days.add(DAYS.index(part))
        else:
            raise ScheduleError(f"unknown day {part!r} (use mon..sun, mon-fri or daily)")
    return frozenset(days)


def _parse_clock(text: str) -> int:
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ScheduleError(f"time {text!r} is not HH:MM") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m != 0):
        raise ScheduleError(f"time {text!r} is out of range")
    return h * 60 + m


def parse_window(text: str) -> Window:
    parts = text.strip().lower().split()
    if len(parts) != 2 or "-" not in parts[1]:
        raise ScheduleError(f"window {text!r} is not 'DAYS HH:MM-HH:MM'")
    start, end = parts[1].split("-", 1)
    s, e = _parse_clock(start), _parse_clock(end)
    if s == e:
        raise ScheduleError(f"window {text!r} is empty (start and end are the same time)")
    if s == 1440:
        raise ScheduleError(f"window {text!r} starts at 24:00 (write 00:00 of the next day)")
    return Window(_parse_days(parts[0]), s, e)


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    windows: tuple[Window, ...]

    @classmethod
    def parse(cls, name: str, windows: list[str]) -> Schedule:
        if not windows:
            raise ScheduleError("a schedule needs at least one window")
        return cls(name, tuple(parse_window(w) for w in windows))

    def allows(self, when: datetime) -> bool:
        return any(w.contains(when) for w in self.windows)

    @property
    def is_always(self) -> bool:
        """True when the schedule covers the whole week (no clock needed)."""
        return all(
            any(d in w.days and w.start_min == 0 and w.end_min == 1440 for w in self.windows)
            for d in range(7)
        )
