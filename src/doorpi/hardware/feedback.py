"""LED and buzzer patterns a person at the gate can tell apart.

granted: green on for the unlock time, one short beep. denied: red, two
beeps. locked_out: red blinking, long beep. alarm: red and buzzer blinking
until cleared. pin_needed/card_needed/face_needed: green blinking (more is
wanted). key: a click per key press. The camera LED is separate and lit
only while the face path processes frames (issue: visible camera state).
"""

from __future__ import annotations

from typing import Any, Protocol

from gpiozero import LED, Buzzer


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

    def _blink(self, dev: Any, on: float, off: float, n: int | None) -> None:
        if dev is not None:
            dev.blink(on_time=on, off_time=off, n=n, background=True)

    def show(self, pattern: str) -> None:
        self.last = pattern
        if self._alarms and pattern != "alarm":
            return  # an alarm pattern wins until cleared
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

    def camera_active(self, on: bool) -> None:
        if self.camera is not None:
            self.camera.value = on

    def close(self) -> None:
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
