"""LED and buzzer patterns a person at the gate can tell apart.

granted: green on for the unlock time, one short beep. denied: red, two
beeps. locked_out: red blinking, long beep. alarm: red and buzzer blinking
until cleared. pin_needed/card_needed/face_needed: green blinking (more is
wanted). key: a click per key press. The camera LED is separate and lit
only while the face path processes frames (issue: visible camera state).

Door modes (`doorpi.core.modes`) leave a steady indication between the
patterns above (`MODE_PATTERNS`, shown by ``show("mode_<mode>")``):

==============  ===========================================
mode            LEDs while idle
==============  ===========================================
normal          both off
lockdown        red: 0.1 s flash every 2 s
fire_release    green steady on
unlock_window   green steady on
==============  ===========================================

A duress entry shows exactly what a normal grant shows (it has no pattern).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from gpiozero import LED, Buzzer

# mode -> (LED attribute, on seconds, off seconds); None: both LEDs off.
MODE_PATTERNS: dict[str, tuple[str, float, float] | None] = {
    "normal": None,
    "lockdown": ("red", 0.1, 1.9),
    "fire_release": ("green", 1.0, 0.0),
    "unlock_window": ("green", 1.0, 0.0),
}
# How long a momentary pattern occupies the LEDs before the mode's returns (s).
MOMENTARY_SECONDS = 2.0


class Indicator(Protocol):
    def show(self, pattern: str) -> None: ...
    def alarm(self, active: bool) -> None: ...
    def close(self) -> None: ...


class GateFeedback:
    def __init__(
        self,
        green: int,
        red: int,
        buzzer: int,
        camera: int = 0,
        pin_factory: Any = None,
        unlock_seconds: float = 5.0,
    ) -> None:
        self.green = LED(green, pin_factory=pin_factory) if green else None
        self.red = LED(red, pin_factory=pin_factory) if red else None
        self.buzzer = Buzzer(buzzer, pin_factory=pin_factory) if buzzer else None
        self.camera = LED(camera, pin_factory=pin_factory) if camera else None
        self.unlock_seconds = unlock_seconds
        self.last: str = ""
        self._alarms = 0
        self.mode = "normal"
        self._restore: threading.Timer | None = None

    def _blink(self, dev: Any, on: float, off: float, n: int | None) -> None:
        if dev is not None:
            dev.blink(on_time=on, off_time=off, n=n, background=True)

    def _idle(self) -> None:
        """The current mode's steady indication."""
        if self._alarms:
            return
        for dev in (self.green, self.red):
            if dev is not None:
                dev.off()
        spec = MODE_PATTERNS.get(self.mode)
        if spec is not None:
            dev = getattr(self, spec[0])
            if dev is not None and spec[2] == 0:
                dev.on()
            else:
                self._blink(dev, spec[1], spec[2], None)

    def show(self, pattern: str) -> None:
        self.last = pattern
        if pattern.startswith("mode_"):
            self.mode = pattern.removeprefix("mode_")
            self._idle()
            return
        if self._alarms and pattern != "alarm":
            return  # an alarm pattern wins until cleared
        if self.mode != "normal":
            if self._restore is not None:
                self._restore.cancel()
            wait = self.unlock_seconds if pattern == "granted" else MOMENTARY_SECONDS
            self._restore = threading.Timer(wait, self._idle)
            self._restore.daemon = True
            self._restore.start()
        for dev in (self.green, self.red):
            if dev is not None:
                dev.off()
        if pattern == "granted":
            self._blink(self.green, self.unlock_seconds, 0.01, 1)
            self._blink(self.buzzer, 0.1, 0.1, 1)
        elif pattern == "denied":
            self._blink(self.red, 1.0, 0.01, 1)
            self._blink(self.buzzer, 0.1, 0.1, 2)
        elif pattern == "locked_out":
            self._blink(self.red, 0.2, 0.2, 10)
            self._blink(self.buzzer, 1.0, 0.1, 1)
        elif pattern in ("pin_needed", "card_needed", "face_needed"):
            self._blink(self.green, 0.2, 0.3, 6)
        elif pattern == "key":
            self._blink(self.buzzer, 0.03, 0.01, 1)
        elif pattern == "done":
            self._blink(self.green, 0.3, 0.3, 3)
            self._blink(self.buzzer, 0.3, 0.3, 3)

    def alarm(self, active: bool) -> None:
        self._alarms = max(0, self._alarms + (1 if active else -1))
        if self._alarms:
            self._blink(self.red, 0.5, 0.5, None)
            self._blink(self.buzzer, 0.5, 0.5, None)
        else:
            for dev in (self.red, self.buzzer):
                if dev is not None:
                    dev.off()
            self._idle()

    def camera_active(self, on: bool) -> None:
        if self.camera is not None:
            self.camera.value = on

    def close(self) -> None:
        if self._restore is not None:
            self._restore.cancel()
        for dev in (self.green, self.red, self.buzzer, self.camera):
            if dev is not None:
                dev.close()


class RecordingFeedback:
    """Test double: remembers patterns and alarm changes."""

    def __init__(self) -> None:
        self.patterns: list[str] = []
        self.alarms: list[bool] = []

    def show(self, pattern: str) -> None:
        self.patterns.append(pattern)

    def alarm(self, active: bool) -> None:
        self.alarms.append(active)

    def camera_active(self, on: bool) -> None:
        pass

    def close(self) -> None:
        pass
