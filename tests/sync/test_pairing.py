"""Issue #15, pairing: `doorpi admin gate add` registers a gate only against its full
fingerprint or an explicit confirmation, and never a key that its file name
contradicts. Real `doorpi` processes, real key files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.sync.keys import GateIdentity, pretty


def doorpi(tmp: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "doorpi", *args, "--admin-dir", str(tmp / "admin")],
        capture_output=True, text=True, timeout=60, input=stdin,
        env={**os.environ, "DOORPI_RUNTIME_DIR": str(tmp / "run")},
    )  # fmt: skip


@pytest.fixture
def paired(tmp_path: Path) -> tuple[Path, GateIdentity]:
    assert doorpi(tmp_path, "admin", "init", "--site-name", "Test Court").returncode == 0
    gate = GateIdentity.create(tmp_path / "gate-keys", "north-gate")
    card = tmp_path / "stick" / "doorpi" / "gates" / f"{gate.fingerprint}.pub"
    card.parent.mkdir(parents=True)
    card.write_text(gate.public.to_json())
    return card, gate


def registered(tmp: Path) -> str:
    return doorpi(tmp, "admin", "gate", "list").stdout


def test_no_fingerprint_no_prompt_is_refused(tmp_path: Path, paired) -> None:
    card, _gate = paired
    p = doorpi(tmp_path, "admin", "gate", "add", str(card), stdin="")
    assert p.returncode == 2 and "confirm with --fingerprint" in p.stderr
    assert "Traceback" not in p.stderr and "north-gate" not in registered(tmp_path)


@pytest.mark.parametrize("given", ["prefix16", "prefix31", "other"])
def test_short_or_wrong_fingerprints_are_refused(tmp_path: Path, paired, given: str) -> None:
    card, gate = paired
    fp = {"prefix16": pretty(gate.fingerprint)[:19], "prefix31": gate.fingerprint[:31],
          "other": "f" * 32}[given]  # fmt: skip
    p = doorpi(tmp_path, "admin", "gate", "add", str(card), "--fingerprint", fp)
    assert p.returncode == 2 and "does not match --fingerprint" in p.stderr
    assert "north-gate" not in registered(tmp_path)


def test_a_swapped_key_is_refused_by_its_file_name(tmp_path: Path, paired) -> None:
    card, _gate = paired
    intruder = GateIdentity.create(tmp_path / "intruder-keys", "north-gate")
    card.write_text(intruder.public.to_json())  # same file name, someone else's key
    for extra in (["--yes"], ["--fingerprint", intruder.fingerprint]):
        p = doorpi(tmp_path, "admin", "gate", "add", str(card), *extra)
        assert p.returncode == 2 and "swapped key" in p.stderr, p.stderr
    assert "north-gate" not in registered(tmp_path)


@pytest.mark.parametrize("how", ["full", "dashed", "yes"])
def test_full_fingerprint_or_explicit_yes_registers(tmp_path: Path, paired, how: str) -> None:
    card, gate = paired
    extra = {"full": ["--fingerprint", gate.fingerprint.upper()],
             "dashed": ["--fingerprint", pretty(gate.fingerprint)], "yes": ["--yes"]}[how]  # fmt: skip
    p = doorpi(tmp_path, "admin", "gate", "add", str(card), *extra)
    assert p.returncode == 0, p.stderr
    assert "north-gate" in registered(tmp_path)
