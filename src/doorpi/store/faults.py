"""Naming what is wrong with the data partition, in words an installer can act on.

SQLite reports a read-only mount as "unable to open database file" and a full
partition as "disk I/O error" (the shared-memory file cannot grow). Neither
names the cause, so before passing an error on, the store asks the file system
(``statvfs``) what is going on with the folder that holds the database.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from doorpi.fsutil import read_only_layer

# Below this much free space a write of one WAL frame plus its shared-memory page
# can fail: 4 KiB pages, a handful of them per audit transaction (SQLite's default page size).
LOW_SPACE_BYTES = 64 * 1024


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / SQLITE_BUSY (another process writes)."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    return isinstance(exc, sqlite3.OperationalError) and (
        name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "locked" in str(exc)
    )


def partition_problem(data_dir: Path) -> str:
    """ "data partition X is read-only" / "no space left on X", or "" when neither.

    A folder read-only only to this process (a read-only bind mount: systemd's
    ReadOnlyPaths=, fsutil.read_only_layer) is said to be that, not a read-only partition."""
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return ""
    if st.f_flag & os.ST_RDONLY:  # the mount's flag: a service's sandbox sets it too
        if read_only_layer(probe) == "mount":
            return f"{data_dir} is read-only to this process only (its service's sandbox)"
        return f"data partition {data_dir} is read-only"
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    if free < LOW_SPACE_BYTES:
        return f"no space left on {data_dir}"
    return ""


def describe(exc: BaseException, data_dir: Path) -> str:
    """One line naming the cause of a storage error (busy, read-only, full, other)."""
    if is_busy(exc):
        return f"database busy: another process holds the write lock on {data_dir / 'doorpi.db'}"
    cause = partition_problem(data_dir)
    if cause:
        return cause
    name = str(getattr(exc, "sqlite_errorname", ""))
    if name.startswith("SQLITE_FULL") or getattr(exc, "errno", None) == 28:
        return f"no space left on {data_dir}"
    if name.startswith("SQLITE_READONLY") or getattr(exc, "errno", None) == 30:
        return f"{data_dir / 'doorpi.db'} is read-only"
    return f"{data_dir / 'doorpi.db'}: {exc}"
