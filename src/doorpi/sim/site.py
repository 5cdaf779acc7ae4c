"""A whole gate on simulated hardware: MockFactory pins, simulated reader,
real SQLite, the real Gate. The demo and the scenario runner both drive it,
so they exercise the same code paths as the device.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from doorpi import validation
from doorpi.clocks import Clock, ManualClock
from doorpi.config import Config, parse_config
from doorpi.core.events import KeyPressed, Tick
from doorpi.device import Devices, build_outputs
from doorpi.gate import Gate
from doorpi.store import Storage
from doorpi.store.credentials import card_hash, hash_pin
from doorpi.store.db import GATE_BUSY_MS


def sim_config(overrides: dict[str, Any] | None, data_dir: Path) -> Config:
    """The shipped defaults, with ``overrides`` merged in, data under ``data_dir``."""
    import tomllib

    from doorpi.config import ConfigError, default_config_text

    doc = tomllib.loads(default_config_text())
    for section, values in (overrides or {}).items():
        if isinstance(doc.get(section), dict) and not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a table")
        if isinstance(values, dict) and isinstance(doc.get(section), dict):
            doc[section] = {**doc[section], **values}
        else:
            doc[section] = values
    doc["site"]["data_dir"] = str(data_dir)
    # The shipped placeholders keep face off (doorpi.settings); a simulation has no
    # residents to mislead, so it names itself as the controller unless a scenario does.
    from doorpi.settings import is_placeholder

    for key, value in (("controller", "doorpi simulation (no real residents)"),
                       # A contact is a fact the notices check (check_fact); .invalid
                       # is the reserved top-level domain that never resolves (RFC 2606).
                       ("contact", "simulation@doorpi.invalid (no real contact)")):  # fmt: skip
        if is_placeholder(str(doc["site"].get(key, ""))):
            doc["site"][key] = value
    doc.setdefault("keypad", {})["kind"] = doc["keypad"].get("kind", "matrix")
    # Frames are fed one by one from the scenario: the models run in this process
    # unless a scenario or test asks for the device's worker process.
    doc.setdefault("face", {}).setdefault("process", "inline")
    cfg = parse_config(doc)
    # Scenario PIN hashing at the floor cost keeps runs fast; the device uses config.
    return replace(cfg, pin=replace(cfg.pin, opslimit=1, memlimit_kib=8192))


class SimulatedSite:
    def __init__(
        self,
        cfg: Config,
        clock: Clock | None = None,
        observers: list[Callable[[dict[str, Any]], None]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.scenario_path = Path(".")
        self.clock = clock or ManualClock(time.time(), cfg.site.tz)
        self.devices: Devices = build_outputs(cfg, sim=True)
        self.factory = self.devices.pin_factory
        self.storage = Storage.open(
            cfg.site.data_dir, degrade=True, busy_ms=GATE_BUSY_MS
        )  # as `doorpi run`
        self.gate = Gate(
            cfg, self.storage, self.devices.strike, self.devices.feedback, self.clock, observers
        )
        self.devices.start(self.gate.submit, cfg, sim=True)
        from doorpi.facebuild import build_face_path

        self.face_path = build_face_path(self.gate, indicator=self.devices.feedback.camera_active)
        self.face_engine = self.gate.face_engine
        # Door shut and enclosure closed: both switches pull their lines low; so do
        # a fire panel's NC contact and its supervision loop while all is well.
        g = cfg.gpio
        calm = [g.door_contact, g.tamper, g.fire_supervision]
        if g.fire_alarm_contact == "nc":
            calm.append(g.fire_alarm)
        for pin in calm:
            if pin:
                self.factory.pin(pin).drive_low()
        from doorpi.device import attach_mode_outputs

        attach_mode_outputs(self.gate, self.devices)
        self.devices.report_levels()
        self.gate.process_pending()

    # -------------------------------------------------------------- setup

    def add_resident(self, spec: dict[str, Any]) -> int:
        from doorpi.sitetime import parse_local

        def epoch(key: str) -> float | None:
            v = spec.get(key)  # the same meaning as the device CLI and the roster
            try:
                return parse_local(v, self.cfg.site.tz, until=key == "valid_until") if v else None
            except ValueError as exc:  # name the field, as the roster check does
                raise ValueError(f"{key}: {exc}") from None

        from doorpi.config import unknown_schedule

        problem = unknown_schedule(self.cfg.schedules, spec.get("schedule"))
        if problem:  # as `doorpi resident add --schedule` refuses it
            raise ValueError(f"{validation.safe_text(spec['name'])}: schedule: {problem}")
        card_ids = []
        for j, uid in enumerate(spec.get("cards", [])):
            try:
                card_ids.append(validation.card_uid(uid))
            except validation.InputError as exc:  # refused before anything is stored
                raise ValueError(
                    f"{validation.safe_text(spec['name'])}: cards[{j}]: {exc}"
                ) from None
        r = self.storage.residents.add(
            spec["name"],
            self.clock.wall(),
            unit=spec.get("unit", ""),
            keypad_id=spec.get("keypad_id"),
            valid_from=epoch("valid_from"),
            valid_until=epoch("valid_until"),
            schedule=spec.get("schedule"),
        )
        for card_id in card_ids:
            h = card_hash(self.storage.secrets, card_id)
            self.storage.residents.add_card(r.id, h, self.clock.wall())
        pins = {k: _pin_field(spec, k) for k in ("pin", "duress_pin") if spec.get(k)}
        if len(pins) == 2 and pins["pin"] == pins["duress_pin"]:  # the run stops here
            raise ValueError(
                f"{validation.safe_text(spec['name'])}: duress_pin: must differ from the PIN "
                "(the same digits open as the PIN and would never raise the alarm)"
            )
        if "pin" in pins:
            p, pin = self.cfg.pin, pins["pin"]
            h = hash_pin(self.storage.secrets, pin, p.opslimit, p.memlimit_kib)
            self.storage.residents.set_pin_hash(r.id, h, self.clock.wall())
        if spec.get("responder") or spec.get("duress_pin"):
            from doorpi.store.roles import RoleStore

            roles = RoleStore(self.storage.db)
            roles.set_responder(r.id, bool(spec.get("responder")))
            if "duress_pin" in pins:
                p, pin = self.cfg.pin, pins["duress_pin"]
                roles.set_duress_hash(r.id, hash_pin(self.storage.secrets, pin, p.opslimit,
                                                     p.memlimit_kib))  # fmt: skip
        if spec.get("active") is False:
            self.storage.residents.update(r.id, self.clock.wall(), active=False)
        return r.id

    # -------------------------------------------------------------- actions

    def card(self, uid_hex: str) -> None:
        """Present the card ``uid_hex`` (hex digits, e.g. 04a1b2c3) on the simulated reader.

        Raises ValueError naming the input when it is not hex."""
        try:
            uid = bytes.fromhex(uid_hex)
        except ValueError:
            from doorpi.validation import safe_repr

            raise ValueError(
                f"card {safe_repr(uid_hex)}: a card UID is hex digits, e.g. 04a1b2c3"
            ) from None
        self.devices.reader.present(uid)
        self.gate.process_pending()

    def card_fault(self, reason: str) -> None:
        self.devices.reader.fail(reason)
        self.gate.process_pending()

    def key(self, key: str) -> None:
        """Press ``key`` on the simulated keypad (read as a keypad sends it:
        `doorpi.core.pinpad.keypad_key`). Raises ValueError naming a key no keypad has."""
        from doorpi.core.pinpad import keypad_key
        from doorpi.validation import safe_repr

        pressed = keypad_key(key)
        if pressed is None:
            raise ValueError(
                f"key {safe_repr(key)}: not a keypad key (digits 0-9, * clears, # submits, "
                "F or A asks for face)"
            )
        self.gate.submit(KeyPressed(pressed, "keypad"))
        self.gate.process_pending()

    def door(self, is_open: bool) -> None:
        pin = self.factory.pin(self.cfg.gpio.door_contact)
        (pin.drive_high if is_open else pin.drive_low)()
        self.gate.process_pending()

    def press_exit(self, hold: float = 0.2) -> float:
        """Press the exit button for ``hold`` seconds (a person's press is about
        0.1-0.3 s; shorter than the settle time is a glitch). Returns ``hold``."""
        pin = self.factory.pin(self.cfg.gpio.exit_button)
        pin.drive_low()
        self.gate.process_pending()
        if isinstance(self.clock, ManualClock):
            self.advance(hold)
        else:  # the interactive demo runs in real time; its ticker settles the input
            time.sleep(hold)
        pin.drive_high()
        self.gate.process_pending()
        return hold

    def fire(self, alarm: bool) -> None:
        """The fire panel's contact goes to its alarm state (or back)."""
        g = self.cfg.gpio
        pin = self.factory.pin(g.fire_alarm)
        drive_high = alarm if g.fire_alarm_contact == "nc" else not alarm
        (pin.drive_high if drive_high else pin.drive_low)()
        self.gate.process_pending()

    def fire_wiring(self, whole: bool) -> None:
        """Cut (or mend) the fire input's supervision loop."""
        pin = self.factory.pin(self.cfg.gpio.fire_supervision)
        (pin.drive_low if whole else pin.drive_high)()
        self.gate.process_pending()

    def lockdown_switch(self, on: bool) -> None:
        pin = self.factory.pin(self.cfg.gpio.lockdown_switch)
        (pin.drive_low if on else pin.drive_high)()
        self.gate.process_pending()

    def tamper(self, active: bool) -> None:
        pin = self.factory.pin(self.cfg.gpio.tamper)
        (pin.drive_high if active else pin.drive_low)()
        self.gate.process_pending()

    def face(self, frames: Any, seconds_per_frame: float = 0.1) -> int:
        """Show frames to the camera (always offered: the face path decides whether
        to look). Returns the number of frames shown."""
        n = 0
        for frame in frames:
            if self.face_path is not None:
                self.face_path.on_frame(frame, self.clock.mono())
                self.gate.process_pending()
            self.advance(seconds_per_frame)
            n += 1
        return n

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """Let virtual time pass, ticking the gate so timers fire."""
        assert isinstance(self.clock, ManualClock)
        remaining = seconds
        while remaining > 1e-9:
            dt = min(step, remaining)
            self.clock.advance(dt)
            remaining -= dt
            if self.face_path is not None:
                self.face_path.tick(self.clock.mono())
            self.gate.process_pending()
            self.gate.handle(Tick())

    @property
    def strike_pin(self) -> Any:
        return self.factory.pin(self.cfg.gpio.strike)

    def close(self) -> None:
        if self.gate.face_engine is not None and hasattr(self.gate.face_engine, "close"):
            self.gate.face_engine.close()  # the face worker process, if any
        self.gate.shutdown()
        self.devices.close()
        self.storage.close()


