"""Face templates for the site's other gates: only with the resident's consent, only sealed.

Why (MFR; law notes E19): moving a template between the gates of one site
needs the resident's own consent to it (``share_site_gates`` on the consent
record, asked separately) and may travel only encrypted to the receiving
gate. doorpi.sync seals the payload below gate to gate (signed by the source,
readable only by the destination); the admin's laptop and the stick carry
ciphertext. The consent travels *with* the template, so the receiving gate
can prove what the resident agreed to, where and when, and so the template
never outlives that consent anywhere.

Payload, version 1 (inside the sealed envelope of `doorpi.sync.templates`)::

    b"DPT1" | u16 n (big-endian) | consent record, n bytes of UTF-8 JSON
           | 128 float32 little-endian: the embedding, L2-normalised
             (absent where templates live on the residents' cards: then the
             consent travels alone, so other gates can check the consent a
             card names)

The embedding travels untransformed: each gate applies its own installation
transform when its vault stores it (so vault rows stay unlinkable between
gates). Consents are superseded, never merged: a consent given at this gate
always wins over a copy from another gate.
"""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from doorpi.privacy.consent import CHANNELS, ConsentError, ConsentRecord
from doorpi.privacy.enrolment import FacePrivacy
from doorpi.privacy.vault import EMBEDDING_DIM, TEMPLATE_BYTES, VaultError, check_embedding

MAGIC = b"DPT1"
_LEN = struct.Struct(">H")
MAX_TEXT = 200
#: How a consent arrived from elsewhere is withdrawn, in face_consents.withdrawn_by.
# The "site:" prefix marks what the sync ended: a gate reports only withdrawals made
# at it (doorpi.sync.importer), so these never travel back round the site.
BY_SHARE_ENDED = "site:sharing_ended"
BY_SITE_WITHDRAWAL = "site:withdrawn_at_another_gate"
BY_REMOVED = "site:resident_removed"
BY_SITE_FALSE_MATCH = "site:false_match_at_another_gate"


class ShareError(ValueError):
    """A template payload from another gate that cannot be used; one line saying why."""


@dataclass(frozen=True)
class TemplatePayload:
    """What one gate gives another for one resident (in memory only)."""

    consent: ConsentRecord  # as recorded at the source gate (its id there)
    expires: float  # the template's expiry at the source (never after the consent's end)
    embedding: np.ndarray | None  # None: consent only (templates on cards)

    def to_bytes(self) -> bytes:
        c = self.consent
        doc = {"id": c.id, "notice_version": c.notice_version, "notice_hash": c.notice_hash,
               "lang": c.lang, "given_at": c.given_at, "confirmed_by": c.confirmed_by,
               "channel": c.channel, "retention_end": c.retention_end, "minor": c.minor,
               "guardian": c.guardian, "share_site_gates": c.share_site_gates,
               "expires": self.expires}  # fmt: skip
        raw = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()
        tail = b""
        if self.embedding is not None:
            tail = check_embedding(self.embedding).astype("<f4").tobytes()
        return MAGIC + _LEN.pack(len(raw)) + raw + tail


def _text(doc: dict[str, Any], key: str, optional: bool = False) -> str | None:
    v = doc.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > MAX_TEXT or not v.isprintable():
        raise ShareError(f"consent.{key}: must be printable text of 1 to {MAX_TEXT} characters")
    return v


def _time(doc: dict[str, Any], key: str) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise ShareError(f"consent.{key}: must be seconds since the epoch")
    return float(v)


