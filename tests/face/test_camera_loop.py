"""The device's camera thread: nothing captured while idle; a faulty camera is
retried without touching the rest of the gate."""

from __future__ import annotations

import time

import numpy as np

from doorpi.clocks import SystemClock
from doorpi.core.events import FaceMatched
from doorpi.facebuild import CameraLoop
from doorpi.facepath import FaceOutcome, FacePath
from doorpi.hardware.camera import Frame


class ReplayCamera:
    """Stands in for Picamera2Source (no libcamera here): replays one frame."""

    def __init__(self, fail_first: int = 0):
        self.captures = 0
        self.fail_first = fail_first
        self.running = True
        self.closed = False

    def start(self):
        self.running = True

    def stop(self):
        self.running = False

    def capture(self):
        self.captures += 1
        if self.captures <= self.fail_first:
            raise OSError("camera timed out")
        return Frame(np.zeros((120, 160, 3), np.uint8), np.zeros((60, 80), np.uint8))

    def close(self):
        self.closed = True


class CountingEngine:
    def __init__(self, after: int):
        self.calls = 0
        self.after = after

    def begin(self, resident_id):
        pass

    def process(self, frame, now):
        self.calls += 1
        if self.calls >= self.after:
            return FaceOutcome("matched", 7, 0.8)
        return FaceOutcome("pending", hint="too_far")

    def end(self):
        pass


def wait_until(cond, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_idle_on_request_captures_nothing_then_trigger_runs_until_decision():
    events: list = []
    cam = ReplayCamera()
    engine = CountingEngine(after=3)
    path = FacePath(engine, events.append, camera=cam)
    loop = CameraLoop(path, cam, SystemClock())
    loop.start()
    try:
        time.sleep(0.3)
        assert cam.captures == 0 and cam.running is False
        path.trigger(time.monotonic())
        assert wait_until(lambda: FaceMatched(7, 0.8) in events)
        n = cam.captures
        time.sleep(0.3)
        assert cam.captures == n  # idle again: the stream stopped
        assert cam.running is False
    finally:
        loop.stop()
    assert cam.closed


def test_camera_faults_are_retried():
    events: list = []
    cam = ReplayCamera(fail_first=1)
    path = FacePath(CountingEngine(after=1), events.append, camera=cam, window_seconds=5)
    loop = CameraLoop(path, cam, SystemClock())
    loop.start()
    try:
        path.trigger(time.monotonic())
        assert wait_until(lambda: bool(events), timeout=4)
        assert isinstance(events[-1], FaceMatched)
    finally:
        loop.stop()
