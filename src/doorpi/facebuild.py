"""Assembling the optional face path: models, vault gallery, engine, trigger.

Only when the gate's face privacy is up (face enabled, privacy settings
valid, impact assessment stored). Any failure here (missing or corrupt
model, no runtime) is one log line and face stays off: card and PIN are
untouched.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from doorpi.core.events import DeviceStatus
from doorpi.devicewatch import CAMERA_FAULT, FACE_MODELS_FAULT, FACE_OFF_FAULTS
from doorpi.facepath import FaceOutcome, FacePath
from doorpi.gate import Gate

log = logging.getLogger("doorpi.face")

ENROL_FRAMES = 3  # good frames averaged into one template


class GateFaceEngine:
    """The engine the face path runs: the pipeline engine, plus the site's rules.

    * face alone (no card, PIN or resident number first) must pass a liveness
      challenge (a small head turn to a side picked at random) by the same
      person who matches: a printed photo or a still phone screen fails;
    * hands-free 1:N is refused above ``max_hands_free`` templates (the chance of
      a stranger matching someone grows with every template): the person is
      asked for a card, a PIN, or their resident number first (1:1);
    * enrolment capture: a few good frames averaged, handed straight to the
      vault, never kept here.
    """

    def __init__(
        self,
        inner: Any,
        max_hands_free: int,
        enrol_sink: Any = None,
        liveness: Any = None,
    ) -> None:
        self.inner = inner
        self.max_hands_free = max_hands_free
        self.enrol_sink = enrol_sink
        self.liveness = liveness  # LivenessMeter, or None: then face alone never matches
        self._target: int | None = None
        self._enrolling: int | None = None
        self._acc: list[np.ndarray] = []
        self._challenge: Any = None
        # Template-on-card mode: where the tapped card's sealed template comes from,
        # and who checks a probe against it (FacePrivacy.verify_card_face).
        self.card_source: Any = None
        self.card_verify: Any = None
        self._card: tuple[bytes, bytes] | None = None
        self._who: int | None = None
        self._score = 0.0
        # The face worker the models run in (doorpi.faceworker), None: inline.
        self.worker: Any = None

    def close(self) -> None:
        """End the face worker, if any (the camera loop's stop, the simulation's close)."""
        if self.worker is not None:
            self.worker.close()

    @property
    def gallery(self) -> Any:
        return self.inner.gallery

    @property
    def threshold(self) -> float:
        return float(self.inner.threshold)

    def begin(self, resident_id: int | None) -> None:
        self._target = resident_id
        self._who = None
        self._score = 0.0
        self._challenge = None
        self._card = None
        if resident_id is not None and self.card_source is not None:
            self._card = self.card_source(resident_id)
        if resident_id is None and self.liveness is not None:
            from doorpi.vision.liveness import LivenessChallenge

            self._challenge = LivenessChallenge(same_person=lambda a, b: a.tag == b.tag)
        self.inner.begin(resident_id)

    def begin_enrolment(self, resident_id: int) -> None:
        self._enrolling = resident_id
        self._acc = []

    def end(self) -> None:
        self._target = None
        self._enrolling = None
        self._acc = []
        self.inner.end()

    def process(self, frame: Any, now: float) -> FaceOutcome:
        if self._enrolling is not None:
            return self._enrol(frame)
        if self._target is not None and self.card_source is not None:
            return self._on_card(frame)
        if self._target is not None:
            return self.inner.process(frame, now)  # 1:1 after a card or resident number
        if self.card_source is not None:  # templates on cards: nothing here to search
            return FaceOutcome("rejected", reason="templates_on_cards")
        if len(self.inner.gallery) > self.max_hands_free:
            return FaceOutcome("rejected", reason="hands_free_disabled")
        if self._challenge is None:
            return FaceOutcome("rejected", reason="liveness_unavailable")
        return self._hands_free(frame, now)

    def _on_card(self, frame: Any) -> FaceOutcome:
        """1:1 against the template the resident's own card carried (none stored here)."""
        if self._card is None:
            return FaceOutcome("rejected", reason="no_template_on_card")
        res = self.inner.look(frame)  # the pipeline, and the camera's channel check
        if not res.ok:
            return FaceOutcome("pending", hint=res.reason)
        probe, res.embedding = res.embedding, None
        uid, blob = self._card
        rid, reason = self.card_verify(uid, blob, probe, self.threshold)
        del probe
        if rid is not None and rid == self._target:
            return FaceOutcome("matched", resident_id=rid, score=0.0)  # score stays inside
        if reason != "no_match":
            return FaceOutcome("rejected", reason=f"card_template_{reason}")
        return self.inner.miss()  # counted with the inner engine's rule, reset by begin

    def _hands_free(self, frame: Any, now: float) -> FaceOutcome:
        """1:N and liveness on the same frames; the match counts only once the
        challenge has passed, and the identity must not change meanwhile."""
        res = self.inner.look(frame)
        out = self.inner.decide(res)
        if out.state == "matched":
            if self._who is not None and self._who != out.resident_id:
                return FaceOutcome("rejected", reason="liveness_identity")
            self._who = out.resident_id
            self._score = max(self._score, out.score)
        elif out.state == "rejected":
            return out
        # Measured from the pipeline's own mesh of this frame: no model runs twice.
        sample = None
        if res.mesh is not None:  # None: the detector found no face
            rgb = np.asarray(getattr(frame, "rgb", frame))
            sample = self.liveness.measure(rgb, now, tag=self._who, mesh=res.mesh)
        verdict = self._challenge.update(now, sample)
        if verdict.done and not verdict.passed:
            return FaceOutcome("rejected", reason=f"liveness_{verdict.reason}")
        if verdict.passed and self._who is not None:
            return FaceOutcome("matched", resident_id=self._who, score=self._score)
        return FaceOutcome("pending", hint=f"turn_{self._challenge.turn.value}")

    def _enrol(self, frame: Any) -> FaceOutcome:
        rid = self._enrolling
        assert rid is not None
        res = self.inner.look(frame)
        if not res.ok:
            return FaceOutcome("pending", hint=res.reason)
        self._acc.append(res.embedding)
        res.embedding = None
        if len(self._acc) < ENROL_FRAMES:
            return FaceOutcome("pending", hint="hold_still")
        template = np.mean(self._acc, axis=0).astype(np.float32)
        template /= np.linalg.norm(template)
        self._acc = []
        self._enrolling = None
        try:
            self.enrol_sink(rid, template)
        except Exception as exc:  # card not on the reader, not theirs: say so, keep nothing
            reason = getattr(exc, "reason", None) or type(exc).__name__
            log.warning("enrolment of resident %s not stored: %s", rid, exc)
            return FaceOutcome("rejected", reason=f"enrol_failed_{reason}")
        return FaceOutcome("enrolled", resident_id=rid)


