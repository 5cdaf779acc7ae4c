"""Restart a frozen pcscd that the gate has reported, at most once per RESTART_EVERY.

The gate cannot cure a frozen pcscd itself (it runs unprivileged and sandboxed): it
shows `card reader waits on SCard... (pcscd frozen or hung?)` (`devicewatch.reader_probe`)
and keeps serving PIN. `doorpi pcscd-watch` (`python -m doorpi.pcscdwatch` in the unit),
started by doorpi-pcscd-watch.timer every 30 s as root, only when the gate's runtime file
names that wait (the unit's ExecCondition=), reads the fault from that file
(`doorpi.faults`: the gate's tmpfs, fresh even when the data partition is read-only or
full; no database). Once the gate has shown it for RESTART_AFTER it runs `systemctl
restart pcscd.service`: systemd sends SIGTERM and then SIGCONT (systemd.kill(5)), so a
stopped pcscd ends too, and then starts it again (pcscd.socket stays listening
meanwhile); the gate's reader re-connects.

`step` is the decision alone (no I/O); `check` is the runner around it: the gate's
runtime file, the state file, the restart command. Times are CLOCK_MONOTONIC seconds
(`time.monotonic()`): one clock for the whole system within a boot, never set, so a
wall-clock jump (no RTC, NTP at last) changes nothing. The freeze starts when the gate
first raised the fault (its ``raised_monotonic``), so the watch keeps only when it last
restarted pcscd, in /run (empty after a boot: no stamp from an earlier boot is ever
compared). A gate that restarts raises the fault anew and its minute starts again; a
file whose gate (pid) has ended is no fault; a garbled one, or a stamp ahead of this
boot's clock, is one line and no restart. Kept free of the store's imports: the watch
costs a Python start-up and little more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doorpi.devicewatch import READER_FAULT, READER_WAITS_ON
from doorpi.faults import FILE_NAME, running_faults
from doorpi.runtimefile import DEFAULT_DIR, RuntimeFileError

#: Seconds the gate must have shown its `card reader` fault, waiting on pcscd, before the
#: watch restarts pcscd. The gate shows the fault once its reader thread has been silent
#: past its `healthy()` bound (~4-5 s); a slow card or a busy pcscd answers within that, so
#: a fault standing a whole minute is a hung pcscd, not a slow one; short against the days
#: an unattended gate would otherwise wait for an installer.
RESTART_AFTER = 60.0
#: Seconds between two restarts, at least. A pcscd that freezes again at once (a wedged
#: USB reader, a driver bug) would otherwise be restarted every minute for ever, each
#: restart costing the card reader a few seconds; the fault stays shown meanwhile, and
#: PIN works throughout. Ten minutes: at most 6 restarts an hour.
RESTART_EVERY = 600.0
#: Where the watch remembers its last restart (in /run: cleared at every boot).
STATE_FILE = Path("/run/doorpi-pcscd-watch/state.json")
#: The gate's runtime file of faults (doorpi.faults); the unit names it in its
#: ExecCondition= and ExecStart= (its own $RUNTIME_DIRECTORY is the watch's folder).
GATE_FAULTS = DEFAULT_DIR / FILE_NAME
#: A fault stamped further than this ahead of now is not the gate's (the gate rounds
#: its stamp to the millisecond): the file is garbled.
AHEAD_SLACK = 1.0
#: What an installer would type (docs/reliability.md "Frozen pcscd ...").
RESTART_COMMAND = ("systemctl", "restart", "pcscd.service")
#: Seconds to wait for systemctl: pcscd's own stop timeout is systemd's default 90 s.
RESTART_TIMEOUT = 120.0


@dataclass(frozen=True)
class WatchState:
    """What the watch keeps between runs: when it last restarted pcscd (CLOCK_MONOTONIC
    seconds, None: not this boot), kept across freezes and gate restarts."""

    restarted_at: float | None = None


@dataclass(frozen=True)
class ReaderFault:
    """The running gate's `card reader` fault: its line, and the CLOCK_MONOTONIC time
    the gate first raised it (`doorpi.faults`, ``raised_monotonic``)."""

    detail: str
    raised: float


def pcsc_call(detail: str | None) -> str:
    """The PC/SC call a `card reader` fault line names ("" for any other fault:
    thread stopped, stuck in our code, not answering, health check failed)."""
    if not detail or not detail.startswith(READER_WAITS_ON):
        return ""
    call = detail[len(READER_WAITS_ON) :].split(" ", 1)[0]
    return call if call.startswith("SCard") else ""


def step(fault: ReaderFault | None, now: float, state: WatchState) -> tuple[bool, WatchState, str]:
    """One look at the running gate's `card reader` ``fault`` (None: none, or no gate
    running) at ``now``.

    Returns (restart pcscd?, the state to keep, one line for the journal or ""). A
    restart stamp later than ``now`` is not from this boot's clock and is dropped; a
    fault raised later than ``now`` has not stood at all."""
    last = state.restarted_at
    if last is not None and last > now:
        last = None
    call = pcsc_call(fault.detail if fault is not None else None)
    if fault is None or not call or now - fault.raised < RESTART_AFTER:
        return False, WatchState(last), ""
    if last is not None and now - last < RESTART_EVERY:
        return False, WatchState(last), ""
    line = (
        f"restarting pcscd: the card reader has waited on {call} for {now - fault.raised:.0f} s "
        f"(next restart {RESTART_EVERY:.0f} s from now at the earliest)"
    )
    return True, WatchState(now), line


def read_state(path: Path) -> tuple[WatchState | None, str]:
    """The state in ``path`` and "" (no file yet: no restart this boot), or None and one
    line naming the file when it cannot be read or is garbled: the caller then takes it
    as a restart just now, so that the rate limit holds whatever became of the file."""
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return WatchState(_stamp(doc, "restarted_at")), ""
    except (FileNotFoundError, NotADirectoryError):  # none yet (writing it will say more)
        return WatchState(), ""
    except OSError as exc:
        return None, f"{path}: cannot read ({exc.strerror}); {_TAKEN_AS}"
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        return None, f"{path}: garbled state file ({exc}); {_TAKEN_AS}"


_TAKEN_AS = f"taken as a restart just now (none for {RESTART_EVERY:.0f} s)"


def _stamp(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{key} is not a number")
    return float(value)


def write_state(path: Path, state: WatchState) -> None:
    """Replace ``path`` (0600, its folder 0700 if it has to be made) with ``state``;
    raises OSError."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a run that died: O_EXCL makes the file anew, 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"restarted_at": state.restarted_at}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def reader_fault(path: Path) -> ReaderFault | None:
    """The running gate's `card reader` fault from its runtime file ``path`` (None when
    there is none, or no gate running: no file, its pid gone); raises RuntimeFileError
    (one line naming the file) when it cannot be read or is garbled."""
    faults = running_faults(path)
    entry = faults.get(READER_FAULT) if faults else None
    if entry is None:
        return None
    return ReaderFault(entry["detail"], float(entry["raised_monotonic"]))


