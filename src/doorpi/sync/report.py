"""The gate's signed report, written back to the stick after every import attempt.

It says what was applied or why the bundle was refused, the gate's status and
its audit records since the last report. Never biometric data: counts only.
Layout of version 1 (integers big-endian)::

    0   8  magic  b"DOORPI-R"
    8   2  format version (1)
    10 16  gate fingerprint (raw)
    26  1  1 = sealed to the site's X25519 key, 0 = signed only (no site trusted yet)
    27  4  N = payload length
    31  N  SealedBox(site, signature(64) || body) or signature(64) || body

The audit log names residents by number and records who came in when, so it
is only included when the report can be sealed to the site.

Delivery is acknowledged only by the admin's next signed bundle
(`doorpi.sync.bundle.ReportAck`): until then every report carries the same
records, withdrawals and false matches again. ``audit_head`` is the log's
newest (sequence number, chain hash) and ``audit_from`` the acknowledged
sequence the records follow, so the admin can check each report continues the
previous one (`continuity`). The body is padded (`doorpi.sync.bundle.padded`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import SealedBox

from doorpi.sync.bundle import SEAL_OVERHEAD, SIGNATURE_BYTES, BundleError, padded, read_stable
from doorpi.sync.keys import GateIdentity, PublicIdentity, SiteKey

MAGIC = b"DOORPI-R"
FORMAT_VERSION = 1
HEADER = struct.Struct(">8sH16sBI")
MAX_REPORT_BYTES = 16 * 1024 * 1024


@dataclass
class SyncReport:
    gate: str
    created: float
    # "applied", "current" (the applied bundle's own file again: nothing to do),
    # "refused" or "waiting" (a pairing visit: no bundle yet)
    result: str
    code: str = ""  # machine reason when refused
    reason: str = ""  # one line for people
    site: str | None = None
    gate_name: str = ""
    bundle_sequence: int | None = None
    gate_sequence: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # templates not taken, by reason
    face_withdrawals: list[dict[str, Any]] = field(default_factory=list)  # roster key, time
    face_suspensions: list[dict[str, Any]] = field(default_factory=list)  # false matches here
    status: dict[str, Any] = field(default_factory=dict)
    # Entries this gate's limits refused while the rest applied: resident, field, reason, kept.
    refused_entries: list[dict[str, str]] = field(default_factory=list)
    # Face parity (doorpi.core.parity) after this import, by roster key: who can be
    # asked for face here, and who of them has no face-free way to finish (and why).
    face_holders: list[str] = field(default_factory=list)
    face_dependents: list[dict[str, str]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)  # seq, ts, kind, data, hash
    audit_from: int = 0  # the records follow this (acknowledged) sequence number
    audit_head: list[Any] | None = None  # [seq, hash] of the newest record in the log
    sealed: bool = True
    continuity: list[str] = field(default_factory=list)  # admin side: what looks wrong

    @property
    def needs_attention(self) -> bool:
        """Refused as a whole, some entries refused, or residents who depend on
        face here: the admin has work to do."""
        return self.result == "refused" or bool(self.refused_entries or self.face_dependents)

    def summary(self) -> str:
        """The one line the admin (and the journal) sees."""
        if self.result == "applied":
            order = ("added", "updated", "removed", "unchanged", "pins_hashed",
                     "templates_stored", "templates_deleted")  # fmt: skip
            order += ("templates_skipped", "face_withdrawn", "face_suspended", "settings_changed")
            parts = ", ".join(f"{self.changes[k]} {k}" for k in order if self.changes.get(k))
            line = f"applied bundle {self.bundle_sequence}: {parts or 'no changes'}"
            if self.refused_entries:
                n = len({e.get("resident") for e in self.refused_entries})
                line += f"; {n} {'entry' if n == 1 else 'entries'} refused (see report)"
            if self.face_dependents:
                n = len(self.face_dependents)
                line += f"; {n} resident{'' if n == 1 else 's'} with no face-free way in"
            return line
        if self.result == "waiting":
            return f"paired, waiting for a bundle: {self.reason}"
        if self.result == "current":
            line = f"bundle {self.bundle_sequence} already applied here: nothing changed"
            if self.face_dependents:
                n = len(self.face_dependents)
                line += f"; {n} resident{'' if n == 1 else 's'} with no face-free way in"
            return line
        return f"refused ({self.code}): {self.reason}"

    def to_body(self) -> bytes:
        doc = asdict(self)
        doc.pop("sealed")
        doc.pop("continuity")
        doc.update(format="doorpi-report", version=FORMAT_VERSION)
        return json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str).encode()


def seal_report(report: SyncReport, gate: GateIdentity, site: PublicIdentity | None) -> bytes:
    """Sign with the gate key; seal to the site when one is trusted (else drop the audit)."""
    if site is None:
        report.audit = []
        report.face_withdrawals = []
        report.face_suspensions = []
        report.audit_head = None
        report.face_holders = []  # who uses face: only sealed to the site
        report.face_dependents = []
        report.sealed = False
    room = MAX_REPORT_BYTES - HEADER.size - SEAL_OVERHEAD - SIGNATURE_BYTES
    signed = bytes(gate.signing.sign(padded(report.to_body(), room)))
    payload = SealedBox(site.box).encrypt(signed) if site is not None else signed
    header = HEADER.pack(MAGIC, FORMAT_VERSION, bytes.fromhex(gate.fingerprint),
                         1 if site is not None else 0, len(payload))  # fmt: skip
    return header + payload


def open_report(data: bytes, site: SiteKey, gates: dict[str, PublicIdentity]) -> SyncReport:
    """Verify and decrypt a report on the admin side; `BundleError` says what is wrong."""
    if len(data) < HEADER.size or data[:8] != MAGIC:
        raise BundleError("bad_magic", "not a doorpi report")
    _, version, fp_raw, sealed, length = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise BundleError("unknown_version", f"report version {version} is not supported")
    if len(data) - HEADER.size != length:
        raise BundleError("truncated", "report length does not match its header")
    fp = fp_raw.hex()
    gate = gates.get(fp)
    if gate is None:
        raise BundleError("unknown_gate", f"report from gate {fp[:12]}, which is not registered")
    payload = data[HEADER.size :]
    if sealed:
        try:
            payload = SealedBox(site.box).decrypt(payload)
        except CryptoError:
            raise BundleError("undecryptable", "report is not sealed to this site") from None
    try:
        body = gate.verify_key.verify(payload[SIGNATURE_BYTES:], payload[:SIGNATURE_BYTES])
    except (BadSignatureError, ValueError):
        raise BundleError(
            "bad_signature", f"report signature does not match gate {fp[:12]}"
        ) from None
    try:
        doc = json.loads(body)
        if doc.pop("format") != "doorpi-report" or doc.pop("version") != FORMAT_VERSION:
            raise ValueError("not a version 1 report")
        doc.pop("continuity", None)
        report = SyncReport(**doc, sealed=bool(sealed))
    except (ValueError, TypeError, KeyError) as exc:
        raise BundleError("malformed", f"report body: {exc}") from None
    if report.gate != fp:
        raise BundleError("malformed", "report body names another gate")
    return report


def continuity(report: SyncReport, head: list[Any] | None, acked: int, limit: int) -> list[str]:
    """What the admin should worry about in a gate's audit log, one line each.

    ``head`` is [seq, hash] from the previous report of this gate, ``acked``
    the sequence number the admin last acknowledged to it, ``limit`` the
    records one report carries at most. Finds a rewind (the log ends before
    the previous report's end), a rewrite (the same record with another
    hash) and gaps (records missing that pruning does not explain).
    """
    if not report.sealed or not report.audit_head:
        return []
    out: list[str] = []
    chain = report.status.get("audit_chain")
    if chain not in (None, "ok"):
        out.append(f"audit chain on the gate: {chain}")
    h_seq, h_hash = int(report.audit_head[0]), str(report.audit_head[1])
    by_seq = {int(a["seq"]): a for a in report.audit}
    if head:
        p_seq, p_hash = int(head[0]), str(head[1])
        if h_seq < p_seq:
            out.append(f"audit log rewound: it now ends at record {h_seq}, "
                       f"the previous report reached {p_seq}")  # fmt: skip
        elif (h_seq == p_seq and h_hash != p_hash) or (
            p_seq in by_seq and by_seq[p_seq].get("hash") != p_hash
        ):
            out.append(f"audit record {p_seq} differs from the previous report's (rewritten)")
    if report.audit_from > acked:
        out.append(f"audit records {acked + 1} to {report.audit_from} were never delivered "
                   "but the gate counts them as delivered (gap)")  # fmt: skip
    pruned = [
        int(a["data"].get("upto", 0)) for a in report.audit if a.get("kind") == "audit_pruned"
    ]
    expected = report.audit_from + 1
    for seq in sorted(by_seq):
        if seq > expected and not any(u >= seq - 1 for u in pruned):
            out.append(f"audit records {expected} to {seq - 1} are missing (gap)")
        expected = seq + 1
    if len(report.audit) < limit and h_seq >= expected and h_seq > report.audit_from:
        out.append(f"audit records {expected} to {h_seq} are missing (gap)")
    return out


def read_report_file(path: Path) -> bytes:
    return read_stable(path, MAX_REPORT_BYTES)
