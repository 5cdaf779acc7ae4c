"""The audit log: append-only, hash-chained, short retention.

Each record's hash is keyed BLAKE2b over the previous hash and the record's
canonical JSON, keyed with the device's audit key. Editing, reordering or
deleting a record in the middle breaks the chain, which `verify` reports with
the first bad sequence number. Pruning old records (retention) moves a signed
anchor forward so the chain still verifies from the oldest kept record.
Triggers refuse UPDATE and out-of-order DELETE as a second line. Governance
records (`GOVERNANCE_KINDS`) outlive the entry log's retention in their own
table, each with its chain link, and are verified one by one.

The log's head (last sequence number and hash) is also kept in the state
table, written in the same transaction as each record: records cut from the
end fail `verify`, and new records continue after the head, so a sequence
number is never used twice. Someone with the database file can rewrite the
head too; what catches that is the admin, who compares the head each signed
report carries with the previous report's (`doorpi.sync.report`).
Records never hold card identifiers, PINs, images or embeddings.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from nacl.encoding import HexEncoder
from nacl.hash import blake2b

from doorpi.store.db import get_state, set_state

GENESIS = "0" * 64
HEAD = "audit_head"  # state key: JSON [seq, hash] of the newest record ever written

# Processing records (PIPL 55-56, law notes F20): kept for
# ``audit.governance_retention_days`` (at least a year), apart from the entry log's
# short retention. Everything an admin does is an "admin" record.
GOVERNANCE_KINDS = frozenset({
    "admin",
    "impact_assessment_recorded",
    "face_consent_recorded",
    "face_consent_withdrawn",
    "face_refused",
    "face_enrolment_started",
    "face_enrolment_refused",
    "face_enrolled",
    "face_template_stored",
    "face_template_received",
    "face_template_deleted",
    "face_templates_cleared",
    "face_template_expired",
    "face_template_rejected",
    "face_keys_rotated",
    "face_card_written",
    "face_hands_free_suspended",
    "resident_report_exported",
})  # fmt: skip


def _canonical(seq: int, ts: float, kind: str, data: dict[str, Any]) -> bytes:
    return json.dumps(
        [seq, round(float(ts), 6), kind, data], sort_keys=True, separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]
    hash: str = ""  # chain hash (hex), as stored


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str = ""


class AuditLog:
    def __init__(self, db: sqlite_utils.Database, key: bytes) -> None:
        self.db = db
        self._key = key
        self._lock = threading.Lock()

    def _link(self, prev: str, seq: int, ts: float, kind: str, data: dict[str, Any]) -> str:
        return blake2b(
            prev.encode() + _canonical(seq, ts, kind, data),
            digest_size=32,
            key=self._key,
            encoder=HexEncoder,
        ).decode()

    def append(self, kind: str, data: dict[str, Any], ts: float) -> AuditRecord:
        return self.append_many([(kind, data, ts)])[0]

    def append_many(self, items: list[tuple[str, dict[str, Any], float]]) -> list[AuditRecord]:
        """Append records in one transaction (one fsync for a whole gate event)."""
        out: list[AuditRecord] = []
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                if row is None:
                    anchor = get_state(self.db, "audit_anchor")
                    prev_seq, prev = json.loads(anchor) if anchor else (0, GENESIS)
                else:
                    prev_seq, prev = row
                head = self._head()
                if head is not None and head[0] > prev_seq:
                    prev_seq, prev = head  # the tail was cut: never reuse its numbers
                for kind, data, ts in items:
                    seq = prev_seq + 1
                    clean = json.loads(json.dumps(data, default=str))
                    h = self._link(prev, seq, ts, kind, clean)
                    conn.execute(
                        "INSERT INTO audit(seq, ts, kind, data, hash) VALUES (?, ?, ?, ?, ?)",
                        [seq, float(ts), kind, json.dumps(clean, sort_keys=True), h],
                    )
                    out.append(AuditRecord(seq, float(ts), kind, clean, h))
                    prev_seq, prev = seq, h
                set_state(self.db, HEAD, json.dumps([prev_seq, prev]))
                conn.execute("COMMIT")
            except BaseException:
                # After SQLITE_FULL or an I/O error SQLite has already rolled back; a
                # second ROLLBACK would replace the real error with "no transaction".
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return out

    def _head(self) -> tuple[int, str] | None:
        raw = get_state(self.db, HEAD)
        try:
            seq, h = json.loads(raw) if raw else (None, None)
        except (ValueError, TypeError):
            return None
        return (int(seq), str(h)) if isinstance(seq, int) else None

    def head(self) -> tuple[int, str]:
        """(sequence number, chain hash) of the newest record; (0, GENESIS) when empty.

        This is what a signed sync report carries, so the admin can tell a log
        that lost its end (rewind) or skipped records (gap) from one that grew.
        """
        row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
        anchor = get_state(self.db, "audit_anchor")
        seq, h = json.loads(anchor) if anchor else (0, GENESIS)
        return int(seq), str(h)

    def hash_at(self, seq: int) -> str | None:
        """The chain hash of record ``seq`` while it is kept (or is the prune anchor)."""
        row = self.db.execute("SELECT hash FROM audit WHERE seq = ?", [seq]).fetchone()
        if row is not None:
            return str(row[0])
        anchor = get_state(self.db, "audit_anchor")
        if anchor and json.loads(anchor)[0] == seq:
            return str(json.loads(anchor)[1])
        return GENESIS if seq == 0 else None

    def pruned_upto(self) -> int:
        """Records up to this sequence number were pruned (retention); 0 if none."""
        anchor = get_state(self.db, "audit_anchor")
        return int(json.loads(anchor)[0]) if anchor else 0

    def records(self, since_seq: int = 0, limit: int | None = None) -> Iterator[AuditRecord]:
        sql = "SELECT seq, ts, kind, data, hash FROM audit WHERE seq > ? ORDER BY seq"
        params: list[Any] = [since_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        for seq, ts, kind, data, h in self.db.execute(sql, params).fetchall():
            yield AuditRecord(seq, ts, kind, json.loads(data), h)

    def governance(self) -> list[AuditRecord]:
        """Processing records, oldest first: those already moved out of the entry log
        (kept for the governance period) and those still in it."""
        marks = ",".join("?" * len(GOVERNANCE_KINDS))
        rows = self.db.execute(
            "SELECT seq, ts, kind, data FROM governance_records UNION "
            f"SELECT seq, ts, kind, data FROM audit WHERE kind IN ({marks}) ORDER BY seq",
            sorted(GOVERNANCE_KINDS),
        ).fetchall()
        return [AuditRecord(s, t, k, json.loads(d)) for s, t, k, d in rows]

    def kinds(self) -> list[str]:
        """Every record kind in the log (entry log and kept processing records), sorted."""
        rows = self.db.execute(
            "SELECT DISTINCT kind FROM audit UNION SELECT DISTINCT kind FROM governance_records"
        ).fetchall()
        return sorted(k for (k,) in rows)

    def tail(self, n: int) -> list[AuditRecord]:
        rows = self.db.execute(
            "SELECT seq, ts, kind, data FROM audit ORDER BY seq DESC LIMIT ?", [n]
        ).fetchall()
        return [AuditRecord(s, t, k, json.loads(d)) for s, t, k, d in reversed(rows)]

    def verify(self) -> VerifyResult:
        anchor = get_state(self.db, "audit_anchor")
        prev_seq, prev = json.loads(anchor) if anchor else (0, GENESIS)
        checked = 0
        for seq, ts, kind, data, h in self.db.execute(
            "SELECT seq, ts, kind, data, hash FROM audit ORDER BY seq"
        ):
            if seq != prev_seq + 1:
                return VerifyResult(False, checked, seq, f"record {prev_seq + 1} is missing")
            try:
                parsed = json.loads(data)
            except ValueError:
                return VerifyResult(False, checked, seq, f"record {seq} is not valid JSON")
            if self._link(prev, seq, ts, kind, parsed) != h:
                return VerifyResult(False, checked, seq, f"record {seq} was altered")
            prev_seq, prev = seq, h
            checked += 1
        head = self._head()
        if head is not None and head[0] > prev_seq:
            return VerifyResult(
                False, checked, prev_seq + 1,
                f"records {prev_seq + 1} to {head[0]} were cut from the end",
            )  # fmt: skip
        if head is not None and head != (prev_seq, prev) and checked:
            return VerifyResult(False, checked, head[0], f"record {head[0]} was replaced")
        for seq, ts, kind, data, prev_h, h in self.db.execute(
            "SELECT seq, ts, kind, data, prev_hash, hash FROM governance_records ORDER BY seq"
        ):
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            if parsed is None or self._link(prev_h, seq, ts, kind, parsed) != h:
                return VerifyResult(False, checked, seq, f"governance record {seq} was altered")
        if anchor:
            upto = json.loads(anchor)[0]
            vouched = self.db.execute(
                "SELECT 1 FROM audit WHERE kind = 'audit_pruned' "
                "AND json_extract(data, '$.upto') = ?",
                [upto],
            ).fetchone()
            if vouched is None:
                return VerifyResult(False, checked, upto, "records were cut from the start")
        return VerifyResult(True, checked)

    def _prune_governance(self, older_than: float | None) -> None:
        """Inside prune's transaction: processing records older than ``older_than``
        go (None: none); the trigger allows exactly those."""
        if older_than is None:
            return
        set_state(self.db, "governance_prune_before", repr(older_than))
        self.db.conn.execute("DELETE FROM governance_records WHERE ts < ?", [older_than])
        set_state(self.db, "governance_prune_before", "0")

    def prune(
        self, older_than: float, governance_older_than: float | None = None,
        now: float | None = None,
    ) -> int:  # fmt: skip
        """Delete records with ts < older_than; keep the chain verifiable.

        The log is cut as a prefix (up to the newest record stamped before
        ``older_than``), but never at or past a record stamped inside the
        retention period, from ``older_than`` to ``now`` (the caller's vouched
        time; None: no end): a record another process stamped while the clock
        read 1970 must not take the month of entries before it along. One
        stamped after ``now`` (a clock at 2040) holds nothing back, or it would
        keep the whole log until 2040.

        Governance records (`GOVERNANCE_KINDS`) among them move to the
        ``governance_records`` table with their chain link, and are deleted only
        once older than ``governance_older_than`` (None: never)."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                kept = conn.execute(  # the oldest record inside the retention period
                    "SELECT MIN(seq) FROM audit WHERE ts >= ? AND ts <= ?",
                    [older_than, float("inf") if now is None else now],
                ).fetchone()[0]
                row = conn.execute(
                    "SELECT seq, hash FROM audit WHERE ts < ? AND seq < ? "
                    "ORDER BY seq DESC LIMIT 1",
                    [older_than, 2**62 if kept is None else kept],
                ).fetchone()
                if row is None:  # no entry to cut; processing records may be due all the same
                    self._prune_governance(governance_older_than)
                    conn.execute("COMMIT")
                    return 0
                upto, h = row
                anchor = get_state(self.db, "audit_anchor")
                first_prev = json.loads(anchor)[1] if anchor else GENESIS
                marks = ",".join("?" * len(GOVERNANCE_KINDS))
                conn.execute(
                    "INSERT OR IGNORE INTO governance_records(seq, ts, kind, data, prev_hash, "
                    "hash) SELECT seq, ts, kind, data, COALESCE(prev, ?), hash FROM (SELECT "
                    "seq, ts, kind, data, hash, LAG(hash) OVER (ORDER BY seq) AS prev FROM "
                    f"audit WHERE seq <= ?) WHERE kind IN ({marks})",
                    [first_prev, upto, *sorted(GOVERNANCE_KINDS)],
                )
                set_state(self.db, "audit_prune_upto", str(upto))
                n = conn.execute("DELETE FROM audit WHERE seq <= ?", [upto]).rowcount
                set_state(self.db, "audit_anchor", json.dumps([upto, h]))
                set_state(self.db, "audit_prune_upto", "0")
                self._prune_governance(governance_older_than)
                conn.execute("COMMIT")
            except BaseException:
                # After SQLITE_FULL or an I/O error SQLite has already rolled back; a
                # second ROLLBACK would replace the real error with "no transaction".
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        # The chain vouches for the anchor: verify() looks for this record.
        self.append("audit_pruned", {"upto": upto, "count": n}, ts=older_than)
        return n
