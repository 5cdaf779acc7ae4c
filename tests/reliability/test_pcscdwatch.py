"""doorpi.pcscdwatch: when a frozen pcscd is restarted, and when it is not.

The decision (`step`) is pure and checked case by case and over every edge; the runner
(`check`) on the gate's runtime file of faults as the real FaultBoard writes it (its
database read-only, as on a read-only data partition) and a real state file, the
restart command injected; the command (`python -m doorpi.pcscdwatch`, `doorpi
pcscd-watch`) as a process of its own with a stand-in `systemctl`. The real gate with
the real frozen pcscd is in test_watchdog.py
(`test_the_watch_restarts_a_frozen_pcscd_and_cards_work`); the unit's ExecCondition= in
tests/appliance/test_systemd.py.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from doorpi import pcscdwatch
from doorpi.devicewatch import READER_FAULT, READER_WAITS_ON
from doorpi.faults import FaultBoard
from doorpi.pcscdwatch import (
    RESTART_AFTER,
    RESTART_EVERY,
    ReaderFault,
    WatchState,
    check,
    pcsc_call,
    step,
)
from doorpi.store import Storage
from doorpi.store.db import open_readonly

FROZEN = f"{READER_WAITS_ON}SCardGetStatusChange (pcscd frozen or hung?)"
OTHERS = [  # every other line reader_probe gives, and what a fault could hold
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
    assert Path("/run/doorpi/faults.json") == pcscdwatch.GATE_FAULTS
    assert Path("/run/doorpi-pcscd-watch/state.json") == pcscdwatch.STATE_FILE


def test_the_probe_and_the_watch_share_the_prefix() -> None:
    """The watch restarts on exactly what reader_probe writes for a reader in pcscd."""
    from types import SimpleNamespace

    from doorpi.devicewatch import reader_probe

    state = SimpleNamespace(running=True, pcsc_call="SCardTransmit")
    reader = SimpleNamespace(healthy=lambda: False, thread_state=lambda: state)
    line = reader_probe(reader)()
    assert line.startswith(READER_WAITS_ON)
    assert pcsc_call(line) == "SCardTransmit"
    state.pcsc_call = ""  # stuck in our code: the probe says so, the watch leaves pcscd
    assert pcsc_call(reader_probe(reader)()) == ""


def F(raised: float, detail: str = FROZEN) -> ReaderFault:
    return ReaderFault(detail, raised)


# (gate's fault, now, state before) -> (restart?, state after)
CASES = {
    "no fault, nothing known": (None, 100.0, WatchState(), False, WatchState()),
    "no fault: the last restart kept": (None, 100.0, WatchState(10.0), False, WatchState(10.0)),
    "just raised": (F(100.0), 100.0, WatchState(), False, WatchState()),
    "raised 59.9 s ago": (F(100.0), 159.9, WatchState(), False, WatchState()),
    "raised 60 s ago: restart": (F(100.0), 160.0, WatchState(), True, WatchState(160.0)),
    "raised long ago, never restarted": (F(100.0), 5000.0, WatchState(), True, WatchState(5000.0)),
    "599.9 s after the last restart":
        (F(100.0), 759.9, WatchState(160.0), False, WatchState(160.0)),
    "600 s after the last restart: again":
        (F(100.0), 760.0, WatchState(160.0), True, WatchState(760.0)),
    "a new freeze soon after a restart waits out the 600 s":
        (F(400.0), 500.0, WatchState(160.0), False, WatchState(160.0)),
    "a new freeze 60 s old, the last restart long ago":
        (F(940.0), 1000.0, WatchState(160.0), True, WatchState(1000.0)),
    "a restart stamp ahead of now is from no clock of this boot: dropped":
        (F(0.0), 100.0, WatchState(500.0), True, WatchState(100.0)),
    "dropped with no fault too": (None, 10.0, WatchState(500.0), False, WatchState()),
    "a fault stamped ahead of now has not stood at all":
        (F(200.0), 100.0, WatchState(), False, WatchState()),
}  # fmt: skip
CASES |= {
    f"other fault {text!r}": (F(0.0, text), 5000.0, WatchState(10.0), False, WatchState(10.0))
    for text in OTHERS
}


@pytest.mark.parametrize("case", list(CASES))
def test_step(case: str) -> None:
    fault, now, before, restart, after = CASES[case]
    got_restart, got_state, line = step(fault, now, before)
    assert (got_restart, got_state) == (restart, after)
    if restart:
        assert line == (
            f"restarting pcscd: the card reader has waited on SCardGetStatusChange for "
            f"{now - fault.raised:.0f} s (next restart 600 s from now at the earliest)"
        )
    else:
        assert line == ""


def test_step_on_every_edge() -> None:
    """Every combination of fault line, fault age and time since the last restart on
    each side of its bound (and stamps ahead of now): restart exactly when the line
    names a PC/SC call, the gate has shown it RESTART_AFTER and the last restart of
    this boot is RESTART_EVERY old; the state is then now, else the last restart (a
    stamp ahead of now dropped)."""
    now = 10_000.0
    eps = 1e-6
    ages = [None, -5.0, 0.0, RESTART_AFTER - eps, RESTART_AFTER, RESTART_AFTER + 1, 1e9]
    since_restart = [None, -5.0, 0.0, RESTART_EVERY - eps, RESTART_EVERY, 5e3]
    seen = 0
    for detail, age, gone in itertools.product([FROZEN, *OTHERS], ages, since_restart):
        fault = None if age is None else ReaderFault(detail, now - age)
        last = None if gone is None else now - gone
        act, new, line = step(fault, now, WatchState(last))
        kept = last if last is not None and last <= now else None
        due = (fault is not None and pcsc_call(detail) != ""
               and age >= RESTART_AFTER and (kept is None or now - kept >= RESTART_EVERY))  # fmt: skip
        assert act == due, (detail, age, gone)
        assert new == WatchState(now if due else kept), (detail, age, gone)
        assert bool(line) == due
        seen += due
    # FROZEN alone names a call; 3 ages are old enough; 4 last restarts allow one (none,
    # ahead of now, 600 s, 5000 s): the grid reaches both outcomes.
    assert seen == 3 * 4


def _timer(gate: Callable[[float], ReaderFault | None], until: float,
           start: float = 0.0, period: float = 30.0) -> list[float]:  # fmt: skip
    """Run `step` as the timer does, every ``period`` s from ``start`` on what the
    gate shows at that time; the restart times."""
    state, now, restarts = WatchState(), start, []
    while now <= until:
        restart, state, _ = step(gate(now), now, state)
        if restart:
            restarts.append(now)
        now += period
    return restarts


def _frozen_from(raised: float) -> Callable[[float], ReaderFault | None]:
    return lambda t: ReaderFault(FROZEN, raised) if t >= raised else None


def test_a_pcscd_that_stays_frozen_is_restarted_every_600_s_and_no_more() -> None:
    """Restart, still frozen (a wedged reader behind it): two hours of timer runs."""
    restarts = _timer(_frozen_from(0.0), 7200.0)
    assert restarts[0] == 60.0  # shown at 0, restarted at the run a minute later
    assert all(b - a == 600.0 for a, b in itertools.pairwise(restarts))
    assert len(restarts) == 12


@pytest.mark.parametrize("shown", [0.0, 0.5, 10.0, 29.9])
def test_the_first_restart_comes_60_to_90_s_after_the_gate_shows_the_fault(shown) -> None:
    (first, *_) = _timer(_frozen_from(shown), 600.0)
    assert RESTART_AFTER <= first - shown < RESTART_AFTER + 30.0


def test_a_fault_that_clears_and_comes_back_starts_its_minute_again() -> None:
    def gate(t: float) -> ReaderFault | None:  # frozen 0-45 s, then again from 75 s
        return ReaderFault(FROZEN, 0.0) if t < 45 else None if t < 75 else ReaderFault(FROZEN, 75)

    assert _timer(gate, 180.0) == [150.0]  # 75 s + the minute, at the next run


def test_a_gate_that_restarts_shows_the_freeze_anew_and_its_minute_starts_again() -> None:
    """The new gate process raises the fault with its own stamp (5 s after it started
    at 40 s): what the watch acts on is what the running gate has seen."""

    def gate(t: float) -> ReaderFault | None:
        return ReaderFault(FROZEN, 0.0) if t < 40 else None if t < 45 else ReaderFault(FROZEN, 45)

    assert _timer(gate, 200.0) == [120.0]


def test_other_faults_never_restart_pcscd() -> None:
    for text in OTHERS:
        assert _timer(lambda t, text=text: ReaderFault(text, 0.0), 7200.0) == [], text


# ------------------------------------------------------------------ the runner


class Gate:
    """The gate's fault board on a read-only database (its writes fail, as on a
    read-only data partition), publishing the runtime file, its CLOCK_MONOTONIC
    stamps set by the test."""

    def __init__(self, tmp_path: Path) -> None:
        Storage.open(tmp_path / "data").close()
        self.db = open_readonly(tmp_path / "data" / "doorpi.db")
        self.mono = 0.0
        self.board = FaultBoard(self.db, mono=lambda: self.mono)
        self.file = tmp_path / "run" / "faults.json"
        self.board.publish(self.file)

    def raise_(self, detail: str, at: float) -> None:
        self.mono = at
        assert self.board.set(READER_FAULT, detail, time.time())


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    g = Gate(tmp_path)
    try:
        yield g
    finally:
        g.db.conn.close()


class Restarts:
    """The injected restart command: records the state file as it was at each call."""

    def __init__(self, state_path: Path, fails: str = "") -> None:
        self.state_path, self.fails, self.seen = state_path, fails, []

    def __call__(self) -> str:
        self.seen.append(json.loads(self.state_path.read_text()))
        return self.fails


def test_runner_restarts_once_after_the_minute_and_records_it_first(gate, tmp_path, caplog):
    state = tmp_path / "run" / "watch" / "state.json"
    restart = Restarts(state)
    gate.raise_(FROZEN, 1000.0)
    assert "cannot save device faults" in caplog.text  # the database took nothing
    for t in (1000.0, 1030.0, 1059.9):
        assert check(gate.file, state, restart, now=lambda t=t: t) == (0, [])
    assert not state.exists()  # nothing to remember before the first restart
    code, lines = check(gate.file, state, restart, now=lambda: 1060.0)
    assert code == 0 and lines == [
        "restarting pcscd: the card reader has waited on SCardGetStatusChange for 60 s "
        "(next restart 600 s from now at the earliest)"
    ]
    assert restart.seen == [{"restarted_at": 1060.0}]  # recorded before it ran
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    for t in (1090.0, 1659.9):  # still frozen: held back
        assert check(gate.file, state, restart, now=lambda t=t: t) == (0, [])
    assert len(restart.seen) == 1
    assert check(gate.file, state, restart, now=lambda: 1660.0)[0] == 0
    assert restart.seen[1:] == [{"restarted_at": 1660.0}]
    gate.board.clear(READER_FAULT)  # pcscd answers again
    assert check(gate.file, state, restart, now=lambda: 1690.0) == (0, [])
    gate.raise_(FROZEN, 1700.0)  # frozen again: its own minute, then the 600 s
    for t in (1760.0, 2259.9):
        assert check(gate.file, state, restart, now=lambda t=t: t) == (0, [])
    assert len(restart.seen) == 2
    assert check(gate.file, state, restart, now=lambda: 2260.0)[0] == 0
    assert len(restart.seen) == 3


def test_the_minute_counts_from_the_gate_not_from_the_watch(gate, tmp_path):
    """A watch that first looks at a fault the gate has shown for a minute restarts
    at once: its first run (boot, or the watch's state lost) loses no time."""
    state = tmp_path / "state.json"
    restart = Restarts(state)
    gate.raise_(FROZEN, 100.0)
    assert check(gate.file, state, restart, now=lambda: 160.0)[0] == 0
    assert restart.seen == [{"restarted_at": 160.0}]


def test_a_changed_detail_keeps_the_gate_s_first_stamp(gate, tmp_path):
    """The gate updates the line (another PC/SC call) without raising the fault anew:
    the fault has stood since it was first raised."""
    state = tmp_path / "state.json"
    restart = Restarts(state)
    gate.raise_(FROZEN, 100.0)
    gate.raise_(f"{READER_WAITS_ON}SCardTransmit (pcscd frozen or hung?)", 150.0)
    code, lines = check(gate.file, state, restart, now=lambda: 160.0)
    assert code == 0 and "waited on SCardTransmit for 60 s" in lines[0]


@pytest.mark.parametrize("text", OTHERS[:4])
def test_runner_leaves_pcscd_alone_for_other_faults(gate, tmp_path, text):
    state = tmp_path / "state.json"
    restart = Restarts(state)
    gate.raise_(text, 0.0)
    for t in (0.0, 60.0, 5000.0):
        assert check(gate.file, state, restart, now=lambda t=t: t) == (0, [])
    assert restart.seen == [] and not state.exists()  # nothing to remember either


def test_runner_without_a_gate_or_a_fault_does_nothing(gate, tmp_path):
    state = tmp_path / "state.json"
    restart = Restarts(state)
    nowhere = tmp_path / "nowhere" / "faults.json"
    assert check(nowhere, state, restart, now=lambda: 99.0) == (0, [])
    assert check(gate.file, state, restart, now=lambda: 99.0) == (0, [])  # healthy gate
    assert restart.seen == [] and not state.exists()


def test_a_file_left_by_a_gate_that_has_ended_is_no_fault(tmp_path):
    """A gate killed before it could remove its file (systemd removes the folder; a
    gate run by hand does not): the pid in it is gone, so is the fault."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(ended.stdout)
    faults = tmp_path / "faults.json"
    entry = {"detail": FROZEN, "since": 1.0, "raised_monotonic": 0.0}
    faults.write_text(json.dumps({"pid": pid, "faults": {READER_FAULT: entry}}))
    state = tmp_path / "state.json"
    restart = Restarts(state)
    assert check(faults, state, restart, now=lambda: 5000.0) == (0, [])
    faults.write_text(json.dumps({"pid": os.getpid(), "faults": {READER_FAULT: entry}}))
    assert check(faults, state, restart, now=lambda: 5000.0)[0] == 0  # the same, alive
    assert len(restart.seen) == 1


GARBLED = {
    "not JSON": b"{not json",
    "not text": b"\xff\xfe\x00",
    "not an object": b"[1, 2]",
    "no pid": b'{"faults": {}}',
    "a pid that is no number": b'{"pid": "1", "faults": {}}',
    "a pid that is true": b'{"pid": true, "faults": {}}',
    "no faults": b'{"pid": PID}',
    "faults not an object": b'{"pid": PID, "faults": ["card reader"]}',
    "a fault without its stamp": b'{"pid": PID, "faults": {"card reader": {"detail": "DETAIL", '
    b'"since": 1}}}',
    "a stamp that is no number": b'{"pid": PID, "faults": {"card reader": {"detail": "DETAIL", '
    b'"since": 1, "raised_monotonic": "0"}}}',
    "a stamp that is NaN": b'{"pid": PID, "faults": {"card reader": {"detail": "DETAIL", '
    b'"since": 1, "raised_monotonic": NaN}}}',
    "a detail that is no text": b'{"pid": PID, "faults": {"card reader": {"detail": 7, '
    b'"since": 1, "raised_monotonic": 0}}}',
}


@pytest.mark.parametrize("case", list(GARBLED))
def test_a_garbled_gate_file_is_one_line_exit_1_and_no_restart(tmp_path, case):
    faults = tmp_path / "faults.json"
    raw = GARBLED[case].replace(b"PID", str(os.getpid()).encode())
    faults.write_bytes(raw.replace(b"DETAIL", FROZEN.encode()))
    state = tmp_path / "state.json"
    restart = Restarts(state)
    code, lines = check(faults, state, restart, now=lambda: 5000.0)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"{faults}: garbled (") and lines[0].endswith("; pcscd left alone")
    assert "\n" not in lines[0]
    assert restart.seen == [] and not state.exists()


def test_a_gate_file_that_cannot_be_read_is_one_line_exit_1(tmp_path):
    faults = tmp_path / "faults.json"
    faults.mkdir()  # EISDIR: what root gets where the file should be
    state = tmp_path / "state.json"
    code, lines = check(faults, state, Restarts(state), now=lambda: 5000.0)
    assert (code, lines) == (1, [f"{faults}: cannot read (Is a directory); pcscd left alone"])


def test_a_stamp_ahead_of_this_boot_s_clock_is_garbled_not_a_freeze(gate, tmp_path):
    state = tmp_path / "state.json"
    restart = Restarts(state)
    gate.raise_(FROZEN, 10_000.0)
    code, lines = check(gate.file, state, restart, now=lambda: 9_000.0)
    assert (code, lines) == (1, [
        f"{gate.file}: garbled (the card reader fault is stamped 1000 s ahead of this boot's "
        "clock); pcscd left alone"])  # fmt: skip
    # The gate rounds its stamp to the millisecond: a hair ahead is a fault just raised.
    assert check(gate.file, state, restart, now=lambda: 9_999.9995) == (0, [])
    assert restart.seen == [] and not state.exists()


def test_a_failed_restart_is_one_line_exit_1_and_still_rate_limited(gate, tmp_path):
    state = tmp_path / "state.json"
    restart = Restarts(state, fails="`systemctl restart pcscd.service` exited 1: no such unit")
    gate.raise_(FROZEN, 0.0)
    code, lines = check(gate.file, state, restart, now=lambda: 60.0)
    assert code == 1 and lines[-1] == "pcscd restart failed: " + restart.fails
    assert check(gate.file, state, restart, now=lambda: 90.0) == (0, [])
    assert len(restart.seen) == 1


def test_a_garbled_state_file_is_named_and_taken_as_a_restart_just_now(gate, tmp_path):
    """What became of the record of the last restart is unknown: the watch holds back
    a full RESTART_EVERY, so the rate limit holds whatever garbled the file."""
    state = tmp_path / "state.json"
    restart = Restarts(state)
    gate.raise_(FROZEN, 0.0)
    for garbage in (
        b"{not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"restarted_at": "yesterday"}',
        b'{"restarted_at": NaN}',
        b'{"restarted_at": true}',
    ):
        state.write_bytes(garbage)
        code, lines = check(gate.file, state, restart, now=lambda: 500.0)
        assert code == 0 and len(lines) == 1, lines
        assert lines[0].startswith(f"{state}: garbled state file (")
        assert lines[0].endswith("; taken as a restart just now (none for 600 s)")
        assert json.loads(state.read_text()) == {"restarted_at": 500.0}
    assert check(gate.file, state, restart, now=lambda: 1099.9) == (0, [])
    assert restart.seen == []
    assert check(gate.file, state, restart, now=lambda: 1100.0)[0] == 0
    assert restart.seen == [{"restarted_at": 1100.0}]


def test_a_state_file_from_before_holds_its_restart(gate, tmp_path):
    """A state file of the earlier watch (with "frozen_since") still holds the rate limit."""
    state = tmp_path / "state.json"
    state.write_text('{"frozen_since": 0.0, "restarted_at": 100.0}')
    restart = Restarts(state)
    gate.raise_(FROZEN, 0.0)
    assert check(gate.file, state, restart, now=lambda: 699.9) == (0, [])
    assert check(gate.file, state, restart, now=lambda: 700.0)[0] == 0
    assert restart.seen == [{"restarted_at": 700.0}]


def test_an_unwritable_state_file_means_no_restart(gate, tmp_path):
    """The restart is recorded first; without the record no restart (rate limit)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state folder should be")
    state = blocker / "state.json"
    restart = Restarts(state)
    gate.raise_(FROZEN, 0.0)
    code, lines = check(gate.file, state, restart, now=lambda: 100.0)
    assert code == 1 and len(lines) == 1 and f"cannot write {state}" in lines[0]
    assert lines[0].startswith("pcscd not restarted: ")
    readable = tmp_path / "ro"
    readable.mkdir()
    (readable / "state.json").write_text('{"restarted_at": null}')
    fail_write = pytest.MonkeyPatch()
    fail_write.setattr(pcscdwatch, "write_state", _raise_enospc)
    try:
        code, lines = check(gate.file, readable / "state.json", restart, now=lambda: 100.0)
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
    pcscdwatch.write_state(state, WatchState(2.0))
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text()) == {"restarted_at": 2.0}
    assert pcscdwatch.read_state(state) == (WatchState(2.0), "")
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


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    """A stand-in `systemctl` first on PATH: it notes its arguments and the watch's
    state file as it was when it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$* $(cat {tmp_path}/state.json)" >> {tmp_path}/calls\n')
    stub.chmod(0o755)
    return tmp_path / "calls"


def _watch(how: str, faults: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{state.parent / 'bin'}:{os.environ['PATH']}"}
    opts = ["--faults", str(faults), "--state", str(state)]
    argv = {"module": [sys.executable, "-m", "doorpi.pcscdwatch", *opts],
            "cli": [sys.executable, "-m", "doorpi", "--config", "/nonexistent/doorpi.toml",
                    "pcscd-watch", *opts]}[how]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("how", ["module", "cli"])
def test_command_on_the_system_wide_monotonic_clock(tmp_path, systemctl, how):
    """The watch as a process of its own (`python -m doorpi.pcscdwatch`, what the unit
    runs, and `doorpi pcscd-watch`, which needs no config): the gate's stamp is
    CLOCK_MONOTONIC, the same clock in every process; the restart runs `systemctl`."""
    state = tmp_path / "state.json"
    faults = tmp_path / "run" / "faults.json"
    offset = [0.0]
    board = FaultBoard(_NoDb(), mono=lambda: time.monotonic() + offset[0])
    p = _watch(how, faults, state)  # no gate running
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "") and not state.exists()
    board.publish(faults)
    offset[0] = -(RESTART_AFTER - 10)  # shown 50 s ago: not yet
    board.set(READER_FAULT, FROZEN, time.time())
    p = _watch(how, faults, state)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "") and not systemctl.exists()
    board.clear(READER_FAULT)
    offset[0] = -(RESTART_AFTER + 1)  # shown 61 s ago: restart, recorded first
    board.set(READER_FAULT, FROZEN, time.time())
    before = time.monotonic()
    p = _watch(how, faults, state)
    after = time.monotonic()
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout.startswith("restarting pcscd: the card reader has waited on "
                               "SCardGetStatusChange for 6")  # fmt: skip
    (call,) = systemctl.read_text().splitlines()
    assert call.startswith("restart pcscd.service {")
    recorded = json.loads(call.split(" ", 2)[2])["restarted_at"]
    assert before <= recorded <= after
    p = _watch(how, faults, state)  # at once again: rate-limited
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert len(systemctl.read_text().splitlines()) == 1
    board.clear(READER_FAULT)
    offset[0] = 30.0  # a stamp 30 s ahead of every process's clock: garbled, one line
    board.set(READER_FAULT, FROZEN, time.time())
    p = _watch(how, faults, state)
    assert p.returncode == 1 and p.stdout == "" and len(p.stderr.splitlines()) == 1
    assert "s ahead of this boot's clock); pcscd left alone" in p.stderr
    faults.write_text("garbage")
    p = _watch(how, faults, state)
    assert p.returncode == 1 and p.stderr == (
        f"{faults}: garbled (Expecting value: line 1 column 1 (char 0)); pcscd left alone\n"
    )
    assert "Traceback" not in p.stdout + p.stderr


def test_the_watch_imports_no_store_no_database_and_no_cli() -> None:
    """Every 30 s on a Pi Zero: the watch's path is Python and a few small modules."""
    code = ("import sys, doorpi.pcscdwatch as w; w.main(['--faults', '/nonexistent/f.json', "
            "'--state', '/nonexistent/s.json']); print(' '.join(sorted(sys.modules)))")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=True)  # fmt: skip
    loaded = set(p.stdout.split())
    ours = sorted(m for m in loaded if m.startswith("doorpi"))
    assert ours == ["doorpi", "doorpi.core", "doorpi.core.events", "doorpi.devicewatch",
                    "doorpi.faults", "doorpi.fsutil", "doorpi.pcscdwatch",
                    "doorpi.runtimefile"], ours  # fmt: skip
    assert not {"sqlite3", "sqlite_utils", "tomllib", "numpy"} & loaded


class _NoDb:
    """A database that refuses every write, as a read-only partition does."""

    def execute(self, *_args: object) -> object:
        raise OSError(30, "Read-only file system")
