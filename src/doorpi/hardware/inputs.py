"""Door contact, request-to-exit button, tamper switch, presence sensor.

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
