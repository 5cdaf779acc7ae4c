"""The real face pipeline inside the arm64 rootfs (run by rootfs-test.sh under qemu).

Usage: python rootfs-face-check.py MODELS_DIR SAME_1 SAME_2 OTHER

SAME_1 and SAME_2 are two photos of one person, OTHER a photo of someone else. Loads the
hash-checked models with whatever TFLite runtime the venv has (the image's: ai-edge-litert
on the system numpy), runs detection, face mesh, alignment and SFace on each photo, and
fails unless the same person scores above the shipped cosine threshold and the other
person below it. Prints the numpy and runtime versions, where numpy was imported from,
the cosines and the time per photo.
"""

from __future__ import annotations

import platform
import sys
import time
from importlib import metadata

import numpy as np

from doorpi.hardware.camera import load_rgb
from doorpi.vision.match import SHIPPED_THRESHOLD
from doorpi.vision.models import load_models
from doorpi.vision.pipeline import FacePipeline


def runtime_version() -> str:
    for dist in ("ai-edge-litert", "tflite-runtime"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "no TFLite runtime"


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    models_dir, *photos = argv
    print(f"machine {platform.machine()}, python {platform.python_version()}")
    print(f"numpy {np.__version__} from {np.__file__}")
    print(runtime_version())
    start = time.monotonic()
    pipeline = FacePipeline(load_models(models_dir, num_threads=2))
    print(f"models loaded in {time.monotonic() - start:.1f} s")
    embeddings = []
    for path in photos:
        start = time.monotonic()
        result = pipeline.process(load_rgb(path, max_side=1280))
        took = time.monotonic() - start
        stages = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
        print(f"{path}: {result.reason} in {took:.1f} s ({stages})")
        if not result.ok:
            print(f"FAIL: no usable face in {path}: {result.reason}", file=sys.stderr)
            return 1
        embeddings.append(result.embedding)
    a, b, other = embeddings
    same = float(a @ b)
    different = float(a @ other)
    print(f"cosine same person {same:.3f}, different person {different:.3f}")
    print(f"threshold {SHIPPED_THRESHOLD}")
    if not (same > SHIPPED_THRESHOLD > different):
        print("FAIL: the cosines are on the wrong side of the threshold", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
