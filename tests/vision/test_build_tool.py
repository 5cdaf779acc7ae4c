"""The model build tool's cache checks (the conversion itself runs in ``make models``)."""

from __future__ import annotations

import importlib.util
import shutil
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build_module():
    spec = importlib.util.spec_from_file_location("doorpi_build", REPO / "tools/models/build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_built_models_match_manifest(models_dir: Path) -> None:
    build = _build_module()
    manifest = tomllib.loads((REPO / "models/manifest.toml").read_text())
    assert build.verify_dir(models_dir)
    for name, spec in manifest["outputs"].items():
        assert build.sha256_file(models_dir / name) == spec["sha256"], name


def test_verify_dir_catches_a_flipped_byte(tmp_path: Path, models_dir: Path) -> None:
    build = _build_module()
    for f in models_dir.iterdir():
        shutil.copyfile(f, tmp_path / f.name)
    assert build.verify_dir(tmp_path)
    p = tmp_path / "face_landmark.tflite"
    data = bytearray(p.read_bytes())
    data[100] ^= 1
    p.write_bytes(bytes(data))
    assert not build.verify_dir(tmp_path)


def test_cache_key_follows_manifest(tmp_path: Path) -> None:
    build = _build_module()
    src = REPO / "models/manifest.toml"
    manifest = tomllib.loads(src.read_text())
    k1 = build.cache_key(src, manifest)
    changed = tmp_path / "manifest.toml"
    changed.write_text(src.read_text().replace('version = "0.6.0"', 'version = "0.6.1"'))
    assert build.cache_key(changed, manifest) != k1
    assert build.cache_key(src, manifest) == k1 and len(k1) == 16
