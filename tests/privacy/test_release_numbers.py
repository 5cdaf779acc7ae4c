"""The release report of requirement 23: docs/numbers.md's generated section is
exactly what tools/release_numbers.py writes from the stored eval output
(docs/numbers-eval.json), and a report whose intervals do not follow from its
counts (a zeroed FRR interval above all) is refused."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tool_support import load_tool

REPO = Path(__file__).resolve().parents[2]
STORED = REPO / "docs/numbers-eval.json"
MD = REPO / "docs/numbers.md"


@pytest.fixture(scope="module")
def tool():
    return load_tool("release_numbers")


@pytest.fixture(scope="module")
def stored() -> dict:
    assert STORED.is_file(), f"{STORED} missing: run tools/release_numbers.py run"
    return json.loads(STORED.read_text())


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools/release_numbers.py"), *argv],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_numbers_md_is_what_the_tool_writes(tool, stored):
    md = MD.read_text()
    section = tool.render(stored)
    assert section.strip() in md  # the generated section, not a hand-written copy
    assert tool.docsection.is_current(md, section, tool.BEGIN, tool.END, where=MD)
    r = _run("check")
    assert r.returncode == 0, r.stderr


def test_the_report_holds_every_figure_from_the_eval_output(tool, stored):
    assert tool.interval_problems(stored) == []
    section = tool.render(stored)
    f, live = stored["faces"], stored["liveness"]
    s = f["shipped"]
    assert f"| FAR | {s['far_count']} / {f['impostor_pairs']:,} = " in section
    assert f"| FRR | {s['frr_count']} / {f['genuine_pairs']:,} = " in section
    for kind, a in live["attacks"].items():
        assert f"| {kind} | {a['accepted']} / {a['presentations']:,} = " in section
    b = live["bona_fide"]
    assert f"{b['rejected']} / {b['sequences']:,} = " in section
    for name, h in stored["models_sha256"].items():
        assert f"`{name}` `{h}`" in section
    assert stored["date"] in section


def test_a_hand_edit_is_caught(tmp_path, stored):
    md = MD.read_text()
    k = stored["faces"]["shipped"]["frr_count"]
    n = stored["faces"]["genuine_pairs"]
    edited = md.replace(f"| FRR | {k} / {n:,} =", f"| FRR | {k + 1} / {n:,} =")
    assert edited != md
    (tmp_path / "numbers.md").write_text(edited)
    r = _run("check", "--md", str(tmp_path / "numbers.md"))
    assert r.returncode == 1 and "differs" in r.stderr, r.stderr


@pytest.mark.parametrize("frr_count", [None, 0])
def test_a_zeroed_frr_interval_is_refused(tool, stored, tmp_path, frr_count):
    """[0, 0] claims certainty: refused whatever the count (with no miss the
    exact upper bound is still 1 - 0.025^(1/n) > 0)."""
    bad = copy.deepcopy(stored)
    if frr_count is not None:
        bad["faces"]["shipped"]["frr_count"] = frr_count
    bad["faces"]["shipped"]["frr_ci95"] = [0.0, 0.0]
    with pytest.raises(tool.NumbersError, match="FRR"):
        tool.render(bad)
    (tmp_path / "eval.json").write_text(json.dumps(bad))
    md = tmp_path / "numbers.md"
    md.write_text(MD.read_text())
    r = _run("render", "--json", str(tmp_path / "eval.json"), "--md", str(md))
    assert r.returncode == 2 and r.stderr.startswith("numbers: FRR"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert md.read_text() == MD.read_text()  # nothing written


def test_an_interval_that_does_not_follow_from_its_counts_is_refused(tool, stored):
    bad = copy.deepcopy(stored)
    bad["faces"]["shipped"]["frr_count"] += 1  # the count changed, the interval did not
    with pytest.raises(tool.NumbersError, match="not the exact interval"):
        tool.render(bad)
    bad = copy.deepcopy(stored)
    kind = sorted(bad["liveness"]["attacks"])[0]
    bad["liveness"]["attacks"][kind]["apcer_ci95"] = [0.0, 0.5]
    with pytest.raises(tool.NumbersError, match=f"APCER {kind}"):
        tool.render(bad)
    bad = copy.deepcopy(stored)
    del bad["liveness"]["bona_fide"]
    with pytest.raises(tool.NumbersError, match="lacks"):
        tool.render(bad)
