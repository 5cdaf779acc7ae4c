"""A read-only or full data partition, at start and while running (issue #12, part 2).

Real mounts (root only): a small tmpfs filled to the last byte, and a tmpfs
remounted read-only (the file system itself, as ext4 does after errors; a read-only
bind mount alone is a service's sandbox, not a read-only partition:
fsutil.read_only_layer). Card and PIN keep opening the door from what can be read; audit
records wait in memory and reach the disk, in order and hash-chained, once the
partition takes writes again; the cause is named in the journal and `doorpi status`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite, sim_config


@pytest.fixture(autouse=True)
def _root() -> None:
    assert os.geteuid() == 0, "mounts need root (make test runs as root)"


MONDAY_9 = 1_772_442_000.0
ALICE = {"name": "Alice", "keypad_id": "101", "cards": ["04a1b2c3d4e5f6"], "pin": "2468"}


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "part"
    mnt.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt))
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path) -> Path:
    """Write a file until the partition says ENOSPC; return it (delete it to free space)."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def readonly_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a small file system, the gate's data folder: a bind mount of it). Both take
    writes until the test calls read_only(src)."""
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir(mode=0o700)
    view.mkdir(mode=0o700)
    sh("mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(src))
    sh("mount", "--bind", str(src), str(view))
    yield src, view
    subprocess.run(["umount", "-l", str(view)], check=False)
    subprocess.run(["umount", "-l", str(src)], check=False)


def read_only(src: Path, writable: bool = False) -> None:
    """The file system under ``src`` read-only (its superblock: every mount of it), or
    writable again."""
    sh("mount", "-o", "remount,rw" if writable else "remount,ro", str(src))


def make_gate(data: Path, events: list | None = None) -> SimulatedSite:
    return SimulatedSite(sim_config({}, data), ManualClock(MONDAY_9), observers=[
        (events if events is not None else []).append])  # fmt: skip


def enrol(data: Path) -> None:
    site = make_gate(data)
    site.add_resident(ALICE)
    site.close()


def card_and_pin_open_the_door(site: SimulatedSite) -> None:
    site.strike_pin.clear_states()
    site.card("04a1b2c3d4e5f6")
    assert site.strike_pin.state is True
    site.advance(5.1)
    assert site.strike_pin.state is False
    for k in "101#2468#":
        site.key(k)
    assert site.strike_pin.state is True
    site.advance(5.1)
    assert [s.state for s in site.strike_pin.states] == [False, True, False, True, False]


def granted_in_audit(site: SimulatedSite) -> int:
    return sum(1 for r in site.storage.audit.records()
               if r.kind == "access" and r.data["granted"])  # fmt: skip


def test_read_only_partition_at_start(readonly_view, caplog):
    src, view = readonly_view
    enrol(src)
    read_only(src)
    caplog.set_level(logging.INFO)
    site = make_gate(view)
    try:
        assert site.storage.degraded == f"data partition {view} is read-only"
        assert f"data partition {view} is read-only" in caplog.text
        card_and_pin_open_the_door(site)
        q = site.storage.audit_queue
        assert q.pending >= 2 and q.cause == f"data partition {view} is read-only"
        assert not q.flush()
        read_only(src, writable=True)
        assert q.flush() and q.pending == 0
        assert site.storage.degraded == ""  # reads moved to a read-write connection
        assert granted_in_audit(site) == 2
        assert site.storage.audit.verify().ok
        # SQLite's own words, if shown at all, come after the cause.
        assert all(
            "is read-only" in line
            for line in caplog.text.splitlines()
            if "unable to open database file" in line
        )
    finally:
        site.close()


def test_full_partition_at_start(tmpfs, caplog):
    enrol(tmpfs / "data")
    filler = fill(tmpfs)
    caplog.set_level(logging.INFO)
    site = make_gate(tmpfs / "data")
    try:
        assert site.storage.degraded == f"no space left on {tmpfs / 'data'}"
        card_and_pin_open_the_door(site)
        q = site.storage.audit_queue
        assert q.pending >= 2 and "no space left" in q.cause
        filler.unlink()
        assert q.flush()
        assert granted_in_audit(site) == 2 and site.storage.audit.verify().ok
        # SQLite's own words, if shown at all, come after the cause.
        assert all(
            "no space left" in line for line in caplog.text.splitlines() if "disk I/O error" in line
        )
    finally:
        site.close()


def test_disk_full_while_running(tmpfs, caplog):
    enrol(tmpfs / "data")
    site = make_gate(tmpfs / "data")
    try:
        site.card("04a1b2c3d4e5f6")  # written at once while there is room
        assert site.storage.audit_queue.pending == 0
        filler = fill(tmpfs)
        caplog.set_level(logging.INFO)
        site.advance(5.1)
        card_and_pin_open_the_door(site)
        q = site.storage.audit_queue
        assert q.pending >= 2
        assert q.cause == f"no space left on {tmpfs / 'data'}"
        assert "cannot rollback" not in caplog.text
        assert "SQLite said: database or disk is full" in caplog.text
        with pytest.raises(sqlite3.OperationalError, match=r"^database or disk is full$"):
            site.storage.audit.append("admin", {"action": "probe"}, ts=MONDAY_9)
        assert f"audit writes deferred: no space left on {tmpfs / 'data'}" in caplog.text
        health = site.storage.health()
        assert health["audit_pending"] == q.pending and "no space left" in health["audit_cause"]
        filler.unlink()
        assert q.flush()
        assert granted_in_audit(site) == 3 and site.storage.audit.verify().ok
        seqs = [r.seq for r in site.storage.audit.records()]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    finally:
        site.close()


def test_queue_writes_in_the_background_once_space_is_back(tmpfs):
    enrol(tmpfs / "data")
    site = make_gate(tmpfs / "data")
    try:
        filler = fill(tmpfs)
        site.card("04a1b2c3d4e5f6")
        assert site.storage.audit_queue.pending
        filler.unlink()
        deadline = time.monotonic() + 10
        while site.storage.audit_queue.pending and time.monotonic() < deadline:
            time.sleep(0.1)
        assert site.storage.audit_queue.pending == 0  # the retry thread wrote them
        assert granted_in_audit(site) == 1
    finally:
        site.close()


# ------------------------------------------------------------------ the real process


def gate_files(tmp_path: Path, data: Path) -> tuple[Path, Path, dict[str, str]]:
    """(config for a gate on ``data``, its runtime folder, the environment naming it)."""
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{data}"\n[keypad]\nkind = "none"\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return cfg, run_dir, {**os.environ, "DOORPI_RUNTIME_DIR": str(run_dir)}


def test_gate_process_on_read_only_partition_serves_and_status_names_it(readonly_view, tmp_path):
    src, view = readonly_view
    enrol(src)
    read_only(src)
    cfg, run_dir, env = gate_files(tmp_path, view)
    gate = subprocess.Popen([sys.executable, "-m", "doorpi", "--config", str(cfg), "run", "--sim"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        health = run_dir / "storage-health.json"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            health.exists() and json.loads(health.read_text()).get("audit_pending")
        ):
            time.sleep(0.2)
        assert gate.poll() is None, gate.stderr.read() if gate.stderr else ""
        p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "status"],
                           env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "Traceback" not in p.stdout + p.stderr
        assert f"database: ok, read-only (data partition {view} is read-only)" in p.stdout
        assert f"WARNING: gate: data partition {view} is read-only" in p.stdout
        assert "audit record(s) waiting in memory" in p.stdout
        gate.send_signal(signal.SIGTERM)
        _out, err = gate.communicate(timeout=20)
        assert gate.returncode == 0, err
        assert f"data partition {view} is read-only" in err
        # What the disk never took is in the journal, not lost silently.
        assert "audit record not stored (gate stopping before the disk took it)" in err
        assert '"kind": "notice"' in err or "gate_started" in err
    finally:
        gate.kill()


def test_status_shows_the_gate_s_own_faults_when_the_partition_took_none(readonly_view,
                                                                          tmp_path):  # fmt: skip
    """The compound fault: the data partition is read-only, so the gate cannot store the
    faults it raises (nor clear the ones an earlier run left); `doorpi status` shows the
    running gate's own, from its runtime file, and the stored ones once it has stopped."""
    from doorpi.store import Storage
    from doorpi.store.db import set_state

    src, view = readonly_view
    enrol(src)
    store = Storage.open(src)
    set_state(store.db, "lockouts", "{garbled")  # the gate raises `lockout_state` at start
    set_state(store.db, "device_faults", json.dumps({"usb-keypad": {"detail": "gone (old)",
                                                                    "since": 1.0}}))  # fmt: skip
    store.close()
    read_only(src)
    cfg, run_dir, env = gate_files(tmp_path, view)
    faults = run_dir / "faults.json"

    def status() -> dict:
        p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "status",
                            "--json"], env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        return json.loads(p.stdout)

    gate = subprocess.Popen([sys.executable, "-m", "doorpi", "--config", str(cfg), "run", "--sim"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (faults.exists() and
                                                   "lockout_state" in faults.read_text()):  # fmt: skip
            time.sleep(0.2)
        assert gate.poll() is None, gate.stderr.read() if gate.stderr else ""
        info = status()
        assert info["database"] == f"ok, read-only (data partition {view} is read-only)"
        assert list(info["device_faults"]) == ["lockout_state"], info["device_faults"]
        assert info["device_faults"]["lockout_state"].startswith("stored lockouts unreadable")
        assert info["device_faults_from"] == "the running gate"
        gate.send_signal(signal.SIGTERM)
        _out, err = gate.communicate(timeout=20)
        assert gate.returncode == 0, err
        assert "cannot save device faults" in err  # the database took none of it
        assert not faults.exists()  # removed as the gate stopped
        info = status()
        assert info["device_faults"] == {"usb-keypad": "gone (old)"}
        assert info["device_faults_from"] == "the database (as the gate last stored them)"
    finally:
        gate.kill()


def test_gate_process_exits_75_not_2_when_nothing_can_be_read(readonly_view, tmp_path):
    """A read-only partition without a database yet: a fault that may pass (systemd
    restarts on 75; 2 is RestartPreventExitStatus)."""
    src, view = readonly_view
    read_only(src)
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{view / "data"}"\n[keypad]\nkind = "none"\n')
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "run", "--sim"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 75, p.stderr
    assert "is read-only" in p.stderr and "Traceback" not in p.stderr


def test_selftest_names_a_read_only_partition(readonly_view):
    from doorpi import selftest

    src, view = readonly_view
    enrol(src)
    read_only(src)
    result = selftest.check_database(view)
    assert result.status == selftest.FAIL
    assert result.detail == f"{view / 'doorpi.db'}: data partition {view} is read-only"
