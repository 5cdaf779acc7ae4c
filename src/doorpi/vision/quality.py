"""Quality gates before a face is matched or enrolled.

Why: a bad capture (far away, turned, dark, blurred) gives a poor embedding
and either a false reject or a weak template; telling the resident *why*
("come closer", "look straight") fixes it on the next frame. Each gate
returns a reason code that the door's UI maps to a message. Thresholds were
set on the project's face photos (see models/README.md): every photo that
passes detection passes the gates except documented strong profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from doorpi.vision.align import ARCFACE_TEMPLATE
from doorpi.vision.exposure import levels

OK = "ok"
NO_FACE = "no_face"
TOO_FAR = "too_far"
TOO_CLOSE = "too_close"
LOOK_STRAIGHT = "look_straight"
TOO_DARK = "too_dark"
TOO_BRIGHT = "too_bright"
BLURRY = "blurry"
NOT_A_FACE = "not_a_face"
# The face is upside down in the frame: a camera orientation fault, not the person's.
UPSIDE_DOWN = "upside_down"

# Template geometry: nose offset and eye-to-mouth distance at a frontal pose.
_T_EYES = ARCFACE_TEMPLATE[:2].mean(0)
_T_MOUTH = ARCFACE_TEMPLATE[3:].mean(0)
_T_PITCH = float((ARCFACE_TEMPLATE[2, 1] - _T_EYES[1]) / (_T_MOUTH[1] - _T_EYES[1]))


@dataclass(frozen=True)
class QualityConfig:
    """Gate thresholds; defaults from measurements on the face photos."""

    min_iod_px: float = 24.0  # eye distance in the frame; below: too far
    max_face_fraction: float = 0.9  # face box width / frame width; above: too close
    max_yaw: float = 0.6  # nose offset from eye midline / eye distance
    max_roll_deg: float = 20.0
    max_pitch_dev: float = 0.35  # deviation of nose height ratio from the template's
    min_brightness: float = 50.0  # mean luma of the aligned crop, 0..255 (no normalisation)
    # With exposure normalisation (vision.exposure) a dark face is stretched
    # back; too dark then means too few grey levels left to stretch:
    min_levels: float = 20.0  # luma p99 - p1 of the face centre, as captured
    min_brightness_normalised: float = 12.0
    max_brightness: float = 215.0
    max_clipped: float = 0.08  # fraction of saturated (luma >= 250) face pixels
    min_sharpness: float = 25.0  # variance of the Laplacian of the aligned crop
    min_mesh_score: float = 0.5


@dataclass(frozen=True)
class Quality:
    """Outcome of the gates: ``reason`` is OK or the first failing gate's code."""

    reason: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason == OK


def pose(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, roll_deg, pitch_dev) from five template-ordered points in the frame.

    Yaw: horizontal nose offset from the eye midpoint, in eye distances, after
    removing roll. Pitch: nose height between eyes and mouth, compared with
    the template's ratio.
    """
    p = np.asarray(points, np.float64)
    d = p[1] - p[0]
    iod = float(np.hypot(*d))
    roll = float(np.degrees(np.arctan2(d[1], d[0])))
    c, s = d / max(iod, 1e-9)
    rot = np.array([[c, s], [-s, c]])  # undo roll
    q = (p - p[:2].mean(0)) @ rot.T
    span = q[3:, 1].mean()  # eye midpoint is the origin
    yaw = float(q[2, 0] / max(iod, 1e-9))
    pitch_ratio = float(q[2, 1] / span) if abs(span) > 1e-9 else 0.0
    return yaw, roll, pitch_ratio - _T_PITCH


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian on the face's central region."""
    g = gray[16:-8, 16:-16].astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


_ONES = np.ones(40 * 32, np.float32)


def red_blue(crop: np.ndarray) -> float:
    """(mean R - mean B) / mean of the aligned crop's face centre (-1..1; 0 for gray).

    Every 4th pixel of the 80x64 centre (a 112x112 crop), summed by one matrix product.
    """
    c = _ONES @ crop[24:104:2, 24:88:2].reshape(-1, 3).astype(np.float32)
    return float((c[0] - c[2]) / max(float(c.mean()), 1.0))


def luma(crop: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB uint8 crop, float32."""
    return crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def assess(
    points: np.ndarray,
    crop: np.ndarray,
    frame_shape: tuple[int, ...],
    face_width: float,
    mesh_score: float = 1.0,
    cfg: QualityConfig | None = None,
    normalised: np.ndarray | None = None,
) -> Quality:
    """Run the gates in the order a person can act on: distance, pose, light, blur.

    ``crop`` is the aligned face as captured (its light is measured);
    ``normalised`` is the same crop after exposure normalisation, when the
    pipeline does it: then darkness is judged by the grey levels left
    (``min_levels``), and sharpness on the normalised crop, which is what
    the embedding sees.
    """
    cfg = cfg or QualityConfig()
    iod = float(np.linalg.norm(np.asarray(points)[1] - np.asarray(points)[0]))
    yaw, roll, pitch = pose(points)
    y = luma(crop)
    centre = y[24:104, 24:88]
    lo, hi, _, _ = levels(centre[::2, ::2].astype(np.uint8))  # every 4th pixel
    m = {
        "iod_px": iod,
        "face_fraction": face_width / float(frame_shape[1]),
        "yaw": yaw,
        "roll_deg": roll,
        "pitch_dev": pitch,
        "brightness": float(centre.mean()),
        "clipped": float((centre >= 250.0).mean()),
        "levels": float(hi - lo),
        # (mean R - mean B) / mean of the face centre: skin is redder than blue
        # under white light; negative on most faces means swapped channels.
        "red_blue": red_blue(crop),
        # exposure.normalise returns the crop itself when it needs no stretch
        "sharpness": sharpness(y if normalised is None or normalised is crop else luma(normalised)),
        "mesh_score": mesh_score,
    }
    if mesh_score < cfg.min_mesh_score:
        return Quality(NOT_A_FACE, m)
    if iod < cfg.min_iod_px:
        return Quality(TOO_FAR, m)
    if m["face_fraction"] > cfg.max_face_fraction:
        return Quality(TOO_CLOSE, m)
    if abs(yaw) > cfg.max_yaw or abs(roll) > cfg.max_roll_deg or abs(pitch) > cfg.max_pitch_dev:
        return Quality(LOOK_STRAIGHT, m)
    if normalised is None and m["brightness"] < cfg.min_brightness:
        return Quality(TOO_DARK, m)
    if normalised is not None and (
        m["levels"] < cfg.min_levels or m["brightness"] < cfg.min_brightness_normalised
    ):
        return Quality(TOO_DARK, m)
    if m["brightness"] > cfg.max_brightness or m["clipped"] > cfg.max_clipped:
        return Quality(TOO_BRIGHT, m)
    if m["sharpness"] < cfg.min_sharpness:
        return Quality(BLURRY, m)
    return Quality(OK, m)
