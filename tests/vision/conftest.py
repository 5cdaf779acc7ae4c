"""Shared fixtures: the built models and the project's real photos.

The models are built by ``make models`` (tools/models/build.py); tests never
skip without them, they fail and say how to build them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from doorpi.hardware.camera import load_rgb
from doorpi.vision.models import REPO_BUILD_DIR, SUMS, FaceModels, load_models
from doorpi.vision.pipeline import FacePipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    d = Path(os.environ.get("DOORPI_MODELS_DIR") or REPO_BUILD_DIR)
    if not (d / SUMS).is_file():
        pytest.fail(f"face models not found in {d}: run make models")
    return d


@pytest.fixture(scope="session")
def models(models_dir: Path) -> FaceModels:
    return load_models(models_dir, num_threads=2)


@pytest.fixture(scope="session")
def pipeline(models: FaceModels) -> FacePipeline:
    return FacePipeline(models)


@pytest.fixture(scope="session")
def photo(faces_dir: Path):
    """Decode a photo by its path relative to the faces folder (cached per session)."""
    cache: dict[str, np.ndarray] = {}

    def get(rel: str) -> np.ndarray:
        if rel not in cache:
            cache[rel] = load_rgb(faces_dir / rel, max_side=1280)
        return cache[rel]

    return get
