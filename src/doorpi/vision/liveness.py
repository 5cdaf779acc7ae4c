"""Face liveness: an active head-turn challenge measured with the face mesh.

Why: face-only entry must not open for a printed photo or a phone showing a
still picture. A photo is flat, so however it is held, moved or tilted, the
2-D landmarks of one frame map onto another's by a plane homography, and
the mesh reads little yaw from it unless it is tilted so far that the face
is squeezed sideways far more than a turned head is. A live head asked to
turn to a side picked at random turns in 3-D: yaw changes in the asked
direction and the nose moves against the cheeks (parallax a homography
cannot explain) while the face keeps most of its width.

``LivenessChallenge`` is a pure state machine fed with ``LivenessSample``
measurements and monotonic timestamps; ``LivenessMeter.measure`` makes a
sample from a camera frame (BlazeFace, then the face mesh with its depth
output), or from the detection and mesh the face pipeline already ran on
that frame. Nothing here keeps frames or writes anything; samples hold the
468 2-D landmark points in memory only for the length of one challenge.
See docs/liveness.md for what this does and does not stop.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from doorpi.vision.align import MeshLandmarks, MeshRefiner
from doorpi.vision.detect import Detection, pick_resident
from doorpi.vision.runtime import TFLiteModel

# Face-mesh landmark indices (image-left = subject's right).
_CHEEK_L, _CHEEK_R = 234, 454  # face contour at cheek height
_EYE_OUT_L, _EYE_OUT_R = 33, 263
_MOUTH_L, _MOUTH_R = 61, 291
_FOREHEAD, _CHIN = 10, 152
# Eye aspect ratio (Soukupova & Cech 2016): horizontal corners, two vertical pairs.
_EAR_EYES = np.array(
    [
        [33, 133, 160, 144, 158, 153],
        [362, 263, 385, 380, 387, 373],
    ]
)


class Turn(enum.Enum):
    """The side the resident is asked to turn to (their own left or right)."""

    LEFT = "left"
    RIGHT = "right"

    @property
    def sign(self) -> float:
        """Sign of ``LivenessSample.yaw`` for a turn to this side."""
        return 1.0 if self is Turn.LEFT else -1.0


class Status(enum.Enum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class Reason(enum.StrEnum):
    """Why a challenge failed (stable codes for the audit log and the UI)."""

    STATIC = "static"  # nothing moved beyond mesh noise: a photo held still
    PLANAR = "planar"  # it moved, but as a flat picture does (homography explains it)
    TIMEOUT = "timeout"  # moved like a face, but no complete turn in time
    WRONG_DIRECTION = "wrong_direction"  # turned to the other side (a replayed turn?)
    FACE_LOST = "face_lost"  # no face for longer than the allowed gap
    DISCONTINUITY = "discontinuity"  # face jumped between frames: a cut, not motion
    IDENTITY = "identity"  # the caller's identity check says another person


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: Reason | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def done(self) -> bool:
        return self.status is not Status.PENDING


PENDING = Verdict(Status.PENDING)
PASSED = Verdict(Status.PASSED)


@dataclass(frozen=True)
class LivenessSample:
    """What the challenge needs from one frame.

    ``points`` are the mesh's 468 (x, y) landmarks in frame pixels; ``yaw``
    is in degrees from the mesh's 3-D points, positive when the subject
    turns to their own left (nose towards the image's right in an unmirrored
    image); ``ear`` is the mean eye aspect ratio (for callers; the challenge
    does not use it, see docs/liveness.md). ``tag`` is the caller's identity
    token for the ``same_person`` check (an embedding, a track id); it is
    kept out of ``repr`` so it cannot reach a log.
    """

    t: float
    points: np.ndarray = field(repr=False)
    yaw: float
    ear: float
    score: float
    tag: object = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> float:
        """Forehead-to-chin distance in pixels: a face scale that yaw barely changes."""
        return float(np.hypot(*(self.points[_FOREHEAD] - self.points[_CHIN])))

    @property
    def centre(self) -> np.ndarray:
        return self.points.mean(0)

    @property
    def width_ratio(self) -> float:
        """Outer eye-corner span / face height: shrinks as the face is seen from the side."""
        span = float(np.hypot(*(self.points[_EYE_OUT_R] - self.points[_EYE_OUT_L])))
        return span / max(self.size, 1e-6)


@dataclass(frozen=True)
class LivenessConfig:
    """Thresholds; yaw in mesh degrees, distances relative to face size.

    Defaults are set from measurements on the project's photos (see
    docs/liveness.md): attack motion stays far below them and photos of
    the same people turned by ``turn_min`` exceed them.
    """

    time_limit_s: float = 4.0
    frontal_max_deg: float = 8.0  # |yaw| that counts as facing the camera
    turn_min_deg: float = 15.0  # yaw in the asked direction that counts as turned
    turn_delta_deg: float = 15.0  # and the change from the frontal anchor
    still_yaw_deg: float = 8.0  # yaw change a moved photo stays under (mesh noise)
    static_motion: float = 0.01  # RMS landmark motion / face size of a still face
    parallax_min: float = 0.01  # homography residual / face size a turn must exceed
    width_slack: float = 0.87  # turned/frontal eye-span ratio must reach this x cos(yaw change)
    max_gap_s: float = 0.5  # longest run of frames without a face
    max_jump: float = 0.35  # face centre step per frame / face size
    max_scale_step: float = 1.3  # face size ratio per frame
    max_yaw_rate_dps: float = 450.0  # mesh yaw change per second (a cut jumps faster)
    min_step_s: float = 1.0 / 30.0  # rate limits use at least this frame interval


def _normalise(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation: centred, mean distance sqrt(2); returns points and 3x3."""
    mu = p.mean(0)
    s = np.sqrt(2.0) / max(float(np.linalg.norm(p - mu, axis=1).mean()), 1e-9)
    t = np.array([[s, 0.0, -s * mu[0]], [0.0, s, -s * mu[1]], [0.0, 0.0, 1.0]])
    return (p - mu) * s, t


