"""The real gate process: READY over sd_notify, clean SIGTERM, SIGKILL, and the
strike pin's full history across many start/stop cycles."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite, sim_config

STRIKE = "GPIO17"


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "data"}"\n[keypad]\nkind = "none"\n')
    return cfg


class Notify:
    """Stands in for systemd's notify socket."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)

    def wait_for(self, text: str, timeout: float = 20.0) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            if any(text in m for m in got):
                return got
        raise AssertionError(f"no {text!r} from the gate within {timeout}s; got {got}")


def start_gate(tmp_path: Path, notify: Notify, pin_log: Path) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000",
           "DOORPI_PIN_LOG": str(pin_log)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "doorpi", "--config", str(write_config(tmp_path)), "run", "--sim"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def strike_levels(pin_log: Path) -> list[int]:
    if not pin_log.exists():
        return []
    return [int(line.split()[3]) for line in pin_log.read_text().splitlines()
            if line.split()[2] == STRIKE]  # fmt: skip


def test_ready_watchdog_and_clean_sigterm(tmp_path):
    notify = Notify(tmp_path)
    log = tmp_path / "pins.log"
    proc = start_gate(tmp_path, notify, log)
    try:
        msgs = notify.wait_for("READY=1")
        assert any("STATUS=serving door" in m for m in msgs)
        notify.wait_for("WATCHDOG=1", timeout=5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert 1 not in strike_levels(log)


def test_sigkill_never_energises_the_strike(tmp_path):
    log = tmp_path / "pins.log"
    for i in range(3):
        (tmp_path / f"n{i}").mkdir()
        notify = Notify(tmp_path / f"n{i}")
        proc = start_gate(tmp_path, notify, log)
        notify.wait_for("READY=1")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert 1 not in strike_levels(log)
    # The database survived the kills.
    from doorpi.store import Storage

    s = Storage.open(tmp_path / "data")
    assert s.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert s.audit.verify().ok
    s.close()


def test_bad_config_is_one_line_and_never_touches_the_strike(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[door]\nunlock_seconds = -1\n")
    proc = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "run", "--sim"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "door.unlock_seconds" in lines[0]


def test_hundred_start_stop_cycles_strike_only_on_grant(tmp_path, monkeypatch):
    """Build the whole site 100 times (the same code path as `doorpi run --sim`);
    the strike pin, recorded by every mock pin ever created, is active only
    during the grants we made (every 10th cycle)."""
    log = tmp_path / "pins.log"
    monkeypatch.setenv("DOORPI_PIN_LOG", str(log))
    cfg = sim_config({}, tmp_path / "data")
    grants = 0
    for i in range(100):
        site = SimulatedSite(cfg, ManualClock(1_772_442_000.0 + i * 100))
        if i == 0:
            site.add_resident({"name": "A", "cards": ["04a1b2c3d4e5f6"]})
        if i % 10 == 0:
            site.card("04a1b2c3d4e5f6")
            grants += 1
        site.close()
    levels = strike_levels(log)
    rises = sum(1 for a, b in zip([0, *levels], levels, strict=False) if b == 1 and a == 0)
    assert rises == grants
    assert levels[-1] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_unlock_relocks(tmp_path, signum):
    """A stop while the strike is released secures it before exit."""
    import threading

    from doorpi.clocks import SystemClock

    cfg = sim_config({"door": {"unlock_seconds": 60.0}}, tmp_path / "data")
    site = SimulatedSite(cfg, SystemClock())
    site.add_resident({"name": "A", "cards": ["04a1b2c3d4e5f6"]})
    site.card("04a1b2c3d4e5f6")
    assert site.strike_pin.state is True
    stop = threading.Event()
    t = threading.Thread(target=site.gate.run, args=(stop,))
    t.start()
    stop.set()
    t.join(timeout=5)
    site.close()
    assert site.strike_pin.state is False


def test_start_up_heap_is_frozen_before_serving(tmp_path):
    """No full garbage collection walks the start-up heap inside a decision
    (doorpi.heap): the gate reports the objects it froze when it starts serving."""
    import json

    proc = subprocess.Popen(
        [sys.executable, "-m", "doorpi", "--config", str(write_config(tmp_path)), "run",
         "--sim", "--json-events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = None
        assert proc.stdout is not None
        for line in proc.stdout:
            rec = json.loads(line)
            if rec.get("event") == "gate_started":
                started = rec
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert started is not None, "no gate_started record"
    # The gate's modules, config and store alone are tens of thousands of objects.
    assert started.get("heap_frozen", 0) > 10_000, started
