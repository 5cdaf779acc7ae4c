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
    # 2: face privacy (doorpi.privacy): consent records, templates kept apart from
    # identity data and keyed by the resident's random pseudonym, per-template
    # wrapped keys (crypto-shredding), impact assessments. The triggers are the
    # last line: no template without a live consent; withdrawal or removal of the
    # resident deletes the template in the same transaction; every change to the
    # templates bumps state.face_generation so a matcher in any process reloads.
    """
    CREATE TABLE face_consents (
        id INTEGER PRIMARY KEY,
        pseudonym TEXT NOT NULL,
        notice_version TEXT NOT NULL,
        notice_hash TEXT NOT NULL,
        lang TEXT NOT NULL,
        given_at REAL NOT NULL,
        confirmed_by TEXT NOT NULL,
        channel TEXT NOT NULL CHECK (channel IN ('gate', 'admin_present')),
        retention_end REAL NOT NULL CHECK (retention_end > given_at),
        minor INTEGER NOT NULL DEFAULT 0,
        guardian TEXT,
        share_site_gates INTEGER NOT NULL DEFAULT 0,
        withdrawn_at REAL,
        withdrawn_by TEXT,
        CHECK (minor = 0 OR (guardian IS NOT NULL AND length(trim(guardian)) > 0))
    );
    CREATE INDEX face_consents_pseudonym ON face_consents(pseudonym);
    CREATE TABLE face_templates (
        id INTEGER PRIMARY KEY,
        pseudonym TEXT NOT NULL UNIQUE,
        consent_id INTEGER NOT NULL REFERENCES face_consents(id),
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE TABLE face_template_keys (
        template_id INTEGER PRIMARY KEY REFERENCES face_templates(id) ON DELETE CASCADE,
        vault_key_id TEXT NOT NULL,
        nonce BLOB NOT NULL,
        wrapped_key BLOB NOT NULL
    );
    CREATE TABLE impact_assessments (
        id INTEGER PRIMARY KEY,
        created REAL NOT NULL,
        author TEXT NOT NULL,
        purpose TEXT NOT NULL,
        necessity TEXT NOT NULL,
        impact TEXT NOT NULL,
        measures TEXT NOT NULL,
        digest TEXT NOT NULL
    );
    CREATE TRIGGER face_template_needs_consent BEFORE INSERT ON face_templates
    WHEN NOT EXISTS (SELECT 1 FROM face_consents c WHERE c.id = NEW.consent_id
                     AND c.pseudonym = NEW.pseudonym AND c.withdrawn_at IS NULL
                     AND NEW.expires <= c.retention_end)
    BEGIN SELECT RAISE(ABORT, 'no live face consent for this template'); END;
    CREATE TRIGGER face_consent_withdrawn AFTER UPDATE OF withdrawn_at ON face_consents
    WHEN NEW.withdrawn_at IS NOT NULL
    BEGIN DELETE FROM face_templates WHERE consent_id = NEW.id; END;
    CREATE TRIGGER face_resident_removed AFTER DELETE ON residents
    BEGIN DELETE FROM face_templates WHERE pseudonym = OLD.pseudonym; END;
    INSERT OR IGNORE INTO state(key, value) VALUES ('face_generation', '0');
    CREATE TRIGGER face_gen_insert AFTER INSERT ON face_templates
    BEGIN UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'face_generation'; END;
    CREATE TRIGGER face_gen_update AFTER UPDATE ON face_templates
    BEGIN UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'face_generation'; END;
    CREATE TRIGGER face_gen_delete AFTER DELETE ON face_templates
    BEGIN UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'face_generation'; END;
    CREATE TRIGGER face_gen_resident AFTER UPDATE OF active, valid_until ON residents
    BEGIN UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'face_generation'; END;
    """,
    # 3: consent records received with a template from another gate of the site
    # (doorpi.privacy.share): which gate took the consent and its id there. NULL
    # for a consent given at this gate.
    """
    ALTER TABLE face_consents ADD COLUMN origin_gate TEXT;
    ALTER TABLE face_consents ADD COLUMN origin_consent_id INTEGER;
    """,
    # 4: a reported false match (`doorpi log false-match`) takes the template out of
    # face-alone (1:N) matching until the resident enrols again (a new row).
    """
    ALTER TABLE face_templates ADD COLUMN hands_free_suspended REAL;
    """,
    # 5: door modes (doorpi.core.modes): residents flagged responder (let in during
    # lockdown) and a separate duress PIN (opens normally, raises a silent alarm).
    """
    CREATE TABLE resident_roles (
        resident_id INTEGER PRIMARY KEY REFERENCES residents(id) ON DELETE CASCADE,
        responder INTEGER NOT NULL DEFAULT 0,
        duress_pin_hash TEXT
    );
    """,
    # 6: governance records (doorpi.store.audit.GOVERNANCE_KINDS: consent, enrolment,
    # withdrawal, deletion, admin actions) kept for their own period when the entry
    # log is pruned; each row keeps its chain link (prev_hash) so it stays verifiable.
    """
    CREATE TABLE governance_records (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER governance_no_update BEFORE UPDATE ON governance_records
    BEGIN SELECT RAISE(ABORT, 'governance records are append-only'); END;
    CREATE TRIGGER governance_prune_only_old BEFORE DELETE ON governance_records
    WHEN OLD.ts >= COALESCE((SELECT CAST(value AS REAL) FROM state
                             WHERE key = 'governance_prune_before'), 0)
    BEGIN SELECT RAISE(ABORT, 'governance records are kept for their retention period'); END;
    """,
    # 7: residents under 14 (PIPL 31): their face consent needs a parent or guardian
    # with the admin present; flagging a resident withdraws a consent given without
    # one (the withdrawal trigger then deletes the template). Identifiers of removed
    # residents and deleted consent records are never given out again:
    # state.resident_id_high / face_consent_id_high hold the highest id ever
    # deleted, and an insert at or below it is refused.
    """
    ALTER TABLE residents ADD COLUMN minor INTEGER NOT NULL DEFAULT 0;
    CREATE TRIGGER resident_minor_consent AFTER UPDATE OF minor ON residents
    WHEN NEW.minor = 1 AND OLD.minor = 0
    BEGIN UPDATE face_consents SET withdrawn_at = NEW.updated,
              withdrawn_by = 'system:minor_without_guardian'
          WHERE pseudonym = NEW.pseudonym AND withdrawn_at IS NULL AND minor = 0; END;
    INSERT OR IGNORE INTO state(key, value) VALUES ('resident_id_high', '0');
    CREATE TRIGGER resident_id_retired AFTER DELETE ON residents
    BEGIN UPDATE state SET value = max(CAST(value AS INTEGER), OLD.id)
          WHERE key = 'resident_id_high'; END;
    CREATE TRIGGER resident_id_never_reused AFTER INSERT ON residents
    WHEN NEW.id <= (SELECT CAST(value AS INTEGER) FROM state WHERE key = 'resident_id_high')
    BEGIN SELECT RAISE(ABORT, 'that resident id belonged to a removed resident'); END;
    INSERT OR IGNORE INTO state(key, value) VALUES ('face_consent_id_high', '0');
    CREATE TRIGGER face_consent_id_retired AFTER DELETE ON face_consents
    BEGIN UPDATE state SET value = max(CAST(value AS INTEGER), OLD.id)
          WHERE key = 'face_consent_id_high'; END;
    CREATE TRIGGER face_consent_id_never_reused AFTER INSERT ON face_consents
    WHEN NEW.id <= (SELECT CAST(value AS INTEGER) FROM state WHERE key = 'face_consent_id_high')
    BEGIN SELECT RAISE(ABORT, 'that consent id belonged to a deleted consent record'); END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class DatabaseError(RuntimeError):
    """The database cannot be opened or is damaged; the message says where."""


class StorageUnavailable(DatabaseError):
    """The data partition cannot be used right now (read-only, full, not mounted) and
    nothing could be read either: a fault that may pass, so the gate exits with
    EX_TEMPFAIL (75) and systemd tries again, rather than 2 (configuration)."""


# The CLI waits this long for another writer (a sync import, another command); the
# gate's own connection waits less (see Storage.open) so its loop never stalls.
BUSY_TIMEOUT_MS = 10000
# The gate's own reads and occasional writes (clock floor, retention) wait at most this
# long for another writer: far below WatchdogSec=10s; audit records never wait (AuditQueue).
GATE_BUSY_MS = 1000


def _connect(path: Path, busy_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def open_readonly(path: Path) -> sqlite_utils.Database:
    """Open the database for reading only, when the partition refuses writes.

    ``mode=ro`` still needs the WAL's shared-memory file, which a read-only or
    full partition cannot create; ``immutable=1`` then reads the main file as it
    is (changes still in ``doorpi.db-wal`` are not seen: the caller says so).
    Raises sqlite3.Error when neither works.
    """
    uri = path.resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)  # fmt: skip
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)  # fmt: skip
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.execute("PRAGMA query_only=ON")
    return sqlite_utils.Database(conn)


_EXPECTED: dict[str, tuple[str, tuple[str, ...]]] | None = None


def expected_schema() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, columns) of every table, index and trigger the migrations make."""
    global _EXPECTED
    if _EXPECTED is None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        for script in MIGRATIONS:
            for stmt in _statements(script):
                conn.execute(stmt)
        _EXPECTED = _schema_of(conn)
        conn.close()
    return _EXPECTED


