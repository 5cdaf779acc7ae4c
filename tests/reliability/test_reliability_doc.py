"""docs/reliability.md's figures are `make reliability`'s output (issue #18): the
generated section is exactly what tools/reliability_doc.py writes from the stored
summary, every part comes from a long-form run (a run that failed says so), and a
hand edit or a missing part is refused."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tool_support import load_tool

REPO = Path(__file__).resolve().parents[2]
STORED = REPO / "docs/reliability-summary.json"
MD = REPO / "docs/reliability.md"
TOOL = REPO / "tools/reliability_doc.py"


@pytest.fixture(scope="module")
def tool():
    return load_tool("reliability_doc")


@pytest.fixture(scope="module")
def stored() -> dict:
    assert STORED.is_file(), f"{STORED} missing: run make reliability, then the tool's store"
    return json.loads(STORED.read_text())


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *argv],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_document_holds_what_the_tool_writes(tool, stored) -> None:
    section, md = tool.render(stored), MD.read_text()
    assert section in md
    assert tool.docsection.is_current(md, section, tool.BEGIN, tool.END, where=MD)
    assert _run("check").returncode == 0


def test_every_part_is_from_a_long_run_and_a_failed_run_is_shown(tool, stored) -> None:
    for name in tool.PARTS:
        part = stored["parts"][name]
        assert part["form"] == "long", f"{name}: {part['form']} form"
    assert stored["parts"]["powercut"]["failures"] == []
    restarts = stored["parts"]["restarts"]
    assert restarts["strike_rises"] == restarts["grants"]  # no rise that was not a grant
    section = tool.render(stored)
    for i, run in enumerate(stored["runs"]):  # a run that failed is never shown as passed
        row = next(line for line in section.splitlines() if line.startswith(f"| {i} |"))
        assert ("| yes |" in row) == bool(run["passed"]), row


def _summary(commit: str, **parts: dict) -> dict:
    base = {"form": "long", "seconds": 1, "passed": True, "commit": commit, "machine": "m",
            "load_start": 0.1, "load_end": 0.2, "started": "2026-11-30T00:00:00Z"}  # fmt: skip
    return {**base, **parts}


def test_a_later_run_replaces_a_part_and_a_missing_part_is_refused(tool, stored) -> None:
    first = _summary("aaa", **{k: {k2: v2 for k2, v2 in v.items() if k2 != "run"}
                               for k, v in stored["parts"].items()})  # fmt: skip
    soak = {**stored["parts"]["soak"], "decisions": 12345}
    soak.pop("run")
    merged = tool.merge([first, _summary("bbb", soak=soak)])
    assert merged["parts"]["soak"]["decisions"] == 12345
    assert merged["runs"][merged["parts"]["soak"]["run"]]["commit"] == "bbb"
    assert merged["runs"][merged["parts"]["powercut"]["run"]]["commit"] == "aaa"
    partial = copy.deepcopy(first)
    del partial["restarts"]
    with pytest.raises(tool.ReliabilityDocError, match="restarts"):
        tool.merge([partial])
    undescribed = copy.deepcopy(first)
    del undescribed["commit"]
    with pytest.raises(tool.ReliabilityDocError, match="commit"):
        tool.merge([undescribed])


def test_a_hand_edit_is_refused(tmp_path: Path, stored) -> None:
    md = tmp_path / "reliability.md"
    js = tmp_path / "summary.json"
    js.write_text(json.dumps(stored))
    text = MD.read_text()
    n = str(stored["parts"]["powercut"]["cuts"])
    md.write_text(text.replace(f"- cuts: {n} ", f"- cuts: {n}0 ", 1))
    bad = _run("--json", str(js), "--md", str(md), "check")
    assert bad.returncode == 1 and "differs" in bad.stderr
    md.write_text(text)
    assert _run("--json", str(js), "--md", str(md), "check").returncode == 0