def homography_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance (dst pixels) left after the best plane homography src -> dst.

    Why: every view of a flat picture (moved, rotated, scaled, tilted) is a
    homography of another view, so a photo leaves only landmark noise here;
    a turning head leaves parallax. Normalised DLT, one SVD of (2N, 9).
    """
    a, ta = _normalise(np.asarray(src, np.float64))
    b, tb = _normalise(np.asarray(dst, np.float64))
    n = len(a)
    x, y = a[:, 0], a[:, 1]
    u, v = b[:, 0], b[:, 1]
    zero, one = np.zeros(n), np.ones(n)
    rows = np.empty((2 * n, 9))
    rows[0::2] = np.stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u], 1)
    rows[1::2] = np.stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v], 1)
    h = np.linalg.svd(rows, full_matrices=False)[2][-1].reshape(3, 3)
    h = np.linalg.inv(tb) @ h @ ta
    src_h = np.column_stack([np.asarray(src, np.float64), np.ones(n)]) @ h.T
    proj = src_h[:, :2] / src_h[:, 2:3]
    return float(np.sqrt(((proj - dst) ** 2).sum(1).mean()))


def yaw_from_mesh(mesh: np.ndarray) -> float:
    """Head yaw in degrees from (468, 3) mesh points in crop units (roll removed).

    The left-to-right axis through cheeks, outer eye corners and mouth
    corners tilts in depth as the head turns; positive when the nose points
    to the image's right. Three pairs, so one badly placed pair moves it less.
    """
    axis = (mesh[_CHEEK_R] - mesh[_CHEEK_L] + mesh[_EYE_OUT_R] - mesh[_EYE_OUT_L]) + (
        mesh[_MOUTH_R] - mesh[_MOUTH_L]
    )
    return float(np.degrees(np.arctan2(axis[2], axis[0])))


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (about 0.3 open, under 0.15 closed)."""
    e = points[_EAR_EYES]  # (2, 6, 2)
    vert = np.linalg.norm(e[:, 2] - e[:, 3], axis=1) + np.linalg.norm(e[:, 4] - e[:, 5], axis=1)
    horiz = 2.0 * np.linalg.norm(e[:, 0] - e[:, 1], axis=1)
    return float((vert / np.maximum(horiz, 1e-9)).mean())


