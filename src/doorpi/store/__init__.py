"""Storage at the edge: the database, device secrets, residents and the audit log.

`Storage.open` never starts afresh over data it cannot use: a device key that
is missing, empty, unreadable or not the one the database was written with, a
database that is missing, empty or damaged while the keys say one existed,
each is a one-line fault naming the file (recovery: docs/recovery.md). A data
partition that is read-only or full at start is not a fault of the store: with
``degrade=True`` (the gate, `doorpi status`) the database is opened read-only
so card and PIN keep working, and audit records wait in memory (`AuditQueue`)
until the partition takes writes again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from doorpi.store.audit import GENESIS, AuditLog
from doorpi.store.auditqueue import WRITE_BUSY_MS, AuditQueue
from doorpi.store.db import (
    BUSY_TIMEOUT_MS,
    DatabaseError,
    StorageUnavailable,
    check_schema,
    get_state,
    open_db,
    open_readonly,
    set_state,
)
from doorpi.store.faults import describe, partition_problem
from doorpi.store.residents import ResidentStore
from doorpi.store.secrets import DeviceSecrets, KeyError_

log = logging.getLogger("doorpi.store")

DB_NAME = "doorpi.db"
KEYS_DIR = "keys"
# Written next to the device key once the database exists: a database that is gone
# while this file remains was lost, not never made.
MARKER = "database.created"
RECOVERY = "docs/recovery.md"


def data_dir_problem(data_dir: Path) -> str:
    """Why ``site.data_dir`` cannot hold the store (a file where a folder must be), or ""."""
    for p in (data_dir, *data_dir.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == data_dir else f"is inside {p}, which is a file"
                return f"site.data_dir = {data_dir}: {what}, not a folder"
            break
    for name, want_dir in ((KEYS_DIR, True), (DB_NAME, False)):
        p = data_dir / name
        if p.exists() and p.is_dir() != want_dir:
            return f"site.data_dir = {data_dir}: {p} is a {'file' if want_dir else 'folder'}"
    return ""


@dataclass
class Storage:
    db: sqlite_utils.Database
    secrets: DeviceSecrets
    residents: ResidentStore
    audit: AuditLog
    data_dir: Path = Path(".")
    # The cause, when the partition refused writes at start and the database was
    # opened read-only; "" when it is read-write.
    degraded: str = ""
    busy_ms: int = BUSY_TIMEOUT_MS
    # Missing indexes or triggers (safeguards, not needed to run): one line each.
    schema_lost: list[str] = field(default_factory=list)
    _queue: AuditQueue | None = field(default=None, repr=False)
    _health_file: Path | None = field(default=None, repr=False)
    _retired: list[sqlite3.Connection] = field(default_factory=list, repr=False)

    @classmethod
    def open(
        cls, data_dir: Path, *, degrade: bool = False, busy_ms: int = BUSY_TIMEOUT_MS
    ) -> Storage:
        """Open the store under ``data_dir`` (creating it on a true first boot).

        Raises KeyError_ or DatabaseError (one line naming the file and the
        recovery) for a store that held data and is now unusable;
        StorageUnavailable when the partition refuses writes and either
        ``degrade`` is False or nothing can be read.
        """
        problem = data_dir_problem(data_dir)
        if problem:
            raise DatabaseError(problem)
        keys_dir, db_path = data_dir / KEYS_DIR, data_dir / DB_NAME
        try:
            secrets: DeviceSecrets | None = DeviceSecrets.load(keys_dir)
        except FileNotFoundError:
            secrets = None
        size = db_path.stat().st_size if db_path.exists() else None
        if secrets is not None and not size and (keys_dir / MARKER).exists():
            state = "missing" if size is None else "empty (0 bytes)"
            raise DatabaseError(
                f"{db_path}: {state}, but {keys_dir / MARKER} shows this gate had a database: "
                f"restore doorpi.db from a backup ({RECOVERY}); the gate does not start afresh "
                "on its own"
            )
        degraded = ""
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = open_db(db_path, busy_ms=busy_ms)
        except (DatabaseError, OSError) as exc:
            cause = partition_problem(data_dir)
            if not cause:
                if isinstance(exc, DatabaseError):
                    raise
                raise DatabaseError(f"{data_dir}: {exc.strerror or exc}") from None
            if not degrade or not size:
                raise StorageUnavailable(f"{cause}: cannot open {db_path} for writing") from None
            try:
                db = open_readonly(db_path)
            except sqlite3.Error as exc2:
                raise StorageUnavailable(f"{cause}; {db_path} cannot be read: {exc2}") from None
            degraded = cause
            wal = db_path.with_name(DB_NAME + "-wal")
            if wal.exists() and wal.stat().st_size:
                log.warning("%s: changes still in %s are not seen until it takes writes",
                            cause, wal.name)  # fmt: skip
        try:
            schema_lost = check_schema(db.conn, db_path)
            secrets = _match_key(db, secrets, keys_dir, db_path, degraded)
            if not degraded:
                _write_marker(keys_dir)
        except BaseException:
            db.conn.close()
            raise
        store = cls(db, secrets, ResidentStore(db), AuditLog(db, secrets.audit_key), data_dir,
                    degraded, busy_ms)  # fmt: skip
        store.schema_lost = schema_lost
        for line in schema_lost:
            log.error("%s (restore doorpi.db from a backup: %s)", line, RECOVERY)
        if degraded:
            log.error("%s: database opened read-only; card and PIN work, audit records wait "
                      "in memory", degraded)  # fmt: skip
        return store

    # ------------------------------------------------------------ the gate's audit path

    @property
    def audit_queue(self) -> AuditQueue:
        """The gate's audit writer (created on first use; see AuditQueue)."""
        if self._queue is None:
            self._queue = AuditQueue(
                self._open_audit_log,
                lambda exc: describe(exc, self.data_dir),
                on_change=self._publish,
            )
        return self._queue

    def _open_audit_log(self) -> AuditLog:
        db = open_db(self.data_dir / DB_NAME, migrate=False, busy_ms=WRITE_BUSY_MS)
        if self.degraded:
            # The partition takes writes again: reads move to a read-write connection,
            # in place, so everything holding `self.db` sees the current data.
            main = open_db(self.data_dir / DB_NAME, migrate=False, busy_ms=self.busy_ms)
            self._retired.append(self.db.conn)
            self.db.conn = main.conn
            log.warning("database read-write again (was: %s)", self.degraded)
            self.degraded = ""
            self._publish()
        return AuditLog(db, self.secrets.audit_key)

    def health(self) -> dict[str, Any]:
        """What `doorpi status` shows about this process's storage (one line each)."""
        q = self._queue.status() if self._queue is not None else {}
        return {
            "updated": time.time(),
            "data_dir": str(self.data_dir),
            "degraded": self.degraded,
            "audit_cause": q.get("cause", ""),
            "audit_pending": q.get("pending", 0),
            "audit_spilled": q.get("spilled", 0),
        }

    def publish_health(self, path: Path) -> None:
        """Keep ``path`` (the runtime dir's health file) up to date from now on."""
        self._health_file = path
        self._publish()

    def _publish(self) -> None:
        if self._health_file is None:
            return
        from doorpi.store.health import write_health

        try:
            write_health(self._health_file, self.health())
        except OSError as exc:
            log.warning("cannot write %s: %s", self._health_file, exc)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        if self._health_file is not None:  # what was in memory is written or in the journal
            self._health_file.unlink(missing_ok=True)
        for conn in (*self._retired, self.db.conn):
            conn.close()


