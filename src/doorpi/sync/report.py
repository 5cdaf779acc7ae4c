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
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import SealedBox

from doorpi.sync.bundle import SIGNATURE_BYTES, BundleError, read_stable
from doorpi.sync.keys import GateIdentity, PublicIdentity, SiteKey

MAGIC = b"DOORPI-R"
FORMAT_VERSION = 1
HEADER = struct.Struct(">8sH16sBI")
MAX_REPORT_BYTES = 16 * 1024 * 1024


@dataclass
class SyncReport:
    gate: str
    created: float
    result: str  # "applied", "refused" or "waiting" (a pairing visit: no bundle yet)
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
    audit: list[dict[str, Any]] = field(default_factory=list)
    sealed: bool = True

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
        return f"refused ({self.code}): {self.reason}"

    def to_body(self) -> bytes:
        doc = asdict(self)
        doc.pop("sealed")
        doc.update(format="doorpi-report", version=FORMAT_VERSION)
        return json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str).encode()


def seal_report(report: SyncReport, gate: GateIdentity, site: PublicIdentity | None) -> bytes:
    """Sign with the gate key; seal to the site when one is trusted (else drop the audit)."""
    if site is None:
        report.audit = []
        report.face_withdrawals = []
        report.face_suspensions = []
        report.face_holders = []  # who uses face: only sealed to the site
        report.face_dependents = []
        report.sealed = False
    signed = bytes(gate.signing.sign(report.to_body()))
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
        report = SyncReport(**doc, sealed=bool(sealed))
    except (ValueError, TypeError, KeyError) as exc:
        raise BundleError("malformed", f"report body: {exc}") from None
    if report.gate != fp:
        raise BundleError("malformed", "report body names another gate")
    return report


def read_report_file(path: Path) -> bytes:
    return read_stable(path, MAX_REPORT_BYTES)
