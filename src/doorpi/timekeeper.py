"""The gate's one clock service: trusted time, local time, the persisted floor.

Wraps the pure `ClockGuard` with what touches the outside: the `Clock`
(system clock or RTC, monotonic clock), the floor and clock state kept in the
database (``state`` table: ``clock_floor``, ``clock_state``), the admin's
repair (``clock_repair``, written by `doorpi clock set|trust`) and the site's
zone. Every consumer in the gate asks `now()`; `doorpi status` reads what
this module stores.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from doorpi.clocks import Clock
from doorpi.core.clock import OK, ClockGuard, ClockReading
from doorpi.core.events import Notice
from doorpi.core.policy import Moment
from doorpi.sitetime import local
from doorpi.store.db import get_state, set_state

log = logging.getLogger("doorpi.clock")

# SD-card wear: 144 writes a day, not 1,440; a power cut loses at most 10 minutes of floor.
FLOOR_SAVE_SECONDS = 600.0


@dataclass(frozen=True)
class ClockRepair:
    """An admin's confirmed clock repair, as `doorpi clock` stores it."""

    count: int
    floor: float
    by: str
    action: str  # "set" or "trust"


def read_repair(db: Any) -> ClockRepair | None:
    raw = get_state(db, "clock_repair")
    if not raw:
        return None
    d = json.loads(raw)
    return ClockRepair(int(d["count"]), float(d["floor"]), str(d["by"]), str(d["action"]))


def write_repair(db: Any, floor: float, by: str, action: str) -> ClockRepair:
    """Store a repair: the floor becomes ``floor`` now, and a running gate
    resets its guard when it sees the new count (within a second)."""
    old = read_repair(db)
    rep = ClockRepair((old.count if old else 0) + 1, floor, by, action)
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        set_state(db, "clock_floor", repr(floor))
        set_state(db, "clock_repair", json.dumps(rep.__dict__))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return rep


def read_state(db: Any) -> dict[str, Any] | None:
    """The running gate's last view of its clock: state, wall, effective, at."""
    raw = get_state(db, "clock_state")
    return json.loads(raw) if raw else None


class Timekeeper:
    def __init__(self, clock: Clock, db: Any, tz: tzinfo) -> None:
        self.clock = clock
        self.db = db
        self.tz = tz
        floor = float(get_state(db, "clock_floor", "0") or 0)
        self.guard = ClockGuard(floor)
        self._floor_saved = floor
        self._state_saved = (read_state(db) or {}).get("state")
        repair = read_repair(db)
        self._repair_seen = repair.count if repair else 0
        self.last: ClockReading | None = None

    def now(self) -> tuple[Moment, list[Notice]]:
        """The moment to decide on, and notices to record (a jump, once)."""
        reading = self.guard.observe(self.clock.wall(), self.clock.mono())
        self.last = reading
        notices = []
        if reading.jumped_by:
            data = {"by_seconds": round(reading.jumped_by, 1), "clock": reading.state}
            log.warning(
                "clock jumped by %.0f s: %s",
                reading.jumped_by,
                "trusted" if reading.trusted else f"not trusted ({reading.state})",
            )
            notices.append(Notice("clock_jumped", data))
        if reading.state != self._state_saved:
            self._save_state(reading)
        return Moment(
            reading.effective, local(reading.effective, self.tz), reading.trusted
        ), notices

    def vouched(self) -> float:
        """Epoch seconds the gate can vouch for now: the wall clock while it is
        trusted, else the floor plus monotonic time elapsed (for retention,
        consent and other records that must not follow a bogus clock)."""
        return self.guard.reference(self.clock.mono())

    def offer(self, vouched: float, source: str) -> list[Notice]:
        """A signed source's time (bundle): raise the floor, or report it."""
        mono = self.clock.mono()
        if self.guard.offer(vouched, mono):
            return []
        ahead = vouched - self.guard.reference(mono)
        log.warning(
            "%s time is %.0f s ahead of what the gate can vouch for: not used", source, ahead
        )
        return [Notice("clock_floor_refused", {"source": source, "by_seconds": round(ahead, 1)})]

    def poll_repair(self) -> list[Notice]:
        """Apply a repair `doorpi clock set|trust` stored since the last poll."""
        try:
            rep = read_repair(self.db)
        except Exception as exc:
            log.error("clock repair request: %s", exc)
            return []
        if rep is None or rep.count == self._repair_seen:
            return []
        self._repair_seen = rep.count
        self.guard.reset(rep.floor)
        self._floor_saved = rep.floor
        data = {"action": rep.action, "by": rep.by, "floor": rep.floor}
        return [Notice("clock_repaired", data)]

    def persist(self, force: bool = False) -> None:
        floor = self.guard.floor
        if force or floor - self._floor_saved >= FLOOR_SAVE_SECONDS:
            try:
                set_state(self.db, "clock_floor", repr(floor))
                self._floor_saved = floor
            except Exception as exc:
                log.error("cannot save clock floor: %s", exc)
            if self.last is not None:
                self._save_state(self.last)

    def _save_state(self, reading: ClockReading) -> None:
        state = {"state": reading.state, "wall": reading.wall, "effective": reading.effective}
        try:
            set_state(self.db, "clock_state", json.dumps(state))
            self._state_saved = reading.state
        except Exception as exc:
            log.error("cannot save clock state: %s", exc)


