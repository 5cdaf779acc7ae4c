"""``doorpi bench face``: per-stage timings, 1:N search cost and memory of the face pipeline.

The lead's ``bench`` group hangs this under ``doorpi bench face``: call
``add_arguments(parser)`` on the sub-parser and set ``func=bench_face``.
Prints one JSON object. Photos are replayed from a folder (the gate's
camera is replaced by the same frame source the tests use); random unit
vectors stand in for enrolled templates, so no real template is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

# (flag, add_argument kwargs): read by cli/bench.py for ``doorpi bench face``.
ARGUMENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "--photos",
        {
            "type": Path,
            "default": os.environ.get("DOORPI_BENCH_PHOTOS"),
            "help": "folder of face photos to replay (default: $DOORPI_BENCH_PHOTOS)",
        },
    ),
    ("--models", {"help": "models folder (default: $DOORPI_MODELS_DIR, models/build)"}),
    (
        "--threads",
        {
            "type": int,
            "default": None,
            "help": "TFLite threads (default: $DOORPI_THREADS or all cores)",
        },
    ),
    ("--frames", {"type": int, "default": 50, "help": "frames to time"}),
    (
        "--gallery",
        {
            "default": "1000,10000,100000",
            "help": "comma-separated template counts for the 1:N search",
        },
    ),
    ("--max-side", {"type": int, "default": 1280, "help": "decode photos at most this large"}),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to a parser."""
    for name, kw in ARGUMENTS:
        p.add_argument(name, **kw)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Stand-alone registration as ``bench-face`` (until the lead's ``bench`` group exists)."""
    p = subparsers.add_parser("bench-face", help="benchmark the face pipeline (JSON)")
    add_arguments(p)
    p.set_defaults(func=bench_face)


def _rss_mb() -> dict[str, float]:
    """Current and peak resident set size of this process, from /proc (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"
                out[key] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _stats(v: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(v)
    return {"median": round(float(np.median(a)), 3), "p90": round(float(np.percentile(a, 90)), 3)}


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from doorpi.hardware.camera import FolderSource
    from doorpi.vision.match import Gallery
    from doorpi.vision.pipeline import FacePipeline
    from doorpi.vision.runtime import default_threads

    report: dict[str, Any] = {"threads": args.threads or default_threads()}
    report["memory_before_models"] = _rss_mb()
    t0 = time.perf_counter()
    pipe = FacePipeline.load(args.models, args.threads)
    report["model_load_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
    report["models_dir"] = str(pipe.models.directory)
    # First inference allocates XNNPACK buffers: count it as start-up.
    if not args.photos:
        raise FileNotFoundError("no photos to replay: pass --photos DIR or set DOORPI_BENCH_PHOTOS")
    paths = FolderSource(args.photos).paths()
    if not paths:
        raise FileNotFoundError(f"{args.photos}: no images")
    from doorpi.hardware.camera import load_rgb

    frames = [load_rgb(p, args.max_side) for p in paths[: min(len(paths), 20)]]
    t0 = time.perf_counter()
    pipe.process(frames[0])
    report["first_frame_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
    report["memory_models_loaded"] = _rss_mb()

    stages: dict[str, list[float]] = {}
    ok = 0
    models = (pipe.models.detector, pipe.models.mesh, pipe.models.embedder)
    runs0 = [m.invocations for m in models]
    t0 = time.perf_counter()
    for k in range(args.frames):
        res = pipe.process(frames[k % len(frames)])
        ok += int(res.ok)
        for name, ms in res.timings_ms.items():
            stages.setdefault(name, []).append(ms)
    total = time.perf_counter() - t0
    report["frames"] = args.frames
    report["frames_ok"] = ok
    report["fps_end_to_end"] = round(args.frames / total, 2)
    report["stage_ms"] = {k: _stats(v) for k, v in stages.items()}
    # TFLite runs per frame (detector, face mesh, SFace): the face path's cost is
    # mostly these; 1/1/1 on a good upright face (the detector twice only for the
    # rare low-confidence face, see detect.upside_down; none of mesh/SFace without one).
    report["model_runs_per_frame"] = {
        name: round((m.invocations - r0) / args.frames, 3)
        for name, m, r0 in zip(("detector", "mesh", "sface"), models, runs0, strict=True)
    }
    report["frame_size"] = [list(f.shape) for f in frames[:3]]

    rng = np.random.default_rng(0)
    q = rng.standard_normal(128).astype(np.float32)
    match: dict[str, Any] = {}
    for n in (int(x) for x in args.gallery.split(",") if x):
        for dtype in (np.float32, np.int8):
            g = Gallery(dtype)
            g.set([f"p{i}" for i in range(n)], rng.standard_normal((n, 128), dtype=np.float32))
            g.search(q)
            times = []
            for _ in range(30):
                t1 = time.perf_counter()
                g.search(q)
                times.append((time.perf_counter() - t1) * 1e3)
            match[f"{n}_{np.dtype(dtype).name}"] = {**_stats(times), "min": round(min(times), 3)}
            del g
    report["match_ms"] = match
    report["wake"] = _wake_latency(pipe, frames)
    report["hands_free"] = _hands_free(pipe, frames, args.frames)
    report["memory_end"] = _rss_mb()
    return report


def _wake_latency(pipe: Any, frames: list[Any], runs: int = 10) -> dict[str, Any]:
    """Issue 6: trigger (face key or card tap) -> first face decision, through the
    real face path and engine (1:1 against the frame's own template). The camera's
    own restart is not in it: on a Pi, add Picamera2Source.start() (measure there)."""
    from doorpi.facepath import FacePath
    from doorpi.hardware.camera import Frame
    from doorpi.vision.engine import PipelineFaceEngine
    from doorpi.vision.match import Gallery

    res = pipe.process(frames[0])
    if not res.ok:
        return {"error": f"first photo unusable: {res.reason}"}
    gallery = Gallery()
    gallery.set(["1"], res.embedding[None, :])
    res.embedding = None
    times = []
    for _ in range(runs):
        got: list[float] = []
        path = FacePath(
            PipelineFaceEngine(pipe, gallery), lambda ev, got=got: got.append(time.perf_counter())
        )
        t0 = time.perf_counter()
        path.trigger(time.monotonic(), resident_id=1)
        for _k in range(20):
            path.on_frame(Frame(frames[0]), time.monotonic())
            if got:
                break
        if got:
            times.append((got[0] - t0) * 1e3)
    return {"trigger_to_decision_ms": _stats(times), "camera_restart": "not measured here"}


def _hands_free(pipe: Any, frames: list[Any], n: int) -> dict[str, Any]:
    """Face alone (1:N plus the head-turn liveness measurement), per frame, through
    the gate's own engine, against the face pipeline alone on the same frames. Each
    frame opens a fresh window, so every one is matched and measured."""
    import numpy as np

    from doorpi.facebuild import GateFaceEngine
    from doorpi.hardware.camera import Frame
    from doorpi.vision.engine import PipelineFaceEngine
    from doorpi.vision.liveness import LivenessMeter
    from doorpi.vision.match import Gallery

    usable, ids, embs = [], [], []
    for f in frames:
        res = pipe.process(f)
        if res.ok:
            usable.append(f)
            ids.append(str(len(ids) + 1))
            embs.append(res.embedding)
        res.embedding = None
    if not usable:
        return {"error": "no usable photo"}
    gallery = Gallery()
    gallery.set(ids, np.stack(embs))
    del embs
    meter = LivenessMeter(pipe.detector, pipe.models.mesh)
    engine = GateFaceEngine(PipelineFaceEngine(pipe, gallery), len(ids), liveness=meter)
    alone, both = [], []
    for k in range(n):
        f = usable[k % len(usable)]
        t0 = time.perf_counter()
        pipe.process(f)
        t1 = time.perf_counter()
        engine.begin(None)
        engine.process(Frame(f), float(k))
        t2 = time.perf_counter()
        engine.end()
        alone.append((t1 - t0) * 1e3)
        both.append((t2 - t1) * 1e3)
    pipeline, hands_free = _stats(alone), _stats(both)
    return {
        "frames": n,
        "pipeline_ms": pipeline,
        "frame_ms": hands_free,
        "liveness_extra_ms": round(hands_free["median"] - pipeline["median"], 3),
    }


def bench_face(args: argparse.Namespace) -> int:
    """Print the benchmark as JSON; a model problem is a one-line error (exit 2)."""
    from doorpi.vision.runtime import ModelError

    try:
        report = run_bench(args)
    except (ModelError, FileNotFoundError) as exc:
        print(f"doorpi: {exc}", file=sys.stderr)
        return 2
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0
