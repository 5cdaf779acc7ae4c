"""``doorpi eval faces`` and the face benchmark, called through argparse as the CLI does."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from doorpi.cli import bench_face
from doorpi.cli import eval as eval_cli

SUBSET = [
    "Al_Sharpton",
    "Angela_Bassett",
    "Barack_Obama",
    "Meryl_Streep",
    "Yoko_Ono",
    "Ben_Affleck",
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    eval_cli.register(sub)
    bench_face.register(sub)
    return p


def test_eval_faces_json(
    tmp_path: Path, faces_dir: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for person in SUBSET:  # links, not copies: no face image is written
        (tmp_path / person).symlink_to(faces_dir / person, target_is_directory=True)
    args = _parser().parse_args(
        ["eval", "faces", str(tmp_path), "--json", "--models", str(models_dir), "--threads", "2"]
    )
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["people"] == len(SUBSET)
    assert r["detection_failures"] == 0
    assert r["genuine_pairs"] > 20 and r["impostor_pairs"] > 200
    assert r["eer"] < 0.05
    assert r["shipped"]["far_count"] == 0
    lo, hi = r["shipped"]["far_ci95"]
    assert lo == 0.0 and 0 < hi < 0.05
    lo, hi = r["shipped"]["frr_ci95"]  # never a zero-width interval, even at no misses
    assert lo <= r["shipped"]["frr"] <= hi and hi > 1 / r["genuine_pairs"]
    assert r["open_set"]["gallery_size"] == 3
    assert r["open_set"]["fpir"] == 0.0
    assert "1e-03" in r["tar_at_far"]


def test_eval_faces_summary(
    tmp_path: Path, faces_dir: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for person in SUBSET[:3]:
        (tmp_path / person).symlink_to(faces_dir / person, target_is_directory=True)
    args = _parser().parse_args(["eval", "faces", str(tmp_path), "--models", str(models_dir)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "3 people" in out and "EER" in out and "threshold 0.450" in out
    assert re.search(r"FRR [\d.]+% \(95% CI [\d.]+% to [\d.]+%\)", out)


def test_eval_missing_dir_is_cli_error(tmp_path: Path) -> None:
    from doorpi.cli import CliError

    args = _parser().parse_args(["eval", "faces", str(tmp_path / "nope")])
    with pytest.raises(CliError, match="nope"):
        args.func(args)


def test_bench_face_json(
    faces_dir: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(
        [
            "bench-face",
            "--photos",
            str(faces_dir / "Angela_Bassett"),
            "--models",
            str(models_dir),
            "--frames",
            "4",
            "--gallery",
            "1000",
            "--threads",
            "2",
        ]
    )
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["frames_ok"] >= 3
    assert set(r["stage_ms"]) >= {"detect", "align", "quality", "embed"}
    assert r["match_ms"]["1000_float32"]["median"] > 0
    assert r["memory_models_loaded"]["peak_rss_mb"] > 10
    assert r["fps_end_to_end"] > 0
    hands_free = r["hands_free"]  # face alone: 1:N and the liveness measurement
    assert hands_free["frames"] == 4
    assert hands_free["frame_ms"]["median"] > 0 and hands_free["pipeline_ms"]["median"] > 0


def test_bench_face_bad_models_exit_2(tmp_path: Path, faces_dir: Path) -> None:
    args = _parser().parse_args(
        ["bench-face", "--photos", str(faces_dir), "--models", str(tmp_path)]
    )
    assert args.func(args) == 2


def test_bench_face_without_photos_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DOORPI_BENCH_PHOTOS", raising=False)
    p = argparse.ArgumentParser()
    bench_face.add_arguments(p)
    args = p.parse_args([])
    assert bench_face.bench_face(args) == 2
    assert "--photos" in capsys.readouterr().err


def test_eval_group_also_offers_liveness() -> None:
    args = _parser().parse_args(["eval", "liveness", "/tmp/x", "--json"])
    assert args.dir == Path("/tmp/x")


def test_eval_faces_conditions_table_det_png_and_bad_file(
    tmp_path: Path, faces_dir: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--conditions: one row per condition with intervals, a DET PNG, a broken file listed."""
    for person in SUBSET:
        (tmp_path / person).mkdir()
        for f in sorted((faces_dir / person).iterdir())[:3]:
            (tmp_path / person / f.name).symlink_to(f)
    (tmp_path / "Yoko_Ono" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    png = tmp_path / "det.png"
    args = _parser().parse_args(
        ["eval", "faces", str(tmp_path), "--json", "--models", str(models_dir),
         "--conditions", "gray,dark,rot180,blur", "--det-png", str(png)]
    )  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert "Yoko_Ono/broken.jpg" in out.err
    assert r["skipped_files"] == ["Yoko_Ono/broken.jpg"]
    rows = {c["condition"]: c for c in r["conditions"]}
    assert list(rows) == ["as_taken", "gray", "dark", "rot180", "blur"]
    assert "Clopper-Pearson" in r["intervals"]
    base = rows["as_taken"]
    assert base["shipped"]["far_count"] == 0 and base["tar_at_far_1e-4"] > 0.8
    lo, hi = base["tar_at_far_1e-4_ci95"]
    assert lo <= base["tar_at_far_1e-4"] <= hi
    assert rows["dark"]["quality_refused_by_reason"].get("too_dark", 0) == 0  # normalised
    assert rows["rot180"]["quality_refused"] == rows["rot180"]["photos"]  # none gets through
    assert rows["rot180"]["quality_refused_by_reason"].get("upside_down", 0) > 0
    assert rows["rot180"]["frr_with_quality_gate"] == 1.0
    blur = rows["blur"]  # refused as blurry: rejections at the gate, though the model matches
    assert blur["quality_refused_by_reason"].get("blurry", 0) > blur["photos"] // 2
    assert blur["frr_with_quality_gate"] > blur["shipped"]["frr"] + 0.3
    for c in rows.values():
        assert c["genuine_pairs"] > 0 and c["impostor_pairs"] > 100
        assert 0 <= c["open_set"]["fnir"] <= 1
    from PIL import Image

    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 400
        assert len(img.convert("RGB").getcolors(1 << 20)) > 4  # curves, not a blank page


def test_eval_faces_unknown_condition_is_one_line(tmp_path: Path, models_dir: Path) -> None:
    (tmp_path / "a").mkdir()
    args = _parser().parse_args(
        ["eval", "faces", str(tmp_path), "--models", str(models_dir), "--conditions", "fog"]
    )
    from doorpi.cli import CliError

    with pytest.raises(CliError, match="--conditions: unknown fog"):
        args.func(args)
