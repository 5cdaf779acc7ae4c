"""Human-facing commands, run as a person would: no reprs, local times, aligned
Chinese names, expired residents shown as expired."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from doorpi.cli import human
from human_output import assert_human


def test_resident_and_status_output_is_for_people(tmp_path: Path) -> None:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\n[pin]\nopslimit = 1\n'
                   "memlimit_kib = 8192\n")  # fmt: skip

    def run(*args: str, stdin: str = "") -> str:
        p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
                           input=stdin, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 0, p.stderr
        return p.stdout

    run("resident", "add", "王小明", "--unit", "3-101", "--keypad-id", "101")
    run("resident", "add", "Alice Wang", "--unit", "5-202", "--valid-until", "2024-01-31")
    run("card", "enroll", "1", "--uid", "04a1b2c3d4e5f6")
    run("pin", "set", "1", "--stdin", stdin="2468\n")
    listing = run("resident", "list")
    assert_human(listing)
    lines = listing.splitlines()
    # the unit column starts at the same terminal cell on every line
    assert len({human.width(line[: line.index(u)]) for line, u in
                zip(lines, ("unit", "3-101", "5-202"), strict=True)}) == 1, listing  # fmt: skip
    assert lines[1].rstrip().endswith("active") and lines[2].rstrip().endswith("expired")
    shown = run("resident", "show", "2")
    assert_human(shown)
    assert "state: expired" in shown and "PIN: none" in shown
    assert "PIN: set" in run("resident", "show", "1")
    status = run("status")
    assert_human(status)
    assert "expired residents: 1" in status and "clock floor: -" in status
