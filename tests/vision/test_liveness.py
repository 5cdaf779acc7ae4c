"""Head-turn liveness with the real face mesh on sequences built from real photos.

There is no video of real people, so "live-like" sequences are different
photos of one person whose mesh yaw is frontal, turned, frontal (see
doorpi.cli.eval_liveness); attacks are one photo held still, waved in the
image plane or tilted in depth, rendered as 640x480 camera frames at 15 fps
with sensor noise.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from doorpi.cli import eval_liveness as ev
from doorpi.hardware.camera import load_rgb
from doorpi.vision.align import MeshRefiner
from doorpi.vision.detect import FaceDetector
from doorpi.vision.liveness import (
    LivenessChallenge,
    LivenessConfig,
    LivenessMeter,
    LivenessSample,
    Reason,
    Status,
    Turn,
    homography_residual,
)
from doorpi.vision.models import FaceModels

PERSON = "Thabo_Mbeki"  # frontal, left-turned and right-turned photos (mesh yaw)
OTHER = "Mark_Hurlbert"
CONFIG = LivenessConfig()
N = ev.n_frames(CONFIG)


@pytest.fixture(scope="module")
def meter(models: FaceModels) -> LivenessMeter:
    return LivenessMeter(FaceDetector(models.detector), models.mesh)


@pytest.fixture(scope="module")
def shots(faces_dir: Path, meter: LivenessMeter) -> dict[str, list[ev.Shot]]:
    return ev.survey(faces_dir, meter, _loader(faces_dir), ev.Scene(1), [PERSON, OTHER])


@pytest.fixture(scope="module")
def sequences(shots: dict[str, list[ev.Shot]]) -> dict[Turn, ev.LiveSequence]:
    seqs = [s for s in ev.live_sequences({PERSON: shots[PERSON]}, CONFIG)]
    assert {s.turn for s in seqs} == {Turn.LEFT, Turn.RIGHT}, "photo yaws changed: pick a person"
    return {s.turn: s for s in seqs}


def _loader(faces_dir: Path):
    def load(path: Path) -> np.ndarray:
        return load_rgb(path, max_side=1280)

    return load


def _photo(faces_dir: Path):
    return lambda rel: load_rgb(faces_dir / rel, max_side=1280)


def _shot(shots: dict[str, list[ev.Shot]], person: str, frontal: bool) -> ev.Shot:
    ss = shots[person]
    return min(ss, key=lambda s: abs(s.yaw)) if frontal else max(ss, key=lambda s: abs(s.yaw))


def test_homography_residual_zero_for_a_plane_positive_for_depth() -> None:
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 200, (468, 2))
    h = np.array([[0.9, 0.1, 12.0], [-0.05, 1.1, -7.0], [2e-4, -1e-4, 1.0]])
    q = np.column_stack([pts, np.ones(len(pts))]) @ h.T
    assert homography_residual(pts, q[:, :2] / q[:, 2:3]) < 1e-6
    # A 3-D cloud turned 20 degrees about the vertical axis is no homography of itself.
    xyz = np.column_stack([pts - 100, rng.uniform(-40, 40, len(pts))])
    a = np.radians(20)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    assert homography_residual(xyz[:, :2], (xyz @ rot.T)[:, :2]) > 3.0


def test_yaw_sign_follows_the_nose_and_flips_with_the_image(meter: LivenessMeter, photo) -> None:
    # Ben_Affleck/2: nose towards the image's right (his own left); Madonna/2: the other way.
    left = meter.measure(photo("Ben_Affleck/2.jpg"), 0.0)
    right = meter.measure(photo("Madonna/2.jpg"), 0.0)
    frontal = meter.measure(photo("Barack_Obama/1.jpg"), 0.0)
    assert left is not None and right is not None and frontal is not None
    assert left.yaw > 25 and right.yaw < -25 and abs(frontal.yaw) < 5
    flipped = meter.measure(np.ascontiguousarray(photo("Ben_Affleck/2.jpg")[:, ::-1]), 0.0)
    assert flipped is not None and abs(flipped.yaw + left.yaw) < 0.15 * left.yaw
    assert 0.2 < frontal.ear < 0.45  # eyes open


def test_measure_finds_no_face_in_non_face_images(meter: LivenessMeter, nonfaces_dir: Path) -> None:
    paths = sorted(p for p in nonfaces_dir.rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    assert paths
    assert all(meter.measure(load_rgb(p, 1280), 0.0) is None for p in paths)


def test_sample_repr_leaves_out_landmarks_and_identity_tag(meter: LivenessMeter, photo) -> None:
    s = meter.measure(photo("Barack_Obama/1.jpg"), 1.5, tag="secret-embedding")
    assert s is not None and s.points.shape == (468, 2) and s.t == 1.5
    text = repr(s)
    assert "secret-embedding" not in text and "points" not in text and "yaw" in text


@pytest.mark.parametrize("frontal", [True, False])
def test_photo_held_still_fails_static(meter, shots, faces_dir, frontal: bool) -> None:
    shot = _shot(shots, PERSON, frontal)
    img = _photo(faces_dir)(shot.rel)
    ch = LivenessChallenge(Turn.LEFT, CONFIG)
    v = ev.run(ch, ev.attack_frames("static", img, shot.base, ev.Scene(2), N), meter)
    assert v.status is Status.FAILED and v.reason is Reason.STATIC
    assert ch.max_motion < CONFIG.static_motion


@pytest.mark.parametrize("turn", list(Turn))
def test_photo_waved_in_the_image_plane_fails_planar(meter, shots, faces_dir, turn) -> None:
    shot = _shot(shots, PERSON, frontal=True)
    img = _photo(faces_dir)(shot.rel)
    ch = LivenessChallenge(turn, CONFIG)
    v = ev.run(ch, ev.attack_frames("moved", img, shot.base, ev.Scene(3), N), meter)
    assert v.reason is Reason.PLANAR
    assert ch.max_motion > 0.2  # it really moved: up to half a face height
    assert ch.max_yaw_change < CONFIG.still_yaw_deg


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_photo_tilted_in_depth_is_not_accepted(meter, shots, faces_dir, sign: float) -> None:
    for person in (PERSON, OTHER):
        shot = _shot(shots, person, frontal=True)
        img = _photo(faces_dir)(shot.rel)
        for turn in Turn:
            ch = LivenessChallenge(turn, CONFIG)
            v = ev.run(ch, ev.attack_frames("tilted", img, shot.base, ev.Scene(4), N, sign), meter)
            assert v.status is Status.FAILED, (person, turn, sign)


@pytest.mark.parametrize("turn", list(Turn))
def test_live_like_turn_passes_and_the_other_side_fails(
    meter, sequences, faces_dir, turn: Turn
) -> None:
    seq = sequences[turn]
    photo = _photo(faces_dir)
    ch = LivenessChallenge(turn, CONFIG)
    v = ev.run(ch, ev.live_frames(seq, photo, ev.Scene(5), N), meter)
    assert v.status is Status.PASSED
    assert ch.anchor is not None and ch.turned is not None
    assert turn.sign * ch.turned.yaw >= CONFIG.turn_min_deg
    other = Turn.RIGHT if turn is Turn.LEFT else Turn.LEFT
    w = ev.run(LivenessChallenge(other, CONFIG), ev.live_frames(seq, photo, ev.Scene(5), N), meter)
    assert w.reason is Reason.WRONG_DIRECTION


def test_turn_spliced_from_another_person_fails_the_identity_check(meter, shots, faces_dir) -> None:
    """``same_person`` is where the face path plugs in its embedding comparison."""
    frontal = _shot(shots, PERSON, frontal=True)
    turned = next(
        s for s in shots[OTHER] if s.yaw >= CONFIG.turn_min_deg + 2 and s.yaw - frontal.yaw < 25
    )
    seq = ev.LiveSequence(PERSON, Turn.LEFT, [frontal, turned, frontal], [0.6, 0.4, 0.6])
    labels = [s.rel.split("/")[0] for s in seq.shots]
    counts = [round(h * ev.FPS) for h in seq.holds[:-1]]
    tags = itertools.chain(
        *(itertools.repeat(lab, k) for lab, k in zip(labels[:-1], counts, strict=True))
    )
    tags = itertools.chain(tags, itertools.repeat(labels[-1]))
    seen: list[tuple[object, object]] = []

    def same_person(a: LivenessSample, b: LivenessSample) -> bool:
        seen.append((a.tag, b.tag))
        return a.tag == b.tag

    ch = LivenessChallenge(Turn.LEFT, CONFIG, same_person=same_person)
    v = ev.run(ch, ev.live_frames(seq, _photo(faces_dir), ev.Scene(6), N), meter, tags=tags)
    assert v.reason is Reason.IDENTITY
    assert seen == [(PERSON, OTHER)]


def test_turn_without_coming_back_times_out(meter, sequences, faces_dir) -> None:
    seq = sequences[Turn.LEFT]
    turned_only = ev.LiveSequence(PERSON, Turn.LEFT, seq.shots[:2], seq.holds[:2])
    ch = LivenessChallenge(Turn.LEFT, CONFIG)
    v = ev.run(ch, ev.live_frames(turned_only, _photo(faces_dir), ev.Scene(7), N), meter)
    assert v.reason is Reason.TIMEOUT
    assert ch.turned is not None  # the turn itself was accepted


def test_face_leaving_fails_face_lost(meter, shots, faces_dir, nonfaces_dir) -> None:
    shot = _shot(shots, PERSON, frontal=True)
    face = _photo(faces_dir)(shot.rel)
    wall = load_rgb(nonfaces_dir / "skimage_brick.png", 1280)
    scene = ev.Scene(8)
    frames = itertools.chain(
        (scene.render(face, shot.base) for _ in range(10)),
        (scene.render(wall, np.eye(3)) for _ in range(N)),
    )
    v = ev.run(LivenessChallenge(Turn.RIGHT, CONFIG), frames, meter)
    assert v.reason is Reason.FACE_LOST


def test_face_jumping_across_the_frame_fails_discontinuity(meter, shots, faces_dir) -> None:
    shot = _shot(shots, PERSON, frontal=True)
    face = _photo(faces_dir)(shot.rel)
    jump = np.array([[1.0, 0.0, 200.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ shot.base
    scene = ev.Scene(9)
    frames = itertools.chain(
        (scene.render(face, shot.base) for _ in range(5)),
        (scene.render(face, jump) for _ in range(5)),
    )
    v = ev.run(LivenessChallenge(Turn.LEFT, CONFIG), frames, meter)
    assert v.reason is Reason.DISCONTINUITY


def test_no_face_at_all_until_the_limit_fails_face_lost() -> None:
    ch = LivenessChallenge(Turn.LEFT, CONFIG)
    ts = np.arange(0, CONFIG.time_limit_s + 0.2, 1 / ev.FPS)
    verdicts = [ch.update(float(t), None) for t in ts]
    assert all(not v.done for v in verdicts[:-3])
    assert verdicts[-1].reason is Reason.FACE_LOST


def test_verdict_is_final_and_side_is_random(meter, photo) -> None:
    s = meter.measure(photo("Barack_Obama/1.jpg"), 0.0)
    assert s is not None
    ch = LivenessChallenge(Turn.LEFT, CONFIG)
    ch.update(0.0, None)
    v = ch.update(CONFIG.time_limit_s + 1.0, None)
    assert v.reason is Reason.FACE_LOST
    assert ch.update(CONFIG.time_limit_s + 1.1, s) is v
    sides = {LivenessChallenge().turn for _ in range(64)}
    assert sides == {Turn.LEFT, Turn.RIGHT}


def test_eval_liveness_cli_reports_apcer_and_bpcer(models_dir, faces_dir, capsys) -> None:
    parser = argparse.ArgumentParser()
    ev.add_parser(parser.add_subparsers())
    argv = ["liveness", str(faces_dir), "--models", str(models_dir), "--threads", "2"]
    args = parser.parse_args([*argv, "--attacks", "static", "--people", PERSON, "--json"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    static = res["attacks"]["static"]
    assert static["presentations"] == len(list((faces_dir / PERSON).glob("*.jpg")))
    assert static["accepted"] == 0 and static["apcer"] == 0.0
    assert static["outcomes"] == {"static": static["presentations"]}
    assert static["apcer_ci95"][0] == 0.0 < static["apcer_ci95"][1] < 1.0
    bona = res["bona_fide"]
    assert bona["sequences"] == 2 and bona["bpcer"] == 0.0
    assert bona["wrong_side_asked_failed"] == 2
    assert res["timing"]["measure_ms"] > res["timing"]["detect_ms"] > 0


def test_stage_times_are_each_measured_never_negative(models: FaceModels, photo) -> None:
    """Issue #19: `mesh_ms` was total minus detector and went negative under load.
    A detector that is slow only on every other call (as under load) made the
    old difference negative; measured stage times cannot be."""
    import time

    meter = LivenessMeter(FaceDetector(models.detector), models.mesh)
    real = meter.detector.detect
    calls = itertools.count()

    def uneven(frame):
        if next(calls) % 2 == 0:
            time.sleep(0.02)  # the standalone detector call is the slow one
        return real(frame)

    meter.detector.detect = uneven  # type: ignore[method-assign]
    t = ev.time_mesh(meter, photo("Angela_Bassett/1.jpg"), repeats=6)
    assert set(t) == {"detect_ms", "mesh_ms", "measure_ms"}
    assert all(v > 0 for v in t.values()), t
    assert t["detect_ms"] >= 20.0 and t["mesh_ms"] < t["detect_ms"]


def test_meter_is_built_from_the_mesh_model_or_a_refiner_never_both(models) -> None:
    """The face worker's meter is a LivenessMeter built on proxies (refiner=...):
    a measure from a given mesh runs neither; giving both or neither is refused."""
    detector = FaceDetector(models.detector)
    refiner = MeshRefiner(models.mesh)
    meter = LivenessMeter(detector, refiner=refiner)
    assert meter.refiner is refiner and meter.detector is detector and meter.yaw_sign == 1.0
    with pytest.raises(ValueError, match="not both"):
        LivenessMeter(detector, models.mesh, refiner=refiner)
    with pytest.raises(ValueError, match="needs the face-mesh model"):
        LivenessMeter(detector)