__all__ = ["OK", "ClockRepair", "Timekeeper", "read_repair", "read_state", "vouched_by_floor",
           "write_repair"]  # fmt: skip


def vouched_by_floor(db: Any, wall: float) -> float:
    """The time another process (``doorpi audit prune``) may cut records by: the
    wall clock ``wall``, but never later than the gate's saved clock floor, the
    latest time it has vouched for (saved every `FLOOR_SAVE_SECONDS`, so at most
    that much early). A clock reading 2040 must not make 30 days of entries
    "older than 30 days"; one reading 1970 cuts nothing."""
    floor = float(get_state(db, "clock_floor", "0") or 0)
    return min(wall, floor) if floor else wall


def assess(db: Any, wall: float, tz: tzinfo) -> dict[str, Any]:
    """The clock as `doorpi status` and `doorpi clock` show it, from another
    process: the floor, the running gate's last view, and what to do.

    ``state`` is "ok", "behind" (the system clock is behind the trusted
    floor) or "ahead" (the gate saw an implausible jump and decides on the
    time it can vouch for); ``advice`` is one line for the admin, or "".
    """
    from doorpi.core.clock import AHEAD, SLACK_SECONDS
    from doorpi.sitetime import show

    floor = float(get_state(db, "clock_floor", "0") or 0)
    seen = read_state(db) or {}
    state, advice = OK, ""
    if floor and wall < floor - SLACK_SECONDS:
        state = "behind"
        advice = (
            f"the system clock ({show(wall, tz)}) is behind the last trusted time "
            f"({show(floor, tz)}): schedule-restricted residents are refused. Set the right "
            "local time with `doorpi clock set 'YYYY-MM-DD HH:MM'`; if the clock is right "
            "and the trusted time is wrong, confirm it with `doorpi clock trust`"
        )
    elif seen.get("state") == AHEAD:
        state = AHEAD
        advice = (
            f"the clock jumped ahead to {show(seen['wall'], tz)}, later than the gate can "
            f"vouch for ({show(seen['effective'], tz)}): the gate decides on the time it can "
            "vouch for and refuses schedule-restricted residents. If the system clock is "
            "right (the gate was off for a long time), confirm it with `doorpi clock trust`; "
            "otherwise fix the RTC or set the time with `doorpi clock set`"
        )
    return {
        "state": state,
        "trusted": state == OK,
        "floor": floor,
        "floor_local": show(floor, tz) if floor else "-",
        "system_local": show(wall, tz),
        "advice": advice,
    }
