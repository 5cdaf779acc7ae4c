"""The running gate's faults in its runtime directory (doorpi.faults, doorpi.runtimefile).

The gate writes its active faults to ``faults.json`` (tmpfs) on every change, beside
the state table; `doorpi status` shows that file while the gate runs, so a fault the
database did not take (read-only or full partition) is still shown, and the stored
ones once the gate has stopped. Here: the file as the real FaultBoard writes it, on a
real SQLite database opened read-only, and `doorpi status` as a process of its own.
The real gate on a real read-only mount: tests/store/test_partition.py.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.faults import FILE_NAME, FaultBoard, faults_path, running_faults, stored_faults
from doorpi.runtimefile import RuntimeFileError, load_runtime, runtime_dir
from doorpi.store import Storage
from doorpi.store.db import open_readonly, set_state
from doorpi.store.health import health_path, read_health, write_health
from site_support import recorded_site

FROZEN = "card reader waits on SCardGetStatusChange (pcscd frozen or hung?)"


def ended_pid() -> int:
    """The pid of a process that has ended (not reused within a test)."""
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return int(p.stdout)


@pytest.fixture
def db(tmp_path: Path):
    store = Storage.open(tmp_path / "data")
    yield store.db
    store.close()


@pytest.fixture
def readonly_db(tmp_path: Path):
    """The gate's database opened read-only: every write is refused by SQLite itself,
    as on a read-only data partition."""
    Storage.open(tmp_path / "data").close()
    db = open_readonly(tmp_path / "data" / "doorpi.db")
    yield db
    db.conn.close()


def test_runtime_dir_order(monkeypatch) -> None:
    monkeypatch.delenv("DOORPI_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    assert runtime_dir() == Path("/run/doorpi")
    assert faults_path() == Path("/run/doorpi") / FILE_NAME == Path("/run/doorpi/faults.json")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/from-systemd")
    assert faults_path() == Path("/run/from-systemd/faults.json")
    assert health_path() == Path("/run/from-systemd/storage-health.json")
    monkeypatch.setenv("DOORPI_RUNTIME_DIR", "/tmp/tests")
    assert faults_path() == Path("/tmp/tests/faults.json")


def test_the_board_writes_every_change_with_its_pid_and_first_raised_stamp(db, tmp_path):
    mono = [1000.0]
    board = FaultBoard(db, mono=lambda: mono[0])
    path = tmp_path / "run" / "faults.json"
    board.set("exit_button", "pressed for over 30 s (stuck?)", 1_700_000_000.0)
    board.publish(path)  # what was raised before is in the file at once
    doc = json.loads(path.read_text())
    assert doc["pid"] == os.getpid() and isinstance(doc["updated"], float)
    assert doc["faults"] == {"exit_button": {"detail": "pressed for over 30 s (stuck?)",
                                             "since": 1_700_000_000.0,
                                             "raised_monotonic": 1000.0}}  # fmt: skip
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    mono[0] = 1010.5
    board.set("card reader", "card reader thread not answering (pcscd frozen or hung?)", 2e9)
    mono[0] = 1020.0
    board.set("card reader", FROZEN, 2e9 + 10)  # the line changes: still the same fault
    faults = running_faults(path)
    assert faults is not None
    assert faults["card reader"] == {"detail": FROZEN, "since": 2e9 + 10,
                                     "raised_monotonic": 1010.5}  # fmt: skip
    assert board.clear("card reader") and "card reader" not in running_faults(path)
    mono[0] = 1030.0
    board.set("card reader", FROZEN, 2e9 + 20)  # raised anew: a new stamp
    assert running_faults(path)["card reader"]["raised_monotonic"] == 1030.0
    # The state table keeps its copy as before (status after the gate stopped).
    assert set(stored_faults(db)) == {"exit_button", "card reader"}
    assert "raised_monotonic" not in stored_faults(db)["card reader"]
    board.unpublish()
    assert not path.exists() and running_faults(path) is None
    board.clear("exit_button")  # after unpublish: the database only
    assert not path.exists()


def test_a_read_only_database_leaves_the_file_fresh(readonly_db, tmp_path, caplog):
    """The compound fault: the partition refuses the stored copy, the file is the truth."""
    caplog.set_level(logging.ERROR)
    board = FaultBoard(readonly_db)
    path = tmp_path / "run" / "faults.json"
    board.publish(path)
    assert board.set("card reader", FROZEN, 1.0)
    assert "cannot save device faults" in caplog.text
    assert stored_faults(readonly_db) == {}
    assert running_faults(path)["card reader"]["detail"] == FROZEN


def test_a_file_that_cannot_be_written_is_logged_once_and_never_stops_the_gate(db, tmp_path,
                                                                               caplog):  # fmt: skip
    caplog.set_level(logging.INFO)
    path = tmp_path / "run" / "faults.json"
    board = FaultBoard(db)
    board.publish(path)
    assert path.exists()
    (tmp_path / "run" / "faults.json.tmp").mkdir()  # every write now fails (EISDIR)
    for n in range(3):
        assert board.set("card reader", f"{FROZEN} {n}", 1.0)  # the gate goes on
    errors = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(errors) == 1 and str(path) in errors[0].getMessage()
    # The stale file is gone: no reader takes it for the gate's word.
    assert not path.exists() and running_faults(path) is None
    assert stored_faults(db)["card reader"]["detail"] == f"{FROZEN} 2"
    (tmp_path / "run" / "faults.json.tmp").rmdir()
    board.clear("card reader")
    assert running_faults(path) == {}
    assert f"{path} written again" in caplog.text
    (tmp_path / "run" / "faults.json.tmp").mkdir()
    board.set("card reader", FROZEN, 1.0)  # failing again: logged again, once
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 2


def test_a_file_whose_gate_has_ended_is_no_gate(tmp_path):
    path = tmp_path / "faults.json"
    assert running_faults(path) is None and load_runtime(path) is None
    entry = {"detail": FROZEN, "since": 1.0, "raised_monotonic": 2.0}
    path.write_text(json.dumps({"pid": ended_pid(), "faults": {"card reader": entry}}))
    assert running_faults(path) is None
    path.write_text(json.dumps({"pid": os.getpid(), "faults": {"card reader": entry}}))
    assert running_faults(path) == {"card reader": entry}
    path.write_text(json.dumps({"pid": 0, "faults": {}}))  # 0: a process group, not a gate
    assert running_faults(path) is None


@pytest.mark.parametrize("raw", [b"{", b"\xff", b"[]", b'{"pid": "12"}', b'{"faults": {}}',
                                 b'{"pid": PID}', b'{"pid": PID, "faults": {"x": "y"}}',
                                 b'{"pid": PID, "faults": {"x": {"detail": "d", "since": 1}}}',
                                 b'{"pid": PID, "faults": {"x": {"detail": "d", "since": 1, '
                                 b'"raised_monotonic": Infinity}}}'])  # fmt: skip
def test_a_garbled_file_is_one_line_naming_it(tmp_path, raw):
    path = tmp_path / "faults.json"
    path.write_bytes(raw.replace(b"PID", str(os.getpid()).encode()))
    with pytest.raises(RuntimeFileError) as got:
        running_faults(path)
    line = str(got.value)
    assert line.startswith(f"{path}: garbled (") and "\n" not in line


def test_the_health_file_shares_the_rules(tmp_path):
    path = tmp_path / "storage-health.json"
    write_health(path, {"degraded": "x", "audit_pending": 2})
    assert read_health(path) == {"degraded": "x", "audit_pending": 2, "pid": os.getpid()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.write_text(json.dumps({"pid": ended_pid(), "degraded": "x"}))
    assert read_health(path) is None
    path.write_text("{garbled")
    assert read_health(path) is None


# ------------------------------------------------------------------ doorpi status


def status(cfg: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOORPI_RUNTIME_DIR": str(run_dir)}
    env.pop("RUNTIME_DIRECTORY", None)
    return subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "status", *extra],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip


def test_status_shows_the_running_gate_s_faults_else_the_stored_ones(tmp_path):
    site = recorded_site(tmp_path / "data")
    run_dir = tmp_path / "run"
    try:
        cfg = tmp_path / "doorpi.toml"
        cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "data"}"\n')
        site.gate.faults.publish(run_dir / "faults.json")  # as `doorpi run` does
        site.gate.faults.set("card reader", FROZEN, 1.0)
        # What the database holds is older (a partition that took no write since):
        set_state(site.storage.db, "device_faults",
                  json.dumps({"usb-keypad": {"detail": "stale", "since": 0}}))  # fmt: skip
        p = status(cfg, run_dir, "--json")
        assert p.returncode == 0, p.stderr
        info = json.loads(p.stdout)
        assert info["device_faults"] == {"card reader": FROZEN}
        assert info["device_faults_from"] == "the running gate"
        assert f"device fault: card reader: {FROZEN}" in info["warnings"]
        text = status(cfg, run_dir).stdout
        assert f"WARNING: device fault: card reader: {FROZEN}" in text and "stale" not in text
        # The gate has ended (its pid gone): the stored faults, said so.
        doc = json.loads((run_dir / "faults.json").read_text())
        (run_dir / "faults.json").write_text(json.dumps({**doc, "pid": ended_pid()}))
        info = json.loads(status(cfg, run_dir, "--json").stdout)
        assert info["device_faults"] == {"usb-keypad": "stale"}
        assert info["device_faults_from"] == "the database (as the gate last stored them)"
        # A garbled file: named in one line, the stored faults shown.
        (run_dir / "faults.json").write_text("{garbled")
        info = json.loads(status(cfg, run_dir, "--json").stdout)
        assert info["device_faults"] == {"usb-keypad": "stale"}
        assert any(w.startswith(f"{run_dir / 'faults.json'}: garbled (") and
                   w.endswith(": device faults shown as last stored") for w in info["warnings"])  # fmt: skip
    finally:
        site.close()


def test_status_without_a_database_still_shows_the_gate_s_faults(tmp_path, db):
    """The database cannot be opened at all (here: no data folder): exit 2 names that,
    and the running gate's faults come from its file."""
    board = FaultBoard(db)
    run_dir = tmp_path / "run"
    board.publish(run_dir / "faults.json")
    board.set("card reader", FROZEN, 1.0)
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "nowhere"}"\n')
    p = status(cfg, run_dir)
    assert p.returncode == 2 and "database: FAULT: " in p.stdout
    assert f"WARNING: device fault: card reader: {FROZEN}" in p.stdout
    p = status(cfg, run_dir, "--json")
    assert f"device fault: card reader: {FROZEN}" in json.loads(p.stdout)["warnings"]
