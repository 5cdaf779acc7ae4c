"""The gate's SQLite database: connection settings and versioned migrations.

WAL so the admin CLI can write while the gate reads; ``synchronous=FULL`` so a
power cut loses nothing that was acknowledged; ``secure_delete`` so deleted
rows are overwritten in place. ``PRAGMA user_version`` holds the schema
version; `open_db` applies the missing migrations in one transaction each.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

MIGRATIONS: list[str] = [
    # 1: residents, cards, audit, state
    """
    CREATE TABLE residents (
        id INTEGER PRIMARY KEY,
        pseudonym TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        unit TEXT NOT NULL DEFAULT '',
        keypad_id TEXT UNIQUE,
        valid_from REAL,
        valid_until REAL,
        schedule TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        pin_hash TEXT,
        face_refused INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE cards (
        card_hash TEXT PRIMARY KEY,
        resident_id INTEGER NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
        label TEXT NOT NULL DEFAULT '',
        added REAL NOT NULL
    );
    CREATE INDEX cards_resident ON cards(resident_id);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER audit_prune_only_old BEFORE DELETE ON audit
    WHEN OLD.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM state
                             WHERE key = 'audit_prune_upto'), 0)
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class DatabaseError(RuntimeError):
    """The database cannot be opened or is damaged; the message says where."""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def open_db(path: str | Path, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating with mode 0600 if needed) and migrate the database."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not p.exists():
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    try:
        conn = _connect(p)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{p}: not a usable SQLite database: {exc}") from None
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{p}: schema version {version} is newer than this doorpi ({SCHEMA_VERSION})"
        )
    if migrate:
        for number in range(version, SCHEMA_VERSION):
            try:
                conn.execute("BEGIN IMMEDIATE")
                for stmt in _statements(MIGRATIONS[number]):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={number + 1}")
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                conn.execute("ROLLBACK")
                raise DatabaseError(f"{p}: migration {number + 1} failed: {exc}") from None
    return sqlite_utils.Database(conn)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ';' inside BEGIN..END)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def integrity_check(db: sqlite_utils.Database) -> str:
    """'ok' or SQLite's first complaint."""
    row = db.execute("PRAGMA integrity_check").fetchone()
    return str(row[0])


def get_state(db: sqlite_utils.Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_state(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO state(key, value) VALUES(?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
