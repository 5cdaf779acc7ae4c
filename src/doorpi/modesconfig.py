"""The ``[modes]`` config section: unlock windows, first-person-in, holidays, duress output.

Parsed with the same one-line errors as the rest of `doorpi.config`; the
inputs and the duress output themselves are GPIO numbers in ``[gpio]``
(``fire_alarm``, ``fire_alarm_contact``, ``fire_supervision``,
``lockdown_switch``, ``duress_output``) so the pin-clash check sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from doorpi.core.modes import UnlockPlan
from doorpi.core.schedule import Schedule


@dataclass(frozen=True)
class ModesConfig:
    unlock_schedules: tuple[str, ...] = ()  # names in [schedules]: the door stays released
    first_person_in: bool = False  # windows release only after the first authorised entry
    holidays: frozenset[date] = frozenset()  # site-local dates: no windows, no restricted access
    # How long the silent duress output stays active (seconds); the audit record stays.
    duress_alarm_seconds: float = 300.0

    def plan(self, schedules: dict[str, Schedule]) -> UnlockPlan:
        return UnlockPlan(
            tuple(schedules[n] for n in self.unlock_schedules), self.first_person_in, self.holidays
        )


def parse_holiday(value: Any) -> date:
    """A holiday: a TOML date or "YYYY-MM-DD" (site-local day). ValueError names the value."""
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date like 2026-12-25")


def parse_modes(doc: dict[str, Any], schedules: dict[str, Schedule]) -> ModesConfig:
    from doorpi.config import _section

    s = _section(doc, "modes")
    names = s.list("unlock_schedules", [])
    for i, name in enumerate(names):
        if name not in schedules:
            raise s.fail(f"unlock_schedules[{i}]", f"unknown schedule {name!r}")
    holidays = set()
    for i, value in enumerate(s.list("holidays", [])):
        try:
            holidays.add(parse_holiday(value))
        except ValueError as exc:
            raise s.fail(f"holidays[{i}]", str(exc)) from None
    cfg = ModesConfig(
        unlock_schedules=tuple(names),
        first_person_in=s.bool("first_person_in", False),
        holidays=frozenset(holidays),
        duress_alarm_seconds=s.num("duress_alarm_seconds", 300.0, 1, 86400),
    )
    s.check_unknown()
    return cfg
