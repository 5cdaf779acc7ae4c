"""BlazeFace decoding and five-point alignment on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from doorpi.hardware.camera import FolderSource
from doorpi.vision.align import (
    ARCFACE_TEMPLATE,
    CROP_SIZE,
    MESH_SIZE,
    apply_affine,
    invert_affine,
    similarity_transform,
    warp,
)
from doorpi.vision.detect import (
    ANCHORS,
    FaceDetector,
    frame_image,
    letterbox,
    pick_resident,
    weighted_nms,
)

SINGLE_FACE = [
    "Al_Sharpton/1.jpg",
    "Angela_Bassett/1.jpg",
    "Barack_Obama/1.jpg",
    "Meryl_Streep/1.jpg",
    "Yoko_Ono/1.jpg",
]


def test_anchors_match_mediapipe_layout() -> None:
    assert ANCHORS.shape == (896, 2)
    # 16x16 grid with 2 anchors per cell, then 8x8 with 6 per cell.
    np.testing.assert_allclose(ANCHORS[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(ANCHORS[1], ANCHORS[0])
    np.testing.assert_allclose(ANCHORS[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(ANCHORS[-1], [7.5 / 8, 7.5 / 8])


def test_weighted_nms_merges_overlaps_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out = weighted_nms(boxes, kps, np.array([0.9, 0.3, 0.8], np.float32), 0.3)
    assert len(out) == 2
    merged, _, score = out[0]
    assert score == pytest.approx(0.9)
    np.testing.assert_allclose(merged, [0.25, 0.25, 10.25, 10.25], atol=1e-5)


@pytest.mark.parametrize("rel", SINGLE_FACE)
def test_exactly_one_face_on_real_photos(models, photo, rel: str) -> None:
    frame = photo(rel)
    dets = FaceDetector(models.detector).detect(frame)
    assert len(dets) == 1
    d = dets[0]
    assert d.score > 0.8
    w = frame.shape[1]
    assert 0.1 * w < d.width < 0.9 * w
    # eyes above nose above mouth, right eye (image left) left of left eye
    kp = d.keypoints
    assert kp[0, 0] < kp[1, 0]
    assert max(kp[0, 1], kp[1, 1]) < kp[2, 1] < kp[3, 1]


def test_no_faces_on_non_face_images(models, nonfaces_dir: Path) -> None:
    det = FaceDetector(models.detector)
    found = {f.name: len(det.detect(f.rgb)) for f in FolderSource(nonfaces_dir).frames()}
    assert len(found) >= 10
    assert found == dict.fromkeys(found, 0)


def test_resident_is_the_large_central_face(models, photo) -> None:
    # Barack_Obama/4.jpg also fires on a large, cut-off region at the right edge.
    frame = photo("Barack_Obama/4.jpg")
    dets = FaceDetector(models.detector).detect(frame)
    assert len(dets) >= 2
    chosen = pick_resident(dets, frame.shape)
    cx = (chosen.box[0] + chosen.box[2]) / 2
    assert abs(cx - frame.shape[1] / 2) < 0.15 * frame.shape[1]


def test_similarity_transform_recovers_known_transform() -> None:
    theta, s, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    src = ARCFACE_TEMPLATE.astype(np.float64)
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def _umeyama_svd(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama (1991) by SVD, as the pipeline computed it before the closed form."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    m = np.zeros((2, 3))
    m[:, :2] = float((sig * sign).sum() / s.var(0).sum()) * (u @ np.diag(sign) @ vt)
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def test_closed_form_similarity_equals_umeyama_svd() -> None:
    # Noisy fits and reflected point sets (where the SVD route flips a sign) alike.
    rng = np.random.default_rng(19)
    for k in range(2000):
        src = rng.normal(0.0, 60.0, (5, 2))
        if k % 2:
            dst = rng.normal(0.0, 60.0, (5, 2))
        else:
            dst = src @ rng.normal(0.0, 1.0, (2, 2)) + rng.normal(0.0, 2.0, (5, 2))
        want = _umeyama_svd(src, dst)
        got = similarity_transform(src, dst)
        assert np.abs(got - want).max() <= 1e-9 * max(1.0, np.abs(want).max()), (k, got, want)


def test_affine_inverse_and_singular_matrix() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        m = rng.normal(0.0, 3.0, (2, 3))
        both = apply_affine(m, apply_affine(invert_affine(m), np.array([[3.0, -4.0], [50.0, 7.0]])))
        np.testing.assert_allclose(both, [[3.0, -4.0], [50.0, 7.0]], atol=1e-6)
    with pytest.raises(np.linalg.LinAlgError):
        invert_affine(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 5.0]]))


@pytest.mark.parametrize("rel", [r for r in SINGLE_FACE if r != "Barack_Obama/1.jpg"])
def test_shared_frame_image_gives_the_same_pixels(pipeline, photo, rel: str) -> None:
    """The letterbox and both warps from one Pillow image of the frame equal the
    per-region conversions pixel for pixel (the gate decides as before)."""
    frame = photo(rel)
    image = frame_image(frame)
    assert image is not None, f"{rel}: {frame.shape} should be small enough to share"
    for a, b in zip(letterbox(frame), letterbox(frame, image=image), strict=True):
        np.testing.assert_array_equal(a, b)
    res = pipeline.process(frame)
    assert res.detection is not None and res.points is not None
    mesh_m = pipeline.refiner.roi_transform(res.detection)
    crop_m = similarity_transform(res.points, ARCFACE_TEMPLATE)
    for m, size in ((mesh_m, MESH_SIZE), (crop_m, CROP_SIZE)):
        np.testing.assert_array_equal(warp(frame, m, size), warp(frame, m, size, image))
    # A frame the letterbox decimates, or a strided view, is not converted whole,
    # and the letterbox decimates even when handed a whole frame's image.
    big = photo("Barack_Obama/1.jpg")
    for a, b in zip(letterbox(big), letterbox(big, image=Image.fromarray(big)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert frame_image(np.zeros((1024, 768, 3), np.uint8)) is None
    assert frame_image(frame[:, ::-1]) is None


@pytest.mark.parametrize("rel", SINGLE_FACE[:3])
def test_aligned_crop_has_eyes_on_template(pipeline, photo, rel: str) -> None:
    """Re-find the landmarks inside the aligned crop: eyes must sit on the template."""
    res = pipeline.process(photo(rel))
    assert res.points is not None
    m = similarity_transform(res.points, ARCFACE_TEMPLATE)
    mapped = apply_affine(m, res.points)
    assert np.abs(mapped[:2] - ARCFACE_TEMPLATE[:2]).max() < 5.0  # 5-point LS residual
    # Independent check: run the whole pipeline again on the crop itself, padded.
    from doorpi.vision.align import align

    crop = align(photo(rel), res.points)
    canvas = np.zeros((224, 224, 3), np.uint8)
    canvas[56:168, 56:168] = crop
    again = pipeline.process(canvas)
    assert again.points is not None
    eyes = again.points[:2] - 56
    assert np.abs(eyes - ARCFACE_TEMPLATE[:2]).max() < 5.0
