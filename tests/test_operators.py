"""Who the admin is (law notes F21): admin actions name an operator who proved
it with a passphrase on the device; $LOGNAME is never taken for an identity.

Real subprocess runs of the `doorpi` CLI on a real data directory.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.operators import OperatorError, OperatorStore

PASS = "correct horse battery"


@pytest.fixture
def cli(tmp_path):
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "data"}"\ncontroller = "Sunny Co."\n'
        'contact = "+86 10 5555 0100"\n[pin]\nopslimit = 1\nmemlimit_kib = 8192\n'
        "[face]\nenabled = true\n"
    )
    (tmp_path / "pass").write_text(PASS + "\n")
    (tmp_path / "wrong").write_text("not the passphrase\n")

    def run(
        *args: str, login: str = "someone_else", stdin: str = ""
    ) -> subprocess.CompletedProcess:
        env = {**os.environ, "LOGNAME": login, "USER": login, "LNAME": login, "USERNAME": login}
        env.pop("DOORPI_OPERATOR", None)
        return subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
            input=stdin, capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip

    run.data = tmp_path / "data"  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


def audit(data: Path) -> list[dict]:
    conn = sqlite3.connect(data / "doorpi.db")
    try:
        return [
            json.loads(d) | {"kind": k} for k, d in conn.execute("SELECT kind, data FROM audit")
        ]
    finally:
        conn.close()


def consents(data: Path) -> list[tuple]:
    conn = sqlite3.connect(data / "doorpi.db")
    try:
        return conn.execute("SELECT confirmed_by FROM face_consents").fetchall()
    finally:
        conn.close()


def _pia(run) -> None:
    pia = run.tmp / "pia.toml"
    pia.write_text('purpose = "Open the gate for residents who choose face; nothing else."\n'
                   'necessity = "Convenience; card and PIN stay at every door."\n'
                   'impact = "Leak of templates of up to 800 residents."\n'
                   'measures = "Separate consent, on-device encryption, retention."\n')  # fmt: skip
    r = run("--operator", "li", "--passphrase-file", str(run.tmp / "pass"), "pia", "record",
            "--file", str(pia), "--author", "DPO Li")  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_logname_is_not_an_identity(cli):
    """The issue's example: `LOGNAME=someone_else doorpi consent record 1 --yes`."""
    r = cli("resident", "add", "Alice Wang")
    assert r.returncode == 0, r.stderr
    by = [a["by"] for a in audit(cli.data) if a["kind"] == "admin"]
    assert by == [f"unauthenticated:uid={os.getuid()}"]  # no operator yet: the real uid
    r = cli("consent", "record", "1", "--yes")
    assert r.returncode == 2 and "needs an authenticated operator" in r.stderr
    assert consents(cli.data) == []

    r = cli("operator", "add", "li", "--new-passphrase-file", str(cli.tmp / "pass"))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((cli.data / "operators.json").stat().st_mode) == 0o600
    _pia(cli)
    for argv, why in (
        ([], "give --operator NAME"),
        (["--operator", "li", "--passphrase-file", str(cli.tmp / "wrong")], "wrong passphrase"),
        (["--operator", "someone_else", "--passphrase-file", str(cli.tmp / "pass")],
         "unknown operator"),
    ):  # fmt: skip
        r = cli(*argv, "consent", "record", "1", "--yes")
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert consents(cli.data) == []
    failed = [a for a in audit(cli.data) if a["kind"] == "admin_auth_failed"]
    assert [f["operator"] for f in failed] == ["li", "someone_else"]

    r = cli("--operator", "li", "--passphrase-file", str(cli.tmp / "pass"),
            "consent", "record", "1", "--yes")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert consents(cli.data) == [("operator:li",)]
    rec = [a for a in audit(cli.data) if a.get("action") == "consent_record"]
    assert rec[0]["by"] == "operator:li"
    assert "someone_else" not in json.dumps([a for a in audit(cli.data)
                                             if a["kind"] != "admin_auth_failed"])  # fmt: skip
    # The passphrase on standard input works as well (--passphrase-file -).
    r = cli("--operator", "li", "--passphrase-file", "-", "resident", "disable", "1",
            stdin=PASS + "\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    # Reading is no admin action: no sign-in.
    assert cli("resident", "list").returncode == 0


def test_no_passphrase_given_is_said_not_called_a_wrong_one(cli):
    """Seen in a newcomer's trial: with no terminal (a script, cron) and no
    --passphrase-file, an empty standard input was reported as "unknown operator or
    wrong passphrase" although nothing was asked; nor is it a failed sign-in to audit."""
    assert (
        cli("operator", "add", "li", "--new-passphrase-file", str(cli.tmp / "pass")).returncode == 0
    )
    (cli.tmp / "empty").write_text("")
    for argv, where in (
        ([], "no passphrase: standard input (no terminal to ask on) was empty"),
        (["--passphrase-file", "-"], "no passphrase: standard input was empty"),
        (["--passphrase-file", str(cli.tmp / "empty")],
         f"no passphrase: the file {cli.tmp / 'empty'} was empty"),
    ):  # fmt: skip
        r = cli("--operator", "li", *argv, "resident", "add", "Bo")
        assert r.returncode == 2 and where in r.stderr, r.stderr
        assert "wrong passphrase" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert [a for a in audit(cli.data) if a["kind"] == "admin_auth_failed"] == []
    # An empty line is a passphrase typed (wrong here), not a missing one.
    r = cli("--operator", "li", "resident", "add", "Bo", stdin="\n")
    assert r.returncode == 2 and "wrong passphrase" in r.stderr, r.stderr


def test_once_an_operator_exists_every_admin_action_signs_in(cli):
    assert (
        cli("operator", "add", "li", "--new-passphrase-file", str(cli.tmp / "pass")).returncode == 0
    )
    for argv in (["resident", "add", "Bob"], ["operator", "add", "mallory",
                 "--new-passphrase-file", str(cli.tmp / "pass")], ["keys", "init"],
                 ["consent", "report", "1"]):  # fmt: skip
        r = cli(*argv)
        assert r.returncode == 2 and "--operator" in r.stderr, (argv, r.stderr)
    sign_in = ["--operator", "li", "--passphrase-file", str(cli.tmp / "pass")]
    r = cli(*sign_in, "operator", "add", "wang", "--new-passphrase-file", str(cli.tmp / "pass"))
    assert r.returncode == 0, r.stderr
    added = [a for a in audit(cli.data) if a.get("action") == "operator_added"]
    assert [(a["operator"], a["by"]) for a in added] == [
        ("li", f"unauthenticated:uid={os.getuid()}"), ("wang", "operator:li")]  # fmt: skip
    assert cli("operator", "list").stdout.split() == ["li", "wang"]
    assert cli(*sign_in, "operator", "remove", "wang").returncode == 0
    r = cli(*sign_in, "operator", "remove", "li")
    assert r.returncode == 2 and "last operator" in r.stderr


def test_a_lost_operators_file_is_a_fault_not_a_fresh_start(cli):
    assert (
        cli("operator", "add", "li", "--new-passphrase-file", str(cli.tmp / "pass")).returncode == 0
    )
    (cli.data / "operators.json").unlink()
    r = cli("resident", "add", "Bob")
    assert r.returncode == 2 and "operators.json: missing" in r.stderr
    r = cli("operator", "add", "mallory", "--new-passphrase-file", str(cli.tmp / "pass"))
    assert r.returncode == 2 and "restore it" in r.stderr
    (cli.data / "operators.json").write_text("{not json")
    os.chmod(cli.data / "operators.json", 0o600)
    r = cli("resident", "add", "Bob")
    assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr
    os.chmod(cli.data / "operators.json", 0o644)
    r = cli("resident", "add", "Bob")
    assert r.returncode == 2 and "readable by others" in r.stderr


def test_operator_store_rules(tmp_path):
    ops = OperatorStore(tmp_path)
    with pytest.raises(OperatorError, match="10 to 1024"):
        ops.add("li", "short", 0.0, by="t")
    with pytest.raises(OperatorError, match="operator name"):
        ops.add("Li Wei; rm", PASS, 0.0, by="t")
    ops.add("li", PASS, 0.0, by="t")
    with pytest.raises(OperatorError, match="already exists"):
        ops.add("li", PASS, 0.0, by="t")
    assert ops.verify("li", PASS).label == "operator:li"
    with pytest.raises(OperatorError, match="unknown operator or wrong passphrase"):
        ops.verify("li", PASS + "x")
    assert PASS not in (tmp_path / "operators.json").read_text()
