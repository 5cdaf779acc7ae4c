"""`make demo` sets up what it needs, as `make test` does (README: "Both set up
what they need"): in a fresh clone the face models are built (a cached build,
seconds when warm) before the demo starts. `make -n` prints the recipes it
would run, in order, without running them."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dry_run(target: str) -> list[str]:
    p = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def _index(lines: list[str], needle: str) -> int:
    found = [i for i, ln in enumerate(lines) if needle in ln]
    assert found, f"make -n: no step with {needle!r} in {lines}"
    return found[0]


def test_make_demo_builds_the_models_before_the_demo_starts() -> None:
    lines = _dry_run("demo")
    run = _index(lines, "doorpi demo")
    assert _index(lines, "system-deps.sh") < run
    assert _index(lines, "tools/models/build.py --out models/build") < run


def test_make_demo_and_make_test_set_up_the_same_things() -> None:
    def setup(target: str) -> list[str]:
        lines = _dry_run(target)
        last = _index(lines, "doorpi demo" if target == "demo" else "ruff check")
        return lines[:last]

    assert setup("demo") == setup("test")