def parse_payload(data: bytes) -> TemplatePayload:
    """Bytes from a verified envelope -> payload, or ShareError naming the field."""
    head = len(MAGIC) + _LEN.size
    if len(data) < head or not data.startswith(MAGIC):
        raise ShareError("not a doorpi template payload (DPT1)")
    (n,) = _LEN.unpack_from(data, len(MAGIC))
    if len(data) not in (head + n, head + n + TEMPLATE_BYTES):
        raise ShareError(f"payload is {len(data)} bytes, expected {head + n + TEMPLATE_BYTES}")
    try:
        doc = json.loads(data[head : head + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ShareError("consent record is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise ShareError("consent record must be an object")
    cid = doc.get("id")
    if isinstance(cid, bool) or not isinstance(cid, int) or cid < 1:
        raise ShareError("consent.id: must be a whole number from 1")
    flags = {}
    for key in ("minor", "share_site_gates"):
        if not isinstance(doc.get(key), bool):
            raise ShareError(f"consent.{key}: must be true or false")
        flags[key] = doc[key]
    channel = _text(doc, "channel")
    if channel not in CHANNELS:
        raise ShareError(f"consent.channel: {channel!r} is not a consent channel")
    given, end, expires = _time(doc, "given_at"), _time(doc, "retention_end"), _time(doc, "expires")
    if not given < end or expires > end:
        raise ShareError("consent: retention must end after it was given, the template with it")
    consent = ConsentRecord(
        cid, "", _text(doc, "notice_version") or "", _text(doc, "notice_hash") or "",
        _text(doc, "lang") or "", given, _text(doc, "confirmed_by") or "", channel, end,
        flags["minor"], _text(doc, "guardian", optional=True), flags["share_site_gates"],
        None, None,
    )  # fmt: skip
    if len(data) == head + n:
        return TemplatePayload(consent, expires, None)
    try:
        emb = check_embedding(np.frombuffer(data, "<f4", EMBEDDING_DIM, head + n))
    except VaultError as exc:
        raise ShareError(f"embedding: {exc}") from None
    return TemplatePayload(consent, expires, emb)


class SiteTemplateSource:
    """The vault's side of export (`doorpi.sync.importer.TemplateSource`).

    Gives a resident's template only if the consent in force was given *here*
    and allows the site's other gates, the vault holds a template under that
    very consent, and this gate's config allows site sharing at all. Where
    templates live on cards it gives the consent alone, and the card key.
    """

    def __init__(self, privacy: FacePrivacy) -> None:
        self.privacy = privacy

    def template_bytes(self, pseudonym: str) -> bytes | None:
        p = self.privacy
        if not p.settings.allow_site_sharing:
            return None
        rec = p.consents.live(pseudonym, p.clock())
        info = p.vault.info(pseudonym)
        if rec is None or rec.origin_gate is not None or not rec.share_site_gates:
            return None
        if p.settings.template_storage == "card":
            return TemplatePayload(rec, rec.retention_end, None).to_bytes()
        if info is None or info.consent_id != rec.id:
            return None
        emb = p.vault.embedding(pseudonym)
        if emb is None:
            return None
        return TemplatePayload(rec, info.expires, emb).to_bytes()

    def card_key(self) -> bytes | None:
        p = self.privacy
        if p.settings.template_storage != "card" or not p.settings.allow_site_sharing:
            return None
        return p.card_keyring().sealing.site_key


@dataclass
class SiteTemplateSink:
    """The vault's side of import (`doorpi.sync.importer.TemplateSink`).

    Every method runs inside the importer's transaction on ``conn`` and only
    writes rows; audit records and the physical purge of deleted rows wait
    for `finish`, after the commit (`discard` forgets them on a rollback).
    ``unseal`` turns a verified envelope into the payload bytes.
    """

    privacy: FacePrivacy
    unseal: Any  # Callable[[bytes], bytes]
    _audit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _purge: bool = False

    def _resident_id(self, conn: sqlite3.Connection, pseudonym: str) -> int | None:
        row = conn.execute("SELECT id FROM residents WHERE pseudonym = ?", [pseudonym]).fetchone()
        return int(row[0]) if row else None

    def store_sealed(
        self, conn: sqlite3.Connection, pseudonym: str, sealed: bytes, source_gate: str
    ) -> str:
        """Store a template from another gate with its consent. Returns what happened:
        ``stored``, or why not: ``unchanged``, ``own_consent`` (a consent given here
        wins), ``sharing_off`` (this gate's config), ``expired``, ``inactive``,
        ``storage_mismatch`` (a template for a gate that keeps them on cards, or
        a bare consent for one that keeps them in its vault), ``older`` (a copy
        of a newer consent from another gate is held), ``withdrawn`` (the
        resident withdrew here, or the admin for them, after that consent was
        given: a copy still in transit from a gate that had not heard of it
        must not bring the template back; issue #14, requirement 3), ``refused``
        (the resident said no to face at this gate, or the roster says so: only
        enrolling here lifts it)."""
        p = self.privacy
        try:
            payload = parse_payload(self.unseal(sealed))
        except ShareError as exc:
            raise ShareError(f"template from gate {source_gate[:12]}: {exc}") from None
        now = p.clock()
        if not p.settings.allow_site_sharing:
            return "sharing_off"
        on_cards = p.settings.template_storage == "card"
        if (payload.embedding is None) != on_cards:
            return "storage_mismatch"
        live = p.consents.live(pseudonym, now)
        if live is not None and live.origin_gate is None:
            return "own_consent"
        origin = payload.consent
        if (
            live is not None
            and (live.origin_gate, live.origin_consent_id) == (source_gate, origin.id)
            and (
                payload.embedding is None
                or self._same_template(pseudonym, live.id, payload.embedding)
            )
        ):
            return "unchanged"
        if live is not None and live.given_at > origin.given_at:
            return "older"  # the resident enrolled again elsewhere since: the newest consent wins
        if self._withdrawn_since(conn, pseudonym, origin.given_at):
            return "withdrawn"
        expires = min(payload.expires, origin.retention_end)
        rid = self._resident_id(conn, pseudonym)
        resident = p.storage.residents.get(rid) if rid is not None else None
        if resident is None or not resident.active:
            return "inactive"
        if resident.face_refused:  # a "no" here holds until the resident enrols here
            return "refused"
        if resident.valid_until is not None:
            expires = min(expires, resident.valid_until)
        if expires <= now:
            return "expired"
        try:
            cid = p.consents.insert_received(conn, pseudonym, origin, source_gate, now)
        except ConsentError as exc:
            raise ShareError(f"template from gate {source_gate[:12]}: {exc}") from None
        replaced = False
        if payload.embedding is not None:
            _, replaced = p.vault.store_in(conn, pseudonym, payload.embedding, cid, expires)
        self._purge = self._purge or replaced or live is not None
        self._audit.append(("face_template_received", {
            "resident_id": rid, "consent_id": cid, "from_gate": source_gate[:12],
            "origin_consent_id": origin.id, "expires": expires}))  # fmt: skip
        return "stored"

    @staticmethod
    def _withdrawn_since(conn: sqlite3.Connection, pseudonym: str, given_at: float) -> bool:
        """A withdrawal of the resident's consent after ``given_at`` is on
        record here. Not one: a consent superseded by a newer one, and copies
        dropped because the roster ended sharing (the roster may resume it)."""
        row = conn.execute(
            "SELECT 1 FROM face_consents WHERE pseudonym = ? AND withdrawn_at > ? "
            "AND withdrawn_by NOT IN ('superseded', ?) LIMIT 1",
            [pseudonym, given_at, BY_SHARE_ENDED],
        ).fetchone()
        return row is not None

    def _same_template(self, pseudonym: str, consent_id: int, embedding: np.ndarray) -> bool:
        info = self.privacy.vault.info(pseudonym)
        if info is None or info.consent_id != consent_id:
            return False
        held = self.privacy.vault.embedding(pseudonym)
        return held is not None and bool(np.allclose(held, embedding, atol=1e-5))

    def _withdraw(self, conn: sqlite3.Connection, pseudonym: str, where: str, by: str,
                  params: list[Any]) -> int:  # fmt: skip
        now = self.privacy.clock()
        n = conn.execute(
            "UPDATE face_consents SET withdrawn_at = ?, withdrawn_by = ? "
            f"WHERE pseudonym = ? AND withdrawn_at IS NULL AND {where}",
            [now, by, pseudonym, *params],
        ).rowcount  # the database trigger deletes the templates under them
        if n:
            self._purge = True
            self._audit.append(("face_consent_withdrawn", {
                "resident_id": self._resident_id(conn, pseudonym), "by": by, "channel": "site",
                "consents": n}))  # fmt: skip
        return n

    def delete(self, conn: sqlite3.Connection, pseudonym: str) -> bool:
        """Sharing ended (the roster says so): copies received from other gates go;
        a consent given here, and its template, stay."""
        return bool(self._withdraw(conn, pseudonym, "origin_gate IS NOT NULL", BY_SHARE_ENDED, []))

    def withdraw_before(self, conn: sqlite3.Connection, pseudonym: str, at: float) -> int:
        """The resident withdrew at another gate at ``at``: every face consent given
        before then goes, this gate's own and received copies alike."""
        return self._withdraw(conn, pseudonym, "given_at <= ?", BY_SITE_WITHDRAWAL, [at])

    def suspend_before(self, conn: sqlite3.Connection, pseudonym: str, at: float) -> int:
        """A false match was reported at another gate at ``at``: templates under
        consents given before then leave face-alone matching (not a later enrolment)."""
        n = conn.execute(
            "UPDATE face_templates SET hands_free_suspended = ? WHERE pseudonym = ? "
            "AND hands_free_suspended IS NULL AND consent_id IN "
            "(SELECT id FROM face_consents WHERE pseudonym = ? AND given_at <= ?)",
            [self.privacy.clock(), pseudonym, pseudonym, at],
        ).rowcount
        if n:
            self._audit.append(("face_hands_free_suspended", {
                "resident_id": self._resident_id(conn, pseudonym), "by": BY_SITE_FALSE_MATCH}))  # fmt: skip
        return n

    def forget(self, conn: sqlite3.Connection, pseudonym: str) -> None:
        """The roster removed the resident: their consents end with them (the
        records stay as proof; the templates are deleted)."""
        self._withdraw(conn, pseudonym, "1", BY_REMOVED, [])

    def finish(self) -> None:
        """After the commit: the audit records, then make the deletions physical."""
        p = self.privacy
        if self._audit:
            now = p.clock()
            p.storage.audit.append_many([(kind, data, now) for kind, data in self._audit])
        if self._purge:
            p.vault.purge()
        self.discard()

    def discard(self) -> None:
        """After a rollback: nothing happened."""
        self._audit = []
        self._purge = False


__all__ = [
    "BY_SHARE_ENDED",
    "BY_SITE_WITHDRAWAL",
    "ShareError",
    "SiteTemplateSink",
    "SiteTemplateSource",
    "TemplatePayload",
    "parse_payload",
]
