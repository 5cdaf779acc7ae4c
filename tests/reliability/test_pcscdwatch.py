"""doorpi.pcscdwatch: when a frozen pcscd is restarted, and when it is not.

The decision (`step`) is pure and checked case by case; the runner (`check`) on a
real SQLite database with the fault stored as the gate's FaultBoard stores it and a
real state file, the restart command injected. The real gate with the real frozen
pcscd is in test_watchdog.py (`test_the_watch_restarts_a_frozen_pcscd_and_cards_work`).
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from doorpi import pcscdwatch
from doorpi.devicewatch import READER_FAULT, READER_WAITS_ON
from doorpi.faults import FaultBoard
from doorpi.pcscdwatch import RESTART_AFTER, RESTART_EVERY, WatchState, check, step
from doorpi.store import Storage

FROZEN = f"{READER_WAITS_ON}SCardGetStatusChange (pcscd frozen or hung?)"
OTHERS = [  # every other line reader_probe gives, and what a stored fault could hold
    "card reader thread has stopped",
    "card reader thread stuck outside PC/SC (gate fault)",
    "card reader thread not answering (pcscd frozen or hung?)",
    "health check failed: RuntimeError: boom",
    "reader Virtual PCD 00 00 unplugged",
    f"{READER_WAITS_ON} (pcscd frozen or hung?)",  # no call named
    f"{READER_WAITS_ON}our_own_helper (pcscd frozen or hung?)",  # not a PC/SC call
    "",
]


def test_the_numbers_are_the_documented_ones() -> None:
    assert (RESTART_AFTER, RESTART_EVERY) == (60.0, 600.0)
    assert pcscdwatch.RESTART_COMMAND == ("systemctl", "restart", "pcscd.service")


def test_the_probe_and_the_watch_share_the_prefix() -> None:
    """The watch restarts on exactly what reader_probe writes for a reader in pcscd."""
    from types import SimpleNamespace

    from doorpi.devicewatch import reader_probe

    state = SimpleNamespace(running=True, pcsc_call="SCardTransmit")
    reader = SimpleNamespace(healthy=lambda: False, thread_state=lambda: state)
    line = reader_probe(reader)()
    assert line.startswith(READER_WAITS_ON)
    assert pcscdwatch.pcsc_call(line) == "SCardTransmit"
    state.pcsc_call = ""  # stuck in our code: the probe says so, the watch leaves pcscd
    assert pcscdwatch.pcsc_call(reader_probe(reader)()) == ""


# (detail, now, state before) -> (restart?, state after)
CASES = {
    "no fault, nothing known": (None, 100.0, WatchState(), False, WatchState()),
    "no fault: the freeze is forgotten, the last restart kept":
        (None, 100.0, WatchState(50.0, 10.0), False, WatchState(None, 10.0)),
    "first seen": (FROZEN, 100.0, WatchState(), False, WatchState(100.0, None)),
    "seen 59.9 s": (FROZEN, 159.9, WatchState(100.0), False, WatchState(100.0)),
    "seen 60 s: restart": (FROZEN, 160.0, WatchState(100.0), True, WatchState(100.0, 160.0)),
    "seen long, never restarted": (FROZEN, 5000.0, WatchState(100.0), True, WatchState(100.0, 5000.0)),
    "599.9 s after the last restart":
        (FROZEN, 759.9, WatchState(100.0, 160.0), False, WatchState(100.0, 160.0)),
    "600 s after the last restart: again":
        (FROZEN, 760.0, WatchState(100.0, 160.0), True, WatchState(100.0, 760.0)),
    "a new freeze soon after a restart waits out the 600 s":
        (FROZEN, 500.0, WatchState(400.0, 160.0), False, WatchState(400.0, 160.0)),
    "a new freeze 60 s old, the last restart long ago":
        (FROZEN, 1000.0, WatchState(940.0, 160.0), True, WatchState(940.0, 1000.0)),
    "stamps ahead of now are from no clock of this boot: dropped":
        (FROZEN, 10.0, WatchState(100.0, 500.0), False, WatchState(10.0, None)),
}  # fmt: skip
CASES |= {
    f"other fault {text!r}": (text, 5000.0, WatchState(100.0, None), False, WatchState(None, None))
    for text in OTHERS
}


@pytest.mark.parametrize("case", list(CASES))
def test_step(case: str) -> None:
    detail, now, before, restart, after = CASES[case]
    got_restart, got_state, line = step(detail, now, before)
    assert (got_restart, got_state) == (restart, after)
    if restart:
        assert "SCardGetStatusChange" in line and f"{now - before.frozen_since:.0f} s" in line
    else:
        assert line == ""


def _timer(details: Iterator[str | None], until: float, period: float = 30.0) -> list[float]:
    """Run `step` as the timer does, every ``period`` s from 0; the restart times."""
    state, now, restarts = WatchState(), 0.0, []
    while now <= until:
        restart, state, _ = step(next(details), now, state)
        if restart:
            restarts.append(now)
        now += period
    return restarts


def test_a_pcscd_that_stays_frozen_is_restarted_every_600_s_and_no_more() -> None:
    """Restart, still frozen (a wedged reader behind it): two hours of timer runs."""
    restarts = _timer(iter(lambda: FROZEN, None), 7200.0)
    assert restarts[0] == 60.0  # seen at 0, restarted two runs later
    assert all(b - a == 600.0 for a, b in itertools.pairwise(restarts))
    assert len(restarts) == 12


def test_a_fault_that_clears_and_comes_back_starts_its_minute_again() -> None:
    seq = iter([FROZEN, FROZEN, None, FROZEN, FROZEN, FROZEN, FROZEN])  # at 0, 30, ... 180
    assert _timer(seq, 180.0) == [150.0]  # seen again at 90: 60 s later


def test_other_faults_never_restart_pcscd() -> None:
    for text in OTHERS:
        assert _timer(iter(lambda t=text: t, None), 7200.0) == [], text


# ------------------------------------------------------------------ the runner


@pytest.fixture
def gate_db(tmp_path: Path) -> Iterator[tuple[Path, FaultBoard]]:
    """The gate's store, open for writing as the running gate holds it."""
    store = Storage.open(tmp_path / "data")
    try:
        yield tmp_path / "data" / "doorpi.db", FaultBoard(store.db)
    finally:
        store.close()


