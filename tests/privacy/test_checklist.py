"""The privacy checklist (issue #14): tests/privacy/checklist.toml maps each of
the 23 requirements of ../shared/notes/law-and-standards.md to tests that exist,
every requirement has mutations that still apply to the source, every listed
test was seen failing under one of its requirement's mutations
(tests/privacy/mutation-results.json, written by tools/mutations/privacy.py),
and docs/privacy-checklist.md is what the tool renders from both."""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import pytest

from tool_support import load_tool

REPO = Path(__file__).resolve().parents[2]


tool = load_tool("mutations/privacy")
REQS = tool.load_checklist()
RESULTS = json.loads((REPO / tool.RESULTS).read_text()) if (REPO / tool.RESULTS).exists() else {}
CAUGHT = ("failed", "error")


@cache
def _defined(path: str) -> frozenset[str]:
    """Test names defined in a test file: ``name`` and ``Class::name``."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{f.name}" for f in node.body
                      if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}  # fmt: skip
    return frozenset(names)


def test_every_requirement_is_listed_once_with_tests_and_mutations():
    assert sorted(r["n"] for r in REQS) == list(range(1, 24))
    for r in REQS:
        assert r["title"].strip(), r["n"]
        assert r.get("tests"), f"requirement {r['n']} has no test"
        assert r.get("mutations"), f"requirement {r['n']} has no mutation"


@pytest.mark.parametrize("node", sorted({t for r in REQS for t in tool.tests_for(r)}))
def test_every_named_test_exists(node: str):
    path, _, name = node.partition("::")
    assert (REPO / path).is_file(), f"{path} does not exist"
    assert name.startswith("test_") or "::test_" in name, node
    assert name in _defined(path), f"{node}: no such test"


def test_every_mutation_belongs_to_its_requirement_and_still_applies():
    known = tool.by_id()
    used = [m for r in REQS for m in r["mutations"]]
    assert len(used) == len(set(used)), "a mutation listed twice"
    assert set(used) == set(known), "mutations defined but not listed, or listed but not defined"
    for r in REQS:
        for mid in r["mutations"]:
            assert known[mid].requirement == r["n"], mid
            tool.check_applies(known[mid])  # the search text is still in the source, once


def test_every_test_was_seen_failing_under_a_mutation_of_its_requirement():
    base = RESULTS.get(tool.BASELINE)
    assert base, "no baseline run: tools/mutations/privacy.py run"
    for r in REQS:
        tests = tool.tests_for(r)
        for t in tests:
            assert base["tests"].get(t) == "passed", f"{t}: not passing in the baseline run"
        for mid in r["mutations"]:
            res = RESULTS.get(mid)
            assert res is not None, f"{mid}: never run"
            assert res.get("digest") == tool.digest(tool.by_id()[mid]), f"{mid}: changed since its run"  # fmt: skip
            assert sorted(res["tests"]) == sorted(tests), f"{mid}: results are for other tests: re-run it"  # fmt: skip
            assert any(o in CAUGHT for o in res["tests"].values()), f"{mid}: no test failed"
        for t, by in tool.caught_by(RESULTS, r).items():
            assert by, f"requirement {r['n']}: {t} failed under none of {r['mutations']}"


def test_the_markdown_is_generated_from_the_checklist_and_the_results():
    md = (REPO / tool.MARKDOWN).read_text(encoding="utf-8")
    assert md == tool.render(REQS, RESULTS), "docs/privacy-checklist.md: run tools/mutations/privacy.py render"  # fmt: skip


def test_a_mutation_that_no_longer_applies_is_refused(tmp_path):
    m = tool.Mutation("x", 1, "x", "a.py", (("return 1", "return 2"),))
    (tmp_path / "a.py").write_text("def f():\n    return 1\n")
    tool.apply(tmp_path, m)
    assert (tmp_path / "a.py").read_text() == "def f():\n    return 2\n"
    with pytest.raises(tool.MutationError, match="found 0 times"):
        tool.apply(tmp_path, m)
    (tmp_path / "a.py").write_text("return 1\nreturn 1\n")
    with pytest.raises(tool.MutationError, match="found 2 times"):
        tool.check_applies(m, tmp_path)
