"""Choosing the gpiozero pin factory: real GPIO on a Pi, MockFactory elsewhere.

``mock`` gives gpiozero's MockFactory. With ``DOORPI_PIN_LOG=/path`` set, the
mock pins also append every output level change to that file (flushed at
once), so a test can prove from outside the process, even after SIGKILL, that
the strike pin never went active without a grant.
"""

from __future__ import annotations

import os
import time
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin


class RecordingMockPin(MockPin):
    """A MockPin that also writes its level changes to $DOORPI_PIN_LOG."""

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        path = os.environ.get("DOORPI_PIN_LOG")
        if changed and path and self._function == "output":
            with open(path, "a", encoding="ascii") as fh:
                fh.write(f"{time.monotonic():.6f} {os.getpid()} {self.info.name} {int(value)}\n")
                fh.flush()
        return changed


def make_pin_factory(kind: str) -> Any:
    """'mock' -> MockFactory (recording when DOORPI_PIN_LOG is set); 'auto' -> gpiozero's choice."""
    if kind == "mock":
        factory = MockFactory(pin_class=RecordingMockPin)
        Device.pin_factory = factory
        return factory
    if kind != "auto":
        raise ValueError(f"unknown pin factory {kind!r}")
    from gpiozero.exc import BadPinFactory

    try:
        return Device._default_pin_factory()
    except BadPinFactory as exc:
        raise NoGpioError(
            f"no GPIO on this machine ({exc}): run the gate on the Pi, "
            "or add --sim for simulated pins"
        ) from None


class NoGpioError(RuntimeError):
    """gpiozero found no pin library (not a Raspberry Pi, or lgpio missing)."""
