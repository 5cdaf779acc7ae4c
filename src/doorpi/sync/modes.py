"""The bundle's optional ``modes`` field: lockdown, holidays, responders.

Roster (``[modes]`` table, `doorpi admin`)::

    [modes]
    lockdown = true                      # leave out unless meant: the last one wins
    holidays = [2026-12-25, 2027-01-01]  # site-local dates: no unlock windows,
                                         # restricted schedules admit no one
    responders = ["a-3101-wang"]         # roster keys let in during lockdown

The field is signed with the rest of the body and absent when the roster has
no ``[modes]`` table (older gates and bundles are unaffected). The importer
applies it in the import's transaction: ``lockdown`` (when given) replaces
the gate's stored lockdown (as `doorpi lockdown on|off` does; a running gate
applies it within a second), ``holidays`` replaces the roster holidays (the
config's ``modes.holidays`` stay), ``responders`` sets exactly those residents
of the roster as responders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_HOLIDAYS = 1000


@dataclass(frozen=True)
class ModesEntry:
    lockdown: bool | None = None  # None: leave the gate's lockdown as it is
    holidays: tuple[str, ...] = ()  # ISO dates, site-local
    responders: tuple[str, ...] = ()  # roster keys

    def to_doc(self) -> dict[str, Any]:
        return {"lockdown": self.lockdown, "holidays": list(self.holidays),
                "responders": list(self.responders)}  # fmt: skip


def parse_modes(v: Any, where: str = "modes") -> ModesEntry | None:
    """The body's ``modes`` value (None when absent); ValueError names the field."""
    from datetime import date

    if v is None:
        return None
    if not isinstance(v, dict) or not set(v) <= {"lockdown", "holidays", "responders"}:
        raise ValueError(f"{where}: must be a table of lockdown, holidays, responders")
    lockdown = v.get("lockdown")
    if lockdown is not None and not isinstance(lockdown, bool):
        raise ValueError(f"{where}.lockdown: must be true, false or left out")
    days, keys = v.get("holidays", []), v.get("responders", [])
    if not isinstance(days, list) or len(days) > MAX_HOLIDAYS:
        raise ValueError(f"{where}.holidays: must be a list of at most {MAX_HOLIDAYS} dates")
    out: list[str] = []
    for i, d in enumerate(days):
        try:
            out.append(date.fromisoformat(str(d)).isoformat())
        except ValueError:
            raise ValueError(
                f"{where}.holidays[{i}]: {d!r} is not a date like 2026-12-25"
            ) from None
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ValueError(f"{where}.responders: must be a list of roster keys")
    return ModesEntry(lockdown, tuple(sorted(set(out))), tuple(keys))


def apply_modes(conn: Any, db: Any, entry: ModesEntry, mapping: dict[str, int], now: float) -> None:
    """Store the bundle's modes (inside the import's transaction)."""
    from doorpi.doormodes import read_lockdown, write_holidays, write_lockdown

    if entry.lockdown is not None:
        try:
            current = read_lockdown(db)["active"]
        except ValueError:
            current = None  # unreadable: the bundle's value repairs it
        if current != entry.lockdown:
            write_lockdown(db, entry.lockdown, "bundle", "admin bundle", now)
    write_holidays(db, list(entry.holidays))
    wanted = {mapping[k] for k in entry.responders if k in mapping}
    conn.execute("UPDATE resident_roles SET responder = 0 WHERE responder = 1")
    for rid in sorted(wanted):
        conn.execute(
            "INSERT INTO resident_roles(resident_id, responder) VALUES (?, 1) "
            "ON CONFLICT(resident_id) DO UPDATE SET responder = 1",
            [rid],
        )


def roster_modes(raw: Any) -> ModesEntry | None:
    """The roster's ``[modes]`` table as a bundle field (ValueError names the field)."""
    if raw is None:
        return None
    if isinstance(raw, dict) and "holidays" in raw:
        raw = {**raw, "holidays": [str(d) for d in raw["holidays"]]
               if isinstance(raw["holidays"], list) else raw["holidays"]}  # fmt: skip
    return parse_modes(raw, "modes")
