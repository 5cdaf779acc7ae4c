"""Locate the built face models and check them against their SHA256SUMS.

Why: the gate must never run a model that was corrupted or swapped on the
SD card; every problem becomes one ``ModelError`` line naming the file, and
the door carries on with card and PIN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from doorpi.fsutil import sha256_file
from doorpi.vision.runtime import ModelError, TFLiteModel

DETECTOR = "face_detection_short_range.tflite"
MESH = "face_landmark.tflite"
EMBEDDER = "sface.tflite"
SUMS = "SHA256SUMS"
SYSTEM_DIR = Path("/usr/share/doorpi/models")
# src/doorpi/vision/models.py -> repository root (editable installs, tests, CI).
REPO_BUILD_DIR = Path(__file__).resolve().parents[3] / "models" / "build"


def candidate_dirs(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Search order: explicit, $DOORPI_MODELS_DIR, /usr/share/doorpi/models, repo models/build."""
    if explicit:
        return [Path(explicit)]
    env = os.environ.get("DOORPI_MODELS_DIR")
    if env:
        return [Path(env)]
    return [SYSTEM_DIR, REPO_BUILD_DIR]


def find_models_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The first candidate directory that holds a SHA256SUMS file."""
    dirs = candidate_dirs(explicit)
    for d in dirs:
        if (d / SUMS).is_file():
            return d
    raise ModelError(f"{dirs[0] / SUMS}: no built face models (run make models)")


def expected_hashes(directory: Path) -> dict[str, str]:
    """Parse ``sha256  name`` lines written by tools/models/build.py."""
    out = {}
    sums = directory / SUMS
    try:
        for line in sums.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                out[name.strip()] = digest.lower()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sums}: unreadable checksum file") from exc
    return out


def verified_path(directory: Path, name: str, hashes: dict[str, str] | None = None) -> Path:
    """Path of ``name`` after checking it exists and matches its recorded sha256."""
    hashes = expected_hashes(directory) if hashes is None else hashes
    path = directory / name
    if name not in hashes:
        raise ModelError(f"{path}: not listed in {SUMS}")
    if not path.is_file():
        raise ModelError(f"{path}: model file missing (run make models)")
    if sha256_file(path) != hashes[name]:
        raise ModelError(f"{path}: sha256 mismatch, model file corrupt or replaced")
    return path


@dataclass
class FaceModels:
    """The three loaded models."""

    detector: TFLiteModel
    mesh: TFLiteModel
    embedder: TFLiteModel
    directory: Path


def load_models(
    directory: str | os.PathLike[str] | None = None,
    num_threads: int | None = None,
    verify: bool = True,
    kat: bool = True,
) -> FaceModels:
    """Find, hash-check and load detector, face mesh and SFace; then check that
    SFace computes its known answers on this machine (`doorpi.vision.kat`)."""
    d = find_models_dir(directory)
    hashes = expected_hashes(d)

    def get(name: str) -> TFLiteModel:
        path = verified_path(d, name, hashes) if verify else d / name
        return TFLiteModel(path, num_threads)

    models = FaceModels(get(DETECTOR), get(MESH), get(EMBEDDER), d)
    if kat:
        from doorpi.vision.kat import check

        check(models.embedder, d)
    return models
