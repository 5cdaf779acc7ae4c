"""The site's local time: one zone (``site.timezone``) and one meaning for dates.

doorpi never reads /etc/localtime (the image is built with
``TIMEZONE_DEFAULT="Etc/UTC"`` on a read-only root); every conversion
between epoch seconds and what people read or type goes through here with
the zone from the config, using the IANA database through stdlib `zoneinfo`
(Debian's ``tzdata`` package provides /usr/share/zoneinfo on the Pi).

A date without a time means a whole local day: "from 2027-01-01" starts at
local midnight, "until 2027-06-30" runs through that day, so the stored bound
(exclusive, epoch seconds) is the next local midnight. The device CLI, the
admin roster and scenarios all use `parse_local`.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta, tzinfo

DEFAULT_TIMEZONE = "Etc/UTC"


class TimeZoneError(ValueError):
    """A zone name the IANA database does not know; the message says which."""


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name`` (e.g. "Asia/Shanghai"); raises TimeZoneError."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise TimeZoneError(f"{name!r} is not an IANA time zone name like Asia/Shanghai")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        near = [z for z in zoneinfo.available_timezones() if z.lower() == name.lower()]
        hint = f" (did you mean {near[0]}?)" if near else " (see `timedatectl list-timezones`)"
        raise TimeZoneError(f"unknown time zone {name!r}{hint}") from None


def local(epoch: float, tz: tzinfo) -> datetime:
    """Aware local datetime for epoch seconds."""
    return datetime.fromtimestamp(epoch, tz)


def to_epoch(when: datetime, tz: tzinfo) -> float:
    """Epoch seconds for ``when``; a naive datetime is local time in ``tz``.

    A local time that does not exist (the hour skipped at a spring-forward)
    or exists twice (fall-back) resolves as `zoneinfo` does with fold=0: the
    earlier reading of the clock.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.timestamp()


def day_start(day: date, tz: tzinfo) -> float:
    """Epoch seconds of the first instant of local ``day`` (DST-safe)."""
    return to_epoch(datetime.combine(day, time()), tz)


def parse_local(value: object, tz: tzinfo, *, until: bool = False) -> float:
    """Epoch seconds for a date or date-time people wrote in the site's zone.

    ``value``: "2027-06-30", "2027-06-30T18:00", "2027-06-30 18:00", or a
    TOML `date`/`datetime`. A bare date is the start of that local day, or,
    with ``until``, the start of the next one (the bound is exclusive, so
    the whole day counts). Raises ValueError naming the value.
    """
    if isinstance(value, datetime):
        return to_epoch(value, tz)
    if isinstance(value, date):
        return day_start(value + timedelta(days=1) if until else value, tz)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return parse_local(date.fromisoformat(text), tz, until=until)
            return to_epoch(datetime.fromisoformat(text), tz)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date like 2027-06-30 or 2027-06-30T18:00")


def show(epoch: float | None, tz: tzinfo, *, until: bool = False) -> str:
    """A time as people at the site read it ("2027-06-30 18:00").

    With ``until``, a bound at local midnight shows as the day it closes
    ("2027-06-30 24:00"), so "until 2027-06-30" reads back as written.
    """
    if epoch is None:
        return "-"
    t = local(epoch, tz)
    if until and (t.hour, t.minute, t.second) == (0, 0, 0):
        return f"{(t - timedelta(days=1)):%Y-%m-%d} 24:00"
    return f"{t:%Y-%m-%d %H:%M}"
