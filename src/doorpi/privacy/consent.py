"""Separate, recorded consent to face recognition, and its withdrawal.

Why a record per consent (PIPL 14, 17, 29, 31; SPC 2, 4): the operator must
be able to prove that *this* resident saw *this* text (its version and
hash), when, who confirmed it, until when it lasts, whether a guardian
consented for a child under 14, and whether the template may be used at the
site's other gates. A consent text granting unlimited duration,
irrevocability or onward licensing is refused before anything is stored.
Records are kept after withdrawal (with the time and who withdrew) as proof;
they hold the resident's pseudonym, never the name.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from doorpi.privacy.notices import NoticeError, NoticeText, check_notice
from doorpi.store.audit import AuditLog
from doorpi.store.residents import Resident

CHANNELS = ("gate", "admin_present")
DAY = 86400.0


#: The next consent id: above every record held and every record ever deleted
#: (state.face_consent_id_high, migration 5), so audit lines and reports naming
#: a consent id can never point at someone else's consent.
NEXT_CONSENT_ID_SQL = (
    "SELECT max(COALESCE((SELECT max(id) FROM face_consents), 0), COALESCE((SELECT "
    "CAST(value AS INTEGER) FROM state WHERE key = 'face_consent_id_high'), 0)) + 1"
)


class ConsentError(ValueError):
    """Consent that may not be recorded; the message says why."""


@dataclass(frozen=True)
class ConsentRecord:
    id: int
    pseudonym: str
    notice_version: str
    notice_hash: str
    lang: str
    given_at: float
    confirmed_by: str
    channel: str
    retention_end: float
    minor: bool
    guardian: str | None
    share_site_gates: bool
    withdrawn_at: float | None
    withdrawn_by: str | None
    origin_gate: str | None = None  # set when the consent came with a template from another gate
    origin_consent_id: int | None = None

    @property
    def live(self) -> bool:
        return self.withdrawn_at is None

    def public(self) -> dict[str, Any]:
        """The record as shown to the resident and the admin."""
        return {
            "id": self.id,
            "notice_version": self.notice_version,
            "notice_hash": self.notice_hash,
            "lang": self.lang,
            "given_at": self.given_at,
            "confirmed_by": self.confirmed_by,
            "channel": self.channel,
            "retention_end": self.retention_end,
            "minor": self.minor,
            "guardian": self.guardian,
            "share_site_gates": self.share_site_gates,
            "withdrawn_at": self.withdrawn_at,
            "withdrawn_by": self.withdrawn_by,
            "origin_gate": self.origin_gate,
            "origin_consent_id": self.origin_consent_id,
        }


_COLS = (
    "id, pseudonym, notice_version, notice_hash, lang, given_at, confirmed_by, channel, "
    "retention_end, minor, guardian, share_site_gates, withdrawn_at, withdrawn_by, origin_gate, "
    "origin_consent_id"
)


def _row(r: tuple[Any, ...]) -> ConsentRecord:
    return ConsentRecord(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10], bool(r[11]),
        r[12], r[13], r[14], r[15],
    )  # fmt: skip


class ConsentRegistry:
    """Consent records in the gate's database, every change in the audit log."""

    def __init__(self, db: sqlite_utils.Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def record(
        self,
        resident: Resident,
        notice: NoticeText,
        *,
        now: float,
        confirmed_by: str,
        channel: str,
        retention_days: int,
        max_retention_days: int,
        minor: bool = False,
        guardian: str | None = None,
        share_site_gates: bool = False,
        allow_site_sharing: bool = False,
    ) -> ConsentRecord:
        """Store a consent; a live older consent of the resident is superseded."""
        if notice.kind != "consent":
            raise ConsentError("consent must be given on the consent form, not the sign")
        try:
            check_notice(notice)
        except NoticeError as exc:
            raise ConsentError(str(exc)) from None
        if channel not in CHANNELS:
            raise ConsentError(f"consent is given at the gate or with the admin present, not {channel!r}")  # fmt: skip
        if not confirmed_by.strip():
            raise ConsentError("say who confirmed the consent")
        if not 1 <= retention_days <= max_retention_days:
            raise ConsentError(
                f"the retention period must be 1 to {max_retention_days} days, "
                f"got {retention_days}: never unlimited"
            )
        minor = minor or resident.minor  # the resident record says so: no one can un-say it here
        if minor and channel != "admin_present":
            raise ConsentError(
                f"resident {resident.id} is under 14: a parent or guardian consents with the "
                "admin present, never at the gate"
            )
        if minor and not (guardian and guardian.strip()):
            raise ConsentError("a resident under 14 needs a parent's or guardian's consent")
        if share_site_gates and not allow_site_sharing:
            raise ConsentError("this site does not allow templates at other gates")
        if not resident.active:
            raise ConsentError(f"resident {resident.id} is disabled")
        end = now + retention_days * DAY
        if resident.valid_until is not None:
            if resident.valid_until <= now:
                raise ConsentError(f"resident {resident.id}'s right to enter has ended")
            end = min(end, resident.valid_until)
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "UPDATE face_consents SET withdrawn_at = ?, withdrawn_by = 'superseded' "
                "WHERE pseudonym = ? AND withdrawn_at IS NULL",
                [now, resident.pseudonym],
            )
            cur = conn.execute(
                "INSERT INTO face_consents(id, pseudonym, notice_version, notice_hash, lang, "
                "given_at, confirmed_by, channel, retention_end, minor, guardian, "
                f"share_site_gates) VALUES (({NEXT_CONSENT_ID_SQL}), ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                [resident.pseudonym, notice.version, notice.digest, notice.lang, now,
                 confirmed_by.strip(), channel, end, int(minor),
                 guardian.strip() if guardian else None, int(share_site_gates)],
            )  # fmt: skip
            cid = int(cur.lastrowid or 0)
            # The resident chose to enrol: a former refusal no longer applies.
            conn.execute(
                "UPDATE residents SET face_refused = 0, updated = ? WHERE id = ?",
                [now, resident.id],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.audit.append(
            "face_consent_recorded",
            {"resident_id": resident.id, "consent_id": cid, "notice_version": notice.version,
             "notice_hash": notice.digest[:16], "lang": notice.lang, "channel": channel,
             "confirmed_by": confirmed_by.strip(), "retention_end": end, "minor": minor,
             "share_site_gates": share_site_gates},
            ts=now,
        )  # fmt: skip
        rec = self.get(cid)
        assert rec is not None
        return rec

    def get(self, consent_id: int) -> ConsentRecord | None:
        r = self.db.execute(
            f"SELECT {_COLS} FROM face_consents WHERE id = ?", [consent_id]
        ).fetchone()
        return _row(r) if r else None

    def live(self, pseudonym: str, now: float) -> ConsentRecord | None:
        """The resident's consent in force now, if any."""
        r = self.db.execute(
            f"SELECT {_COLS} FROM face_consents WHERE pseudonym = ? AND withdrawn_at IS NULL "
            "AND retention_end > ? ORDER BY id DESC LIMIT 1",
            [pseudonym, now],
        ).fetchone()
        return _row(r) if r else None

    def received(self, pseudonym: str, gate: str, origin_id: int) -> ConsentRecord | None:
        """The copy of consent ``origin_id`` of the gate whose fingerprint starts
        with ``gate``, as it came here with the sync (withdrawn or not)."""
        r = self.db.execute(
            f"SELECT {_COLS} FROM face_consents WHERE pseudonym = ? AND origin_consent_id = ? "
            "AND substr(origin_gate, 1, ?) = ? ORDER BY id DESC LIMIT 1",
            [pseudonym, origin_id, len(gate), gate],
        ).fetchone()
        return _row(r) if r else None

    def history(self, pseudonym: str) -> list[ConsentRecord]:
        rows = self.db.execute(
            f"SELECT {_COLS} FROM face_consents WHERE pseudonym = ? ORDER BY id", [pseudonym]
        ).fetchall()
        return [_row(r) for r in rows]

    def insert_received(
        self, conn: sqlite3.Connection, pseudonym: str, origin: ConsentRecord, origin_gate: str,
        now: float,
    ) -> int:  # fmt: skip
        """Store a consent that arrived with a template from another gate of the site.

        Runs inside the caller's transaction (the sync import) and writes no
        audit record itself: the caller logs once the transaction commits. A
        live consent of the resident is superseded, as with `record`.
        """
        if not origin.share_site_gates:
            raise ConsentError("the consent does not allow the site's other gates")
        if origin.retention_end <= now:
            raise ConsentError("the consent's retention period has ended")
        if origin.minor and not (origin.guardian and origin.guardian.strip()):
            raise ConsentError("a resident under 14 needs a parent's or guardian's consent")
        row = conn.execute(
            "SELECT minor FROM residents WHERE pseudonym = ?", [pseudonym]
        ).fetchone()
        if row is not None and row[0] and not origin.minor:
            raise ConsentError("the resident is under 14 and the consent has no guardian")
        conn.execute(
            "UPDATE face_consents SET withdrawn_at = ?, withdrawn_by = 'superseded' "
            "WHERE pseudonym = ? AND withdrawn_at IS NULL",
            [now, pseudonym],
        )
        cur = conn.execute(
            "INSERT INTO face_consents(id, pseudonym, notice_version, notice_hash, lang, "
            "given_at, confirmed_by, channel, retention_end, minor, guardian, share_site_gates, "
            f"origin_gate, origin_consent_id) VALUES (({NEXT_CONSENT_ID_SQL}), ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?, 1, ?, ?)",
            [pseudonym, origin.notice_version, origin.notice_hash, origin.lang, origin.given_at,
             origin.confirmed_by, origin.channel, origin.retention_end, int(origin.minor),
             origin.guardian, origin_gate, origin.id],
        )  # fmt: skip
        return int(cur.lastrowid or 0)

    def withdraw(self, pseudonym: str, now: float, by: str) -> int:
        """Mark every live consent withdrawn (the trigger deletes the template row)."""
        return self.db.conn.execute(
            "UPDATE face_consents SET withdrawn_at = ?, withdrawn_by = ? "
            "WHERE pseudonym = ? AND withdrawn_at IS NULL",
            [now, by, pseudonym],
        ).rowcount

    def count_live(self, now: float) -> int:
        return int(
            self.db.execute(
                "SELECT count(DISTINCT pseudonym) FROM face_consents "
                "WHERE withdrawn_at IS NULL AND retention_end > ?",
                [now],
            ).fetchone()[0]
        )


__all__ = ["CHANNELS", "ConsentError", "ConsentRecord", "ConsentRegistry"]
