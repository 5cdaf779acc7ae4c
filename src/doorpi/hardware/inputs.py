"""Door contact, request-to-exit button, tamper switch, fire-alarm input, lockdown key switch.

Each wraps a gpiozero input and turns every raw edge into a core event through
``emit`` (called on gpiozero's callback thread; the gate queues them). No
debouncing here (gpiozero's ``bounce_time`` is off): the gate's
`doorpi.core.inputs.InputFilter` applies the settle time (``gpio.settle_seconds``)
with injected monotonic time, so the door state machine sees one clean change
per real one. All are wired to GND with the Pi's internal pull-up, so a cut
wire reads as "open" / "tampered": the safe reading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpiozero import Button, DigitalInputDevice

from doorpi.core.events import (
    DoorContactChanged,
    Event,
    ExitReleased,
    ExitRequested,
    FireAlarmChanged,
    LockdownSwitchChanged,
    TamperChanged,
)

Emit = Callable[[Event], None]


class DoorContact:
    """Reed switch closed (pin low) while the door is shut."""

    def __init__(self, pin: int, emit: Emit, pin_factory: Any = None) -> None:
        self._dev = DigitalInputDevice(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
        self._dev.when_activated = lambda: emit(DoorContactChanged(False))
        self._dev.when_deactivated = lambda: emit(DoorContactChanged(True))

    @property
    def is_open(self) -> bool:
        return not self._dev.is_active

    def close(self) -> None:
        self._dev.close()


class ExitButton:
    """Request-to-exit button, normally open to GND: press and release are both
    reported, so the gate can tell a press from a button stuck in."""

    def __init__(self, pin: int, emit: Emit, pin_factory: Any = None) -> None:
        self._dev = Button(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
        self._dev.when_pressed = lambda: emit(ExitRequested())
        self._dev.when_released = lambda: emit(ExitReleased())

    def close(self) -> None:
        self._dev.close()


class TamperSwitch:
    """Closed (pin low) while the enclosure lid is on."""

    def __init__(self, pin: int, emit: Emit, pin_factory: Any = None) -> None:
        self._dev = DigitalInputDevice(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
        self._dev.when_activated = lambda: emit(TamperChanged(False))
        self._dev.when_deactivated = lambda: emit(TamperChanged(True))

    @property
    def tampered(self) -> bool:
        return not self._dev.is_active

    def close(self) -> None:
        self._dev.close()


class FireAlarmInput:
    """The fire panel's dry contact, optionally with a supervision loop.

    ``contact``: "nc" (normally closed, opens on alarm: the default, and the
    one to use: a cut wire reads as an alarm) or "no" (closes on alarm). A Pi
    GPIO reads two levels and has no ADC, so the classic end-of-line resistor
    loop (normal / alarm / open / short told apart by resistance) cannot be
    read directly. Supervision here is a second input, ``supervision_pin``:
    a loop (a spare pair in the same cable, or the "trouble"/supervision
    contact of the panel or of an external EOL supervision module) closed to
    GND while the wiring is whole; open means a wire break, which the gate
    counts as an alarm (fail towards egress). See hw/pinout.md.

    Every edge of either line emits a `FireAlarmChanged` with both levels;
    `report()` emits the current levels once (at start). No settle time here:
    the core acts on an alarm at once and lets it clear only after the line
    has held normal for ``gpio.settle_seconds`` (`doorpi.core.modes`).
    """

    def __init__(
        self,
        pin: int,
        emit: Emit,
        contact: str = "nc",
        supervision_pin: int = 0,
        pin_factory: Any = None,
    ) -> None:
        self._emit = emit
        self._nc = contact == "nc"
        self._dev = DigitalInputDevice(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
        self._sup = None
        if supervision_pin:
            self._sup = DigitalInputDevice(
                supervision_pin, pull_up=True, bounce_time=None, pin_factory=pin_factory
            )
        for dev in (self._dev, self._sup):
            if dev is not None:
                dev.when_activated = self.report
                dev.when_deactivated = self.report

    @property
    def alarm(self) -> bool:
        closed = bool(self._dev.is_active)  # pulled low through the contact
        return not closed if self._nc else closed

    @property
    def wiring_ok(self) -> bool:
        return self._sup is None or bool(self._sup.is_active)

    def report(self) -> None:
        self._emit(FireAlarmChanged(self.alarm, self.wiring_ok))

    def close(self) -> None:
        for dev in (self._dev, self._sup):
            if dev is not None:
                dev.close()


class LockdownSwitch:
    """A key switch to GND, closed (pin low) while turned to lockdown. A cut
    wire reads as "not turned": lockdown by the admin command or bundle is
    stored and does not depend on it."""

    def __init__(self, pin: int, emit: Emit, pin_factory: Any = None) -> None:
        self._emit = emit
        self._dev = DigitalInputDevice(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
        self._dev.when_activated = lambda: emit(LockdownSwitchChanged(True))
        self._dev.when_deactivated = lambda: emit(LockdownSwitchChanged(False))

    def report(self) -> None:
        self._emit(LockdownSwitchChanged(bool(self._dev.is_active)))

    def close(self) -> None:
        self._dev.close()
