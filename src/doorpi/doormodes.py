"""The gate's door modes at the edge: stored lockdown, inputs, roles, silent alarm.

`DoorModes` wraps the pure `doorpi.core.modes.Modes` with what needs the
database or a pin: the stored lockdown (state key ``lockdown``, written by
`doorpi lockdown on|off` and by a signed bundle's ``lockdown`` field, read at
start and polled every second, so lockdown survives a restart), roster
holidays (state key ``holidays``, from the bundle), the responder flag and
duress PIN (`doorpi.store.roles`), the key switch's settle time, and the
silent duress output. The gate only dispatches to it.

A stored lockdown that cannot be read is a fault (status, audit) and counts
as lockdown (entry is restricted; exit stays free) until an admin writes it
again with `doorpi lockdown on|off`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import date
from typing import Any

from doorpi.config import Config
from doorpi.core.door import DoorMachine
from doorpi.core.events import (
    Decision,
    Event,
    Feedback,
    FireAlarmChanged,
    LockdownSwitchChanged,
    Notice,
)
from doorpi.core.inputs import InputFilter
from doorpi.core.modes import Modes
from doorpi.core.policy import Moment
from doorpi.store.credentials import verify_pin
from doorpi.store.db import get_state, set_state
from doorpi.store.roles import RoleStore

log = logging.getLogger("doorpi.modes")

LOCKDOWN_KEY = "lockdown"
HOLIDAYS_KEY = "holidays"
MODE_KEY = "door_mode"  # the running gate's mode, for `doorpi status`


def read_lockdown(db: Any) -> dict[str, Any]:
    """The stored lockdown: {"active": bool, "source", "by", "since"}; raises
    ValueError when the stored value is not what doorpi writes."""
    raw = get_state(db, LOCKDOWN_KEY)
    if raw is None:
        return {"active": False}
    doc = json.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("active"), bool):
        raise ValueError(f"stored lockdown {raw[:40]!r} is not doorpi's")
    return doc


def write_lockdown(db: Any, active: bool, source: str, by: str, since: float) -> None:
    """Store lockdown on or off (admin command or bundle import; the last one wins)."""
    doc = {"active": active, "source": source, "by": by, "since": round(since, 3)}
    set_state(db, LOCKDOWN_KEY, json.dumps(doc, sort_keys=True))


def read_holidays(db: Any) -> frozenset[date]:
    """Holidays from the roster (a bundle), as site-local dates."""
    raw = get_state(db, HOLIDAYS_KEY)
    return frozenset(date.fromisoformat(d) for d in json.loads(raw)) if raw else frozenset()


def write_holidays(db: Any, days: list[str]) -> None:
    set_state(db, HOLIDAYS_KEY, json.dumps(sorted(set(days))))


class DoorModes:
    def __init__(self, cfg: Config, storage: Any, secrets: Any = None) -> None:
        self.cfg = cfg
        self.db = storage.db
        self.secrets = secrets if secrets is not None else storage.secrets
        self.roles = RoleStore(self.db)
        self.switch = InputFilter(cfg.gpio.settle_seconds)
        self.silent_alarm: Any = None  # gpiozero output for duress (device.attach_mode_outputs)
        self.problem = ""
        self._stored: dict[str, Any] = {"active": False}
        self._holidays_raw: str | None = None
        lockdown = self._load_lockdown()
        self.core = Modes(
            cfg.modes.plan(cfg.schedules),
            cfg.gpio.settle_seconds,
            lockdown=lockdown,
            holidays=self._load_holidays(),
        )

    # ------------------------------------------------------------ stored state

    def _load_lockdown(self) -> bool:
        try:
            self._stored = read_lockdown(self.db)
            self.problem = ""
        except Exception as exc:
            if not self.problem:
                log.error("stored lockdown unreadable: %s", exc)
            self.problem = f"stored lockdown unreadable ({exc}); treated as on"
            return True
        return bool(self._stored["active"])

    def _load_holidays(self) -> frozenset[date]:
        try:
            raw = get_state(self.db, HOLIDAYS_KEY)
            if raw == self._holidays_raw and hasattr(self, "core"):
                return self.core.extra_holidays
            self._holidays_raw = raw
            return read_holidays(self.db)
        except Exception as exc:
            log.error("stored holidays unreadable: %s", exc)
            return frozenset()

    def startup_notices(self, wall: float) -> list[Notice]:
        """What a restart restored: a stored lockdown (an unreadable one is the gate's
        fault). Publishes the starting mode, so status never shows the last run's."""
        self.publish(wall)
        if not self.core.lockdown_stored:
            return []
        s = self._stored
        detail = {"active": True, "source": "restored", "by": s.get("by", ""),
                  "since": s.get("since")}  # fmt: skip
        if self.problem:
            detail = {"active": True, "source": "unreadable"}
        return [Notice("lockdown", detail), Notice("door_mode", {"mode": self.core.mode.value,
                                                                 "was": "normal"})]  # fmt: skip

    def poll_stored(self) -> list[Notice]:
        """Every second: a lockdown set or cleared by the CLI or a bundle import."""
        self.core.extra_holidays = self._load_holidays()
        active = self._load_lockdown()
        source = "unreadable" if self.problem else str(self._stored.get("source", "admin"))
        return self.core.set_lockdown(active, source, str(self._stored.get("by", "")))

    # ------------------------------------------------------------ inputs

    def on_event(self, event: Event, mono: float) -> list[Notice]:
        if isinstance(event, FireAlarmChanged):
            return self.core.fire_input(event.alarm, event.wiring_ok, mono)
        if isinstance(event, LockdownSwitchChanged):
            return self._switch(self.switch.feed("lockdown_switch", event.active, mono))
        return []

    def _switch(self, settled: list[Any]) -> list[Notice]:
        out: list[Notice] = []
        for s in settled:
            out += self.core.set_lockdown(s.active, "key_switch")
        return out

    def tick(self, at: Moment, mono: float) -> list[Notice]:
        return [*self.core.poll(mono), *self._switch(self.switch.poll(mono)), *self.core.clock(at)]

    @property
    def next_deadline(self) -> float | None:
        times = [t for t in (self.core.next_deadline, self.switch.next_deadline) if t is not None]
        return min(times) if times else None

    # ------------------------------------------------------------ decisions

    @property
    def holidays(self) -> frozenset[date]:
        return self.cfg.modes.holidays | self.core.extra_holidays

    def admit(self, decision: Decision) -> Decision:
        rid = decision.resident_id
        responder = rid is not None and self.roles.responder(rid)
        return self.core.admit(decision, responder)

    def entered(self, decision: Decision) -> list[Notice]:
        return self.core.entered(decision)

    def duress_pin(self, resident_id: int | None, pin: str, pin_ok: bool) -> bool:
        """True when ``pin`` is this resident's duress PIN (and not their PIN).
        The duress hash is checked whenever one is set, whatever the PIN check
        said, so a duress entry takes as long as an ordinary one."""
        if resident_id is None:
            return False
        stored = self.roles.duress_hash(resident_id)
        if stored is None:
            return False
        return verify_pin(self.secrets, stored, pin) and not pin_ok

    def duress(self, resident_id: int) -> list[Notice]:
        """Raise the silent alarm: output on for ``modes.duress_alarm_seconds``, an audit record."""
        out = self.silent_alarm
        if out is not None:
            try:
                out.blink(on_time=self.cfg.modes.duress_alarm_seconds, off_time=0.01, n=1,
                          background=True)  # fmt: skip
            except Exception as exc:  # the audit record still goes out
                log.error("duress output: %s", exc)
        return [Notice("duress", {"resident_id": resident_id, "silent_alarm": out is not None})]

    def with_hold(self, notices: list[Notice], door: DoorMachine, mono: float,
                  wall: float) -> list[Any]:  # fmt: skip
        """``notices`` plus what a change of mode among them does: the strike held
        released or freed (`DoorMachine.hold`), the mode's LEDs (feedback
        ``mode_<mode>``), and the mode published for `doorpi status`."""
        if not any(n.what == "door_mode" for n in notices):
            return list(notices)
        c = self.core
        mode = c.mode.value
        out: list[Any] = [*notices, *door.hold(c.held, mono, f"mode_{mode}",
                                               c.rule.relock_at_once)]  # fmt: skip
        out.append(Feedback(f"mode_{mode}"))
        self.publish(wall)
        return out

    def publish(self, since: float) -> None:
        """Write the mode for `doorpi status` (on every change of mode: rare)."""
        c = self.core
        doc = {"mode": c.mode.value, "fire": c.fire_cause if c.fire else "",
               "window": c.window, "since": round(since, 3)}  # fmt: skip
        try:
            set_state(self.db, MODE_KEY, json.dumps(doc, sort_keys=True))
        except Exception as exc:  # the door keeps working if the disk does not
            log.error("cannot save the door mode: %s", exc)


