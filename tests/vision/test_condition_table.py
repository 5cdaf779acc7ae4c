"""The condition table of models/README.md ("At a real gate") is exactly what
tools/condition_table.py writes from the stored eval output
(docs/conditions-eval.json): a hand edit is caught."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tool_support import load_tool

REPO = Path(__file__).resolve().parents[2]
STORED = REPO / "docs/conditions-eval.json"
MD = REPO / "models/README.md"


@pytest.fixture(scope="module")
def tool():
    return load_tool("condition_table")


@pytest.fixture(scope="module")
def stored() -> dict:
    assert STORED.is_file(), f"{STORED} missing: run tools/condition_table.py run"
    return json.loads(STORED.read_text())


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools/condition_table.py"), *argv],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_readme_table_is_what_the_tool_writes(tool, stored) -> None:
    md = MD.read_text()
    section = tool.render(stored)
    assert section in md
    assert tool.docsection.is_current(md, section, tool.BEGIN, tool.END, where=MD)
    r = _run("check")
    assert r.returncode == 0, r.stderr


def test_every_row_carries_the_stored_counts(tool, stored) -> None:
    section = tool.render(stored)
    rows = stored["conditions"]
    assert [c["condition"] for c in rows][:1] == ["as_taken"] and len(rows) >= 9
    for c in rows:
        o = c["open_set"]
        assert f"{o['fnir_count']} of {o['resident_probes']} = " in section
        assert f"{c['impostor_max']:.3f} / " in section
        assert o["visit"]["frames_per_visit"] == 3
        assert o["visit"]["all_frames"]["resident_probes"] == o["resident_probes"]


def test_a_hand_edit_is_caught(tool, stored, tmp_path) -> None:
    md = MD.read_text()
    o = stored["conditions"][1]["open_set"]
    old = f"{o['fnir_count']} of {o['resident_probes']} = "
    edited = md.replace(old, f"{o['fnir_count'] - 1} of {o['resident_probes']} = ", 1)
    assert edited != md
    (tmp_path / "README.md").write_text(edited)
    r = _run("check", "--md", str(tmp_path / "README.md"))
    assert r.returncode == 1 and "differs" in r.stderr, r.stderr


def test_output_without_the_visit_figures_is_refused(tool, stored, tmp_path) -> None:
    bad = copy.deepcopy(stored)
    del bad["conditions"][2]["open_set"]["visit"]
    with pytest.raises(tool.TableError, match="visit"):
        tool.render(bad)
    (tmp_path / "c.json").write_text(json.dumps(bad))
    md = tmp_path / "README.md"
    md.write_text(MD.read_text())
    r = _run("render", "--json", str(tmp_path / "c.json"), "--md", str(md))
    assert r.returncode == 2 and "visit" in r.stderr and "Traceback" not in r.stderr
    assert md.read_text() == MD.read_text()  # nothing written
