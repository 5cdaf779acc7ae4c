"""Exposure and contrast normalisation of small model inputs (vectorised numpy).

Why: at night or against the light the face spans a few dozen grey levels
(issue #19: brightness x0.25 left every face `too_dark`, a backlit face
was also `blurry` because low contrast looks like no detail). The models
were trained on well-exposed faces, so a face that still carries enough
levels is stretched back before the detector, the face mesh and SFace see it.

Only the small crops the models take are touched (128x128 letterbox,
192x192 mesh crop, 112x112 aligned face: under 40k pixels each), never the
camera frame, so the cost is a 256-entry lookup table per crop. A crop
that is already well exposed is returned unchanged (the same object), so
accuracy on good photos is exactly what it was.

The mapping is a linear stretch about the region's median (see
``ExposureConfig``); one table is applied to R, G and B alike (hue kept,
saturation roughly). Measured with `doorpi eval faces --conditions`
(models/README.md, "Conditions").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_IDENTITY = np.arange(256, dtype=np.uint8)
_LEVELS = np.arange(256, dtype=np.int64)


@dataclass(frozen=True)
class ExposureConfig:
    """When a crop needs help, and how far it is stretched.

    Measured on the aligned faces of ../shared/faces (face centre, luma):
    p99 - p1 span min 94 / p1 97 / p5 117 / median 165 levels, mean min 72.5.
    A crop whose span is at least ``min_range`` and whose mean is at least
    ``min_mean`` (well outside anything seen on those photos) is left alone.
    Otherwise its luma is stretched linearly by ``target_span / span`` (at
    least 1, at most ``max_gain``) about its median, which lands on
    ``target_median``. A linear stretch multiplies the crop's Laplacian by the
    same gain, so the sharpness gate still means what it was calibrated for:
    a face darkened x0.25 gets its detail back, a blurred face stays blurred.
    """

    min_range: float = 64.0
    min_mean: float = 60.0
    target_span: float = 120.0  # ~p5 of the good photos: no more contrast than they have
    target_median: float = 110.0
    max_gain: float = 12.0  # beyond this, noise is all that is left
    enabled: bool = True


def luma_u8(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 image in integer arithmetic ((77R + 150G + 29B) >> 8)."""
    x = rgb.astype(np.uint16)
    return ((77 * x[..., 0] + 150 * x[..., 1] + 29 * x[..., 2]) >> 8).astype(np.uint8)


def levels(y: np.ndarray) -> tuple[float, float, float, float]:
    """(p1, p99, median, mean) of a uint8 luma region, from its histogram."""
    hist = np.bincount(y.reshape(-1), minlength=256)
    cdf = np.cumsum(hist)
    n = int(cdf[-1])
    p1, p99, med = np.searchsorted(cdf, (0.01 * n, 0.99 * n, 0.5 * n)).tolist()
    mean = int(hist @ _LEVELS) / max(n, 1)
    return float(p1), float(p99), float(med), mean


def lookup(y: np.ndarray, cfg: ExposureConfig) -> np.ndarray | None:
    """The 256-entry table that normalises a crop with luma region ``y``, or None to keep it."""
    if not cfg.enabled:
        return None
    p1, p99, med, mean = levels(y)
    span = p99 - p1
    if span >= cfg.min_range and mean >= cfg.min_mean:
        return None
    gain = float(np.clip(cfg.target_span / max(span, 1.0), 1.0, cfg.max_gain))
    x = np.arange(256, dtype=np.float32)
    return np.rint(np.clip((x - med) * gain + cfg.target_median, 0, 255)).astype(np.uint8)


def normalise(
    rgb: np.ndarray, cfg: ExposureConfig | None = None, roi: tuple[slice, slice] | None = None
) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 stretched by its ``roi``'s levels, or ``rgb`` itself if fine.

    ``roi`` (row slice, column slice) is the part whose levels decide, e.g.
    the face centre of an aligned crop, so a bright sky beside a dark face
    does not hide the face's darkness.
    """
    cfg = cfg or ExposureConfig()
    region = rgb if roi is None else rgb[roi]
    lut = lookup(luma_u8(region[::2, ::2]), cfg)  # every 4th pixel: the same levels, 4x cheaper
    if lut is None:
        return rgb
    return lut[rgb]
