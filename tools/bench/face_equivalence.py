"""Does a change to the face pipeline change what the gate decides? Before/after, every photo.

Runs ``FacePipeline`` of a git revision (``--ref``, default ``main``; its
``src/`` exported to a temporary folder and imported in a child process)
and of this checkout on every photo of a folder, and compares per photo:
the number of faces, the chosen detection (box, keypoints, score), the
five alignment points, the quality verdict of ``process`` and the
embedding of ``embed_any`` (cosine). Results pass through a pipe in memory
only: no embedding is written anywhere. Prints one JSON object; exit 1 when
a verdict or face count differs or a cosine is below ``--min-cosine``.

    python tools/bench/face_equivalence.py --photos ../shared/faces [--ref main]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import pickle, sys
sys.path.insert(0, sys.argv[1])
from doorpi.hardware.camera import load_rgb
from doorpi.vision.pipeline import FacePipeline
pipe = FacePipeline.load(num_threads=int(sys.argv[2]) if sys.argv[2] != "0" else None)
out = {}
for p in sys.stdin.read().splitlines():
    img = load_rgb(p, max_side=1280)
    a = pipe.process(img)
    b = pipe.embed_any(img)
    d = a.detection
    out[p] = {
        "faces": a.faces, "reason": a.reason,
        "box": None if d is None else d.box.tolist(),
        "kp": None if d is None else d.keypoints.tolist(),
        "score": None if d is None else d.score,
        "points": None if a.points is None else a.points.tolist(),
        "metrics": {} if a.quality is None else dict(a.quality.metrics),
        "embedding": None if b.embedding is None else b.embedding.tolist(),
    }
sys.stdout.buffer.write(pickle.dumps(out))
"""


def run(src: Path, paths: list[str], threads: int) -> dict[str, dict]:
    """The pipeline of ``src`` (a folder holding the ``doorpi`` package) on ``paths``."""
    models = Path(__file__).resolve().parents[2] / "models" / "build"
    env = {**os.environ, "DOORPI_MODELS_DIR": os.environ.get("DOORPI_MODELS_DIR", str(models))}
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(threads)],
        input="\n".join(paths).encode(),
        capture_output=True,
        env=env,
    )
    if r.returncode:
        tail = r.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"{src}: the pipeline failed: {' '.join(tail)}")
    return pickle.loads(r.stdout)  # our own child process


def compare(before: dict[str, dict], after: dict[str, dict], min_cos: float) -> dict[str, object]:
    """Per-photo differences between two runs, summarised."""
    verdicts, faces, low, cosines, box_px, pts_px, metric_rel = [], [], [], [], [], [], []
    for p, b in before.items():
        a = after[p]
        if a["reason"] != b["reason"]:
            verdicts.append(f"{p}: {b['reason']} -> {a['reason']}")
        if a["faces"] != b["faces"]:
            faces.append(f"{p}: {b['faces']} -> {a['faces']}")
        if (a["box"] is None) != (b["box"] is None):
            faces.append(f"{p}: detection {b['box'] is not None} -> {a['box'] is not None}")
        elif a["box"] is not None:
            box_px.append(float(np.abs(np.subtract(a["box"], b["box"])).max()))
            pts_px.append(float(np.abs(np.subtract(a["points"], b["points"])).max()))
        for k, v in b["metrics"].items():
            w = a["metrics"].get(k)
            if w is not None:
                metric_rel.append(abs(w - v) / max(abs(v), 1e-6))
        if (a["embedding"] is None) != (b["embedding"] is None):
            low.append(f"{p}: embedding present {b['embedding'] is not None} -> "
                       f"{a['embedding'] is not None}")  # fmt: skip
        elif a["embedding"] is not None:
            c = float(np.dot(a["embedding"], b["embedding"]))
            cosines.append(c)
            if c < min_cos:
                low.append(f"{p}: cosine {c:.6f}")
    return {
        "photos": len(before),
        "embeddings": len(cosines),
        "min_cosine": round(min(cosines), 7) if cosines else None,
        "median_cosine": round(float(np.median(cosines)), 7) if cosines else None,
        "max_box_diff_px": round(max(box_px), 4) if box_px else None,
        "max_points_diff_px": round(max(pts_px), 4) if pts_px else None,
        "max_metric_rel_diff": round(max(metric_rel), 6) if metric_rel else None,
        "verdicts_changed": verdicts,
        "faces_changed": faces,
        "embeddings_off": low,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--ref", default="main", help="git revision to compare with (default main)")
    ap.add_argument("--min-cosine", type=float, default=0.9999)
    ap.add_argument("--threads", type=int, default=0, help="TFLite threads (0: the default)")
    args = ap.parse_args()
    paths = sorted(
        str(p) for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if not paths:
        print(f"{args.photos}: no photos", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="doorpi-ref-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", args.ref, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        # The package's copy of the model hashes is written by `make models`, not tracked.
        sums = "src/doorpi/data/models.SHA256SUMS"
        shutil.copy(root / sums, Path(tmp) / sums)
        before = run(Path(tmp) / "src", paths, args.threads)
    after = run(root / "src", paths, args.threads)
    report = compare(before, after, args.min_cosine)
    report["ref"] = args.ref
    print(json.dumps(report, indent=1))
    bad = report["verdicts_changed"] or report["faces_changed"] or report["embeddings_off"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
