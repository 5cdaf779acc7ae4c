"""Is the camera's red where doorpi thinks it is? Judged from the faces it sees.

Why: a camera delivering blue and red swapped raised genuine rejections from
0.79 % to 3.98 % with no message (issue #19). The adapter checks the format
picamera2 reports against the one configured (hardware.camera); this checks
what no format field shows: human skin under white light reflects more red
than blue. On all 255 photos of ../shared/faces the face centre's
(R - B) / mean was at least 0.075 (median 0.50); with R and B swapped, 253
of 254 were negative. What it cannot tell: a grayscale (IR/NoIR at night)
picture has R = B and gives no verdict; strongly coloured light (blue LEDs)
can tip single faces, so the verdict needs a clear majority of several faces.
"""

from __future__ import annotations

from collections import deque

OK = "ok"
SWAPPED = "swapped"
UNKNOWN = "unknown"


class ChannelOrderCheck:
    """Verdict over the last ``window`` coloured faces: SWAPPED when at least
    ``majority`` of them are bluer than red, OK when at least that many are
    redder, else UNKNOWN. Faces with |(R - B) / mean| < ``gray_band`` are
    gray (IR light) and not counted."""

    def __init__(self, window: int = 12, majority: float = 0.8, gray_band: float = 0.03) -> None:
        self.window = window
        self.majority = majority
        self.gray_band = gray_band
        self._signs: deque[int] = deque(maxlen=window)

    def observe(self, red_blue: float) -> str:
        """Add one face's (R - B) / mean and return the verdict so far."""
        if abs(red_blue) >= self.gray_band:
            self._signs.append(1 if red_blue > 0 else -1)
        return self.verdict

    @property
    def verdict(self) -> str:
        n = len(self._signs)
        if n < self.window:
            return UNKNOWN
        blue = sum(1 for s in self._signs if s < 0)
        if blue >= self.majority * n:
            return SWAPPED
        if n - blue >= self.majority * n:
            return OK
        return UNKNOWN
