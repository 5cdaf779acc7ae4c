"""doorpi's face pipeline against `face_recognition` (dlib HOG + ResNet), same photos, same run.

The peer goes into a throwaway venv (the `dlib-bin` wheel avoids a compile;
`face_recognition` and `face_recognition_models` go in with --no-deps), so
nothing of it reaches doorpi's environment. Both sides time the whole path
per photo: decode, detect, align, embed. Prints one JSON object.

    python tools/bench/compare_face_recognition.py --photos ../shared/faces [--limit 60] [--paired]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = ["dlib-bin", "numpy", "pillow", "click"]
PEER_NO_DEPS = ["face_recognition_models", "face_recognition"]

PEER_SCRIPT = r"""
import json, sys, time
import face_recognition as fr
paths = sys.argv[1:]
times, found = [], 0
for p in paths:
    t0 = time.perf_counter()
    img = fr.load_image_file(p)
    boxes = fr.face_locations(img, model="hog")
    if boxes:
        fr.face_encodings(img, known_face_locations=boxes[:1])
        found += 1
    times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"times_ms": times, "found": found}))
"""


# --paired: the peer stays up and times one photo per request (a path on a line in,
# a JSON line out), so each photo runs through both pipelines back to back.
PEER_SERVER = r"""
import json, sys, time
import face_recognition as fr
for line in sys.stdin:
    p = line.rstrip("\n")
    t0 = time.perf_counter()
    img = fr.load_image_file(p)
    boxes = fr.face_locations(img, model="hog")
    if boxes:
        fr.face_encodings(img, known_face_locations=boxes[:1])
    ms = (time.perf_counter() - t0) * 1000
    print(json.dumps({"ms": ms, "found": bool(boxes)}), flush=True)
"""


def photos(root: Path, limit: int) -> list[Path]:
    out = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return out[:limit]


def peer_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PEER], check=True)
    subprocess.run([*pip, "--no-deps", *PEER_NO_DEPS], check=True)
    return where / "bin" / "python"


def run_doorpi(paths: list[Path], threads: int | None = None) -> dict[str, object]:
    from doorpi.hardware.camera import load_rgb
    from doorpi.vision.pipeline import FacePipeline

    pipe = FacePipeline.load(num_threads=threads)
    pipe.embed_any(load_rgb(paths[0]))  # warm-up: first inference allocates buffers
    times, found = [], 0
    for p in paths:
        t0 = time.perf_counter()
        res = pipe.embed_any(load_rgb(p, max_side=1280))
        found += int(res.embedding is not None)
        res.embedding = None
        times.append((time.perf_counter() - t0) * 1000)
    return {"times_ms": times, "found": found}


def run_paired(python: str, paths: list[Path], threads: int | None = None) -> dict[str, object]:
    """Each photo through both pipelines back to back, the order alternating, so
    both see the same moment's load; returns both sides' times and the ratios."""
    from doorpi.hardware.camera import load_rgb
    from doorpi.vision.pipeline import FacePipeline

    pipe = FacePipeline.load(num_threads=threads)
    pipe.embed_any(load_rgb(paths[0]))  # warm-up
    peer = subprocess.Popen([python, "-c", PEER_SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert peer.stdin is not None and peer.stdout is not None

    def theirs(p: Path) -> tuple[float, bool]:
        peer.stdin.write(f"{p}\n")
        peer.stdin.flush()
        r = json.loads(peer.stdout.readline())
        return float(r["ms"]), bool(r["found"])

    def ours(p: Path) -> tuple[float, bool]:
        t0 = time.perf_counter()
        res = pipe.embed_any(load_rgb(p, max_side=1280))
        found = res.embedding is not None
        res.embedding = None
        return (time.perf_counter() - t0) * 1000, found

    theirs(paths[0])  # warm-up
    a_t, b_t, a_f, b_f = [], [], 0, 0
    try:
        for k, p in enumerate(paths):
            if k % 2:
                (ta, fa), (tb, fb) = theirs(p), ours(p)
            else:
                (tb, fb), (ta, fa) = ours(p), theirs(p)
            a_t.append(ta)
            b_t.append(tb)
            a_f += fa
            b_f += fb
    finally:
        peer.stdin.close()
        peer.wait(timeout=30)
    ratios = [x / y for x, y in zip(a_t, b_t, strict=True)]
    return {
        "peer": {"times_ms": a_t, "found": a_f},
        "ours": {"times_ms": b_t, "found": b_f},
        "ratio_median": round(statistics.median(ratios), 1),
    }


def summary(r: dict[str, object]) -> dict[str, float]:
    t = r["times_ms"]
    assert isinstance(t, list)
    return {"median_ms": round(statistics.median(t), 1), "mean_ms": round(statistics.mean(t), 1),
            "faces_found": r["found"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--venv", type=Path, help="reuse this peer venv instead of a throwaway one")
    ap.add_argument(
        "--paired", action="store_true",
        help="each photo through both back to back (order alternating): the same load for both",
    )  # fmt: skip
    ap.add_argument(
        "--threads", type=int, default=None,
        help="doorpi's TFLite threads (default: $DOORPI_THREADS or all cores); the peer uses one",
    )  # fmt: skip
    args = ap.parse_args()
    from doorpi.vision.runtime import default_threads

    threads = args.threads or default_threads()
    paths = photos(args.photos, args.limit)
    if not paths:
        print(f"{args.photos}: no photos", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="doorpi-peer-") as tmp:
        python = args.venv / "bin" / "python" if args.venv else peer_venv(Path(tmp) / "venv")
        if args.paired:
            r = run_paired(str(python), paths, threads)
            s_peer, s_ours = summary(r["peer"]), summary(r["ours"])  # type: ignore[arg-type]
            print(json.dumps({
                "photos": len(paths),
                "doorpi_threads": threads,
                "paired": "each photo through both back to back, order alternating",
                "face_recognition": s_peer,
                "doorpi": s_ours,
                "speedup_mean": round(s_peer["mean_ms"] / s_ours["mean_ms"], 1),
                "speedup_median": round(s_peer["median_ms"] / s_ours["median_ms"], 1),
                "speedup_median_of_ratios": r["ratio_median"],
                "load_average_before_after": [round(load_before[0], 2),
                                              round(os.getloadavg()[0], 2)],
            }, indent=1))  # fmt: skip
            return 0
        out = subprocess.run([str(python), "-c", PEER_SCRIPT, *map(str, paths)],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
    peer = json.loads(out.strip().splitlines()[-1])
    ours = run_doorpi(paths, threads)
    s_peer, s_ours = summary(peer), summary(ours)
    print(json.dumps({
        "photos": len(paths),
        "doorpi_threads": threads,
        "face_recognition": s_peer,
        "doorpi": s_ours,
        "speedup_mean": round(s_peer["mean_ms"] / s_ours["mean_ms"], 1),
        "speedup_median": round(s_peer["median_ms"] / s_ours["median_ms"], 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