DEMO_MARK = ".doorpi-demo"  # in every data dir the demo made: it may be reused


class NotADemoDir(ValueError):
    """A data dir the demo must not touch (it holds a gate's data)."""


def temp_data_dir() -> Path:
    """A fresh, marked demo data dir ``doorpi-sim-*`` under $TMPDIR (the caller removes it)."""
    path = Path(tempfile.mkdtemp(prefix="doorpi-sim-"))
    (path / DEMO_MARK).touch()
    return path


@contextlib.contextmanager
def scratch_data_dir(path: Path | None) -> Iterator[Path]:
    """``path`` when the user gave one (kept), else a `temp_data_dir` removed with
    everything in it when the block ends, however it ends (exit, Ctrl-C, an error)."""
    if path is not None:
        yield path
        return
    tmp = temp_data_dir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def demo_data_dir(path: Path) -> Path:
    """``path`` if the demo may use it: missing, empty, or made by the demo before.

    Anything else may be a real gate's store, and the demo plants residents
    whose card and PIN are printed in the README: a backdoor there, and a
    conflict for the next roster bundle. So it is refused, never "started afresh".
    """
    if path.exists() and not path.is_dir():
        raise NotADemoDir(f"--data-dir {path}: not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / DEMO_MARK).exists():
        raise NotADemoDir(
            f"--data-dir {path}: holds data the demo did not make (a gate's store?); the demo "
            "adds residents with a published card and PIN, so it only uses an empty directory "
            "or one it made (leave --data-dir out for a fresh one)"
        )
    path.mkdir(parents=True, exist_ok=True)
    (path / DEMO_MARK).touch()
    return path


def _pin_field(spec: dict[str, Any], key: str) -> str:
    """``spec[key]`` checked as a PIN; the error names the field (``pin`` or
    ``duress_pin``) so the admin is not sent to the wrong one. Raises ValueError."""
    try:
        return validation.pin_digits(str(spec[key]))
    except validation.InputError as exc:
        raise ValueError(f"{key}: {exc}") from None
