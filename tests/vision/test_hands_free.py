"""Face alone (1:N plus the head-turn liveness) runs each model once per frame.

Liveness measures the frame from the face pipeline's own detection and mesh
output instead of running BlazeFace and the face mesh again; the sample must
be the very one a measurement from scratch gives. The models here are the
real ones, wrapped only to count how often each runs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from doorpi.facebuild import GateFaceEngine
from doorpi.hardware.camera import Frame
from doorpi.vision.engine import PipelineFaceEngine
from doorpi.vision.liveness import LivenessMeter, LivenessSample
from doorpi.vision.match import Gallery
from doorpi.vision.models import FaceModels
from doorpi.vision.pipeline import FacePipeline
from doorpi.vision.runtime import TFLiteModel

FRONTAL, TURNED_LEFT, TURNED_RIGHT = "Barack_Obama/1.jpg", "Ben_Affleck/2.jpg", "Madonna/2.jpg"


class CountingModel:
    """A loaded model that counts its inferences; everything else is the model's own."""

    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        self.runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.runs += 1
        return self.model.run(x)


class Counted:
    """The face pipeline and a liveness meter sharing counted detector, mesh and SFace."""

    def __init__(self, models: FaceModels, mirrored: bool = False) -> None:
        self.detector = CountingModel(models.detector)
        self.mesh = CountingModel(models.mesh)
        self.embedder = CountingModel(models.embedder)
        counted: Any = (self.detector, self.mesh, self.embedder)
        self.pipeline = FacePipeline(
            replace(models, detector=counted[0], mesh=counted[1], embedder=counted[2])
        )
        self.meter = LivenessMeter(self.pipeline.detector, counted[1], mirrored=mirrored)

    def runs(self) -> tuple[int, int, int]:
        return self.detector.runs, self.mesh.runs, self.embedder.runs


def _same(a: LivenessSample | None, b: LivenessSample | None) -> None:
    assert a is not None and b is not None
    assert (a.t, a.yaw, a.ear, a.score) == (b.t, b.yaw, b.ear, b.score)
    assert a.points.shape == (468, 2) and np.array_equal(a.points, b.points)


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("rel", [FRONTAL, TURNED_LEFT, TURNED_RIGHT])
def test_sample_from_the_pipelines_mesh_equals_one_from_scratch(
    models: FaceModels, photo, rel: str, mirrored: bool
) -> None:
    c = Counted(models, mirrored)
    img = photo(rel)
    res = c.pipeline.process(img)
    # Whatever the quality gates say (Madonna/2 is refused as not frontal), the
    # detection and the mesh output, depth included, come with the result.
    assert res.detection is not None and res.mesh is not None
    assert res.mesh.raw.shape == (468, 3) and np.ptp(res.mesh.raw[:, 2]) > 1.0
    emb = int(res.ok)
    assert c.runs() == (1, 1, emb)
    given = c.meter.measure(img, 2.0, res.detection, tag="t", mesh=res.mesh)
    assert c.runs() == (1, 1, emb)  # neither the detector nor the mesh ran again
    scratch = c.meter.measure(img, 2.0, tag="t")
    assert c.runs() == (2, 2, emb)  # from scratch: one more of each
    _same(given, scratch)
    # The mesh given, the frame is not read: the same sample from an empty frame.
    _same(c.meter.measure(np.zeros_like(img), 2.0, mesh=res.mesh, tag="t"), scratch)
    assert c.runs() == (2, 2, emb)


def test_turn_reads_the_same_yaw_either_way(models: FaceModels, photo) -> None:
    c = Counted(models)
    yaws = {}
    for rel in (FRONTAL, TURNED_LEFT, TURNED_RIGHT):
        res = c.pipeline.process(photo(rel))
        s = c.meter.measure(photo(rel), 0.0, res.detection, mesh=res.mesh)
        assert s is not None
        yaws[rel] = s.yaw
    assert yaws[TURNED_LEFT] > 25 and yaws[TURNED_RIGHT] < -25 and abs(yaws[FRONTAL]) < 5


def _hands_free(c: Counted, photo) -> GateFaceEngine:
    gallery = Gallery()
    for rid, rel in ((1, "Angela_Bassett/1.jpg"), (2, FRONTAL), (3, "Meryl_Streep/1.jpg")):
        gallery.add(str(rid), c.pipeline.process(photo(rel)).embedding)
    return GateFaceEngine(PipelineFaceEngine(c.pipeline, gallery), 10, liveness=c.meter)


def _delta(c: Counted, start: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(r - s for r, s in zip(c.runs(), start, strict=True))


def test_hands_free_runs_each_model_once_per_frame(models: FaceModels, photo) -> None:
    c = Counted(models)
    engine = _hands_free(c, photo)
    engine.begin(None)
    turn = f"turn_{engine._challenge.turn.value}"
    probe = photo("Angela_Bassett/2.jpg")  # resident 1, another photo, frontal
    start = c.runs()
    for k in range(1, 4):
        out = engine.process(Frame(probe), 0.1 * k)
        assert (out.state, out.hint) == ("pending", turn)  # waiting for the turn
        assert engine._who == 1  # resident 1 matched (1:N) on this frame
        assert _delta(c, start) == (k, k, k)
    anchor = engine._challenge.anchor
    assert anchor is not None and anchor.t == pytest.approx(0.1)  # the first frame's sample
    _same(anchor, c.meter.measure(probe, anchor.t))
    # No face: the detector once, nothing else, and the challenge sees no face.
    start = c.runs()
    out = engine.process(Frame(np.zeros((480, 640, 3), np.uint8)), 0.4)
    assert _delta(c, start) == (1, 0, 0) and out.state == "pending"
