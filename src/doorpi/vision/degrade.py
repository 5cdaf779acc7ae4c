"""Deterministic degradations of a photo: what a door camera sees instead of a press photo.

Why: accuracy measured on colour photos in good light says little about a
gate at night (a NoIR camera gives grayscale), against the light, at a
distance, with motion blur or a cheap codec (issue #19). Each condition is a
pure function of the RGB uint8 image (no randomness, no seed), so two runs
on the same photos give the same table. Every function takes and returns an
(H, W, 3) uint8 RGB array.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

# ITU-R BT.601 luma weights, the ones the quality gates use.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def as_taken(rgb: np.ndarray) -> np.ndarray:
    """The photo unchanged."""
    return rgb


def gray(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in all three channels: a NoIR camera at night under IR light."""
    y = np.rint(rgb.astype(np.float32) @ _LUMA).clip(0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=2)


def dark(rgb: np.ndarray, factor: float = 0.25) -> np.ndarray:
    """Every pixel value times ``factor`` (0.25: two stops under-exposed)."""
    return np.rint(rgb.astype(np.float32) * factor).astype(np.uint8)


def backlit(rgb: np.ndarray) -> np.ndarray:
    """Subject against the light: contrast cut to 25 % and lifted by 16 (a dark,
    flat face), with the top fifth of the frame ramping to white (bright sky or
    a lit doorway behind the head), which also pulls a global exposure down."""
    out = rgb.astype(np.float32) * 0.25 + 16.0
    h = rgb.shape[0]
    band = max(1, h // 5)
    ramp = np.zeros(h, np.float32)
    ramp[:band] = np.linspace(1.0, 0.0, band, dtype=np.float32)
    out = out + ramp[:, None, None] * (255.0 - out)
    return np.rint(out).clip(0, 255).astype(np.uint8)


def small(rgb: np.ndarray, factor: int = 3) -> np.ndarray:
    """The resident three times farther away: 1/``factor`` resolution (box filter)."""
    img = Image.fromarray(rgb)
    w, h = img.size
    return np.asarray(img.resize((max(1, w // factor), max(1, h // factor)), Image.BOX))


def blur(rgb: np.ndarray, radius: float = 2.5) -> np.ndarray:
    """Motion or focus blur: Pillow's Gaussian blur with ``radius`` pixels (sigma)."""
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius)))


def jpeg(rgb: np.ndarray, quality: int = 10) -> np.ndarray:
    """Re-encoded as JPEG at ``quality`` (libjpeg scale, 4:2:0) in memory, decoded again."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"))


def rotate180(rgb: np.ndarray) -> np.ndarray:
    """Camera mounted upside down."""
    return np.ascontiguousarray(rgb[::-1, ::-1])


def swap_rb(rgb: np.ndarray) -> np.ndarray:
    """Red and blue swapped (a camera delivering BGR where RGB was configured)."""
    return np.ascontiguousarray(rgb[..., ::-1])


def crowd(front: np.ndarray, *behind: np.ndarray, scale: float = 0.7) -> np.ndarray:
    """Two or more people in one frame: ``front`` (the person asking) full size in
    the middle of a frame twice as wide; each of ``behind`` shrunk to ``scale``
    (a step further back, still close enough to pass the quality gates) at the
    top edge, left then right, partly hidden by the person in front.
    Returns a new (H, 2W, 3) uint8 frame; the background is mid gray."""
    h, w = front.shape[:2]
    out = np.full((h, 2 * w, 3), 96, np.uint8)
    for k, img in enumerate(behind):
        bh, bw = img.shape[:2]
        s = min(scale * h / bh, scale * w / bw)
        size = (max(1, round(bw * s)), max(1, round(bh * s)))
        small_img = np.asarray(Image.fromarray(img).resize(size, Image.BOX))
        sh, sw = small_img.shape[:2]
        x = 0 if k % 2 == 0 else 2 * w - sw
        out[:sh, x : x + sw] = small_img
    x0 = w // 2
    out[:, x0 : x0 + w] = front  # in front of everyone behind
    return out


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as_taken": as_taken,
    "gray": gray,
    "dark": dark,
    "backlit": backlit,
    "small": small,
    "blur": blur,
    "jpeg": jpeg,
    "rot180": rotate180,
    "bgr": swap_rb,
}
DEFAULT_CONDITIONS = ("as_taken", "gray", "dark", "backlit", "small", "blur", "jpeg")


def parse_conditions(text: str) -> tuple[str, ...]:
    """Comma-separated condition names; ``as_taken`` always comes first.

    Raises ValueError naming an unknown condition and listing the known ones.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CONDITIONS]
    if bad:
        raise ValueError(f"--conditions: unknown {', '.join(bad)} (known: {', '.join(CONDITIONS)})")
    return ("as_taken", *dict.fromkeys(n for n in names if n != "as_taken"))
