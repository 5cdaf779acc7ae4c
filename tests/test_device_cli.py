"""The admin CLI on the device, run as a real process against real files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def cli(tmp_path):
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "data"}"\n'
        "[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
        '[schedules]\nworkdays = ["mon-fri 07:00-19:00"]\n'
    )

    def run(*args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if ok:
            assert p.returncode == 0, p.stderr
        return p

    run.data = tmp_path / "data"  # type: ignore[attr-defined]
    return run


def test_resident_card_pin_roundtrip(cli):
    out = cli("resident", "add", "Alice Wang", "--unit", "3-101", "--keypad-id", "101",
              "--valid-until", "2030-06-30", "--schedule", "workdays").stdout  # fmt: skip
    assert "resident 1 added" in out
    assert (
        "bound to resident 1" in cli("card", "enroll", "1", "--uid", "04:a1:b2:c3:d4:e5:f6").stdout
    )
    assert "PIN set" in cli("pin", "set", "1", "--stdin", stdin="2468\n").stdout
    info = json.loads(cli("resident", "show", "1", "--json").stdout)
    assert info["has_pin"] and info["schedule"] == "workdays" and len(info["cards"]) == 1
    listing = json.loads(cli("resident", "list", "--json").stdout)
    assert [r["name"] for r in listing] == ["Alice Wang"]
    status = json.loads(cli("status", "--json").stdout)
    assert status["residents"] == 1 and status["cards"] == 1 and status["pins"] == 1
    assert status["database"] == "ok"
    log = cli("log", "--json").stdout.splitlines()
    actions = [json.loads(line)["action"] for line in log]
    assert actions == ["resident_added", "card_enrolled", "pin_set"]
    assert "chain intact" in cli("audit", "verify").stdout
    for typed in ("%%%%%%%%", "________"):  # a LIKE pattern removed every card
        p = cli("card", "remove", "1", typed, ok=False)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert "8-character hex reference" in p.stderr
    assert json.loads(cli("status", "--json").stdout)["cards"] == 1
    cli("resident", "remove", "1")
    assert json.loads(cli("status", "--json").stdout)["cards"] == 0


@pytest.mark.parametrize(
    "args,stdin,fragment",
    [
        (("resident", "add", "Bo", "--schedule", "nights"), "", "unknown schedule 'nights'"),
        (("resident", "add", "Bo", "--valid-until", "June"), "", "--valid-until: 'June' is not a date"),
        (("card", "enroll", "7", "--uid", "04a1"), "", "no resident 7"),
        (("pin", "set", "1", "--stdin"), "1111\n", "repeated digit"),
        (("pin", "set", "1", "--stdin"), "12\n", "4 to 8 digits"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(cli, args, stdin, fragment):
    cli("resident", "add", "Alice")
    p = cli(*args, stdin=stdin, ok=False)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and fragment in p.stderr


def test_card_uid_is_validated_and_not_reused(cli):
    cli("resident", "add", "Alice")
    cli("resident", "add", "Bo")
    assert "is not hex" in cli("card", "enroll", "1", "--uid", "zz", ok=False).stderr
    assert "4, 7 or 10 bytes" in cli("card", "enroll", "1", "--uid", "0102", ok=False).stderr
    cli("card", "enroll", "1", "--uid", "04a1b2c3")
    assert (
        "already belongs to resident 1"
        in cli("card", "enroll", "2", "--uid", "04a1b2c3", ok=False).stderr
    )


def test_audit_verify_fails_on_tampering(cli):
    cli("resident", "add", "Alice")
    cli("resident", "add", "Bo")
    db = sqlite3.connect(Path(cli.data) / "doorpi.db")  # type: ignore[attr-defined]
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET data = '{}' WHERE seq = 1")
    db.commit()
    db.close()
    p = cli("audit", "verify", ok=False)
    assert p.returncode == 2 and "TAMPERED: record 1 was altered" in p.stderr


def test_config_check_and_default(cli, tmp_path):
    assert ": ok (door" in cli("config", "check").stdout
    text = cli("config", "default").stdout
    assert "[door]" in text and "fail-secure" in text


def test_corrupt_database_is_named_and_left_alone(cli):
    cli("resident", "add", "Alice")
    dbfile = Path(cli.data) / "doorpi.db"  # type: ignore[attr-defined]
    for extra in ("-wal", "-shm"):
        Path(str(dbfile) + extra).unlink(missing_ok=True)
    dbfile.write_bytes(b"garbage" * 1000)
    before = dbfile.read_bytes()
    p = cli("status", ok=False)
    assert p.returncode == 2 and "doorpi.db: not a usable SQLite database" in p.stdout
    assert dbfile.read_bytes() == before