def _schema_of(conn: sqlite3.Connection) -> dict[str, tuple[str, tuple[str, ...]]]:
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    rows = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for kind, name in rows:
        cols: tuple[str, ...] = ()
        if kind == "table":
            cols = tuple(r[1] for r in conn.execute(f'PRAGMA table_info("{name}")'))
        out[name] = (kind, cols)
    return out


def check_schema(conn: sqlite3.Connection, where: Path) -> list[str]:
    """Raise DatabaseError naming the first missing table or column (nothing can
    work without them). Returns one line per missing index or trigger: a lost
    safeguard to report (status, journal), while the audit check still runs."""
    have = _schema_of(conn)
    lost: list[str] = []
    for name, (kind, cols) in expected_schema().items():
        if name not in have:
            if kind != "table":
                lost.append(f"{where}: damaged schema: {kind} {name} is missing")
                continue
            raise DatabaseError(
                f"{where}: damaged schema: {kind} {name} is missing "
                "(restore doorpi.db from a backup: docs/recovery.md)"
            )
        missing = [c for c in cols if c not in have[name][1]]
        if missing:
            raise DatabaseError(
                f"{where}: damaged schema: table {name} has no column {missing[0]} "
                "(restore doorpi.db from a backup: docs/recovery.md)"
            )
    return lost


def open_db(
    path: str | Path, migrate: bool = True, busy_ms: int = BUSY_TIMEOUT_MS
) -> sqlite_utils.Database:
    """Open (creating with mode 0600 if needed) and migrate the database."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not p.exists():
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    try:
        conn = _connect(p, busy_ms)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.OperationalError as exc:  # the file system, not the file (the caller names it)
        raise DatabaseError(f"{p}: cannot open: {exc}") from None
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
                if conn.in_transaction:  # SQLite may already have rolled back (disk full)
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
