"""The face-path engine on real photos: match, hint, and final no-match."""

from __future__ import annotations

import numpy as np

from doorpi.hardware.camera import Frame
from doorpi.vision.engine import PipelineFaceEngine
from doorpi.vision.match import Gallery


def _gallery(pipeline, photo) -> Gallery:
    g = Gallery()
    for rid, rel in (
        (1, "Angela_Bassett/1.jpg"),
        (2, "Barack_Obama/1.jpg"),
        (3, "Meryl_Streep/1.jpg"),
    ):
        res = pipeline.process(photo(rel))
        g.add(str(rid), res.embedding)
    return g


def test_one_to_n_matches_resident(pipeline, photo) -> None:
    eng = PipelineFaceEngine(pipeline, _gallery(pipeline, photo))
    eng.begin(None)
    out = eng.process(Frame(photo("Barack_Obama/2.jpg")), 0.0)
    assert out.state == "matched" and out.resident_id == 2 and out.score > 0.45


def test_one_to_one_rejects_other_resident(pipeline, photo) -> None:
    eng = PipelineFaceEngine(pipeline, _gallery(pipeline, photo), max_nonmatching_frames=2)
    eng.begin(1)  # card of resident 1, face of resident 3
    frame = Frame(photo("Meryl_Streep/2.jpg"))
    assert eng.process(frame, 0.0).state == "pending"
    out = eng.process(frame, 0.1)
    assert out.state == "rejected" and out.reason == "no_match"
    eng.begin(3)
    assert eng.process(frame, 0.2).state == "matched"


def test_stranger_and_quality_hint(pipeline, photo) -> None:
    eng = PipelineFaceEngine(pipeline, _gallery(pipeline, photo), max_nonmatching_frames=1)
    eng.begin(None)
    assert eng.process(np.full((240, 320, 3), 20, np.uint8), 0.0).hint == "no_face"
    out = eng.process(Frame(photo("Yoko_Ono/1.jpg")), 0.1)
    assert out.state == "rejected" and out.resident_id is None
