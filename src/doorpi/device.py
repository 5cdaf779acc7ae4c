"""Building the gate's devices from config: real hardware or simulated.

The strike is created first of all, so its GPIO line is driven to the safe
level before anything else can fail. Optional devices (reader, keypad, door
inputs) that fail to start are reported and left out: the other entry paths
keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorpi.config import Config
from doorpi.core.events import Event
from doorpi.hardware.feedback import GateFeedback
from doorpi.hardware.inputs import (
    DoorContact,
    ExitButton,
    FireAlarmInput,
    LockdownSwitch,
    TamperSwitch,
)
from doorpi.hardware.pins import make_pin_factory
from doorpi.hardware.strike import DoorStrike

log = logging.getLogger("doorpi.device")


@dataclass
class Devices:
    pin_factory: Any
    strike: DoorStrike
    feedback: GateFeedback
    inputs: list[Any] = field(default_factory=list)
    reader: Any = None
    keypad: Any = None
    problems: list[str] = field(default_factory=list)
    duress_output: Any = None  # silent alarm (gpio.duress_output)

    def start(self, emit: Callable[[Event], None], cfg: Config, sim: bool) -> None:
        """Attach inputs, reader and keypad to ``emit`` (the gate's submit)."""
        g = cfg.gpio
        for cls, pin in ((DoorContact, g.door_contact), (ExitButton, g.exit_button),
                         (TamperSwitch, g.tamper)):  # fmt: skip
            if pin:
                try:
                    self.inputs.append(cls(pin, emit, pin_factory=self.pin_factory))
                except Exception as exc:
                    self.problems.append(f"{cls.__name__} on GPIO{pin}: {exc}")
        self._start_mode_inputs(emit, cfg)
        if cfg.reader.enabled:
            try:
                self.reader = _make_reader(cfg, sim)
                self.reader.start(emit)
            except Exception as exc:
                self.reader = None
                self.problems.append(f"card reader: {exc}")
        if not sim and cfg.keypad.kind != "none":
            try:
                self.keypad = _make_keypad(cfg, emit, self.pin_factory)
                self.keypad.start()
            except Exception as exc:
                self.keypad = None
                self.problems.append(f"keypad: {exc}")
        for p in self.problems:
            log.error("%s (other entry paths keep working)", p)

    def _start_mode_inputs(self, emit: Callable[[Event], None], cfg: Config) -> None:
        g = cfg.gpio
        try:
            if g.fire_alarm:
                self.inputs.append(FireAlarmInput(g.fire_alarm, emit, g.fire_alarm_contact,
                                                  g.fire_supervision, self.pin_factory))  # fmt: skip
        except Exception as exc:  # the panel's own power cut to the lock still works
            self.problems.append(f"fire alarm input on GPIO{g.fire_alarm}: {exc}")
        try:
            if g.lockdown_switch:
                self.inputs.append(LockdownSwitch(g.lockdown_switch, emit, self.pin_factory))
        except Exception as exc:
            self.problems.append(f"lockdown key switch on GPIO{g.lockdown_switch}: {exc}")

    def report_levels(self) -> None:
        """Emit the fire input's and key switch's levels once (an alarm at start counts)."""
        for dev in self.inputs:
            if hasattr(dev, "report"):
                dev.report()

    def close(self) -> None:
        for dev in (self.keypad, self.reader, *self.inputs):
            if dev is None:
                continue
            try:
                (dev.stop if hasattr(dev, "stop") else dev.close)()
            except Exception as exc:
                log.warning("closing %s: %s", type(dev).__name__, exc)
        self.feedback.close()
        if self.duress_output is not None:
            self.duress_output.close()
        self.strike.close()  # last: the door is secured after everything else stopped


def build_outputs(cfg: Config, sim: bool) -> Devices:
    factory = make_pin_factory("mock" if sim else "auto")
    strike = DoorStrike(
        cfg.gpio.strike,
        active_high=cfg.gpio.strike_active_high,
        fail_secure=cfg.door.fail_secure,
        pin_factory=factory,
    )
    g = cfg.gpio
    feedback = GateFeedback(
        g.led_green, g.led_red, g.buzzer, g.camera_led,
        pin_factory=factory, unlock_seconds=cfg.door.unlock_seconds,
    )  # fmt: skip
    duress = None
    if g.duress_output:
        from gpiozero import DigitalOutputDevice

        duress = DigitalOutputDevice(g.duress_output, initial_value=False, pin_factory=factory)
    return Devices(factory, strike, feedback, duress_output=duress)


def attach_mode_outputs(gate: Any, devices: Devices) -> None:
    """Give the gate's door modes the silent duress output, if one is fitted."""
    gate.modes.silent_alarm = devices.duress_output


def _make_reader(cfg: Config, sim: bool) -> Any:
    from doorpi.hardware import reader

    if sim:
        return reader.SimulatedReader()
    from doorpi.cards.keys import GateKeysFile
    from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow, parse_until

    window = LegacyWindow(cfg.reader.legacy_uid, parse_until(cfg.reader.legacy_uid_until))
    # Re-read at a tap after `doorpi sync import` replaced it: no restart needed.
    policy = CardPolicyProtocol(GateKeysFile(Path(cfg.site.data_dir)), window)
    if card_templates_on(cfg):
        from doorpi.privacy.oncard import OnCardTemplateProtocol

        return reader.PcscReader(cfg.reader.name, OnCardTemplateProtocol(identity=policy))
    return reader.PcscReader(cfg.reader.name, policy)


def card_templates_on(cfg: Config) -> bool:
    """face.template_storage = "card": templates live on the residents' cards."""
    return cfg.face.enabled and cfg.face.settings.get("template_storage") == "card"


def attach_card_templates(gate: Any, devices: Devices) -> None:
    """Give the gate the reader's store of tapped card templates (card mode only)."""
    protocol = getattr(devices.reader, "protocol", None)
    if protocol is not None and hasattr(protocol, "take"):
        gate.card_templates = protocol


def _make_keypad(cfg: Config, emit: Callable[[Event], None], factory: Any) -> Any:
    from doorpi.hardware.keypad import EvdevKeypad, MatrixKeypad

    k = cfg.keypad
    if k.kind == "usb":
        return EvdevKeypad(k.device, emit)
    return MatrixKeypad(k.rows, k.cols, emit, layout=k.layout, pin_factory=factory)
