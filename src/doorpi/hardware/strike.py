"""The door strike relay, modelled on gpiozero's output devices.

Two kinds of lock:

* fail-secure (electric strike, the default): energised = released. The relay
  is created de-energised (``initial_value=False``) so it cannot twitch while
  the process starts, and `close()` de-energises it (also on SIGTERM/SIGINT).
  If the process *dies* (SIGKILL, segfault, OOM) while the strike is released,
  nothing de-energises it: a Pi's GPIO output keeps driving its last level after
  the process exits until something reconfigures the pin (the kernel's GPIO
  character-device API only says the line "becomes uncontrolled ... and may revert
  to its default state"; the BCM283x/RP1 drivers leave it as it was, and so does
  direct register access through /dev/gpiomem). The door stays released until
  something drives the line: systemd's ``ExecStopPost=`` step, ``doorpi
  strike-safe`` (doorpi.strikesafe), runs whenever the gate stops, for any reason
  (after a hang, WatchdogSec plus the kill first), or the Pi reboots (the firmware
  resets the pins to inputs, GPIO17's default pull is down). Where that bound is
  too long, hw/deadman.md adds a hardware dead-man.
* fail-safe (maglock, for fire-code exits): energised = locked. It is
  energised the moment the device exists, and a dead process releases the
  door. That is what fail-safe means; choose it only where the law asks.

``active_high`` is the relay board's input polarity (many opto-isolated
boards switch on a low input), independent of the lock kind.
"""

from __future__ import annotations

from typing import Any, Protocol

from gpiozero import DigitalOutputDevice


class Strike(Protocol):
    def release(self) -> None: ...
    def secure(self) -> None: ...
    def close(self) -> None: ...
    @property
    def released(self) -> bool: ...


class DoorStrike:
    def __init__(
        self,
        pin: int,
        *,
        active_high: bool = True,
        fail_secure: bool = True,
        pin_factory: Any = None,
    ) -> None:
        self.fail_secure = fail_secure
        self._relay = DigitalOutputDevice(
            pin,
            active_high=active_high,
            initial_value=not fail_secure,
            pin_factory=pin_factory,
        )

    @property
    def energised(self) -> bool:
        return bool(self._relay.value)

    @property
    def released(self) -> bool:
        return self.energised == self.fail_secure

    def release(self) -> None:
        if self.fail_secure:
            self._relay.on()
        else:
            self._relay.off()

    def secure(self) -> None:
        if self.fail_secure:
            self._relay.off()
        else:
            self._relay.on()

    def close(self) -> None:
        """Secure, then free the GPIO line (a fail-safe lock then releases)."""
        try:
            self.secure()
        finally:
            self._relay.close()


class SimulatedStrike:
    """Test double without GPIO: remembers every change."""

    def __init__(self) -> None:
        self.released = False
        self.history: list[bool] = []

    def release(self) -> None:
        self.released = True
        self.history.append(True)

    def secure(self) -> None:
        if self.released:
            self.history.append(False)
        self.released = False

    def close(self) -> None:
        self.secure()