class Restarts:
    """The injected restart command: records the state file as it was at each call."""

    def __init__(self, state_path: Path, fails: str = "") -> None:
        self.state_path, self.fails, self.seen = state_path, fails, []

    def __call__(self) -> str:
        self.seen.append(json.loads(self.state_path.read_text()))
        return self.fails


def test_runner_restarts_once_after_the_minute_and_records_it_first(gate_db, tmp_path):
    db, board = gate_db
    state = tmp_path / "run" / "watch" / "state.json"
    restart = Restarts(state)
    board.set(READER_FAULT, FROZEN, time.time())
    assert check(db, state, restart, now=lambda: 1000.0) == (0, [])
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert json.loads(state.read_text()) == {"frozen_since": 1000.0, "restarted_at": None}
    assert check(db, state, restart, now=lambda: 1030.0) == (0, [])
    code, lines = check(db, state, restart, now=lambda: 1060.0)
    assert code == 0 and len(lines) == 1 and "restarting pcscd" in lines[0]
    assert restart.seen == [{"frozen_since": 1000.0, "restarted_at": 1060.0}]  # before it ran
    for t in (1090.0, 1630.0):  # still frozen: held back
        assert check(db, state, restart, now=lambda t=t: t) == (0, [])
    assert len(restart.seen) == 1
    assert check(db, state, restart, now=lambda: 1660.0)[0] == 0
    assert len(restart.seen) == 2
    board.clear(READER_FAULT)  # pcscd answers again: the freeze is forgotten
    assert check(db, state, restart, now=lambda: 1690.0) == (0, [])
    assert json.loads(state.read_text()) == {"frozen_since": None, "restarted_at": 1660.0}


@pytest.mark.parametrize("text", OTHERS[:4])
def test_runner_leaves_pcscd_alone_for_other_faults(gate_db, tmp_path, text):
    db, board = gate_db
    state = tmp_path / "state.json"
    restart = Restarts(state)
    board.set(READER_FAULT, text, time.time())
    for t in (0.0, 60.0, 5000.0):
        assert check(db, state, restart, now=lambda t=t: t) == (0, [])
    assert restart.seen == [] and not state.exists()  # nothing to remember either


def test_runner_without_a_database_or_a_fault_does_nothing(gate_db, tmp_path):
    db, _ = gate_db
    state = tmp_path / "state.json"
    restart = Restarts(state)
    assert check(tmp_path / "nowhere" / "doorpi.db", state, restart, now=lambda: 99.0) == (0, [])
    assert check(db, state, restart, now=lambda: 99.0) == (0, [])
    assert restart.seen == [] and not state.exists()


def test_a_database_that_cannot_be_read_is_one_line_and_no_restart(tmp_path):
    db = tmp_path / "doorpi.db"
    db.write_bytes(b"not a database" * 100)
    state = tmp_path / "state.json"
    restart = Restarts(state)
    code, lines = check(db, state, restart, now=lambda: 5000.0)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"{db}: cannot read the gate's faults (")
    assert lines[0].endswith("pcscd left alone")
    assert restart.seen == [] and not state.exists()


