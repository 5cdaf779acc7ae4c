"""The model build tool's cache checks (the conversion itself runs in ``make models``)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from tool_support import load_tool

REPO = Path(__file__).resolve().parents[2]


def _build_module():
    return load_tool("models/build")


def test_built_models_match_manifest(models_dir: Path) -> None:
    """Byte-stable outputs are the manifest's bytes; the converted SFace is the same model."""
    build = _build_module()
    manifest = tomllib.loads((REPO / "models/manifest.toml").read_text())
    assert build.verify_dir(models_dir)
    converted = []
    for name, spec in manifest["outputs"].items():
        if "sha256" in spec:
            assert build.sha256_file(models_dir / name) == spec["sha256"], name
        else:
            got = build.same_model(
                models_dir / name,
                REPO / spec["known_answers"],
                spec["min_cosine"],
                spec["max_similarity_shift"],
            )
            assert got["min_cosine"] >= spec["min_cosine"], got
            converted.append(name)
    assert converted == ["sface.tflite"]


def test_same_model_refuses_another_model(tmp_path: Path, models_dir: Path) -> None:
    """The check can fail: answers recorded for other images, or a runtime that
    embeds everything alike, are not the same model."""
    build = _build_module()
    answers = json.loads((REPO / "models/kat.json").read_text())
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps({"answers": answers["answers"][::-1]}))
    with pytest.raises(build.BuildError, match="not the same model"):
        build.same_model(models_dir / "sface.tflite", swapped, 0.998, 0.02)
    collapsed = tmp_path / "collapsed.json"
    collapsed.write_text(json.dumps({"answers": [answers["answers"][0]] * 3}))
    with pytest.raises(build.BuildError, match="similarity shift"):
        build.same_model(models_dir / "sface.tflite", collapsed, 0.0, 0.02)
    with pytest.raises(build.BuildError, match="could not run"):
        build.same_model(models_dir / "face_landmark.tflite", REPO / "models/kat.json", 0.9, 0.1)


def test_every_converted_output_states_what_the_same_model_means() -> None:
    """No output is both unpinned and unchecked; no tolerance looser than the device's."""
    from doorpi.vision import kat

    manifest = tomllib.loads((REPO / "models/manifest.toml").read_text())
    for name, spec in manifest["outputs"].items():
        if "sha256" in spec:
            assert len(spec["sha256"]) == 64, name
            continue
        assert (REPO / spec["known_answers"]).is_file(), name
        assert kat.MIN_SELF < spec["min_cosine"] < 1.0, name
        assert 0.0 < spec["max_similarity_shift"] < kat.MAX_PAIR_SHIFT, name


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


def test_build_writes_the_packages_model_hashes(tmp_path: Path, models_dir: Path) -> None:
    """The build copies its SHA256SUMS into the package (doorpi/data/models.SHA256SUMS),
    which the wheel ships as package data: what the gate checks its models against."""
    from doorpi.vision.models import PACKAGE_SUMS, SUMS

    build = _build_module()
    pkg = tmp_path / "models.SHA256SUMS"
    assert build.main(["--out", str(tmp_path / "out"), "--package-sums", str(pkg)]) == 0
    assert pkg.read_text() == (tmp_path / "out" / SUMS).read_text()
    assert build.PACKAGE_SUMS == PACKAGE_SUMS
    # This checkout's package holds the hashes of this checkout's build, and ships them.
    assert PACKAGE_SUMS.read_text() == (models_dir / SUMS).read_text()
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "data/*" in data["tool"]["setuptools"]["package-data"]["doorpi"]


def test_a_source_checkout_without_the_package_copy_uses_its_build(monkeypatch, tmp_path):
    """A checkout whose models/build predates the package copy (a field case run
    before `make models` wrote it) still loads face; an explicit missing copy does not."""
    from doorpi.vision import models

    build = models.REPO_BUILD_DIR / models.SUMS
    assert build.is_file(), "run make models"
    monkeypatch.setattr(models, "PACKAGE_SUMS", tmp_path / "absent")
    assert models.shipped_hashes() == models.read_sums(build)
    with pytest.raises(models.ModelError, match="no model hashes"):
        models.shipped_hashes(tmp_path / "absent")