def preflight(data_dir: Path) -> list[str]:
    """What `Storage.open` would refuse, found without creating or writing anything
    (for `doorpi config check`): one line per problem, [] when the gate can start."""
    problem = data_dir_problem(data_dir)
    if problem:
        return [problem]
    keys_dir, db_path = data_dir / KEYS_DIR, data_dir / DB_NAME
    try:
        secrets: DeviceSecrets | None = DeviceSecrets.load(keys_dir)
    except FileNotFoundError:
        secrets = None
    except KeyError_ as exc:
        return [str(exc)]
    size = db_path.stat().st_size if db_path.exists() else None
    if not size:
        if secrets is not None and (keys_dir / MARKER).exists():
            return [f"{db_path}: missing or empty, but {keys_dir / MARKER} shows this gate had "
                    f"a database: restore doorpi.db from a backup ({RECOVERY})"]  # fmt: skip
        return []
    try:
        db = open_readonly(db_path)
    except sqlite3.Error as exc:
        return [f"{db_path}: cannot be read: {exc}"]
    try:
        lost = check_schema(db.conn, db_path)
        if secrets is None:
            held = _holds_data(db)
            if held:
                return [f"{keys_dir / 'device.key'}: missing, but {db_path} holds {held}: "
                        f"restore the key from a backup ({RECOVERY})"]  # fmt: skip
        else:
            stored = get_state(db, "device_key_check")
            ok = (stored == secrets.check_value) if stored else _newest_audit_verifies(db, secrets)
            if not ok:
                return [_mismatch(keys_dir / "device.key", db_path)]
        return lost
    except (DatabaseError, sqlite3.Error) as exc:
        return [str(exc)]
    finally:
        db.conn.close()


