"""Camera orientation: rotation and flips that make the camera's picture upright.

Why: a camera mounted upside down or sideways gives faces the models were
never trained on; turned 180 degrees, a third of stranger pairs scored above
the threshold (issue #19) while the face mesh still reported the faces level.
``[camera] rotation/hflip/vflip`` put the picture upright before anything
else looks at it. Flips are applied first (as the sensor reads out), then the
clockwise rotation. All results are numpy views: no pixel is copied here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Orientation:
    """``rotation``: degrees clockwise (0, 90, 180, 270); ``hflip``/``vflip``: mirror
    left-right / top-bottom. Raises ValueError for any other rotation."""

    rotation: int = 0
    hflip: bool = False
    vflip: bool = False

    def __post_init__(self) -> None:
        if self.rotation not in ROTATIONS:
            raise ValueError(f"camera rotation must be one of 0, 90, 180, 270, not {self.rotation}")

    @property
    def identity(self) -> bool:
        return self.rotation == 0 and not self.hflip and not self.vflip

    def apply(self, img: np.ndarray) -> np.ndarray:
        """``img`` (H, W) or (H, W, C) made upright; a view, or ``img`` itself."""
        if self.identity:
            return img
        if self.hflip:
            img = img[:, ::-1]
        if self.vflip:
            img = img[::-1]
        if self.rotation:
            img = np.rot90(img, k=-(self.rotation // 90), axes=(0, 1))
        return img

    def describe(self) -> str:
        flips = [n for n, on in (("hflip", self.hflip), ("vflip", self.vflip)) if on]
        return f"rotation {self.rotation}" + (f", {' and '.join(flips)}" if flips else "")
