"""Locate the built face models and check them against the package's SHA256SUMS.

Why: the gate must never run a model that was corrupted or swapped on the
SD card; every problem becomes one ``ModelError`` line naming the file, and
the door carries on with card and PIN.

The expected hashes are the package's own copy of the model build's SHA256SUMS
(``doorpi/data/models.SHA256SUMS``, written by ``tools/models/build.py`` and
shipped inside the doorpi wheel the image installs), not the list beside the
model files: whoever can replace the files in a models folder can replace a
list there too. A ``SHA256SUMS`` beside the files that says otherwise is itself
an error. SFace's bytes differ between build machines (models/README.md, "What
the same model means"), so the package carries the hashes of the very build
that was shipped with it; its known answers (doorpi.vision.kat) are checked too.
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
# The package's copy of the shipped build's SHA256SUMS (see the module docstring).
PACKAGE_SUMS = Path(__file__).resolve().parents[1] / "data" / "models.SHA256SUMS"
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


def read_sums(sums: Path) -> dict[str, str]:
    """File name -> lowercase sha256 from ``sha256  name`` lines (sha256sum's format,
    as tools/models/build.py writes them). Raises ModelError if unreadable."""
    out = {}
    try:
        for line in sums.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                out[name.strip()] = digest.lower()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sums}: unreadable checksum file") from exc
    return out


def shipped_hashes(package_sums: Path | None = None) -> dict[str, str]:
    """The model hashes the installed doorpi package shipped with (PACKAGE_SUMS).

    In a source checkout (the package imported from the repository's src/, as
    `make demo`, the tests and a scenario run it) whose copy was not written yet,
    the repository build's own SHA256SUMS stands in: both sit in the same tree,
    so whoever could rewrite one could rewrite the other. An installed package
    has no repository beside it and needs its copy. Raises ModelError naming the
    file when the package has none (built without models: run make models, then
    install again).
    """
    path = PACKAGE_SUMS if package_sums is None else package_sums
    if package_sums is None and not path.is_file() and (REPO_BUILD_DIR / SUMS).is_file():
        path = REPO_BUILD_DIR / SUMS
    if not path.is_file():
        raise ModelError(f"{path}: the doorpi package has no model hashes (run make models)")
    hashes = read_sums(path)
    if not hashes:
        raise ModelError(f"{path}: no model hashes in it")
    return hashes


def expected_hashes(directory: Path, package_sums: Path | None = None) -> dict[str, str]:
    """The hashes to check ``directory``'s models against: the package's (shipped_hashes).

    A SHA256SUMS beside the files is only compared: one that disagrees with the
    package is a ModelError (files from another build, or a list rewritten with them).
    """
    hashes = shipped_hashes(package_sums)
    beside = directory / SUMS
    if beside.is_file():
        for name, digest in read_sums(beside).items():
            if hashes.get(name, digest) != digest:
                raise ModelError(
                    f"{beside}: {name} differs from the package's hashes ({PACKAGE_SUMS.name}): "
                    "models from another build"
                )
    return hashes


def verified_path(directory: Path, name: str, hashes: dict[str, str] | None = None) -> Path:
    """Path of ``name`` after checking it exists and matches its recorded sha256."""
    hashes = expected_hashes(directory) if hashes is None else hashes
    path = directory / name
    if name not in hashes:
        raise ModelError(f"{path}: not in the package's model hashes")
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
    package_sums: Path | None = None,
) -> FaceModels:
    """Find, hash-check (against the package's hashes, `expected_hashes`) and load
    detector, face mesh and SFace; then check that SFace computes its known answers
    on this machine (`doorpi.vision.kat`). Raises ModelError naming the file."""
    d = find_models_dir(directory)
    hashes = expected_hashes(d, package_sums)

    def get(name: str) -> TFLiteModel:
        path = verified_path(d, name, hashes) if verify else d / name
        return TFLiteModel(path, num_threads)

    models = FaceModels(get(DETECTOR), get(MESH), get(EMBEDDER), d)
    if kat:
        from doorpi.vision.kat import check

        check(models.embedder, d)
    return models
