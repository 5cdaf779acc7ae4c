"""Quality gates reject degraded versions of real photos with the right reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from doorpi.vision import quality as q

GOOD = ["Angela_Bassett/1.jpg", "Meryl_Streep/1.jpg", "Al_Sharpton/1.jpg"]


def _degrade(frame: np.ndarray, how: str) -> np.ndarray:
    img = Image.fromarray(frame)
    if how == "blur":
        img = img.filter(ImageFilter.GaussianBlur(3))
    elif how == "dark":  # x0.25 is stretched back now (test_real_gate); x0.07 has too few levels
        img = ImageEnhance.Brightness(img).enhance(0.07)
    elif how == "bright":
        img = ImageEnhance.Brightness(img).enhance(2.5)
    elif how == "tiny":
        img = img.resize((img.width // 5, img.height // 5), Image.BILINEAR)
    elif how == "rotated":
        img = img.rotate(40, resample=Image.BILINEAR)
    return np.asarray(img)


@pytest.mark.parametrize("rel", GOOD)
def test_good_photo_passes(pipeline, photo, rel: str) -> None:
    res = pipeline.process(photo(rel))
    assert res.reason == q.OK
    assert res.ok


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("blur", q.BLURRY),
        ("dark", q.TOO_DARK),
        ("bright", q.TOO_BRIGHT),
        ("tiny", q.TOO_FAR),
        ("rotated", q.LOOK_STRAIGHT),
    ],
)
@pytest.mark.parametrize("rel", GOOD)
def test_degraded_photo_rejected_with_reason(
    pipeline, photo, rel: str, how: str, reason: str
) -> None:
    res = pipeline.process(_degrade(photo(rel), how))
    assert res.reason == reason
    assert res.embedding is None


def test_no_face_reason_on_blank_frame(pipeline) -> None:
    res = pipeline.process(np.full((240, 320, 3), 128, np.uint8))
    assert res.reason == q.NO_FACE and not res.ok


def test_pose_of_template_is_frontal() -> None:
    from doorpi.vision.align import ARCFACE_TEMPLATE

    yaw, roll, pitch = q.pose(ARCFACE_TEMPLATE)
    assert abs(yaw) < 0.02 and abs(roll) < 0.5 and abs(pitch) < 1e-6
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 30  # nose far to one side
    assert q.pose(turned)[0] > q.QualityConfig().max_yaw


def test_face_result_repr_hides_embedding(pipeline, photo) -> None:
    res = pipeline.process(photo(GOOD[0]))
    assert res.embedding is not None
    text = repr(res)
    assert "embedding" not in text
    assert f"{float(res.embedding[0]):.4f}"[:6] not in text
