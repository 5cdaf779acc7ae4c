"""``doorpi eval liveness DIR``: presentation-attack figures of the head-turn check.

Why synthetic sequences: there is no video of real people at the gate, so
every sequence is built from the real photos in DIR/<person>/<n>.jpg and
run through the real BlazeFace and face mesh, frame by frame, at 15 fps
with sensor noise, in a 640x480 camera frame:

- attack "static": one photo held still until the time limit;
- attack "moved": the photo waved in the image plane (shift, scale, roll);
- attack "tilted": the photo turned about its vertical axis up to 55
  degrees (perspective), both ways; it counts as accepted if either way
  passes (an attacker who knows which way fools the mesh);
- bona fide stand-in: different photos of one person whose mesh yaw is
  frontal, then turned to one side (through any intermediate angles the
  person's photos have), then frontal again.

ISO/IEC 30107-3 terms: APCER per attack type = attack presentations
accepted / attack presentations; BPCER = bona fide presentations rejected /
bona fide presentations. Frames and landmarks stay in memory; only numbers
are printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from doorpi.vision.liveness import (
    LivenessChallenge,
    LivenessConfig,
    LivenessMeter,
    LivenessSample,
    Turn,
    Verdict,
)

FRAME_W, FRAME_H = 640, 480
FACE_PX = 160.0  # forehead-to-chin height of a resident at ~0.7 m in a 640x480 frame
FPS = 15.0
NOISE_SIGMA = 3.0  # camera noise, 8-bit levels
FOCAL_PX = 600.0  # a Pi camera's ~62 degree horizontal field of view at 640 px
MAX_TILT_DEG = 55.0
ATTACKS = ("static", "moved", "tilted")


class Scene:
    """Renders a photo as a picture held in front of the camera, with sensor noise.

    A small bank of noise fields is drawn once and cycled, so frames differ
    like camera frames do without drawing 900k normals per frame.
    """

    def __init__(self, seed: int = 0, noise: float = NOISE_SIGMA, bank: int = 8) -> None:
        rng = np.random.default_rng(seed)
        self._noise = [
            np.round(rng.normal(0.0, noise, (FRAME_H, FRAME_W, 3))).astype(np.int16)
            for _ in range(bank)
        ]
        self._i = 0

    @staticmethod
    def placement(sample: LivenessSample) -> np.ndarray:
        """3x3 photo->frame map putting the mesh's face centre mid-frame at FACE_PX height.

        Why by mesh centre and height: different photos of one person then
        show the face where a person standing still would, so the bona fide
        stand-in does not jump between frames.
        """
        s = FACE_PX / max(sample.size, 1e-6)
        c = sample.centre
        return np.array(
            [[s, 0.0, FRAME_W / 2 - s * c[0]], [0.0, s, FRAME_H / 2 - s * c[1]], [0.0, 0.0, 1.0]]
        )

    def render(self, photo: np.ndarray, hmat: np.ndarray) -> np.ndarray:
        """The frame the camera sees: ``photo`` mapped by ``hmat`` on a grey wall, plus noise."""
        inv = np.linalg.inv(hmat)
        inv = inv / inv[2, 2]
        img = Image.fromarray(photo).transform(
            (FRAME_W, FRAME_H),
            Image.PERSPECTIVE,
            tuple(inv.ravel()[:8]),
            Image.BILINEAR,
            fillcolor=(110, 110, 110),
        )
        frame = np.asarray(img).astype(np.int16)
        frame += self._noise[self._i % len(self._noise)]
        self._i += 1
        return np.clip(frame, 0, 255).astype(np.uint8)


def in_plane(t: float) -> np.ndarray:
    """Frame->frame motion of a photo waved in front of the camera at time ``t`` (s)."""
    ang = math.radians(20.0 * math.sin(2 * math.pi * 0.5 * t))
    sc = 1.0 + 0.15 * math.sin(2 * math.pi * 0.35 * t)
    tx = 60.0 * math.sin(2 * math.pi * 0.4 * t)
    ty = 30.0 * math.sin(2 * math.pi * 0.6 * t + 1.0)
    c, s = sc * math.cos(ang), sc * math.sin(ang)
    cx, cy = FRAME_W / 2, FRAME_H / 2
    return np.array(
        [[c, -s, cx + tx - c * cx + s * cy], [s, c, cy + ty - s * cx - c * cy], [0.0, 0.0, 1.0]]
    )


def tilt(deg: float) -> np.ndarray:
    """Frame->frame homography of the picture turned ``deg`` about its vertical axis."""
    a = math.radians(deg)
    cx, cy = FRAME_W / 2, FRAME_H / 2
    k = np.array([[FOCAL_PX, 0.0, cx], [0.0, FOCAL_PX, cy], [0.0, 0.0, 1.0]])
    rot = np.array([[math.cos(a), 0.0, 0.0], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, FOCAL_PX]])
    centre = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    return k @ rot @ centre


def tilt_angle(t: float, sign: float) -> float:
    """Tilt schedule: still 0.4 s, turn to 55 degrees by 1.6 s, hold, back by 2.8 s."""
    if t < 0.4:
        return 0.0
    if t < 1.6:
        return sign * MAX_TILT_DEG * (t - 0.4) / 1.2
    if t < 2.0:
        return sign * MAX_TILT_DEG
    if t < 2.8:
        return sign * MAX_TILT_DEG * (2.8 - t) / 0.8
    return 0.0


def run(
    challenge: LivenessChallenge,
    frames: Iterator[np.ndarray],
    meter: LivenessMeter,
    tag: object = None,
    tags: Iterator[object] | None = None,
) -> Verdict:
    """Feed frames at FPS to the challenge until it decides; returns the verdict."""
    for i, frame in enumerate(frames):
        t = i / FPS
        sample = meter.measure(frame, t, tag=next(tags) if tags is not None else tag)
        verdict = challenge.update(t, sample)
        if verdict.done:
            return verdict
    return challenge.verdict


def n_frames(config: LivenessConfig) -> int:
    """Frames that reach just past the time limit."""
    return math.ceil((config.time_limit_s + 0.3) * FPS)


def attack_frames(
    kind: str, photo: np.ndarray, base: np.ndarray, scene: Scene, n: int, sign: float = 1.0
) -> Iterator[np.ndarray]:
    """Frames of one attack presentation with one photo (placed by ``base``)."""
    for i in range(n):
        t = i / FPS
        if kind == "static":
            m = base
        elif kind == "moved":
            m = in_plane(t) @ base
        elif kind == "tilted":
            m = tilt(tilt_angle(t, sign)) @ base
        else:
            raise ValueError(kind)
        yield scene.render(photo, m)


@dataclass
class Shot:
    """One photo of the survey: its path relative to DIR, placement and yaw in the scene."""

    rel: str
    base: np.ndarray
    yaw: float


def survey(
    faces_dir: Path,
    meter: LivenessMeter,
    load: Callable[[Path], np.ndarray],
    scene: Scene,
    people: list[str] | None = None,
) -> dict[str, list[Shot]]:
    """Every usable photo per person, with the yaw the mesh sees once it is placed."""
    out: dict[str, list[Shot]] = {}
    names = people or sorted(d.name for d in faces_dir.iterdir() if d.is_dir())
    for person in names:
        for path in sorted((faces_dir / person).iterdir()):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            photo = load(path)
            raw = meter.measure(photo, 0.0)
            if raw is None:
                continue
            base = Scene.placement(raw)
            placed = meter.measure(scene.render(photo, base), 0.0)
            if placed is None:
                continue
            out.setdefault(person, []).append(Shot(f"{person}/{path.name}", base, placed.yaw))
    return out


@dataclass
class LiveSequence:
    """A bona fide stand-in: shots shown for ``holds`` seconds each, and the asked turn."""

    person: str
    turn: Turn
    shots: list[Shot]
    holds: list[float]


def live_sequences(
    shots: dict[str, list[Shot]], config: LivenessConfig | None = None, margin: float = 2.0
) -> list[LiveSequence]:
    """Frontal -> (intermediate) -> turned -> frontal sequences, one per person and side.

    The frontal shot is the person's most frontal; the turned one is the
    least turned that clearly passes the turn thresholds (``margin``
    degrees beyond them) and is reachable in one frame at the allowed yaw
    rate; shots between frontal and turned are shown on the way.
    """
    c = config or LivenessConfig()
    max_step = c.max_yaw_rate_dps / FPS
    out = []
    for person, ss in shots.items():
        frontal = min(ss, key=lambda s: abs(s.yaw))
        if abs(frontal.yaw) > c.frontal_max_deg - margin:
            continue
        for turn in Turn:
            g = turn.sign
            turned = [
                s
                for s in ss
                if g * s.yaw >= c.turn_min_deg + margin
                and g * (s.yaw - frontal.yaw) >= c.turn_delta_deg + margin
            ]
            if not turned:
                continue
            target = min(turned, key=lambda s: g * s.yaw)
            mid = sorted(
                (
                    s
                    for s in ss
                    if c.frontal_max_deg < g * s.yaw < g * target.yaw and s is not target
                ),
                key=lambda s: g * s.yaw,
            )
            mid = [s for s in mid if g * s.yaw < c.turn_min_deg]
            path = [frontal, *mid, target]
            steps = [abs(b.yaw - a.yaw) for a, b in itertools.pairwise(path)]
            if max(steps) > max_step - margin:
                continue
            shots_seq = [frontal, *mid, target, *mid[::-1], frontal]
            holds = [0.6] + [0.15] * len(mid) + [0.4] + [0.15] * len(mid) + [0.6]
            out.append(LiveSequence(person, turn, shots_seq, holds))
    return out


def live_frames(
    seq: LiveSequence, photos: Callable[[str], np.ndarray], scene: Scene, n: int
) -> Iterator[np.ndarray]:
    """Frames of a stand-in sequence; the last shot is held until ``n`` frames."""
    i = 0
    for k, (shot, hold) in enumerate(zip(seq.shots, seq.holds, strict=True)):
        count = n - i if k == len(seq.shots) - 1 else max(1, round(hold * FPS))
        photo = photos(shot.rel)
        for _ in range(count):
            yield scene.render(photo, shot.base)
            i += 1


def evaluate(
    faces_dir: Path,
    meter: LivenessMeter,
    load: Callable[[Path], np.ndarray],
    config: LivenessConfig | None = None,
    attacks: tuple[str, ...] = ATTACKS,
    seed: int = 0,
    people: list[str] | None = None,
) -> dict[str, Any]:
    """Run every attack presentation and every bona fide stand-in; return the figures."""
    from doorpi.vision.metrics import clopper_pearson

    c = config or LivenessConfig()
    scene = Scene(seed)
    rng = random.Random(seed)
    n = n_frames(c)
    t0 = time.perf_counter()
    shots = survey(faces_dir, meter, load, scene, people)
    if not shots:
        raise ValueError(f"{faces_dir}: no usable face in any photo, nothing to measure")
    cache: dict[str, np.ndarray] = {}

    def photo(rel: str) -> np.ndarray:
        if rel not in cache:
            cache.clear()  # sequences use one person's photos at a time
            cache[rel] = load(faces_dir / rel)
        return cache[rel]

    result: dict[str, Any] = {"photos": sum(len(v) for v in shots.values()), "attacks": {}}
    for kind in attacks:
        accepted, reasons = 0, {}
        total = 0
        for ss in shots.values():
            for shot in ss:
                img = load(faces_dir / shot.rel)
                turn = rng.choice(list(Turn))
                signs = (1.0, -1.0) if kind == "tilted" else (1.0,)
                ok = False
                for sign in signs:
                    ch = LivenessChallenge(turn, c)
                    v = run(ch, attack_frames(kind, img, shot.base, scene, n, sign), meter)
                    ok = ok or v.passed
                    key = "passed" if v.passed else str(v.reason)
                    reasons[key] = reasons.get(key, 0) + 1
                accepted += ok
                total += 1
        lo, hi = clopper_pearson(accepted, total)
        result["attacks"][kind] = {
            "presentations": total,
            "accepted": accepted,
            "apcer": accepted / max(total, 1),
            "apcer_ci95": [lo, hi],
            "outcomes": reasons,
        }
    seqs = live_sequences(shots, c)
    rejected, reasons, wrong_side_failed = 0, {}, 0
    for seq in seqs:
        v = run(LivenessChallenge(seq.turn, c), live_frames(seq, photo, scene, n), meter)
        rejected += not v.passed
        key = "passed" if v.passed else str(v.reason)
        reasons[key] = reasons.get(key, 0) + 1
        other = Turn.RIGHT if seq.turn is Turn.LEFT else Turn.LEFT
        w = run(LivenessChallenge(other, c), live_frames(seq, photo, scene, n), meter)
        wrong_side_failed += not w.passed
    lo, hi = clopper_pearson(rejected, len(seqs))
    result["bona_fide"] = {
        "sequences": len(seqs),
        "people": len({s.person for s in seqs}),
        "rejected": rejected,
        "bpcer": rejected / max(len(seqs), 1),
        "bpcer_ci95": [lo, hi],
        "outcomes": reasons,
        "wrong_side_asked_failed": wrong_side_failed,
    }
    result["seconds"] = time.perf_counter() - t0
    first = next(iter(shots.values()))[0]
    result["timing"] = time_mesh(meter, scene.render(load(faces_dir / first.rel), first.base))
    return result


def time_mesh(meter: LivenessMeter, frame: np.ndarray, repeats: int = 50) -> dict[str, float]:
    """Median ms per frame of each stage, each timed on its own (never derived).

    ``detect_ms``: the detector and the resident pick; ``mesh_ms``: the face
    mesh on that detection; ``measure_ms``: a full ``measure`` (detector, mesh
    and the liveness features). A difference of medians could go below zero
    under load, so no figure here is computed from the others.
    """
    from doorpi.vision.detect import pick_resident

    det_ms, mesh_ms, all_ms = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        det = pick_resident(meter.detector.detect(frame), frame.shape)
        t1 = time.perf_counter()
        if det is not None:
            meter.refiner.mesh(frame, det)
        t2 = time.perf_counter()
        meter.measure(frame, 0.0)
        t3 = time.perf_counter()
        det_ms.append((t1 - t0) * 1e3)
        mesh_ms.append((t2 - t1) * 1e3)
        all_ms.append((t3 - t2) * 1e3)
    return {
        "detect_ms": float(np.median(det_ms)),
        "mesh_ms": float(np.median(mesh_ms)),
        "measure_ms": float(np.median(all_ms)),
    }


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``liveness`` under ``doorpi eval`` (call from cli/eval.py's register)."""
    p = sub.add_parser("liveness", help="APCER/BPCER of the head-turn liveness check")
    p.add_argument("dir", type=Path, help="folder with one sub-folder of photos per person")
    p.add_argument("--models", help="models folder (default: $DOORPI_MODELS_DIR, models/build)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated attack types")
    p.add_argument("--people", default="", help="comma-separated sub-folders (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON (default: a short summary)")
    p.set_defaults(func=run_liveness)