class Detects(Protocol):
    """What the meter needs of a face detector (`FaceDetector`, or its proxy in the
    face worker process)."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


class Meshes(Protocol):
    """What the meter needs of the face mesh (`MeshRefiner`, or its proxy)."""

    def mesh(self, frame: np.ndarray, det: Detection) -> MeshLandmarks: ...


class LivenessMeter:
    """Turns a camera frame into a ``LivenessSample`` (BlazeFace, then the mesh).

    Built from the detector and either the face-mesh model (``mesh``: a
    `MeshRefiner` is made on it, which checks its input shape) or a ready
    ``refiner`` (the face worker's proxy: the models run in that process).
    Exactly one of the two; ValueError otherwise. ``mirrored``: the camera
    image is mirrored (the yaw's sign flips); ``min_score``: the mesh's face
    score below which a frame gives no sample.
    """

    def __init__(
        self,
        detector: Detects,
        mesh: TFLiteModel | None = None,
        mirrored: bool = False,
        min_score: float = 0.5,
        *,
        refiner: Meshes | None = None,
    ) -> None:
        if refiner is None:
            if mesh is None:
                raise ValueError("LivenessMeter: needs the face-mesh model or a refiner")
            refiner = MeshRefiner(mesh)  # checks the input shape
        elif mesh is not None:
            raise ValueError("LivenessMeter: the face-mesh model or a refiner, not both")
        self.detector = detector
        self.refiner: Meshes = refiner
        self.yaw_sign = -1.0 if mirrored else 1.0
        self.min_score = min_score

    def measure(
        self,
        frame: np.ndarray,
        t: float,
        detection: Detection | None = None,
        tag: object = None,
        mesh: MeshLandmarks | None = None,
    ) -> LivenessSample | None:
        """Sample of the resident's face in ``frame`` at time ``t``, or None if no face.

        Pass ``detection`` when the face path already ran the detector on
        this frame, and ``mesh`` (``FaceResult.mesh``) when it also ran the
        face mesh on it: then neither model runs again and ``frame`` is not read.
        """
        if mesh is None:
            det = detection or pick_resident(self.detector.detect(frame), frame.shape)
            if det is None:
                return None
            mesh = self.refiner.mesh(frame, det)
        if mesh.score < self.min_score:
            return None
        yaw = self.yaw_sign * yaw_from_mesh(mesh.raw)
        points = mesh.points
        return LivenessSample(t, points, yaw, eye_aspect_ratio(points), mesh.score, tag)


_Phase = enum.Enum("_Phase", "FRONTAL TURN RETURN")


def looks_planar(a: LivenessSample, b: LivenessSample, config: LivenessConfig) -> bool:
    """True if the change from frontal ``a`` to turned ``b`` is what a tilted picture gives.

    Two tests: (1) the landmarks of ``b`` are a plane homography of ``a``'s
    up to noise (no parallax at all); (2) the face was squeezed sideways
    far more than the yaw change explains. A print tilted 50-60 degrees
    about its vertical axis makes the mesh report 15-30 degrees of yaw but
    shrinks the eye span (relative to face height) to cos(tilt), 0.5-0.65;
    on the project's photos a real turn keeps the ratio at 0.89 x cos(yaw
    change) or more.
    """
    size = max(a.size, 1e-6)
    if homography_residual(a.points, b.points) / size < config.parallax_min:
        return True
    ratio = b.width_ratio / max(a.width_ratio, 1e-6)
    return ratio < config.width_slack * float(np.cos(np.radians(b.yaw - a.yaw)))


class LivenessChallenge:
    """Head-turn challenge: frontal, turn to the asked side, back to frontal.

    Feed ``update(t, sample)`` with every frame's sample (None when no face
    was found) and a monotonic time in seconds; it returns PENDING until it
    decides. The turn side is picked at random (``secrets``) unless given,
    so a recording of one turn fits only half the time and a wrong side
    fails at once. ``same_person(anchor, sample)`` is the caller's identity
    check (compare ``tag`` embeddings), asked when the turn and the return
    are accepted: without it, a cut to another person's face that stays
    in place is not noticed.
    """

    def __init__(
        self,
        turn: Turn | None = None,
        config: LivenessConfig | None = None,
        same_person: Callable[[LivenessSample, LivenessSample], bool] | None = None,
    ) -> None:
        self.turn = turn if turn is not None else secrets.choice(list(Turn))
        self.config = config or LivenessConfig()
        self.same_person = same_person
        self.verdict = PENDING
        self.start_t: float | None = None
        self.phase = _Phase.FRONTAL
        self.anchor: LivenessSample | None = None  # first frontal sample
        self.turned: LivenessSample | None = None  # first accepted turned sample
        self._first: LivenessSample | None = None  # baseline for the timeout reason
        self._prev: LivenessSample | None = None
        self._last_face_t: float | None = None
        self.max_motion = 0.0  # RMS landmark motion / face size, against the first sample
        self.max_yaw_change = 0.0

    def start(self, t: float) -> None:
        """Start the clock (the trigger); otherwise the first update starts it."""
        if self.start_t is None:
            self.start_t = t

    def _fail(self, reason: Reason) -> Verdict:
        self.verdict = Verdict(Status.FAILED, reason)
        return self.verdict

    def _continuous(self, s: LivenessSample) -> bool:
        """True if ``s`` can follow the previous sample as motion of the same face."""
        p = self._prev
        if p is None:
            return True
        c = self.config
        dt = max(s.t - p.t, c.min_step_s)
        size = max(p.size, 1e-6)
        if float(np.linalg.norm(s.centre - p.centre)) > c.max_jump * size:
            return False
        ratio = s.size / size
        if not (1.0 / c.max_scale_step <= ratio <= c.max_scale_step):
            return False
        return abs(s.yaw - p.yaw) <= c.max_yaw_rate_dps * dt

    def _track(self, s: LivenessSample) -> None:
        """Largest motion and yaw change against the first sample (for the reason)."""
        first = self._first
        if first is None:
            self._first = s
            return
        d = s.points - first.points
        motion = float(np.sqrt(np.einsum("ij,ij->i", d, d).mean())) / max(first.size, 1e-6)
        self.max_motion = max(self.max_motion, motion)
        self.max_yaw_change = max(self.max_yaw_change, abs(s.yaw - first.yaw))

    def _timeout(self) -> Verdict:
        """Time is up: say what was seen (a still face, a moved picture, or too little)."""
        c = self.config
        if self._first is None:
            return self._fail(Reason.FACE_LOST)
        if self.max_yaw_change < c.still_yaw_deg:
            if self.max_motion < c.static_motion:
                return self._fail(Reason.STATIC)
            return self._fail(Reason.PLANAR)
        return self._fail(Reason.TIMEOUT)

    def update(self, t: float, sample: LivenessSample | None) -> Verdict:
        """Advance with one frame at monotonic time ``t``; returns the current verdict."""
        if self.verdict.done:
            return self.verdict
        self.start(t)
        c = self.config
        assert self.start_t is not None
        last = self._last_face_t
        if last is not None and t - last > c.max_gap_s:
            return self._fail(Reason.FACE_LOST)
        if sample is not None:
            if not self._continuous(sample):
                return self._fail(Reason.DISCONTINUITY)
            self._prev = sample
            self._last_face_t = t
            self._track(sample)
        if t - self.start_t > c.time_limit_s:
            return self._timeout()
        return self._advance(sample) if sample is not None else self.verdict

    def _advance(self, s: LivenessSample) -> Verdict:
        c = self.config
        sign = self.turn.sign
        if self.phase is _Phase.FRONTAL:
            if abs(s.yaw) <= c.frontal_max_deg:
                self.anchor = s
                self.phase = _Phase.TURN
            return self.verdict
        anchor = self.anchor
        assert anchor is not None
        if self.phase is _Phase.TURN:
            if -sign * s.yaw >= c.turn_min_deg and sign * (anchor.yaw - s.yaw) >= c.turn_delta_deg:
                return self._fail(Reason.WRONG_DIRECTION)
            if sign * s.yaw >= c.turn_min_deg and sign * (s.yaw - anchor.yaw) >= c.turn_delta_deg:
                if looks_planar(anchor, s, c):
                    return self._fail(Reason.PLANAR)
                if self.same_person is not None and not self.same_person(anchor, s):
                    return self._fail(Reason.IDENTITY)
                self.turned = s
                self.phase = _Phase.RETURN
            return self.verdict
        if abs(s.yaw) <= c.frontal_max_deg:
            if self.same_person is not None and not self.same_person(anchor, s):
                return self._fail(Reason.IDENTITY)
            self.verdict = PASSED
        return self.verdict
