"""Messages a resident's admin or an installer sees from the device CLI name
what and where, on one line, with no traceback: the resident a PIN was for, the
config file actually checked. Real `doorpi` subprocesses on real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.cli import DEFAULT_CONFIG


def doorpi(*args: str, stdin: str = "", env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    p = subprocess.run([sys.executable, "-m", "doorpi", *args], input=stdin, capture_output=True,
                       text=True, timeout=60, env=env)  # fmt: skip
    assert "Traceback" not in p.stdout + p.stderr
    return p


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "gate.toml"
    p.write_text(
        f'[site]\ndata_dir = "{tmp_path / "data"}"\n[pin]\nopslimit = 1\nmemlimit_kib = 8192\n'
    )
    assert doorpi("--config", str(p), "resident", "add", "Wang Xiaoming").returncode == 0
    return p


@pytest.mark.parametrize(
    "typed,why",
    [
        ("٢٤٦٨", "only the digits 0-9 a keypad has"),  # Arabic-Indic digits
        ("२४६८", "only the digits 0-9 a keypad has"),  # Devanagari digits
        ("24a8", "only the digits 0-9 a keypad has"),
        ("24", "a PIN has 4 to 8 digits"),
    ],
)
def test_pin_set_names_the_resident_and_what_was_wrong(cfg: Path, typed: str, why: str) -> None:
    p = doorpi("--config", str(cfg), "pin", "set", "1", "--stdin", stdin=typed + "\n")
    assert p.returncode == 2 and p.stdout == ""
    line = p.stderr.strip()
    assert line == f"doorpi: PIN for Wang Xiaoming (resident 1): {why}; nothing changed"
    assert typed not in line  # never the PIN itself
    assert "PIN: none" in doorpi("--config", str(cfg), "resident", "show", "1").stdout


def test_duress_pin_names_the_resident_too(cfg: Path) -> None:
    p = doorpi("--config", str(cfg), "duress", "set", "1", "--stdin", stdin="٢٤٦٨\n")
    assert p.returncode == 2
    assert p.stderr.strip() == (
        "doorpi: duress PIN for Wang Xiaoming (resident 1): only the digits 0-9 a keypad has; "
        "nothing changed"
    )


def test_config_check_names_the_file_it_checked(tmp_path: Path) -> None:
    missing = tmp_path / "site" / "north-gate.toml"
    p = doorpi("--config", str(missing), "config", "check")
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith(f"doorpi: {missing}: no such file")
    assert f"doorpi config default > {missing}" in p.stderr
    assert "data/doorpi.toml" not in p.stderr


def test_config_check_names_the_default_it_resolved(tmp_path: Path) -> None:
    """No --config, no $DOORPI_CONFIG: the message names /etc/doorpi/doorpi.toml and
    how to name another (this machine has no gate config there)."""
    assert not Path(DEFAULT_CONFIG).exists(), f"{DEFAULT_CONFIG} exists on this machine"
    env = {k: v for k, v in os.environ.items() if k != "DOORPI_CONFIG"}
    p = doorpi("config", "check", env=env)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith(f"doorpi: {DEFAULT_CONFIG}: no such file")
    assert f"> {DEFAULT_CONFIG}" in p.stderr and "--config FILE names another" in p.stderr
    env["DOORPI_CONFIG"] = str(tmp_path / "env.toml")
    p = doorpi("config", "check", env=env)
    assert p.stderr.startswith(f"doorpi: {tmp_path / 'env.toml'}: no such file")
    assert "data/doorpi.toml" not in p.stderr


def test_the_shipped_example_the_hint_names_is_a_valid_config(tmp_path: Path) -> None:
    """Following the hint works: `config default > FILE` then `config check` on it."""
    target = tmp_path / "doorpi.toml"
    out = doorpi("config", "default").stdout
    text = out.replace('data_dir = "/var/lib/doorpi"', f'data_dir = "{tmp_path / "data"}"')
    assert text != out
    target.write_text(text)
    p = doorpi("--config", str(target), "config", "check")
    assert p.returncode == 0 and f"{target}: ok" in p.stdout, p.stderr


def test_duress_pin_equal_to_the_own_pin_names_the_resident(cfg: Path) -> None:
    assert (
        doorpi("--config", str(cfg), "pin", "set", "1", "--stdin", stdin="2468\n").returncode == 0
    )
    p = doorpi("--config", str(cfg), "duress", "set", "1", "--stdin", stdin="２４６８\n")
    assert p.returncode == 2 and p.stderr.strip() == (
        "doorpi: duress PIN for Wang Xiaoming (resident 1): must differ from their own PIN; "
        "nothing changed"
    )


def test_a_pin_equal_to_the_duress_pin_is_refused_the_other_way_round_too(cfg: Path) -> None:
    """A second newcomer trial: duress 1357, then `pin set` to 1357 was taken, and the
    duress PIN then opened as the PIN and never raised the alarm."""
    run = ("--config", str(cfg))
    assert doorpi(*run, "pin", "set", "1", "--stdin", stdin="2468\n").returncode == 0
    assert doorpi(*run, "duress", "set", "1", "--stdin", stdin="１３５７\n").returncode == 0
    p = doorpi(*run, "pin", "set", "1", "--stdin", stdin="1357\n")
    assert p.returncode == 2 and p.stderr.strip() == (
        "doorpi: PIN for Wang Xiaoming (resident 1): must differ from their duress PIN; "
        "nothing changed"
    )
    assert doorpi(*run, "pin", "set", "1", "--stdin", stdin="9753\n").returncode == 0


def test_an_unknown_resident_says_where_to_look(cfg: Path) -> None:
    p = doorpi("--config", str(cfg), "pin", "clear", "7")
    assert p.returncode == 2
    assert p.stderr.strip() == "doorpi: no resident 7 here (`doorpi resident list` shows who is)"


def test_log_refuses_an_unknown_kind_naming_the_kinds(cfg: Path) -> None:
    p = doorpi("--config", str(cfg), "log", "--kind", "nosuch")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == (
        "doorpi: --kind nosuch: no such record kind in this gate's log (kinds in it: admin)"
    )
    # A kind the gate writes but this log has none of yet is an empty answer, not an error.
    quiet = doorpi("--config", str(cfg), "log", "--kind", "alarm")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    admin = doorpi("--config", str(cfg), "log", "--kind", "admin")
    assert admin.returncode == 0 and "resident_added" in admin.stdout
