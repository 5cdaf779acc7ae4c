"""BlazeFace decoding and five-point alignment on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doorpi.hardware.camera import FolderSource
from doorpi.vision.align import ARCFACE_TEMPLATE, apply_affine, similarity_transform
from doorpi.vision.detect import ANCHORS, FaceDetector, pick_resident, weighted_nms

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