def systemctl_restart(command: Sequence[str] = RESTART_COMMAND) -> str:
    """Run ``command``: "" when it succeeded, else one line saying how it failed."""
    shown = " ".join(command)
    try:
        done = subprocess.run(list(command), capture_output=True, text=True,
                              timeout=RESTART_TIMEOUT, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{shown}` failed: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return f"`{shown}` exited {done.returncode}" + (f": {said[-1]}" if said else "")
    return ""


def check(
    faults_path: Path = GATE_FAULTS,
    state_path: Path = STATE_FILE,
    restart: Callable[[], str] = systemctl_restart,
    now: Callable[[], float] = time.monotonic,
) -> tuple[int, list[str]]:
    """One run of the watch: (exit code, lines for the journal).

    0: nothing to do, or pcscd restarted; 1: the gate's faults or the state could not
    be read or kept, or ``restart`` (returns "" or why it failed) failed. The restart is
    written to ``state_path`` before it is made: a watch that cannot keep that record
    does not restart, so the rate limit holds whatever happens."""
    lines: list[str] = []
    try:
        fault = reader_fault(faults_path)
    except RuntimeFileError as exc:
        return 1, [f"{exc}; pcscd left alone"]
    t = now()
    if fault is not None and fault.raised > t + AHEAD_SLACK:
        return 1, [f"{faults_path}: garbled (the card reader fault is stamped "
                   f"{fault.raised - t:.0f} s ahead of this boot's clock); pcscd left alone"]  # fmt: skip
    kept, problem = read_state(state_path)
    if problem:
        lines.append(problem)
    state = kept if kept is not None else WatchState(t)
    act, new, line = step(fault, t, state)
    if new != state or problem:
        try:
            write_state(state_path, new)
        except OSError as exc:
            what = "not restarted" if act else "left alone"
            why = exc.strerror or str(exc)
            if exc.filename and str(exc.filename) != str(state_path):
                why += f": {exc.filename}"
            lines.append(f"pcscd {what}: cannot write {state_path} ({why}); "
                         "without it restarts would not be rate-limited")  # fmt: skip
            return 1, lines
    if not act:
        return 0, lines
    lines.append(line)
    failed = restart()
    if failed:
        lines.append(f"pcscd restart failed: {failed}")
        return 1, lines
    return 0, lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The watch's options, shared by `doorpi pcscd-watch` and `python -m doorpi.pcscdwatch`."""
    p.add_argument("--faults", type=Path, default=None, metavar="FILE",
                   help="the running gate's faults file (default: faults.json in the gate's "
                        f"runtime directory, $DOORPI_RUNTIME_DIR or {DEFAULT_DIR})")  # fmt: skip
    p.add_argument("--state", type=Path, default=STATE_FILE, metavar="FILE",
                   help=f"where the watch keeps its last restart (default: {STATE_FILE})")  # fmt: skip


DESCRIPTION = (
    "One check: when the running gate's `card reader` fault says it waits on a PC/SC call "
    f"and the gate has shown it for {RESTART_AFTER:.0f} s, run `systemctl restart "
    f"pcscd.service`, at most once every {RESTART_EVERY:.0f} s. Reads the gate's runtime "
    "file of faults, never its database. Exit 0: nothing to do, or restarted; 1: the "
    "gate's file, the restart or the watch's own state failed, one line says why."
)


def run(args: argparse.Namespace) -> int:
    """One check with ``args`` (`add_arguments`); prints its lines, returns the exit code."""
    if args.faults is not None:
        faults = args.faults
    else:
        faults = Path(os.environ.get("DOORPI_RUNTIME_DIR") or DEFAULT_DIR) / FILE_NAME
    code, lines = check(faults, args.state)
    for line in lines:
        print(line, file=sys.stderr if code else sys.stdout)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m doorpi.pcscdwatch`: what the unit runs (no CLI start-up, no store)."""
    p = argparse.ArgumentParser(prog="python -m doorpi.pcscdwatch", description=DESCRIPTION)
    add_arguments(p)
    return run(p.parse_args(argv))


__all__ = [
    "GATE_FAULTS",
    "RESTART_AFTER",
    "RESTART_COMMAND",
    "RESTART_EVERY",
    "STATE_FILE",
    "ReaderFault",
    "WatchState",
    "check",
    "main",
    "pcsc_call",
    "read_state",
    "reader_fault",
    "step",
    "systemctl_restart",
    "write_state",
]


if __name__ == "__main__":
    sys.exit(main())