def test_a_failed_restart_is_one_line_exit_1_and_still_rate_limited(gate_db, tmp_path):
    db, board = gate_db
    state = tmp_path / "state.json"
    restart = Restarts(state, fails="`systemctl restart pcscd.service` exited 1: no such unit")
    board.set(READER_FAULT, FROZEN, time.time())
    check(db, state, restart, now=lambda: 0.0)
    code, lines = check(db, state, restart, now=lambda: 60.0)
    assert code == 1 and lines[-1] == "pcscd restart failed: " + restart.fails
    assert check(db, state, restart, now=lambda: 90.0) == (0, [])
    assert len(restart.seen) == 1


def test_a_garbled_state_file_is_named_and_taken_as_no_state(gate_db, tmp_path):
    db, board = gate_db
    state = tmp_path / "state.json"
    restart = Restarts(state)
    board.set(READER_FAULT, FROZEN, time.time())
    for garbage in (b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"restarted_at": "yesterday"}'):
        state.write_bytes(garbage)
        code, lines = check(db, state, restart, now=lambda: 500.0)
        assert code == 0 and len(lines) == 1, lines
        assert lines[0].startswith(f"{state}: garbled state file") and "no state" in lines[0]
        assert json.loads(state.read_text()) == {"frozen_since": 500.0, "restarted_at": None}
    assert restart.seen == []


def test_an_unwritable_state_file_means_no_restart(gate_db, tmp_path):
    """The restart is recorded first; without the record no restart (rate limit)."""
    db, board = gate_db
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state folder should be")
    state = blocker / "state.json"
    restart = Restarts(state)
    board.set(READER_FAULT, FROZEN, time.time())
    code, lines = check(db, state, restart, now=lambda: 100.0)
    assert code == 1 and len(lines) == 1 and f"cannot write {state}" in lines[0]
    # Even with a freeze long seen (the state came from somewhere it can still be read):
    readable = tmp_path / "ro"
    readable.mkdir()
    (readable / "state.json").write_text('{"frozen_since": 0.0, "restarted_at": null}')
    fail_write = pytest.MonkeyPatch()
    fail_write.setattr(pcscdwatch, "write_state", _raise_enospc)
    try:
        code, lines = check(db, readable / "state.json", restart, now=lambda: 100.0)
    finally:
        fail_write.undo()
    assert code == 1 and lines == [
        f"pcscd not restarted: cannot write {readable / 'state.json'} (No space left on device); "
        "without it restarts would not be rate-limited"
    ]
    assert restart.seen == []


def _raise_enospc(path: Path, state: WatchState) -> None:
    raise OSError(28, os.strerror(28), str(path))


def test_state_file_is_replaced_0600_whatever_was_there(tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{}")
    state.chmod(0o644)
    pcscdwatch.write_state(state, WatchState(1.0, 2.0))
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert pcscdwatch.read_state(state) == (WatchState(1.0, 2.0), "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_the_default_restart_runs_the_command_and_reports_its_failure():
    said = "Unit pcscd.service not found."
    ok = pcscdwatch.systemctl_restart(["true"])
    failed = pcscdwatch.systemctl_restart(["sh", "-c", f"echo '{said}' >&2; exit 5"])
    missing = pcscdwatch.systemctl_restart(["/nonexistent/systemctl", "restart", "pcscd.service"])
    assert ok == ""
    assert failed == f"`sh -c echo '{said}' >&2; exit 5` exited 5: {said}"
    assert missing.startswith("`/nonexistent/systemctl restart pcscd.service` failed: ")


# ------------------------------------------------------------------ the command


def _cli(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doorpi", "--config", str(config), "pcscd-watch",
                           "--state", str(state)], capture_output=True, text=True, timeout=60)  # fmt: skip


def test_cli_one_check_on_the_system_wide_monotonic_clock(gate_db, tmp_path):
    """`doorpi pcscd-watch`, a process of its own: the freeze is stamped with
    CLOCK_MONOTONIC, the same clock in every process (this one read it around)."""
    db, board = gate_db
    config = tmp_path / "doorpi.toml"
    config.write_text(f'[site]\ndata_dir = "{db.parent}"\n')
    state = tmp_path / "run" / "state.json"
    p = _cli(config, state)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "") and not state.exists()
    board.set(READER_FAULT, FROZEN, time.time())
    before = time.monotonic()
    p = _cli(config, state)
    after = time.monotonic()
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    seen = json.loads(state.read_text())
    assert before <= seen["frozen_since"] <= after and seen["restarted_at"] is None
    state.write_text("garbage")
    p = _cli(config, state)
    assert p.returncode == 0 and p.stdout == f"{state}: garbled state file (Expecting value: " \
        "line 1 column 1 (char 0)); taken as no state\n"  # fmt: skip
    blocked = tmp_path / "file"
    blocked.write_text("")
    p = _cli(config, blocked / "state.json")
    assert p.returncode == 1 and p.stdout == "" and len(p.stderr.splitlines()) == 1
    assert "cannot write" in p.stderr and "Traceback" not in p.stderr
