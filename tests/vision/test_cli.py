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
    runs = r["model_runs_per_frame"]
    # every frame runs the detector, once more at most for the upside-down vote
    assert 1 <= runs["detector"] <= 1 + runs["mesh"] and runs["mesh"] <= 1
    assert round(runs["sface"] * r["frames"]) == r["frames_ok"]  # SFace only for frames that pass
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


def test_visit_fusion_matches_what_no_single_frame_does() -> None:
    """The open set of a visit goes through the gate's own engine: two alike frames,
    each below the threshold (cosine 0.439 to the template), fuse to 0.472 and match;
    a stranger's frames do not; a frame the quality gates refuse is not fused."""
    import numpy as np

    e = np.eye(8, 128, dtype=np.float32)  # orthonormal directions

    def unit(v):
        return v / np.linalg.norm(v)

    people = ["a", "b", "c"]  # a and c enrolled (even positions), b a stranger
    labels = ["a", "a", "b", "c"]
    ref = [e[0], None, e[2], e[3]]  # photo 0 is a's template, photo 3 is c's
    near_a = [unit(0.42 * e[0] + 0.7 * e[4] + 0.5 * e[k]) for k in (5, 6, 7)]
    assert all(float(f @ e[0]) < 0.45 for f in near_a)  # no single frame matches
    stranger = [unit(e[2] + 0.1 * e[k]) for k in (5, 6, 7)]
    visits = [
        [(e[0], "ok")] * 3,
        [(f, "ok") for f in near_a],
        [(f, "ok") for f in stranger],
        [(e[3], "ok")] * 3,
    ]
    r = eval_cli._visit(people, ref, visits, labels, 0.45, 0.05)
    assert r["frames_per_visit"] == 3
    assert r["all_frames"]["fnir_count"] == 0 and r["all_frames"]["resident_probes"] == 1
    assert r["all_frames"]["fpir_count"] == 0 and r["all_frames"]["nonresident_probes"] == 1
    visits[1] = [(near_a[0], "ok"), (near_a[1], "blurry"), (near_a[2], "blurry")]
    r = eval_cli._visit(people, ref, visits, labels, 0.45, 0.05)
    assert r["all_frames"]["fnir_count"] == 0  # every frame counted
    assert r["gated"]["fnir_count"] == 1  # one frame through: 0.439, a miss
    single = eval_cli._open_set(people, ref, [v[0][0] for v in visits], labels, 0.45, 0.05)
    assert single["fnir_count"] == 1  # the first frame alone misses


def test_eval_faces_visit_frames_and_studies(
    tmp_path: Path, faces_dir: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--visit-frames, --flip-probes and --gray-templates on real photos."""
    for person in SUBSET:
        (tmp_path / person).symlink_to(faces_dir / person)
    base = ["eval", "faces", str(tmp_path), "--json", "--models", str(models_dir)]
    args = _parser().parse_args([*base, "--conditions", "blur", "--visit-frames", "2"])
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    rows = {c["condition"]: c for c in r["conditions"]}
    for c in rows.values():
        v, o = c["open_set"]["visit"], c["open_set"]
        assert v["frames_per_visit"] == 2
        assert v["all_frames"]["resident_probes"] == o["resident_probes"] > 0
        assert v["all_frames"]["fnir_count"] <= o["fnir_count"]  # more frames, never fewer chances
    blur = rows["blur"]["open_set"]["visit"]
    assert blur["gated"]["fnir"] > blur["all_frames"]["fnir"] + 0.3  # refused `blurry`: prompts
    assert r["probes"] == "as embedded" and r["gray_templates"] is False
    args = _parser().parse_args(
        [*base, "--conditions", "gray", "--flip-probes", "--gray-templates"]
    )
    assert args.func(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["probes"].startswith("mirror mean") and s["gray_templates"] is True
    plain = {c["condition"]: c for c in r["conditions"]}["as_taken"]
    studied = {c["condition"]: c for c in s["conditions"]}["as_taken"]
    assert studied["open_set"]["gallery_size"] == 2 * plain["open_set"]["gallery_size"]
    assert studied["impostor_max"] != plain["impostor_max"]  # the probes are other embeddings
    assert "visit" not in studied["open_set"]
