"""The face path: when the camera may look, and what becomes of what it sees.

Passers-by are not processed. In the default ``on_request`` mode the face
path is idle until a deliberate act (the face key, a button, or a card tap at
a face+card door) opens a short window; while idle every frame is dropped as
it arrives and no detector or embedding runs (the counters prove it), and
where the camera allows it the stream is stopped. ``presence`` mode wakes on
a cheap motion signal from the low-resolution luma plane (no face features);
``continuous`` needs an explicit setting and is flagged in `doorpi status`.

A window ends with exactly one outcome sent to the gate: `FaceMatched` or
`FaceRejected` (with a reason, no biometric data). Embeddings live inside the
engine for one frame; a non-match is forgotten at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from doorpi.core.events import Event, FaceEnrolled, FaceHint, FaceMatched, FaceRejected

MODES = ("on_request", "presence", "continuous")


@dataclass(frozen=True, slots=True)
class FaceOutcome:
    """What the engine made of one frame.

    ``state`` is "matched" (resident_id, score), "enrolled" (a consented capture
    was stored), "rejected" (a final no, with
    ``reason``) or "pending" (keep looking; ``hint`` tells the person why:
    too_far, too_dark, look_straight, turn_left, no_face ...).
    """

    state: str
    resident_id: int | None = None
    score: float = 0.0
    reason: str = ""
    hint: str = ""


class FaceEngine(Protocol):
    """Runs detection, quality, liveness, embedding and matching on one frame."""

    def begin(self, resident_id: int | None) -> None: ...
    def process(self, frame: Any, now: float) -> FaceOutcome: ...
    def end(self) -> None: ...


class Camera(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class MotionDetector:
    """Presence from frame difference on a downsampled luma plane.

    Computes no face features: mean absolute difference of an 8x-downsampled
    luma image against a slowly adapting background.
    """

    def __init__(self, threshold: float = 6.0, adapt: float = 0.05, step: int = 8) -> None:
        self.threshold = threshold
        self.adapt = adapt
        self.step = step
        self._bg: np.ndarray | None = None

    def reset(self) -> None:
        """Learn the background again from the next frame."""
        self._bg = None

    def moved(self, luma: np.ndarray) -> bool:
        small = luma[:: self.step, :: self.step].astype(np.float32)
        if self._bg is None:
            self._bg = small
            return False
        if self._bg.shape != small.shape:  # a different picture altogether (replay)
            self._bg = small
            return True
        diff = float(np.abs(small - self._bg).mean())
        self._bg += self.adapt * (small - self._bg)
        return diff > self.threshold


@dataclass
class FacePathStats:
    frames_seen: int = 0
    frames_dropped: int = 0
    frames_processed: int = 0
    windows: int = 0
    attempts: int = 0
    matched: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class FacePath:
    def __init__(
        self,
        engine: FaceEngine,
        emit: Callable[[Event], None],
        mode: str = "on_request",
        window_seconds: float = 8.0,
        camera: Camera | None = None,
        indicator: Callable[[bool], None] | None = None,
        motion: MotionDetector | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"face trigger mode must be one of {', '.join(MODES)}")
        self.engine = engine
        self.emit = emit
        self.mode = mode
        self.window_seconds = window_seconds
        self.camera = camera
        self.indicator = indicator or (lambda on: None)
        self.motion = motion or MotionDetector()
        self.stats = FacePathStats()
        self._lock = threading.Lock()
        self._until: float | None = None
        self._quiet_until = float("-inf")
        self._last_now = 0.0  # presence mode: no re-trigger right after a window
        self.presence_cooldown = 3.0
        self._target: int | None = None
        self._last_hint = ""
        # A request from the gate's thread, applied by the camera thread (request()).
        self._pending: tuple[int | None] | None = None
        if mode == "continuous":
            self._open(None, float("-inf"), forever=True)
        elif camera is not None and mode == "on_request":
            camera.stop()

    @property
    def active(self) -> bool:
        return self._until is not None

    # ------------------------------------------------------------ windows

    def trigger(self, now: float, resident_id: int | None = None) -> None:
        """A deliberate act: look for a face for the next few seconds."""
        with self._lock:
            if self.mode == "continuous":
                self._target = resident_id
                self.engine.begin(resident_id)
                return
            self._open(resident_id, now)

    def request(self, resident_id: int | None = None) -> None:
        """`trigger` for the gate's thread: never waits for the camera or the engine.

        The request is left for the camera thread, which opens the window at its
        next `tick` or `on_frame` (at most one idle wait later, 50 ms). A camera
        whose ``start``/``capture``/``stop`` hangs, or an engine stuck on a frame,
        holds ``_lock`` and that thread, never the gate: card and PIN decisions
        go on, and the gate's device watch reports the stalled camera
        (doorpi.facebuild.CameraLoop.problem).
        """
        self._pending = (resident_id,)  # one reference assignment: atomic in CPython

    @property
    def requested(self) -> bool:
        """A request is waiting for the camera thread, or a window is open."""
        return self._pending is not None or self.active

    def _take_request(self, now: float) -> None:
        """Apply a pending `request` (caller holds ``_lock``)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if self.mode == "continuous":
            self._target = pending[0]
            self.engine.begin(pending[0])
        else:
            self._open(pending[0], now)

    def _open(self, resident_id: int | None, now: float, forever: bool = False) -> None:
        if self._until is None and self.camera is not None:
            self.camera.start()
        self._until = float("inf") if forever else now + self.window_seconds
        self._target = resident_id
        self._last_hint = ""
        self.stats.windows += 1
        self.engine.begin(resident_id)
        self.indicator(True)

    def _close(self) -> None:
        self.engine.end()
        self._last_hint = ""
        if self.mode == "continuous":
            self._target = None
            self.engine.begin(None)
            return
        self._until = None
        self._target = None
        self.indicator(False)
        if self.camera is not None and self.mode == "on_request":
            self.camera.stop()

    def _finish(self, event: Event, reason: str) -> None:
        if self.mode == "presence":
            # Whoever stands there becomes the background: one window per arrival.
            self.motion.reset()
            self._quiet_until = self._last_now + self.presence_cooldown
        self.stats.attempts += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        self._close()
        self.emit(event)

    # ------------------------------------------------------------ frames

    def on_frame(self, frame: Any, now: float) -> None:
        """Called for every captured frame; cheap when idle."""
        with self._lock:
            self._last_now = now
            self._take_request(now)
            self.stats.frames_seen += 1
            if self._until is None:
                luma = getattr(frame, "luma", None)
                if (
                    self.mode == "presence"
                    and luma is not None
                    and self.motion.moved(luma)
                    and now >= self._quiet_until
                ):
                    self._open(None, now)
                else:
                    self.stats.frames_dropped += 1
                    return
            if now > self._until:
                self.stats.rejected += 1
                self._finish(FaceRejected(self._last_hint or "timeout"), "timeout")
                return
            self.stats.frames_processed += 1
            try:
                out = self.engine.process(frame, now)
            except Exception as exc:  # a model or camera fault falls back to card/PIN
                self.stats.rejected += 1
                self._finish(FaceRejected(f"face_error: {type(exc).__name__}"), "error")
                return
            if out.state == "matched" and out.resident_id is not None:
                self.stats.matched += 1
                self._finish(FaceMatched(out.resident_id, out.score), "matched")
            elif out.state == "enrolled" and out.resident_id is not None:
                self._close()
                self.emit(FaceEnrolled(out.resident_id))
            elif out.state == "rejected":
                self.stats.rejected += 1
                self._finish(FaceRejected(out.reason or "no_match"), out.reason or "no_match")
            elif out.hint and out.hint != self._last_hint:
                self._last_hint = out.hint
                self.emit(FaceHint(out.hint))

    def tick(self, now: float) -> None:
        """Close an expired window even when no frames arrive (camera fault)."""
        with self._lock:
            self._last_now = now
            self._take_request(now)
            if self._until is not None and now > self._until:
                self.stats.rejected += 1
                self._finish(FaceRejected(self._last_hint or "timeout"), "timeout")

    def feed(self, frames: Iterable[Any], clock: Callable[[], float]) -> None:
        for frame in frames:
            self.on_frame(frame, clock())
