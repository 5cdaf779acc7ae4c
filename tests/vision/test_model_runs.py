"""Model runs per frame: the face path's cost is mostly TFLite invocations
(issue #19, "Speed stays"), so their number per frame is pinned here instead
of a wall time, which would flake on a shared machine."""

from __future__ import annotations

import numpy as np

from doorpi.vision.detect import UPRIGHT_SURE_LOGIT
from doorpi.vision.pipeline import FacePipeline


def _runs(pipe: FacePipeline) -> tuple[int, int, int]:
    m = pipe.models
    return m.detector.invocations, m.mesh.invocations, m.embedder.invocations


def _delta(pipe: FacePipeline, call) -> tuple[tuple[int, int, int], object]:
    before = _runs(pipe)
    res = call()
    after = _runs(pipe)
    return tuple(a - b for a, b in zip(after, before, strict=True)), res


def test_a_good_frame_costs_one_run_of_each_model(pipeline: FacePipeline, photo) -> None:
    # A frontal, well-lit face scored far above the upright certainty: no second
    # detector run for the upside-down vote.
    frame = photo("Barack_Obama/1.jpg")
    runs, res = _delta(pipeline, lambda: pipeline.process(frame))
    assert res.ok, res.reason
    _, _, best = pipeline.detector.detect_input(frame)
    assert best >= UPRIGHT_SURE_LOGIT
    assert runs == (1, 1, 1)
    res.embedding = None


def test_no_face_costs_one_detector_run(pipeline: FacePipeline) -> None:
    blank = np.full((240, 320, 3), 128, np.uint8)
    runs, res = _delta(pipeline, lambda: pipeline.process(blank))
    assert res.reason == "no_face"
    assert runs == (1, 0, 0)


def test_refused_frame_is_never_embedded(pipeline: FacePipeline, photo) -> None:
    # Turned 180 degrees: the face is found and refined, refused, and SFace never runs.
    frame = np.ascontiguousarray(photo("Barack_Obama/1.jpg")[::-1, ::-1])
    runs, res = _delta(pipeline, lambda: pipeline.process(frame))
    assert not res.ok and res.embedding is None
    assert runs[1] == 1 and runs[2] == 0
    assert runs[0] <= 2  # the upside-down vote runs the detector once more at most


def test_every_photo_costs_at_most_four_runs(pipeline: FacePipeline, photo, faces_dir) -> None:
    # embed_any is what the speed comparison times: detector, mesh, SFace, and
    # the detector again only for a low-confidence face that passed the gates.
    paths = sorted(p for p in faces_dir.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[::6]
    total = 0
    for p in paths:
        runs, res = _delta(
            pipeline, lambda p=p: pipeline.embed_any(photo(str(p.relative_to(faces_dir))))
        )
        assert runs[1] == runs[2] == 1 and 1 <= runs[0] <= 2, f"{p}: {runs}"
        total += sum(runs)
        res.embedding = None
    assert total <= 3.2 * len(paths)  # the second detector run is rare (models/README.md)


def test_a_small_frame_is_converted_for_pillow_once(
    pipeline: FacePipeline, photo, monkeypatch
) -> None:
    # One Pillow copy of a 250x250 frame serves the letterbox and both warps
    # (models/README.md, "Speed"): not one per stage.
    from PIL import Image

    frame = photo("Al_Sharpton/1.jpg")
    assert frame.shape == (250, 250, 3)
    calls: list[tuple[int, ...]] = []
    real = Image.fromarray

    def counting(obj, *a, **k):
        calls.append(np.asarray(obj).shape)
        return real(obj, *a, **k)

    monkeypatch.setattr(Image, "fromarray", counting)
    res = pipeline.process(frame)
    assert res.ok, res.reason
    res.embedding = None
    assert calls == [frame.shape]
    # A large frame keeps converting only what it needs: the decimated
    # letterbox input and the two face regions, never all of the frame.
    big = photo("Barack_Obama/1.jpg")
    calls.clear()
    res = pipeline.process(big)
    res.embedding = None
    assert len(calls) == 3 and big.shape not in calls, calls
