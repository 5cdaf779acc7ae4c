"""Enrolment binds only cards the gate can accept, refusing the rest at the time
it is done (the real ``doorpi`` CLI in a subprocess, real SQLite, and for taps
the session's real pcscd with a vpcd virtual card)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

RANDOM = "08a1b2c3"  # ISO/IEC 14443-3 single-size random ID: a phone


def make_cli(tmp_path: Path, extra: str = ""):
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "data"}"\n'
        f"[pin]\nopslimit = 1\nmemlimit_kib = 8192\n{extra}"
    )

    def run(*args: str, ok: bool | None = True, timeout: float = 60):
        p = subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert "Traceback" not in p.stderr, p.stderr
        if ok is not None:
            assert (p.returncode == 0) == ok, p.stderr
        return p

    run("resident", "add", "Ann Lee")
    run.cfg = cfg  # type: ignore[attr-defined]
    return run


def cards_of(cli) -> int:
    return len(json.loads(cli("resident", "show", "1", "--json").stdout)["cards"])


def test_a_typed_random_uid_is_refused_naming_the_resident(tmp_path):
    cli = make_cli(tmp_path, "[reader]\nlegacy_uid = true\n")
    err = cli("card", "enroll", "1", "--uid", "08:A1:B2:C3", ok=False).stderr
    assert err.count("\n") == 1
    assert "resident 1 (Ann Lee): --uid: 08a1b2c3 is a random ID (ISO/IEC 14443-3)" in err
    assert "enrol a card" in err and cards_of(cli) == 0
    assert "bound to resident 1" in cli("card", "enroll", "1", "--uid", "08a1b2c3d4e5f6").stdout


def test_a_typed_uid_on_a_secure_only_gate_is_bound_with_a_warning(tmp_path):
    cli = make_cli(tmp_path)  # the shipped default: secure cards only
    p = cli("card", "enroll", "1", "--uid", "04a1b2c3d4e5f6")
    assert "bound to resident 1" in p.stdout
    assert (
        "WARNING: card 04a1b2c3d4e5f6 is bound, but this gate accepts secure cards only" in p.stderr
    )
    assert "(reader.legacy_uid = false)" in p.stderr and "no key for it" in p.stderr
    (tmp_path / "b").mkdir()
    legacy = make_cli(tmp_path / "b", "[reader]\nlegacy_uid = true\n")
    assert legacy("card", "enroll", "1", "--uid", "04a1b2c3d4e5f6").stderr == ""


def test_a_typed_uid_after_the_changeover_window_warns_naming_its_end(tmp_path):
    cli = make_cli(tmp_path, '[reader]\nlegacy_uid = true\nlegacy_uid_until = "2020-01-31"\n')
    err = cli("card", "enroll", "1", "--uid", "04a1b2c3d4e5f6").stderr
    assert "reader.legacy_uid_until = 2020-01-31 has passed" in err


def _enrol_by_tap(cfg: Path, vcard, uid: str) -> subprocess.CompletedProcess:
    """``doorpi card enroll 1`` waiting at the reader; the card taps until it ends."""
    card = vcard(uid)
    proc = subprocess.Popen(
        [sys.executable, "-m", "doorpi", "--config", str(cfg), "card", "enroll", "1",
         "--timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "tap the card on the reader ...": the reader runs
    for _ in range(10):
        if proc.poll() is not None:
            break
        card.tap(1.2)
        time.sleep(0.5)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, first + err)


def test_a_tapped_uid_only_card_on_a_secure_only_gate_is_refused(tmp_path, pcsc, vcard):
    cli = make_cli(tmp_path)
    p = _enrol_by_tap(cli.cfg, vcard, "04a1b2c3d4e5f6")
    assert p.returncode != 0
    assert "not a secure card (UID-only cards are off: reader.legacy_uid); not bound" in p.stderr
    assert cards_of(cli) == 0


def test_a_tapped_phone_is_refused_and_a_card_is_bound(tmp_path, pcsc, vcard):
    cli = make_cli(tmp_path, "[reader]\nlegacy_uid = true\n")
    p = _enrol_by_tap(cli.cfg, vcard, RANDOM)
    assert p.returncode != 0
    assert "resident 1 (Ann Lee): 08a1b2c3 is a random ID (ISO/IEC 14443-3)" in p.stderr
    assert cards_of(cli) == 0
    vcard_uid = "04a1b2c3d4e5f6"
    p = _enrol_by_tap(cli.cfg, vcard, vcard_uid)
    assert p.returncode == 0 and "bound to resident 1" in p.stdout, p.stderr
    assert cards_of(cli) == 1


@pytest.mark.parametrize("uid", ["08000000", "08ffffff"])
def test_random_uid_bounds_of_the_rule(tmp_path, uid):
    cli = make_cli(tmp_path, "[reader]\nlegacy_uid = true\n")
    assert "is a random ID" in cli("card", "enroll", "1", "--uid", uid, ok=False).stderr
    assert "bound" in cli("card", "enroll", "1", "--uid", "09" + uid[2:]).stdout


def test_enroll_with_no_pcscd_names_pcscd_not_the_card(tmp_path, monkeypatch):
    """pcscd absent (PC/SC pointed at a socket nobody serves): said at once, with how
    to check, instead of "no card was tapped" after the whole timeout."""
    cli = make_cli(tmp_path)
    monkeypatch.setenv("PCSCLITE_CSOCK_NAME", str(tmp_path / "no-pcscd.comm"))
    start = time.monotonic()
    p = cli("card", "enroll", "1", "--timeout", "20", ok=False)
    assert time.monotonic() - start < 15, "waited out the timeout"
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "pcscd (the PC/SC service) is not answering (pcscd not running)" in lines[0]
    assert "systemctl status pcscd" in lines[0] and "not bound" in lines[0]
    assert "tapped" not in p.stderr and "tap the card" not in p.stderr
    assert cards_of(cli) == 0


def test_enroll_with_no_matching_reader_names_the_reader(tmp_path, pcsc):
    cli = make_cli(tmp_path, '[reader]\nname = "ACR1252"\n')
    start = time.monotonic()
    p = cli("card", "enroll", "1", "--timeout", "20", ok=False)
    assert time.monotonic() - start < 15, "waited out the timeout"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "no card reader matching reader.name 'ACR1252' is attached" in lines[0]
    assert "doorpi selftest" in lines[0] and "tapped" not in lines[0]
    assert cards_of(cli) == 0


def test_enroll_timeout_has_a_help_text(tmp_path):
    cli = make_cli(tmp_path)
    out = cli("card", "enroll", "--help").stdout
    assert "seconds to wait for the tap" in " ".join(out.split())