# A frame takes ~33 ms to arrive at 30 fps and the face models ~0.3 s per frame on
# a Pi 4 (docs/face.md, `doorpi bench face`): 3 s inside one call is a hang.
CAMERA_STALL_SECONDS = 3.0
# Captures failing in a row before the camera counts as gone (one is retried quietly).
CAMERA_FAILURES = 3
# While idle with a failing camera, how often one capture checks whether it is back.
CAMERA_RETRY_SECONDS = 10.0


class CameraLoop:
    """The face path's own thread on the device: frames from the camera while the
    face path wants them; while idle in on_request mode the stream is stopped and
    nothing is captured at all. A camera fault is one log line and a retry; card
    and PIN never wait for it (the gate only leaves requests: `FacePath.request`).

    `problem()` says when the camera is gone (``CAMERA_FAILURES`` captures failed in
    a row) or hung (one call, start/capture/stop or the face models on a frame,
    running over ``CAMERA_STALL_SECONDS``); `watch_camera` turns it into a fault."""

    def __init__(
        self, path: FacePath, camera: Any, clock: Any, stall_seconds: float = CAMERA_STALL_SECONDS
    ) -> None:
        import threading

        self.path = path
        self.camera = camera
        self.clock = clock
        self.stall_seconds = stall_seconds
        self._busy_since: float | None = None  # clock.mono() when the current call began
        self._failures = 0
        self._last_error = ""
        self._retried = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock.mono()
            self._busy_since = now
            self.path.tick(now)  # may start or stop the stream
            if not self.path.active and self.path.mode == "on_request":
                self._busy_since = None
                if (
                    self._failures >= CAMERA_FAILURES
                    and now - self._retried >= CAMERA_RETRY_SECONDS
                ):
                    self._retried = now
                    self._probe()
                self._stop.wait(0.05)
                continue
            try:
                self._busy_since = self.clock.mono()
                frame = self.camera.capture()
            except Exception as exc:
                self._busy_since = None
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.error("camera: %s", exc)
                self._stop.wait(1.0)
                continue
            self._failures = 0
            self.path.on_frame(frame, self.clock.mono())
            self._busy_since = None

    def _probe(self) -> None:
        """Idle with a failing camera: one capture to see whether it is back. The
        frame is dropped at once (never processed); without this the fault would
        stand until a restart, since the gate asks no face of a faulty camera."""
        self._busy_since = self.clock.mono()
        try:
            self.camera.start()
            self.camera.capture()
            self.camera.stop()
            self._failures = 0
            log.info("camera answers again")
        except Exception as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._busy_since = None

    def problem(self) -> str:
        """ "" while the camera answers; else one line: hung, or gone (failing)."""
        since = self._busy_since
        if since is not None and self.clock.mono() - since > self.stall_seconds:
            return (
                f"camera path not answering for over {self.stall_seconds:g} s "
                "(camera or face model hung); card and PIN unaffected"
            )
        if self._failures >= CAMERA_FAILURES:
            return f"camera failing: {self._last_error}"
        return ""

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        try:
            self.camera.close()
        except Exception as exc:
            log.warning("camera close: %s", exc)
        close = getattr(self.path.engine, "close", None)
        if callable(close):
            close()


