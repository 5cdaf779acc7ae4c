"""Restart a frozen pcscd that the gate has reported, at most once per RESTART_EVERY.

The gate cannot cure a frozen pcscd itself (it runs unprivileged and sandboxed): it
shows `card reader waits on SCard... (pcscd frozen or hung?)` (`devicewatch.reader_probe`)
and keeps serving PIN. `doorpi pcscd-watch`, started by doorpi-pcscd-watch.timer every
30 s as root, reads that fault from the gate's database (read-only) and, once this watch
has seen it for RESTART_AFTER, runs `systemctl restart pcscd.service`: systemd sends
SIGTERM and then SIGCONT (systemd.kill(5)), so a stopped pcscd ends too, and then starts
it again (pcscd.socket stays listening meanwhile); the gate's reader re-connects.

`step` is the decision alone (no I/O); `check` is the runner around it: the stored
faults, the state file, the restart command. Times are CLOCK_MONOTONIC seconds
(`time.monotonic()`): one clock for the whole system within a boot, never set, so a
wall-clock jump (no RTC, NTP at last) changes nothing; the state file lives in /run,
which is empty after a boot, so no stamp from an earlier boot is ever compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doorpi.devicewatch import READER_FAULT, READER_WAITS_ON

#: Seconds this watch must have seen the reader waiting on pcscd before it restarts
#: pcscd. The gate shows the fault once its reader thread has been silent past its
#: `healthy()` bound (~4-5 s); a slow card or a busy pcscd answers within that, so a
#: fault standing a whole minute is a hung pcscd, not a slow one. Long enough that the
#: timer's 30 s period has seen it at least twice; short against the days an unattended
#: gate would otherwise wait for an installer.
RESTART_AFTER = 60.0
#: Seconds between two restarts, at least. A pcscd that freezes again at once (a wedged
#: USB reader, a driver bug) would otherwise be restarted every minute for ever, each
#: restart costing the card reader a few seconds; the fault stays shown meanwhile, and
#: PIN works throughout. Ten minutes: at most 6 restarts an hour.
RESTART_EVERY = 600.0
#: Where the watch remembers what it saw and did (in /run: cleared at every boot).
STATE_FILE = Path("/run/doorpi-pcscd-watch/state.json")
#: What an installer would type (docs/reliability.md "Frozen pcscd ...").
RESTART_COMMAND = ("systemctl", "restart", "pcscd.service")
#: Seconds to wait for systemctl: pcscd's own stop timeout is systemd's default 90 s.
RESTART_TIMEOUT = 120.0


@dataclass(frozen=True)
class WatchState:
    """What the watch keeps between runs, CLOCK_MONOTONIC seconds or None.

    ``frozen_since``: when this watch first saw the reader waiting on pcscd (this
    freeze); ``restarted_at``: when it last restarted pcscd (kept across freezes)."""

    frozen_since: float | None = None
    restarted_at: float | None = None


def pcsc_call(detail: str | None) -> str:
    """The PC/SC call a `card reader` fault line names ("" for any other fault:
    thread stopped, stuck in our code, not answering, health check failed)."""
    if not detail or not detail.startswith(READER_WAITS_ON):
        return ""
    call = detail[len(READER_WAITS_ON) :].split(" ", 1)[0]
    return call if call.startswith("SCard") else ""


def step(detail: str | None, now: float, state: WatchState) -> tuple[bool, WatchState, str]:
    """One look at the stored `card reader` fault ``detail`` (None: no fault) at ``now``.

    Returns (restart pcscd?, the state to keep, one line for the journal or "").
    A stamp later than ``now`` is not from this boot's clock and is dropped."""
    since, last = (t if t is not None and t <= now else None
                   for t in (state.frozen_since, state.restarted_at))  # fmt: skip
    call = pcsc_call(detail)
    if not call:
        return False, WatchState(None, last), ""
    if since is None:
        return False, WatchState(now, last), ""
    if now - since < RESTART_AFTER:
        return False, WatchState(since, last), ""
    if last is not None and now - last < RESTART_EVERY:
        return False, WatchState(since, last), ""
    line = (
        f"restarting pcscd: the card reader has waited on {call} for {now - since:.0f} s "
        f"(next restart {RESTART_EVERY:.0f} s from now at the earliest)"
    )
    return True, WatchState(since, now), line


def read_state(path: Path) -> tuple[WatchState, str]:
    """The state in ``path`` and "" (none yet: empty state), or empty state and one line
    naming the file when it cannot be read or is garbled."""
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return WatchState(_stamp(doc, "frozen_since"), _stamp(doc, "restarted_at")), ""
    except (FileNotFoundError, NotADirectoryError):  # none yet (writing it will say more)
        return WatchState(), ""
    except OSError as exc:
        return WatchState(), f"{path}: cannot read ({exc.strerror}); taken as no state"
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        return WatchState(), f"{path}: garbled state file ({exc}); taken as no state"


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
            json.dump({"frozen_since": state.frozen_since, "restarted_at": state.restarted_at}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def reader_fault(db_path: Path) -> str | None:
    """The gate's stored `card reader` fault line (None when there is none, or no
    database yet), read without writing anything; raises sqlite3.Error."""
    from doorpi.faults import stored_faults
    from doorpi.store.db import open_readonly

    if not db_path.exists():
        return None
    db = open_readonly(db_path)
    try:
        entry = stored_faults(db).get(READER_FAULT)
    finally:
        db.conn.close()
    detail = entry.get("detail") if isinstance(entry, dict) else None
    return detail if isinstance(detail, str) else None


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
    db_path: Path,
    state_path: Path = STATE_FILE,
    restart: Callable[[], str] = systemctl_restart,
    now: Callable[[], float] = time.monotonic,
) -> tuple[int, list[str]]:
    """One run of the watch: (exit code, lines for the journal).

    0: nothing to do, or pcscd restarted; 1: the faults or the state could not be
    read or kept, or ``restart`` (returns "" or why it failed) failed. The restart is
    written to ``state_path`` before it is made: a watch that cannot keep that record
    does not restart, so the rate limit holds whatever happens."""
    lines: list[str] = []
    try:
        detail = reader_fault(db_path)
    except sqlite3.Error as exc:
        return 1, [f"{db_path}: cannot read the gate's faults ({exc}); pcscd left alone"]
    state, problem = read_state(state_path)
    if problem:
        lines.append(problem)
    act, new, line = step(detail, now(), state)
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


__all__ = [
    "RESTART_AFTER",
    "RESTART_COMMAND",
    "RESTART_EVERY",
    "STATE_FILE",
    "WatchState",
    "check",
    "pcsc_call",
    "read_state",
    "reader_fault",
    "step",
    "systemctl_restart",
    "write_state",
]