def _holds_data(db: sqlite_utils.Database) -> str:
    """'' for a database with nothing in it, else what it holds (for the message)."""
    residents = db.execute("SELECT count(*) FROM residents").fetchone()[0]
    audit = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    if get_state(db, "device_key_check") is None and not residents and not audit:
        return ""
    return f"{residents} resident(s) and {audit} audit record(s)"


def _match_key(
    db: sqlite_utils.Database,
    secrets: DeviceSecrets | None,
    keys_dir: Path,
    db_path: Path,
    degraded: str,
) -> DeviceSecrets:
    """The device key that belongs to this database, created only on a first boot."""
    key_path = keys_dir / "device.key"
    stored = get_state(db, "device_key_check")
    if secrets is None:
        held = _holds_data(db)
        if held:
            raise KeyError_(
                f"{key_path}: missing, but {db_path} holds {held}: restore the key from a "
                f"backup ({RECOVERY}); a new key would refuse every card and PIN"
            )
        if degraded:
            raise StorageUnavailable(f"{degraded}: cannot create {key_path}")
        secrets = DeviceSecrets.create(keys_dir)
    if stored is None:
        # A database from before key checks (or a first boot): the newest audit
        # record must verify under this key.
        if not _newest_audit_verifies(db, secrets):
            raise KeyError_(_mismatch(key_path, db_path))
        if not degraded:
            set_state(db, "device_key_check", secrets.check_value)
    elif stored != secrets.check_value:
        raise KeyError_(_mismatch(key_path, db_path))
    return secrets


def _mismatch(key_path: Path, db_path: Path) -> str:
    return (
        f"{key_path}: not the key {db_path} was written with (another gate's key or "
        f"database?): restore this gate's key and database together ({RECOVERY})"
    )


def _newest_audit_verifies(db: sqlite_utils.Database, secrets: DeviceSecrets) -> bool:
    rows = db.execute(
        "SELECT seq, ts, kind, data, hash FROM audit ORDER BY seq DESC LIMIT 2"
    ).fetchall()
    if not rows:
        return True
    seq, ts, kind, data, h = rows[0]
    if len(rows) == 2 and rows[1][0] == seq - 1:
        prev = rows[1][4]
    else:
        anchor = get_state(db, "audit_anchor")
        prev_seq, prev = json.loads(anchor) if anchor else (0, GENESIS)
        if prev_seq != seq - 1:
            return True  # nothing to check against
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return AuditLog(db, secrets.audit_key)._link(prev, seq, ts, kind, parsed) == h


def _write_marker(keys_dir: Path) -> None:
    marker = keys_dir / MARKER
    if not marker.exists():
        from doorpi.store.secrets import write_secret_file

        write_secret_file(marker, f"doorpi.db created {time.strftime('%Y-%m-%d')}\n".encode())


__all__ = [
    "DatabaseError",
    "KeyError_",
    "Storage",
    "StorageUnavailable",
    "data_dir_problem",
    "preflight",
]
