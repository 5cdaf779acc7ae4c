"""One face to people: how commands print times, values, records and tables.

Commands meant for a person print through these helpers, never ``str()`` of
a dict, list, float timestamp or None. Times are local times from the
process clock (`doorpi.clocks.SystemClock.local`), so the site's time zone
applies wherever that clock learns it. Column widths count East Asian wide
characters as two terminal cells (Unicode UAX #11, via
`unicodedata.east_asian_width`), so Chinese names line up.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Field names whose numbers are epoch seconds (audit data, reports, status).
TIME_FIELDS = frozenset({"ts", "at", "created", "added", "updated", "valid_from",
                         "valid_until", "withdrawn_at", "retention_end", "given_at",
                         "clock_floor", "gate_time", "until", "since", "expires"})  # fmt: skip


def when(epoch: float | None, seconds: bool = False, until: bool = False) -> str:
    """Site-local date and time (``site.timezone``), like ``2026-05-28 14:05``; "-"
    when there is none; ``until`` shows an end-of-day bound as "24:00"."""
    from doorpi.cli.common import site_tz
    from doorpi.sitetime import local, show

    if epoch is None:
        return "-"
    if seconds:
        return f"{local(float(epoch), site_tz()):%Y-%m-%d %H:%M:%S}"
    return show(float(epoch), site_tz(), until=until)


def value(v: Any, key: str = "") -> str:
    """One value as a person reads it: yes/no, local times, lists joined, "-" for none."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if key in TIME_FIELDS and isinstance(v, int | float) and not isinstance(v, bool):
        return when(v) if v > 0 else "-"  # 0: never set
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, Mapping):
        return fields(v) or "-"
    if isinstance(v, list | tuple | set | frozenset):
        return ", ".join(value(x) for x in v) or "-"
    return str(v)


def fields(doc: Mapping[str, Any]) -> str:
    """A record's details on one line: ``action applied, sequence 3``."""
    return ", ".join(f"{k.replace('_', ' ')} {value(v, k)}" for k, v in doc.items())


def width(text: str) -> int:
    """Terminal cells: wide (W) and fullwidth (F) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fit(text: str, cells: int, right: bool = False) -> str:
    """Cut to at most ``cells`` terminal cells, then pad to exactly that many."""
    out, used = [], 0
    for c in text:
        w = 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used + w > cells:
            break
        out.append(c)
        used += w
    pad = " " * (cells - used)
    return pad + "".join(out) if right else "".join(out) + pad


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], limits: Sequence[int] = ()) -> str:
    """Columns sized to their content (at most ``limits[i]`` cells), two spaces apart."""
    cells = [[value(c) for c in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        widths = [max(w, width(c)) for w, c in zip(widths, row, strict=True)]
    if limits:
        widths = [min(w, lim) if lim else w for w, lim in zip(widths, limits, strict=True)]
    lines = ["  ".join(fit(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(fit(c, w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