def run_liveness(args: argparse.Namespace) -> int:
    """Entry point of ``doorpi eval liveness``."""
    from doorpi.hardware.camera import load_rgb
    from doorpi.vision.detect import FaceDetector
    from doorpi.vision.models import load_models

    models = load_models(args.models, args.threads)
    meter = LivenessMeter(FaceDetector(models.detector), models.mesh)
    attacks = tuple(a for a in args.attacks.split(",") if a)
    people = [x for x in args.people.split(",") if x] or None
    from doorpi.cli import CliError
    from doorpi.hardware.camera import ImageFileError

    try:
        res = evaluate(
            args.dir, meter, lambda p: load_rgb(p, max_side=1280), attacks=attacks, people=people
        )
    except (ImageFileError, ValueError) as exc:  # one line naming the file or folder
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for kind, a in res["attacks"].items():
        lo, hi = a["apcer_ci95"]
        print(
            f"APCER {kind:8s} {a['apcer']:.3f} ({a['accepted']}/{a['presentations']}, "
            f"95% CI {lo:.3f}-{hi:.3f})"
        )
    b = res["bona_fide"]
    lo, hi = b["bpcer_ci95"]
    print(
        f"BPCER          {b['bpcer']:.3f} ({b['rejected']}/{b['sequences']} stand-in sequences, "
        f"{b['people']} people, 95% CI {lo:.3f}-{hi:.3f})"
    )
    return 0
