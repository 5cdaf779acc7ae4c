"""Capture on request: idle frames are dropped uncomputed; one outcome per window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from doorpi.core.events import FaceHint, FaceMatched, FaceRejected
from doorpi.facepath import FaceOutcome, FacePath, MotionDetector


@dataclass
class Frame:
    rgb: np.ndarray
    luma: np.ndarray | None = None


class ScriptedEngine:
    """Test double for the vision engine: replays outcomes, counts calls."""

    def __init__(self, outcomes=()):
        self.outcomes = list(outcomes)
        self.calls = 0
        self.begun: list = []

    def begin(self, resident_id):
        self.begun.append(resident_id)

    def process(self, frame, now):
        self.calls += 1
        if isinstance(self.outcomes[0], Exception):
            raise self.outcomes.pop(0)
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]

    def end(self):
        pass


class FakeCamera:
    def __init__(self):
        self.running = True
        self.changes: list[bool] = []

    def start(self):
        self.running = True
        self.changes.append(True)

    def stop(self):
        self.running = False
        self.changes.append(False)


FACEY = Frame(np.full((240, 320, 3), 128, np.uint8), np.full((240, 320), 128, np.uint8))


NO_FACE = (FaceOutcome("pending", hint="no_face"),)


def make(mode="on_request", outcomes=NO_FACE, **kw):
    events: list = []
    leds: list = []
    engine = ScriptedEngine(outcomes)
    cam = FakeCamera()
    fp = FacePath(engine, events.append, mode=mode, camera=cam, indicator=leds.append, **kw)
    return fp, engine, events, cam, leds


def test_idle_frames_are_dropped_and_nothing_is_computed():
    fp, engine, events, cam, leds = make()
    for i in range(100):
        fp.on_frame(FACEY, float(i))
    assert engine.calls == 0
    assert fp.stats.frames_dropped == 100 and fp.stats.frames_processed == 0
    assert events == [] and leds == []
    assert cam.running is False  # stream stopped while idle


def test_trigger_opens_a_window_and_a_match_closes_it():
    fp, engine, events, cam, leds = make(
        outcomes=[FaceOutcome("pending", hint="too_far"), FaceOutcome("matched", 3, 0.71)]
    )
    fp.trigger(10.0)
    assert cam.running and leds == [True] and engine.begun == [None]
    fp.on_frame(FACEY, 10.1)
    fp.on_frame(FACEY, 10.2)
    assert events == [FaceHint("too_far"), FaceMatched(3, 0.71)]
    assert not fp.active and cam.running is False and leds == [True, False]
    fp.on_frame(FACEY, 10.3)  # after the window: dropped again
    assert engine.calls == 2 and fp.stats.frames_dropped == 1


def test_one_to_one_target_is_passed_to_the_engine():
    fp, engine, *_ = make()
    fp.trigger(0.0, resident_id=42)
    assert engine.begun == [42]


def test_window_times_out_with_the_last_hint():
    fp, _engine, events, *_ = make(window_seconds=2.0)
    fp.trigger(0.0)
    fp.on_frame(FACEY, 1.0)
    fp.on_frame(FACEY, 2.5)
    assert events == [FaceHint("no_face"), FaceRejected("no_face")]
    assert fp.stats.attempts == 1 and not fp.active


def test_tick_closes_a_window_without_frames():
    fp, _, events, cam, _ = make(window_seconds=2.0)
    fp.trigger(0.0)
    fp.tick(3.0)
    assert events == [FaceRejected("timeout")] and cam.running is False


def test_engine_fault_becomes_a_rejection():
    fp, _, events, *_ = make(outcomes=[RuntimeError("model exploded")])
    fp.trigger(0.0)
    fp.on_frame(FACEY, 0.1)
    assert events == [FaceRejected("face_error: RuntimeError")]


def test_final_rejection_from_engine():
    fp, _, events, *_ = make(outcomes=[FaceOutcome("rejected", reason="liveness_failed")])
    fp.trigger(0.0)
    fp.on_frame(FACEY, 0.1)
    assert events == [FaceRejected("liveness_failed")]


def test_presence_mode_wakes_on_motion_only():
    fp, engine, _events, *_ = make(mode="presence")
    still = Frame(FACEY.rgb, np.full((240, 320), 100, np.uint8))
    for i in range(20):
        fp.on_frame(still, float(i))
    assert engine.calls == 0
    moved = Frame(FACEY.rgb, np.full((240, 320), 100, np.uint8))
    moved.luma[60:200, 80:240] = 220  # someone steps in
    fp.on_frame(moved, 21.0)
    assert fp.active and engine.calls == 1


def test_continuous_mode_processes_every_frame():
    fp, engine, *_ = make(mode="continuous")
    for i in range(5):
        fp.on_frame(FACEY, float(i))
    assert engine.calls == 5 and fp.stats.frames_dropped == 0


def test_unknown_mode_refused():
    with pytest.raises(ValueError, match="on_request, presence, continuous"):
        make(mode="always")


def test_motion_detector_ignores_noise():
    md = MotionDetector()
    rng = np.random.default_rng(0)
    base = np.full((240, 320), 120, np.uint8)
    assert not md.moved(base)
    for _ in range(10):
        noisy = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        assert not md.moved(noisy)
