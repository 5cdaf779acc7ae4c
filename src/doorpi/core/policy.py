"""Who may enter, when, and by which factors. Pure functions only.

An *access rule* is a set of combinations, each a set of factors ("card",
"pin", "face") that must all come from the same resident. The door may have a
default rule and rules that apply inside named schedules. Face is never the
only way in: `check_parity` refuses any rule without a face-free combination,
and config validation calls it for every rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from doorpi.core.events import Decision
from doorpi.core.schedule import Schedule

FACTORS = ("card", "pin", "face")

Combination = frozenset[str]


class Reason:
    """Stable reason codes used in the audit log, the demo output and tests."""

    GRANTED = "granted"
    EXIT = "exit_request"
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_RESIDENT = "unknown_resident"
    WRONG_PIN = "wrong_pin"
    NO_PIN_SET = "no_pin_set"
    INACTIVE = "resident_inactive"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    OUTSIDE_SCHEDULE = "outside_schedule"
    CLOCK_UNTRUSTED = "clock_untrusted"
    LOCKED_OUT = "locked_out"
    RATE_LIMITED = "rate_limited"  # a tap left unchecked while unknown cards slow the reader
    FACTOR_NOT_ALLOWED = "factor_not_allowed"
    INCOMPLETE = "incomplete"  # the second factor never came
    FACE_PAUSED = "face_paused"
    HOLIDAY = "holiday"  # a restricted schedule on a dated exception (doorpi.core.modes)
    LOCKDOWN = "lockdown"  # lockdown: only residents flagged responder (doorpi.core.modes)
    NO_FACE_FREE_WAY = "no_face_free_way"  # face failed; this resident holds no face-free finish
    # The rule needs a card with what was shown (e.g. card+pin after the PIN) and this
    # resident holds no card: refused at once, not after the entry timeout (`lacking`).
    NO_CARD = "no_card_enrolled"


# A complete, correct credential that is not valid now: the resident can act on it
# (see the office) and a stranger without the credential never sees it.
SEE_OFFICE = frozenset({Reason.INACTIVE, Reason.NOT_YET_VALID, Reason.EXPIRED,
                        Reason.OUTSIDE_SCHEDULE, Reason.CLOCK_UNTRUSTED, Reason.HOLIDAY,
                        Reason.LOCKDOWN})  # fmt: skip


def deny_pattern(reason: str) -> str:
    """The feedback pattern for a refusal (doorpi.hardware.feedback.PATTERNS).

    "denied" (try again) for everything a stranger could cause, so a wrong PIN,
    an unknown card and an unknown resident number look the same;
    "see_office" only for `SEE_OFFICE`, which `decide` reaches after every
    factor was shown and checked.
    """
    if reason in (Reason.LOCKED_OUT, Reason.RATE_LIMITED):  # slow down: wait, then retry
        return "locked_out"
    return "see_office" if reason in SEE_OFFICE else "denied"


class PolicyError(ValueError):
    """A rule that may not be configured (e.g. face as the only way in)."""


def parse_rule(entries: Iterable[str]) -> tuple[Combination, ...]:
    combos: list[Combination] = []
    for entry in entries:
        parts = [p.strip() for p in str(entry).lower().split("+")]
        for p in parts:
            if p not in FACTORS:
                raise PolicyError(f"unknown factor {p!r} in {entry!r} (use card, pin, face)")
        if len(set(parts)) != len(parts):
            raise PolicyError(f"factor repeated in {entry!r}")
        combos.append(frozenset(parts))
    if not combos:
        raise PolicyError("no way in is listed")
    return tuple(combos)


def check_parity(rule: tuple[Combination, ...]) -> None:
    """Face may never be required: some combination must work without it."""
    if not any("face" not in c for c in rule):
        raise PolicyError("face is the only way in; add a card or PIN combination")


@dataclass(frozen=True, slots=True)
class ScheduledRule:
    schedule: str
    rule: tuple[Combination, ...]


@dataclass(frozen=True, slots=True)
class DoorPolicy:
    default: tuple[Combination, ...]
    scheduled: tuple[ScheduledRule, ...] = ()

    def rule_at(
        self, local: datetime, schedules: Mapping[str, Schedule]
    ) -> tuple[Combination, ...]:
        for sr in self.scheduled:
            if schedules[sr.schedule].allows(local):
                return sr.rule
        return self.default


@dataclass(frozen=True, slots=True)
class ResidentView:
    """What the core needs to know about a resident (no names, no biometrics)."""

    id: int
    active: bool = True
    valid_from: float | None = None  # epoch seconds
    valid_until: float | None = None
    schedule: str | None = None  # None: any time


@dataclass(frozen=True, slots=True)
class Moment:
    """The time as the clock guard vouches for it."""

    epoch: float  # effective epoch seconds (never earlier than the trusted floor)
    local: datetime  # local wall time for schedules
    trusted: bool = True


def completes(rule: tuple[Combination, ...], factors: frozenset[str]) -> bool:
    return any(c <= factors for c in rule)


def could_complete(rule: tuple[Combination, ...], factors: frozenset[str]) -> bool:
    """True if adding factors could still satisfy some combination."""
    return any(factors < c for c in rule)


def check_resident(
    resident: ResidentView,
    at: Moment,
    schedules: Mapping[str, Schedule],
    holidays: frozenset[date] = frozenset(),
) -> str | None:
    """The reason this resident may not enter now, or None if they may.
    ``holidays``: site-local dates on which restricted schedules admit no one."""
    if not resident.active:
        return Reason.INACTIVE
    if resident.valid_from is not None and at.epoch < resident.valid_from:
        return Reason.NOT_YET_VALID
    if resident.valid_until is not None and at.epoch >= resident.valid_until:
        return Reason.EXPIRED
    if resident.schedule is not None:
        sched = schedules.get(resident.schedule)
        if sched is None:
            return Reason.OUTSIDE_SCHEDULE  # unknown schedule: fail closed
        if not sched.is_always:
            if not at.trusted:
                return Reason.CLOCK_UNTRUSTED
            if at.local.date() in holidays:
                return Reason.HOLIDAY
            if not sched.allows(at.local):
                return Reason.OUTSIDE_SCHEDULE
    return None


#: The refusal for a card or PIN the resident can never add (`lacking`); a lacking
#: face is the face path's to explain (doorpi.facepath).
LACKING_REASON = {"pin": Reason.NO_PIN_SET, "card": Reason.NO_CARD}


def lacking(
    rule: tuple[Combination, ...], have: frozenset[str], holds: frozenset[str]
) -> str | None:
    """The factor that keeps an unfinished attempt from ever completing, or None.

    ``have``: the factors shown and checked so far; ``holds``: what this resident
    can still show (``card`` if a card is bound, ``pin`` if a PIN is set, ``face``
    if the gate can ask for it now). None when some combination of ``rule`` that
    contains ``have`` needs nothing beyond ``holds``; else the first factor
    (pin, card, face) missing from the combination that lacks the fewest.
    """
    grows = [c for c in rule if have < c]
    if not grows or any(c <= have | holds for c in grows):
        return None
    fewest = min(len(c - have - holds) for c in grows)
    short = {f for c in grows if len(c - have - holds) == fewest for f in c - have - holds}
    return next(f for f in ("pin", "card", "face") if f in short)


def decide(
    rule: tuple[Combination, ...],
    resident: ResidentView,
    factors: frozenset[str],
    at: Moment,
    schedules: Mapping[str, Schedule],
    holidays: frozenset[date] = frozenset(),
) -> Decision | None:
    """Final decision for a resident who showed ``factors``, or None when the
    rule wants more factors (the gate then prompts and waits)."""
    ordered = tuple(f for f in FACTORS if f in factors)
    if not completes(rule, factors):
        if could_complete(rule, factors):
            return None
        return Decision(False, Reason.FACTOR_NOT_ALLOWED, resident.id, ordered)
    problem = check_resident(resident, at, schedules, holidays)
    if problem is not None:
        return Decision(False, problem, resident.id, ordered)
    return Decision(True, Reason.GRANTED, resident.id, ordered)