def watch_camera(watch: Any, loop: CameraLoop, emit: Any) -> None:
    """Add the camera to a `doorpi.devicewatch.DeviceWatch` (and the face worker, when
    the models run in one: dead or restarting is the same ``camera`` fault,
    doorpi.faceworker.FaceWorker.problem; unable to load its models is the ``face
    models`` fault, as inline). When either fails while a face window is open or asked
    for, the gate gets `FaceRejected("camera_fault")` (or ``"face_models_fault"``) at
    once, so the person is offered their face-free way (PIN) instead of waiting."""
    from doorpi.core.events import FaceRejected

    def rejecter(name: str) -> Any:
        def on_fault(_problem: str) -> None:
            if loop.path.requested:
                emit(FaceRejected(FACE_OFF_FAULTS[name]))

        return on_fault

    worker = getattr(loop.path.engine, "worker", None)  # dead or restarting: a camera fault

    def probe() -> str:
        return loop.problem() or (worker.problem() if worker is not None else "")

    watch.add(CAMERA_FAULT, probe, rejecter(CAMERA_FAULT))
    if worker is not None:
        watch.add(FACE_MODELS_FAULT, worker.model_problem, rejecter(FACE_MODELS_FAULT))


def start_camera(gate: Gate, indicator: Any = None) -> CameraLoop | None:
    """On the device: open the Pi camera and run the face path, or say why not."""
    if gate.face_privacy is None:
        return None
    try:
        from doorpi.hardware.camera import Picamera2Source

        camera = Picamera2Source()
    except Exception as exc:  # no picamera2 (not a Pi), no camera attached
        gate.face_problem = f"camera: {exc}"
        log.error("face stays off: %s", gate.face_problem)
        gate.submit(DeviceStatus("camera", False, f"cannot open the camera: {exc}"))
        return None
    path = build_face_path(gate, camera=camera, indicator=indicator)
    if path is None:
        camera.close()
        return None
    loop = CameraLoop(path, camera, gate.clock)
    loop.start()
    return loop


