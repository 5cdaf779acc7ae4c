"""Card tap + face with the template on the card: good frames that do not match
count towards the same final no_match as every other face window (the inner
engine's rule), on real photos through the real models."""

from __future__ import annotations

import numpy as np

from doorpi.facebuild import GateFaceEngine
from doorpi.facepath import FaceOutcome
from doorpi.hardware.camera import Frame
from doorpi.vision.engine import PipelineFaceEngine
from doorpi.vision.match import Gallery
from doorpi.vision.pipeline import FacePipeline

RID, UID = 7, bytes.fromhex("04aa0000000007")
STRANGER, OWNER = "Colin_Powell/1.jpg", "Barack_Obama/2.jpg"


def _engine(pipeline: FacePipeline, photo, max_nonmatching: int = 3) -> GateFaceEngine:
    """Card mode: the card carries resident RID's template (Barack_Obama/1)."""
    template = pipeline.process(photo("Barack_Obama/1.jpg")).embedding
    assert template is not None
    inner = PipelineFaceEngine(pipeline, Gallery(), max_nonmatching_frames=max_nonmatching)
    engine = GateFaceEngine(inner, 10)

    def verify(uid: bytes, blob: bytes, probe: np.ndarray, threshold: float):
        """What FacePrivacy.verify_card_face answers, minus the sealing."""
        assert uid == UID
        on_card = np.frombuffer(blob, np.float32)
        return (RID, "ok") if float(on_card @ probe) >= threshold else (None, "no_match")

    engine.card_source = lambda rid: (UID, template.tobytes()) if rid == RID else None
    engine.card_verify = verify
    return engine


def _states(engine: GateFaceEngine, frames: list[np.ndarray]) -> list[tuple[str, object]]:
    """(state, reason or hint, or the resident matched) per frame."""
    outs: list[FaceOutcome] = [engine.process(Frame(f), 0.1 * i) for i, f in enumerate(frames)]
    return [(o.state, o.reason or o.hint or o.resident_id) for o in outs]


def test_third_nonmatching_frame_is_the_final_no_match(pipeline, photo) -> None:
    engine = _engine(pipeline, photo)
    stranger, empty = photo(STRANGER), np.zeros((480, 640, 3), np.uint8)
    engine.begin(RID)
    # A frame without a usable face is a hint, not a miss.
    assert _states(engine, [stranger, empty, stranger, empty, stranger]) == [
        ("pending", "no_match"),
        ("pending", "no_face"),
        ("pending", "no_match"),
        ("pending", "no_face"),
        ("rejected", "no_match"),
    ]
    engine.begin(RID)  # a new tap starts a new count
    assert _states(engine, [stranger, stranger, photo(OWNER)]) == [
        ("pending", "no_match"),
        ("pending", "no_match"),
        ("matched", RID),
    ]


def test_card_mode_follows_the_engines_configured_count(pipeline, photo) -> None:
    engine = _engine(pipeline, photo, max_nonmatching=2)
    engine.begin(RID)
    stranger = photo(STRANGER)
    assert _states(engine, [stranger, stranger]) == [
        ("pending", "no_match"),
        ("rejected", "no_match"),
    ]
