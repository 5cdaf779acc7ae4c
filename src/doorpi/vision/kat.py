"""Known-answer test: SFace must compute here what it computed on the reference machine.

Why: a hash proves the model file is ours, not that this CPU and TFLite
runtime compute it correctly. Under qemu with SVE/SME, ai-edge-litert 2.3.0
scored every face 0.98 against every other face: strangers would have
matched anyone. That bug is invisible to every other check. So when the
models load, SFace embeds three fixed synthetic images and the results are
compared with answers recorded on the reference machine (``kat.json`` beside
the models, written by ``python -m doorpi.vision.kat --write FILE``). A
failure is one `ModelError`: face stays off, card and PIN carry on.

The images are integer arithmetic only (no random generator, no libm), so
they are the same bytes on every platform and numpy version.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from doorpi.vision.align import CROP_SIZE
from doorpi.vision.embed import Embedder
from doorpi.vision.runtime import ModelError, TFLiteModel

KAT_FILE = "kat.json"
#: Each answer against its reference (runtimes and rebuilds agree to ~0.99).
MIN_SELF = 0.95
#: How far the images' mutual similarities may move (a collapse moves them ~0.5).
MAX_PAIR_SHIFT = 0.15


def image(i: int) -> np.ndarray:
    """Fixed input ``i`` (0, 1, 2): 112x112 RGB uint8, chosen so their embeddings differ."""
    y, x = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(np.int64)
    if i in (0, 1):
        k = 4 * i  # two xor textures whose embeddings are far apart (cosine ~0.3)
        a, b, c = 3 + 2 * k, 5 + 3 * k, 7 + k
        ch = [((x * a + y * b + n * c * 17) ^ (x * y * (k + 1) >> 3)) & 255 for n in range(3)]
    else:
        r2 = (x - 40) ** 2 + (y - 50) ** 2
        base = (r2 * 2 // 50) & 255
        ch = [base, base, 255 - base]
    return np.stack(ch, -1).astype(np.uint8)


IMAGES = 3


def answers(embedder: TFLiteModel) -> np.ndarray:
    """(3, 128) unit embeddings of the fixed images."""
    e = Embedder(embedder)
    return np.stack([e.embed(image(i)) for i in range(IMAGES)])


def find(directory: Path) -> Path | None:
    """``kat.json`` beside the models, or in the folder above (the repository's models/)."""
    for d in (directory, directory.parent):
        if (d / KAT_FILE).is_file():
            return d / KAT_FILE
    return None


def check(embedder: TFLiteModel, directory: Path) -> None:
    """Raise ModelError unless SFace reproduces the recorded answers on this machine."""
    path = find(directory)
    if path is None:
        raise ModelError(f"{directory / KAT_FILE}: known answers for SFace missing (make models)")
    try:
        ref = np.array(json.loads(path.read_text())["answers"], np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable known answers: {exc}") from None
    if ref.shape != (IMAGES, 128) or not np.isfinite(ref).all():
        raise ModelError(f"{path}: known answers must be {IMAGES} x 128 numbers")
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    got = answers(embedder).astype(np.float64)
    self_cos = np.sum(got * ref, axis=1)
    shift = np.abs(got @ got.T - ref @ ref.T).max()
    if self_cos.min() < MIN_SELF or shift > MAX_PAIR_SHIFT:
        raise ModelError(
            f"{embedder.path}: known-answer test failed on this CPU/runtime (cosine to the "
            f"reference {self_cos.min():.3f}, similarity shift {shift:.3f}): face stays off"
        )


def write(embedder: TFLiteModel, out: Path) -> None:
    ans = answers(embedder)
    rows = [json.dumps([round(float(v), 6) for v in row]) for row in ans]
    about = json.dumps("SFace embeddings of doorpi.vision.kat.image(0..2), reference machine")
    out.write_text('{"about": ' + about + ',\n "answers": [\n  ' + ",\n  ".join(rows) + "\n]}\n")


def main(argv: list[str] | None = None) -> int:
    from doorpi.vision.models import load_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="models directory (default: the usual search)")
    p.add_argument("--write", type=Path, required=True, help="where to write kat.json")
    args = p.parse_args(argv)
    write(load_models(args.models, kat=False).embedder, args.write)
    print(f"known answers written to {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
