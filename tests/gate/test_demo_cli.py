"""`doorpi demo` as a newcomer types it: never a gate's store, the door of --config,
feedback shown, `exit` leaves and `rex` is the exit button."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_CASE = Path(__file__).parents[2] / "examples" / "scenarios" / "card-granted.toml"


def doorpi(*args: str, stdin: str = "", cfg: Path | None = None) -> subprocess.CompletedProcess:
    pre = ["--config", str(cfg)] if cfg else []
    return subprocess.run([sys.executable, "-m", "doorpi", *pre, *args], input=stdin,
                          capture_output=True, text=True, timeout=90)  # fmt: skip


@pytest.fixture
def gate_cfg(tmp_path: Path) -> Path:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "gate"}"\n[door]\naccess = ["card+pin"]\n'
        "[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
    )
    return cfg


def _records(out: str) -> list[dict]:
    recs = []
    for line in out.splitlines():
        i = line.find('{"t"')
        if i >= 0:
            recs.append(json.loads(line[i:]))
    return recs


def test_demo_refuses_a_gates_data_dir(gate_cfg: Path) -> None:
    gate = gate_cfg.parent / "gate"
    p = doorpi("resident", "add", "Real Resident", "--keypad-id", "101", cfg=gate_cfg)
    assert p.returncode == 0, p.stderr
    db = sorted(gate.glob("*.db*"))
    before = {f: f.read_bytes() for f in db}
    for args in (["demo", "--data-dir", str(gate)],
                 ["demo", "--scenario", str(SHARED_CASE), "--data-dir", str(gate)]):  # fmt: skip
        p = doorpi(*args, stdin="card 04a1b2c3d4e5f6\nexit\n")
        assert p.returncode == 2, p.stdout + p.stderr
        assert p.stderr.startswith(f"doorpi: --data-dir {gate}: holds data the demo did not make")
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert {f: f.read_bytes() for f in db} == before
    listing = doorpi("resident", "list", cfg=gate_cfg).stdout
    assert "Alice" not in listing and "Real Resident" in listing
    # A directory the demo made is its own to reuse.
    mine = gate_cfg.parent / "demo"
    for _ in range(2):
        p = doorpi("demo", "--data-dir", str(mine), stdin="exit\n")
        assert p.returncode == 0, p.stderr


def test_demo_follows_config_shows_feedback_and_exit_leaves(gate_cfg: Path) -> None:
    p = doorpi("demo", stdin="card 04a1b2c3d4e5f6\nexit\nrex\n", cfg=gate_cfg)
    assert p.returncode == 0, p.stderr
    recs = _records(p.stdout)
    kinds = [r["event"] for r in recs]
    # card+PIN door: the card alone asks for the PIN; it does not open
    assert "factor_needed" in kinds and "relay_on" not in kinds and "access" not in kinds
    assert "feedback: pin_needed: green light blinking" in p.stdout
    # `exit` left the demo: the exit button was never pressed, `rex` never read
    assert "exit_request" not in p.stdout
    assert not [r for r in recs if r["event"] == "relay_on"]


def test_rex_is_the_exit_button(tmp_path: Path) -> None:
    p = doorpi("demo", "--data-dir", str(tmp_path / "d"), stdin="rex\nquit\n")
    assert p.returncode == 0, p.stderr
    recs = _records(p.stdout)
    assert {"granted": True, "reason": "exit_request"}.items() <= next(
        r for r in recs if r["event"] == "access"
    ).items()
    assert any(r["event"] == "relay_on" for r in recs)
    assert "feedback: granted: green light (while the door is open)" not in p.stdout  # REX: no beep


def test_a_card_that_is_not_hex_is_named_and_the_demo_goes_on(tmp_path: Path) -> None:
    """Found by a newcomer: `card zz` printed Python's fromhex() wording."""
    p = doorpi("demo", "--data-dir", str(tmp_path / "d"), stdin="card zz\nrex\nquit\n")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "card 'zz': a card UID is hex digits" in out
    assert "fromhex" not in out and "Traceback" not in out
    assert any(r["event"] == "access" for r in _records(p.stdout))  # the next command ran
