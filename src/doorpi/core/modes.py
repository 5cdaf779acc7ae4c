"""Door modes: fire release, lockdown, scheduled unlock windows, normal.

The mode is state next to the door state machine. What holds it is four
inputs, and one table says what wins (`PRIORITY`, `RULES`):

==============  ============  ==================  =========
mode            strike        who may enter       exit
==============  ============  ==================  =========
fire_release    held released everyone (released)  free
lockdown        locked        responders only      free
unlock_window   held released everyone (released)  free
normal          locked        access rules         free
==============  ============  ==================  =========

Fire release wins over everything (lockdown, unlock windows, whatever else
the gate is doing); lockdown wins over unlock windows; an unlock window with
*first-person-in* holds the door released only once an authorised resident
has entered during that window. The exit button is free in every mode.

Fire input, asymmetric on purpose (fail towards egress): an alarm, or a wire
break on a supervised line, acts on the first edge; the return to normal
must hold for ``clear_seconds`` (the settle time) before fire release ends,
and both are logged. Unlock windows follow the clock-trust rules: a window is
open only while the clock is trusted (`Moment.trusted`) and the site-local
date is not a holiday, so an untrusted clock never starts (nor keeps) one.

Pure: time comes in as `Moment` (wall) and monotonic seconds; outputs are
`Notice` records. The gate turns `Modes.held` into strike commands through
`doorpi.core.door.DoorMachine.hold`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from enum import Enum

from doorpi.core.events import Decision, Notice
from doorpi.core.policy import Moment
from doorpi.core.schedule import Schedule


class Mode(Enum):
    NORMAL = "normal"
    UNLOCK_WINDOW = "unlock_window"
    LOCKDOWN = "lockdown"
    FIRE = "fire_release"


@dataclass(frozen=True, slots=True)
class ModeRule:
    """What a mode means: ``strike_held``: the strike stays released whatever
    the grants; ``responders_only``: residents not flagged responder are
    refused; ``relock_at_once``: entering the mode cuts a running timed
    unlock; ``exit_free``: the exit button opens (always True)."""

    strike_held: bool
    responders_only: bool = False
    relock_at_once: bool = False
    exit_free: bool = True


# Highest priority first: the first mode whose condition holds is the mode.
PRIORITY: tuple[Mode, ...] = (Mode.FIRE, Mode.LOCKDOWN, Mode.UNLOCK_WINDOW, Mode.NORMAL)

RULES: Mapping[Mode, ModeRule] = {
    Mode.FIRE: ModeRule(strike_held=True),
    Mode.LOCKDOWN: ModeRule(strike_held=False, responders_only=True, relock_at_once=True),
    Mode.UNLOCK_WINDOW: ModeRule(strike_held=True),
    Mode.NORMAL: ModeRule(strike_held=False),
}

LOCKDOWN_REASON = "lockdown"  # refusal reason code for a non-responder in lockdown


@dataclass(frozen=True, slots=True)
class ModeInputs:
    """Everything that decides the mode at one instant."""

    fire: bool = False  # fire alarm active or supervised wire broken
    lockdown: bool = False  # stored lockdown (admin, bundle) or key switch
    window: bool = False  # an unlock window is open (trusted clock, not a holiday)
    first_in_needed: bool = False  # the window waits for the first authorised entry
    first_in_done: bool = False  # someone authorised entered during this window


def mode_of(inp: ModeInputs) -> Mode:
    """The mode for ``inp``, by `PRIORITY`."""
    conditions = {
        Mode.FIRE: inp.fire,
        Mode.LOCKDOWN: inp.lockdown,
        Mode.UNLOCK_WINDOW: inp.window and (not inp.first_in_needed or inp.first_in_done),
        Mode.NORMAL: True,
    }
    return next(m for m in PRIORITY if conditions[m])


def admit(mode: Mode, decision: Decision, responder: bool) -> Decision:
    """A resident's decision as the mode allows it: in lockdown a grant to
    someone not flagged responder becomes a refusal (``lockdown``). Exit
    requests pass in every mode; refusals stay refusals."""
    if not decision.granted or decision.resident_id is None:
        return decision
    if RULES[mode].responders_only and not responder:
        return replace(decision, granted=False, reason=LOCKDOWN_REASON)
    return decision


@dataclass(frozen=True, slots=True)
class UnlockPlan:
    """Scheduled unlock windows (schedule names from ``[schedules]``), whether
    they wait for the first authorised entry, and holidays (site-local dates
    on which no window opens and restricted schedules admit no one)."""

    windows: tuple[Schedule, ...] = ()
    first_person_in: bool = False
    holidays: frozenset[date] = frozenset()

    def open_window(self, at: Moment) -> str | None:
        """The name of the window open at ``at``, or None (untrusted clock: None)."""
        if not at.trusted or at.local.date() in self.holidays:
            return None
        return next((s.name for s in self.windows if s.allows(at.local)), None)


class Modes:
    """The mode state: fire input, lockdown sources, unlock window, first-in.

    Every method returns the notices to record (empty when nothing changed);
    a change of mode adds ``door_mode`` {mode, was}. Read `mode`, `held`
    (strike held released) and `rule` after each call.
    """

    def __init__(
        self,
        plan: UnlockPlan | None = None,
        clear_seconds: float = 0.05,
        lockdown: bool = False,
        holidays: frozenset[date] = frozenset(),
    ) -> None:
        self.plan = plan or UnlockPlan()
        self.extra_holidays = holidays  # from the roster, added to the plan's
        self.clear_seconds = clear_seconds
        self.fire = False
        self.fire_cause = ""
        self._clear_since: float | None = None
        self.lockdown_stored = lockdown
        self.lockdown_switch = False
        self.window: str | None = None
        self.first_in_done = False
        self.mode = mode_of(self.inputs)

    @property
    def inputs(self) -> ModeInputs:
        return ModeInputs(
            fire=self.fire,
            lockdown=self.lockdown_stored or self.lockdown_switch,
            window=self.window is not None,
            first_in_needed=self.plan.first_person_in,
            first_in_done=self.first_in_done,
        )

    @property
    def rule(self) -> ModeRule:
        return RULES[self.mode]

    @property
    def held(self) -> bool:
        """True while the strike must be held released."""
        return self.rule.strike_held

    def _settle(self, out: list[Notice]) -> list[Notice]:
        new = mode_of(self.inputs)
        if new is not self.mode:
            out.append(Notice("door_mode", {"mode": new.value, "was": self.mode.value}))
            self.mode = new
        return out

    # ------------------------------------------------------------ fire

    def fire_input(self, alarm: bool, wiring_ok: bool, now: float) -> list[Notice]:
        """A raw reading of the fire input: ``alarm`` (the panel's contact in
        its alarm state) and ``wiring_ok`` (False: supervised loop broken)."""
        out: list[Notice] = []
        if alarm or not wiring_ok:
            self._clear_since = None
            cause = "alarm" if alarm else "wire_break"
            if not self.fire:
                self.fire, self.fire_cause = True, cause
                out.append(Notice("fire_alarm", {"active": True, "cause": cause}))
            return self._settle(out)
        if self.fire and self._clear_since is None:
            self._clear_since = now
        return self.poll(now)

    def poll(self, now: float) -> list[Notice]:
        """Fire release ends once the input has been back to normal for ``clear_seconds``."""
        out: list[Notice] = []
        since = self._clear_since
        if self.fire and since is not None and now - since >= self.clear_seconds:
            self.fire, self._clear_since = False, None
            out.append(Notice("fire_alarm", {"active": False, "cause": self.fire_cause}))
            self.fire_cause = ""
        return self._settle(out)

    @property
    def next_deadline(self) -> float | None:
        """Monotonic time at which `poll` may end fire release."""
        if self.fire and self._clear_since is not None:
            return self._clear_since + self.clear_seconds
        return None

    # ------------------------------------------------------------ lockdown

    def set_lockdown(self, on: bool, source: str, by: str = "") -> list[Notice]:
        """``source``: "key_switch" (the switch's level) or a stored source
        ("admin" from `doorpi lockdown`, "bundle" from a signed bundle: the
        last one wins)."""
        if source == "key_switch":
            if self.lockdown_switch == on:
                return []
            self.lockdown_switch = on
        else:
            if self.lockdown_stored == on:
                return []
            self.lockdown_stored = on
        detail: dict[str, object] = {"active": on, "source": source}
        if by:
            detail["by"] = by
        return self._settle([Notice("lockdown", detail)])

    # ------------------------------------------------------------ windows

    def clock(self, at: Moment) -> list[Notice]:
        """Open or close unlock windows for the time ``at``."""
        plan = self.plan
        if self.extra_holidays:
            plan = replace(plan, holidays=plan.holidays | self.extra_holidays)
        name = plan.open_window(at)
        out: list[Notice] = []
        if name != self.window:
            if self.window is not None:
                why = "clock_untrusted" if not at.trusted else (
                    "holiday" if at.local.date() in plan.holidays else "ended")  # fmt: skip
                out.append(Notice("unlock_window", {"active": False, "schedule": self.window,
                                                    "why": why}))  # fmt: skip
            self.first_in_done = False
            self.window = name
            if name is not None:
                detail: dict[str, object] = {"active": True, "schedule": name}
                if plan.first_person_in:
                    detail["waiting_first_in"] = True
                out.append(Notice("unlock_window", detail))
        return self._settle(out)

    def entered(self, decision: Decision) -> list[Notice]:
        """A resident was granted: the first one in a waiting window releases it."""
        if (
            not decision.granted
            or decision.resident_id is None
            or self.window is None
            or self.first_in_done
            or not self.plan.first_person_in
            or self.mode is not Mode.NORMAL  # a responder in lockdown does not open the window
        ):
            return []
        self.first_in_done = True
        return self._settle(
            [Notice("first_in", {"schedule": self.window, "resident_id": decision.resident_id})]
        )

    def admit(self, decision: Decision, responder: bool) -> Decision:
        return admit(self.mode, decision, responder)