def card_writer(gate: Gate) -> Any:
    """Enrolment in card mode: the template goes onto the resident's card, which
    they hold on the reader while the camera captures; the device keeps none."""

    def write(resident_id: int, template: np.ndarray) -> None:
        from doorpi.privacy.oncard import pcsc_card

        with pcsc_card(gate.cfg.reader.name) as transmit:
            gate.face_privacy.enrol_on_card(resident_id, template, transmit)

    return write


def build_face_path(gate: Gate, camera: Any = None, indicator: Any = None) -> FacePath | None:
    """The face path for ``gate``, or None (face off, or it cannot run here)."""
    if gate.face_privacy is None:
        return None
    cfg = gate.cfg
    worker = None
    try:
        from doorpi.privacy.gallery import VaultGallery
        from doorpi.vision.engine import PipelineFaceEngine
        from doorpi.vision.match import SHIPPED_THRESHOLD
        from doorpi.vision.orient import Orientation

        orientation = Orientation(cfg.camera.rotation, cfg.camera.hflip, cfg.camera.vflip)
        if cfg.face.process == "worker":  # the models in their own process (faceworker)
            from doorpi.faceworker import (
                FaceWorker,
                RemoteObject,
                WorkerSpec,
                remote_liveness_meter,
            )

            worker = FaceWorker(
                WorkerSpec(cfg.face.models_dir or None, cfg.face.num_threads, orientation)
            )
            worker.start()  # returns at once: the gate is ready while the models load
            pipeline: Any = RemoteObject(worker, "pipeline")
            meter = remote_liveness_meter(worker)
        else:  # "inline": in the gate's process (tests, simulations)
            from doorpi.vision.liveness import LivenessMeter
            from doorpi.vision.pipeline import FacePipeline

            pipeline = FacePipeline.load(cfg.face.models_dir or None, cfg.face.num_threads)
            pipeline.orientation = orientation
            meter = LivenessMeter(pipeline.detector, pipeline.models.mesh)
    except Exception as exc:  # ModelError, no runtime: one line, face off
        gate.face_problem = f"face models: {exc}"
        log.error("face stays off: %s", gate.face_problem)
        gate.submit(DeviceStatus(FACE_MODELS_FAULT, False, f"face stays off: {exc}"))
        return None
    gallery = VaultGallery(gate.face_privacy.vault, gate.clock.wall)
    inner = PipelineFaceEngine(pipeline, gallery, threshold=cfg.face.threshold or SHIPPED_THRESHOLD)
    engine = GateFaceEngine(inner, cfg.face.max_hands_free, gate.face_privacy.enrol, meter)
    engine.worker = worker
    path = FacePath(
        engine,
        gate.submit,
        mode=cfg.face.trigger,
        window_seconds=cfg.face.window_seconds,
        camera=camera,
        indicator=indicator,
    )
    if gate.card_templates is not None:  # template on card
        engine.card_source = gate.take_card_template
        engine.card_verify = gate.face_privacy.verify_card_face
        engine.enrol_sink = card_writer(gate)
    gate.face_engine = engine

    def request(resident_id: int | None) -> None:
        path.request(resident_id)  # never blocks the gate's thread on the camera

    def enrol(resident_id: int) -> None:
        path.request(None)
        engine.begin_enrolment(resident_id)

    gate.on_face_request = request
    gate.on_face_enrol = enrol
    return path


__all__ = ["CameraLoop", "GateFaceEngine", "build_face_path", "start_camera", "watch_camera"]
