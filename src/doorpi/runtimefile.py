"""Small JSON files the running gate keeps in its runtime directory for other processes.

The gate knows things another process cannot see or read from the database when the
data partition is read-only or full: deferred audit records (`doorpi.store.health`),
its active device faults (`doorpi.faults`). It writes each to a file in its runtime
directory, a tmpfs that takes writes when the data partition does not, whenever it
changes (rare). ``$DOORPI_RUNTIME_DIR`` names the folder (tests), then
``$RUNTIME_DIRECTORY`` (systemd's ``RuntimeDirectory=``, in the gate's unit
``/run/doorpi``), then ``/run/doorpi``. A reader that runs in a unit with a
``RuntimeDirectory=`` of its own (doorpi-pcscd-watch) names the file explicitly.

Each file carries the writer's pid: a file whose writer has ended (a gate killed
before it could remove it) is taken as no file. The folder is 0700 (user doorpi), the
files 0644: root (or the gate's user) reads them. Kept free of heavy imports: the
pcscd watch reads one every 30 s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from doorpi.fsutil import write_atomic

DEFAULT_DIR = Path("/run/doorpi")


class RuntimeFileError(Exception):
    """A runtime file that exists but cannot be read or is garbled (one line naming it)."""


def runtime_dir() -> Path:
    """The gate's runtime directory (see the module's text for the order)."""
    folder = os.environ.get("DOORPI_RUNTIME_DIR") or os.environ.get("RUNTIME_DIRECTORY")
    return Path(folder) if folder else DEFAULT_DIR


def write_runtime(path: Path, info: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``info`` plus our pid (0644); raises OSError
    when the folder refuses."""
    write_atomic(path, json.dumps({**info, "pid": os.getpid()}, sort_keys=True).encode(), 0o644)


def pid_alive(pid: int) -> bool:
    """Is there a process ``pid`` (of any user)?"""
    if pid <= 0:
        return False  # 0 and negatives name process groups, not a writer
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process (the watch has no CAP_KILL): alive
    except OverflowError:
        return False
    return True


def load_runtime(path: Path) -> dict[str, Any] | None:
    """What the running writer last put in ``path``: None when there is no file or its
    writer (``pid``) has ended; raises RuntimeFileError (one line naming ``path``) when
    it cannot be read or is not such a file."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise RuntimeFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        info = json.loads(raw)
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        pid = info.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise ValueError("no writer pid")
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise RuntimeFileError(f"{path}: garbled ({exc})") from None
    return info if pid_alive(pid) else None


def read_runtime(path: Path) -> dict[str, Any] | None:
    """`load_runtime`, with a file that cannot be read taken as no file."""
    try:
        return load_runtime(path)
    except RuntimeFileError:
        return None


__all__ = [
    "DEFAULT_DIR",
    "RuntimeFileError",
    "load_runtime",
    "pid_alive",
    "read_runtime",
    "runtime_dir",
    "write_runtime",
]
