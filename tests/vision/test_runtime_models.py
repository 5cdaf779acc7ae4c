"""Model loading: corrupt, swapped or missing files become one ModelError naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from doorpi.vision.models import DETECTOR, EMBEDDER, MESH, SUMS, load_models
from doorpi.vision.runtime import ModelError, TFLiteModel


def test_garbage_file_is_model_error_with_name(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError) as exc:
        TFLiteModel(bad)
    assert "broken.tflite" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_truncated_real_model_is_model_error(tmp_path: Path, models_dir: Path) -> None:
    data = (models_dir / DETECTOR).read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match=r"cut\.tflite"):
        TFLiteModel(cut)


def test_missing_file_is_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.tflite"):
        TFLiteModel(tmp_path / "nope.tflite")


def test_wrong_hash_names_the_file(tmp_path: Path, models_dir: Path) -> None:
    for f in (DETECTOR, MESH, EMBEDDER, SUMS):
        shutil.copyfile(models_dir / f, tmp_path / f)
    data = bytearray((tmp_path / EMBEDDER).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still loads, but is not our model
    (tmp_path / EMBEDDER).write_bytes(bytes(data))
    with pytest.raises(ModelError) as exc:
        load_models(tmp_path)
    assert EMBEDDER in str(exc.value) and "sha256" in str(exc.value)


def test_a_list_beside_the_files_cannot_vouch_for_a_swapped_model(
    tmp_path: Path, models_dir: Path
) -> None:
    """The hashes come from the package (doorpi/data/models.SHA256SUMS): a SHA256SUMS
    rewritten beside a swapped model is refused, and so is a package without hashes."""
    import hashlib

    from doorpi.vision.models import PACKAGE_SUMS

    for f in (DETECTOR, MESH, EMBEDDER, SUMS):
        shutil.copyfile(models_dir / f, tmp_path / f)
    data = bytearray((tmp_path / EMBEDDER).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / EMBEDDER).write_bytes(bytes(data))
    fake = hashlib.sha256(bytes(data)).hexdigest()
    sums = tmp_path / SUMS
    sums.write_text("".join((f"{fake}  {EMBEDDER}" if EMBEDDER in x else x) + "\n"
                            for x in sums.read_text().splitlines()))  # fmt: skip
    with pytest.raises(ModelError) as exc:
        load_models(tmp_path, kat=False)
    assert EMBEDDER in str(exc.value) and PACKAGE_SUMS.name in str(exc.value)
    sums.write_text((models_dir / SUMS).read_text())  # the list back, the file still swapped
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_models(tmp_path, kat=False)
    with pytest.raises(ModelError, match="the doorpi package has no model hashes"):
        load_models(models_dir, kat=False, package_sums=tmp_path / "none")


def test_missing_models_dir_says_make_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="make models"):
        load_models(tmp_path / "empty")


def test_models_load_and_run(models) -> None:
    out = models.detector.run(np.zeros((1, 128, 128, 3), np.float32))
    assert sorted(o.shape for o in out) == [(1, 896, 1), (1, 896, 16)]
    emb = models.embedder.run(np.zeros((1, 112, 112, 3), np.float32))[0]
    assert emb.size == 128 and np.isfinite(emb).all()


def test_falls_back_to_tflite_runtime(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    """Without ai-edge-litert the tflite_runtime package is used (an older install)."""
    import sys
    import types

    from ai_edge_litert.interpreter import Interpreter as RealInterpreter

    used: list[str] = []

    class Wrapped(RealInterpreter):
        def __init__(self, *a, **kw) -> None:
            used.append(kw["model_path"])
            super().__init__(*a, **kw)

    pkg = types.ModuleType("tflite_runtime")
    mod = types.ModuleType("tflite_runtime.interpreter")
    mod.Interpreter = Wrapped
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    monkeypatch.setitem(sys.modules, "tflite_runtime", pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", mod)
    m = TFLiteModel(models_dir / DETECTOR, num_threads=1)
    assert used == [str(models_dir / DETECTOR)]
    assert len(m.run(np.zeros((1, 128, 128, 3), np.float32))) == 2


def test_no_runtime_at_all_is_model_error(
    monkeypatch: pytest.MonkeyPatch, models_dir: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(ModelError, match="no TFLite runtime"):
        TFLiteModel(models_dir / DETECTOR)