def mode_status(db: Any) -> dict[str, Any]:
    """`doorpi status` lines: the gate's last mode, the stored lockdown, responders."""
    info: dict[str, Any] = {}
    warnings: list[str] = []
    try:
        info["door_mode"] = json.loads(get_state(db, MODE_KEY) or "{}").get("mode", "normal")
    except ValueError:
        info["door_mode"] = "unreadable"
    try:
        doc = read_lockdown(db)
        info["lockdown"] = "on" if doc["active"] else "off"
        if doc["active"]:
            info["lockdown_by"] = f"{doc.get('by', '')} ({doc.get('source', '')})"
            warnings.append("lockdown is on: only responders get in (`doorpi lockdown off`)")
    except ValueError as exc:
        info["lockdown"] = "unreadable"
        warnings.append(f"stored lockdown unreadable ({exc}); the gate treats it as on")
    if info["lockdown"] == "on" and info["door_mode"] in ("normal", "unlock_window"):
        # The mode is what the gate last ran with; it takes a stored lockdown within a second.
        info["door_mode"] += " (until the gate applies the lockdown)"
    if info["door_mode"] == "fire_release":
        warnings.append("fire release: the door is held released until the fire input is normal")
    try:
        info["responders"] = len(RoleStore(db).responders())
    except sqlite3.Error as exc:  # a store that looks wrong is reported, never shown as 0
        info["responders"] = "unreadable"
        warnings.append(f"responders unreadable ({exc}): `doorpi check` the database")
    info["warnings"] = warnings
    return info
