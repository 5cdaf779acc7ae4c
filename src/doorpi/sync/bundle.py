"""The enrollment bundle: what travels on the stick, and the strict parser for it.

Layout of format version 1 (all integers big-endian)::

    0   8  magic  b"DOORPI-B"
    8   2  format version (1)
    10 16  recipient gate fingerprint (raw bytes)
    26  4  N = length of the sealed payload
    30  N  SealedBox(gate X25519 public key, signature(64) || body)

The body is UTF-8 JSON, signed with the site's Ed25519 key *before* sealing,
so only the addressed gate can read it and only the site can have written it.
The body repeats the gate fingerprint and the version, so a gate cannot
re-seal a bundle meant for itself to another gate. Every field is checked
with limits; a failure is a `BundleError` whose message names the field.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import SealedBox

from doorpi import validation
from doorpi.cards.keys import GateCardKeys
from doorpi.sync.keys import GateIdentity, PublicIdentity, SiteKey
from doorpi.sync.modes import ModesEntry, parse_modes

MAGIC = b"DOORPI-B"
FORMAT_VERSION = 1
HEADER = struct.Struct(">8sH16sI")
SIGNATURE_BYTES = 64
SEAL_OVERHEAD = 48
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_RESIDENTS = 20_000
MAX_TOMBSTONES = 200_000
MAX_CARDS = 8
MAX_TEMPLATES = 20_000
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_TEXT = 200
MAX_PEERS = 256
MAX_SECURE_CARDS = MAX_RESIDENTS * MAX_CARDS
MAX_SETTINGS_BYTES = 64 * 1024  # the admin's gate settings, as JSON

KEY_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
FP_RE = re.compile(r"[0-9a-f]{32}")
HEX_RE = re.compile(r"[0-9a-f]+")


class BundleError(ValueError):
    """A bundle that is refused; ``code`` for machines, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CardEntry:
    uid: str  # lowercase hex, 4, 7 or 10 bytes; hashed with the gate's card key at import
    label: str = ""


@dataclass(frozen=True)
class ResidentEntry:
    """One resident as the roster has them; ``key`` is the stable roster key."""

    key: str
    name: str
    unit: str = ""
    keypad_id: str | None = None
    valid_from: float | None = None
    valid_until: float | None = None
    schedule: str | None = None
    active: bool = True
    face_refused: bool = False
    share_with_site_gates: bool = False
    cards: tuple[CardEntry, ...] = ()
    minor: bool = False  # under 14 (PIPL 31): no self-enrolment at the gate
    pin: str | None = None
    pin_tag: str | None = None  # changes exactly when the PIN changes (keyed by the site)


@dataclass(frozen=True)
class TemplateEntry:
    """A face template sealed by a source gate to this gate; opaque to the admin."""

    resident: str  # roster key; the gate maps it to its own pseudonym
    source_gate: str
    share_with_site_gates: bool
    sealed: bytes


@dataclass(frozen=True)
class CardKeyEntry:
    """The site's card key, sealed by the gate that holds it to this gate (opaque here)."""

    source_gate: str
    sealed: bytes


@dataclass(frozen=True)
class FaceEvent:
    """What one of the site's gates reported about a resident's face, at ``at``.

    In ``face_withdrawals``: the resident withdrew consent; every gate ends the
    resident's face consents given before that time (its own and copies from
    other gates). In ``face_suspensions``: a face grant let in the wrong
    person; every gate takes templates under consents given before that time
    out of face-alone matching. Either way the event reaches the whole site
    with the next round of bundles, and a later enrolment is not touched.
    """

    resident: str  # roster key
    at: float


@dataclass(frozen=True)
class ReportAck:
    """The admin's signed receipt for the last report it read from this gate.

    Only this makes the gate count its audit records (up to ``audit_seq``,
    whose chain hash must be ``audit_hash``), face withdrawals and false
    matches (up to the given times) as delivered; until then every report
    carries them again, so a stick that merely took a report acknowledges
    nothing.
    """

    audit_seq: int
    audit_hash: str
    withdrawals_at: float = 0.0
    false_matches_at: float = 0.0


@dataclass(frozen=True)
class EnrollmentBundle:
    site: str
    gate: str
    sequence: int
    created: float
    site_name: str = ""
    residents: tuple[ResidentEntry, ...] = ()
    tombstones: tuple[str, ...] = ()
    templates: tuple[TemplateEntry, ...] = ()
    template_tombstones: tuple[str, ...] = ()
    peers: tuple[PublicIdentity, ...] = ()  # the site's other gates: template sources/targets
    face_withdrawals: tuple[FaceEvent, ...] = ()
    face_suspensions: tuple[FaceEvent, ...] = ()
    card_key_gate: str | None = None  # the gate whose card key the site's cards use
    card_key: CardKeyEntry | None = None
    modes: ModesEntry | None = None  # lockdown, holidays, responders (doorpi.sync.modes)
    report_ack: ReportAck | None = None
    # The admin's settings layer for this gate (doorpi.settings): None leaves the
    # gate's as they are, a table replaces them (``{}`` clears them).
    settings: dict[str, Any] | None = None
    # Keys for the site's secure cards (doorpi.cards.keys): the UID-read key and one
    # entry key per issued card, derived on the laptop; the master key never travels.
    # The body is sealed to this gate. None leaves the gate's card keys as they are.
    secure_cards: GateCardKeys | None = None
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_body(self) -> bytes:
        import base64

        doc = {
            "format": "doorpi-bundle",
            "version": self.version,
            "site": self.site,
            "site_name": self.site_name,
            "gate": self.gate,
            "sequence": self.sequence,
            "created": self.created,
            "residents": [_resident_doc(r) for r in self.residents],
            "tombstones": list(self.tombstones),
            "templates": [
                {
                    "resident": t.resident,
                    "source_gate": t.source_gate,
                    "share_with_site_gates": t.share_with_site_gates,
                    "sealed": base64.b64encode(t.sealed).decode(),
                }
                for t in self.templates
            ],
            "template_tombstones": list(self.template_tombstones),
            "face_withdrawals": [
                {"resident": w.resident, "at": w.at} for w in self.face_withdrawals
            ],
            "face_suspensions": [
                {"resident": w.resident, "at": w.at} for w in self.face_suspensions
            ],
            "card_key_gate": self.card_key_gate,
            "card_key": None
            if self.card_key is None
            else {
                "source_gate": self.card_key.source_gate,
                "sealed": base64.b64encode(self.card_key.sealed).decode(),
            },
            "report_ack": None if self.report_ack is None else vars(self.report_ack),
            "settings": self.settings,
            "secure_cards": None
            if self.secure_cards is None
            else {
                "uid_read": self.secure_cards.uid_read.hex(),
                "entry": {u: k.hex() for u, k in sorted(self.secure_cards.entry_keys.items())},
            },
            "peers": [
                {
                    "name": p.name,
                    "box_key": base64.b64encode(p.box_key).decode(),
                    "sign_key": base64.b64encode(p.sign_key).decode(),
                }
                for p in self.peers
            ],
        }
        if self.modes is not None:  # absent otherwise: bodies without modes are unchanged
            doc["modes"] = self.modes.to_doc()
        return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                          default=_toml_date).encode()  # fmt: skip


def _toml_date(v: Any) -> str:
    """A TOML date or time in the admin's settings (``modes.holidays = [2026-12-25]``)
    as its ISO text, which the gate's validator reads back; anything else is a TypeError."""
    if isinstance(v, datetime.date | datetime.time):
        return v.isoformat()
    raise TypeError(f"{type(v).__name__} is not a TOML value")


def _resident_doc(r: ResidentEntry) -> dict[str, Any]:
    return {
        "key": r.key,
        "name": r.name,
        "unit": r.unit,
        "keypad_id": r.keypad_id,
        "valid_from": r.valid_from,
        "valid_until": r.valid_until,
        "schedule": r.schedule,
        "active": r.active,
        "face_refused": r.face_refused,
        "share_with_site_gates": r.share_with_site_gates,
        "minor": r.minor,
        "cards": [{"uid": c.uid, "label": c.label} for c in r.cards],
        "pin": r.pin,
        "pin_tag": r.pin_tag,
    }


# ------------------------------------------------------------------ sealing

PAD_MIN = 16 * 1024


def padded(body: bytes, limit: int) -> bytes:
    """``body`` (JSON) with trailing spaces up to the next power of two, at least 16 KiB.

    JSON ignores trailing whitespace, so the parsers need not know. A lost
    stick then tells only the order of magnitude of a roster or an audit
    log, not how many residents changed or how busy the door was. Never past
    ``limit`` (the file size the reader accepts, less headers).
    """
    size = max(PAD_MIN, 1 << max(0, len(body) - 1).bit_length())
    size = min(size, limit)
    return body + b" " * max(0, size - len(body))


def seal_bundle(bundle: EnrollmentBundle, site: SiteKey, gate: PublicIdentity) -> bytes:
    """Sign with the site key, seal to the gate: the bytes written to the stick."""
    if bundle.gate != gate.fingerprint:
        raise ValueError("bundle is addressed to another gate")
    room = MAX_BUNDLE_BYTES - HEADER.size - SEAL_OVERHEAD - SIGNATURE_BYTES
    inner = site.signing.sign(padded(bundle.to_body(), room))  # signature || body
    sealed = SealedBox(gate.box).encrypt(bytes(inner))
    header = HEADER.pack(MAGIC, FORMAT_VERSION, bytes.fromhex(gate.fingerprint), len(sealed))
    data = header + sealed
    if len(data) > MAX_BUNDLE_BYTES:
        raise ValueError(f"bundle would be {len(data)} bytes, over the {MAX_BUNDLE_BYTES} limit")
    return data


def read_header(data: bytes) -> tuple[int, str, int]:
    """(version, recipient fingerprint, sealed length), checking size and truncation."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(
            "too_large", f"{len(data)} bytes is over the {MAX_BUNDLE_BYTES // 2**20} MiB limit"
        )
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data):
            raise BundleError("truncated", f"truncated: only {len(data)} bytes")
        raise BundleError("bad_magic", "not a doorpi bundle (bad magic bytes)")
    if len(data) < HEADER.size:
        raise BundleError("truncated", f"truncated: {len(data)} bytes, shorter than the header")
    _, version, fp, length = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise BundleError(
            "unknown_version",
            f"format version {version} is not supported (this gate reads {FORMAT_VERSION})",
        )
    have = len(data) - HEADER.size
    if have < length:
        raise BundleError(
            "truncated", f"truncated: header says {length} sealed bytes, file has {have}"
        )
    if have > length:
        raise BundleError("malformed", f"{have - length} unexpected bytes after the sealed payload")
    if length < SEAL_OVERHEAD + SIGNATURE_BYTES + 2:
        raise BundleError("truncated", f"sealed payload of {length} bytes is too short")
    return version, fp.hex(), length


def open_bundle(data: bytes, gate: GateIdentity, site: PublicIdentity) -> EnrollmentBundle:
    """Check, decrypt, verify and parse; anything wrong is one `BundleError`."""
    _, recipient, _ = read_header(data)
    mine = gate.fingerprint
    if recipient != mine:
        raise BundleError("wrong_gate", f"addressed to gate {recipient[:12]}, this is {mine[:12]}")
    try:
        inner = SealedBox(gate.box).decrypt(data[HEADER.size :])
    except CryptoError:
        raise BundleError(
            "undecryptable", "cannot be decrypted with this gate's key (damaged or forged)"
        ) from None
    try:
        body = site.verify_key.verify(inner[SIGNATURE_BYTES:], inner[:SIGNATURE_BYTES])
    except (BadSignatureError, ValueError):
        raise BundleError(
            "bad_signature",
            f"signature does not match the trusted site key {site.fingerprint[:12]}",
        ) from None
    bundle = parse_body(body)
    if bundle.gate != mine:
        raise BundleError("wrong_gate", f"signed for gate {bundle.gate[:12]}, this is {mine[:12]}")
    if bundle.site != site.fingerprint:
        raise BundleError(
            "bad_signature", f"body names site {bundle.site[:12]}, not the trusted one"
        )
    return bundle


# ------------------------------------------------------------------ reading files


def read_stable(
    path: Path, limit: int = MAX_BUNDLE_BYTES, _after_chunk: Callable[[], None] | None = None
) -> bytes:
    """Read a whole file, refusing one that is too large or changes while being read.

    A stick can be written by another machine (or pulled) while we read; the
    size, mtime and inode must be the same before and after, and the bytes
    read must match the size. ``_after_chunk`` lets tests change the file mid-read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise BundleError("not_found", f"{path}: no such file") from None
    except OSError as exc:
        raise BundleError("unreadable", f"{path}: cannot open: {exc.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise BundleError("unreadable", f"{path}: not a regular file")
        if before.st_size > limit:
            raise BundleError(
                "too_large",
                f"{path}: {before.st_size} bytes is over the {limit // 2**20} MiB limit",
            )
        chunks: list[bytes] = []
        total = 0
        want = before.st_size + 1  # one byte more than expected reveals a growing file
        while total < want:
            try:
                chunk = os.read(fd, min(1 << 20, want - total))
            except OSError as exc:
                raise BundleError("unreadable", f"{path}: read failed: {exc.strerror}") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if _after_chunk is not None:
                _after_chunk()
        after = os.fstat(fd)
    finally:
        os.close(fd)
    key = (before.st_size, before.st_mtime_ns, before.st_ino)
    if (after.st_size, after.st_mtime_ns, after.st_ino) != key or total != before.st_size:
        raise BundleError("changed_while_read", f"{path}: file changed while it was being read")
    return b"".join(chunks)


# ------------------------------------------------------------------ body parsing


class _Doc:
    """Typed access to one JSON object, naming the path of every bad field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise _bad(where, "must be an object")
        self.data: dict[str, Any] = data
        self.where = where

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, required: bool = True) -> Any:
        if key not in self.data:
            if required:
                raise _bad(self._at(key), "is missing")
            return None
        return self.data[key]

    def text(self, key: str, max_len: int = MAX_TEXT, optional: bool = False) -> str | None:
        v = self.get(key, required=not optional)
        if v is None and optional:
            return None
        if not isinstance(v, str) or len(v) > max_len or not v.isprintable():
            raise _bad(self._at(key), f"must be printable text of at most {max_len} characters")
        return v

    def flag(self, key: str) -> bool:
        v = self.get(key)
        if not isinstance(v, bool):
            raise _bad(self._at(key), "must be true or false")
        return v

    def time(self, key: str) -> float | None:
        v = self.get(key, required=False)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _bad(self._at(key), "must be seconds since the epoch or null")
        if not 0 <= v < 2**37:
            raise _bad(self._at(key), "is out of range")
        return float(v)

    def each(
        self, key: str, limit: int, parse: Callable[[Any, str], Any], required: bool = True
    ) -> tuple[Any, ...]:
        """Every entry of list ``key`` parsed, each told its own path (``key[i]``)."""
        return tuple(parse(v, f"{self._at(key)}[{i}]") for i, v in enumerate(self.items(key, limit, required)))  # fmt: skip

    def items(self, key: str, limit: int, required: bool = True) -> list[Any]:
        v = self.get(key, required)
        if v is None and not required:
            return []
        if not isinstance(v, list):
            raise _bad(self._at(key), "must be a list")
        if len(v) > limit:
            raise _bad(self._at(key), f"has {len(v)} entries, the limit is {limit}")
        return v


def _bad(where: str, msg: str) -> BundleError:
    return BundleError("malformed", f"{where}: {msg}")


def _check_key(v: Any, where: str) -> str:
    if not isinstance(v, str) or not KEY_RE.fullmatch(v):
        raise _bad(where, "must be a roster key like a-3101-wang (a-z, 0-9, . _ -; max 64)")
    return v


def _rule(rule: Callable[[Any], Any], value: Any, where: str) -> Any:
    """Apply one of the shared input rules (`doorpi.validation`), naming the field."""
    try:
        return rule(value)
    except validation.InputError as exc:
        raise _bad(where, str(exc)) from None


def parse_card(v: Any, where: str) -> CardEntry:
    d = _Doc(v, where)
    uid = _rule(validation.card_uid_hex, d.get("uid"), f"{where}.uid")
    label = _rule(_short_text, d.get("label", required=False) or "", f"{where}.label")
    return CardEntry(uid, label)


def _short_text(value: Any) -> str:
    return validation.check_text(value, validation.SHORT_TEXT_MAX)


def parse_resident(v: Any, where: str) -> ResidentEntry:
    d = _Doc(v, where)
    key = _check_key(d.get("key"), f"{where}.key")
    name = _rule(validation.check_name, d.get("name"), f"{where}.name")
    keypad_id = d.get("keypad_id", required=False)
    if keypad_id is not None:
        keypad_id = _rule(validation.keypad_id, keypad_id, f"{where}.keypad_id")
    valid_from, valid_until = d.time("valid_from"), d.time("valid_until")
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise _bad(f"{where}.valid_until", "must be after valid_from")
    schedule = d.text("schedule", 64, optional=True)
    cards = d.each("cards", MAX_CARDS, parse_card)
    pin = d.get("pin", required=False)
    if pin is not None:
        pin = _rule(validation.pin_digits, pin, f"{where}.pin")
        if len(pin) < 4:
            raise _bad(f"{where}.pin", "must be 4 to 12 digits")
    pin_tag = d.text("pin_tag", 64, optional=True)
    if pin_tag is not None and not (HEX_RE.fullmatch(pin_tag) and len(pin_tag) == 32):
        raise _bad(f"{where}.pin_tag", "must be 32 hex digits")
    if (pin is None) != (pin_tag is None):
        raise _bad(f"{where}.pin_tag", "must be given exactly when pin is")
    minor = d.get("minor", required=False)  # absent in bundles from before the flag
    if minor is not None and not isinstance(minor, bool):
        raise _bad(f"{where}.minor", "must be true or false")
    return ResidentEntry(
        key=key,
        name=name,
        unit=_rule(_short_text, d.get("unit", required=False) or "", f"{where}.unit"),
        keypad_id=keypad_id,
        valid_from=valid_from,
        valid_until=valid_until,
        schedule=schedule,
        active=d.flag("active"),
        face_refused=d.flag("face_refused"),
        share_with_site_gates=d.flag("share_with_site_gates"),
        cards=cards,
        pin=pin,
        pin_tag=pin_tag,
        minor=bool(minor),
    )


def _sealed(d: _Doc, where: str) -> tuple[str, bytes]:
    """``source_gate`` and ``sealed`` of a blob sealed gate to gate."""
    import base64
    import binascii

    source = d.text("source_gate", 32)
    if not source or not FP_RE.fullmatch(source):
        raise _bad(f"{where}.source_gate", "must be a gate fingerprint (32 hex digits)")
    raw = d.get("sealed")
    if not isinstance(raw, str) or len(raw) > MAX_TEMPLATE_BYTES * 4 // 3 + 4:
        raise _bad(f"{where}.sealed", f"must be base64 of at most {MAX_TEMPLATE_BYTES} bytes")
    try:
        sealed = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where}.sealed", "is not valid base64") from None
    if len(sealed) <= SEAL_OVERHEAD:
        raise _bad(f"{where}.sealed", "is too short to be a sealed template")
    return source, sealed


def parse_template(v: Any, where: str) -> TemplateEntry:
    d = _Doc(v, where)
    resident = _check_key(d.get("resident"), f"{where}.resident")
    source, sealed = _sealed(d, where)
    return TemplateEntry(resident, source, d.flag("share_with_site_gates"), sealed)


def parse_face_event(v: Any, where: str) -> FaceEvent:
    d = _Doc(v, where)
    at = d.time("at")
    if at is None:
        raise _bad(f"{where}.at", "is missing")
    return FaceEvent(_check_key(d.get("resident"), f"{where}.resident"), at)


def parse_ack(v: Any, where: str) -> ReportAck:
    d = _Doc(v, where)
    seq = d.get("audit_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        raise _bad(f"{where}.audit_seq", "must be a whole number from 0")
    h = d.text("audit_hash", 64)
    if not h or not HEX_RE.fullmatch(h) or len(h) != 64:
        raise _bad(f"{where}.audit_hash", "must be 64 hex digits")
    return ReportAck(seq, h, d.time("withdrawals_at") or 0.0, d.time("false_matches_at") or 0.0)


def parse_peer(v: Any, where: str) -> PublicIdentity:
    import base64
    import binascii

    d = _Doc(v, where)
    keys: list[bytes] = []
    for field_name in ("box_key", "sign_key"):
        raw = d.get(field_name)
        try:
            key = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise _bad(f"{where}.{field_name}", "must be a 32-byte key in base64")
        keys.append(key)
    return PublicIdentity("gate", d.text("name", 100) or "", keys[0], keys[1])


def parse_settings(v: Any) -> dict[str, Any] | None:
    """The settings table's shape only (tables of TOML values, size-limited); what the
    values mean is checked by the gate's own validator (doorpi.settings)."""
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(t, dict) for t in v.values()):
        raise _bad("settings", 'must be an object of tables, like {"site": {...}}')
    if len(json.dumps(v)) > MAX_SETTINGS_BYTES:
        raise _bad("settings", f"is over {MAX_SETTINGS_BYTES // 1024} KiB")

    def walk(x: Any, where: str, depth: int) -> None:
        if depth > 4 or x is None or (isinstance(x, float) and not math.isfinite(x)):
            raise _bad(where, "must be a TOML value (no null, at most 4 levels deep)")
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, y in items:
            walk(y, f"{where}.{k}" if isinstance(x, dict) else f"{where}[{k}]", depth + 1)

    walk(v, "settings", 0)
    return v


def _aes_key(v: Any, where: str) -> bytes:
    if not isinstance(v, str) or len(v) != 32 or not HEX_RE.fullmatch(v):
        raise _bad(where, "must be an AES-128 key (32 hex digits)")
    return bytes.fromhex(v)


def parse_secure_cards(v: Any) -> GateCardKeys | None:
    """``secure_cards``: null, or ``{"uid_read": KEY, "entry": {UID hex: KEY}}``."""
    if v is None:
        return None
    d = _Doc(v, "secure_cards")
    uid_read = _aes_key(d.get("uid_read"), "secure_cards.uid_read")
    entry = d.get("entry")
    if not isinstance(entry, dict) or len(entry) > MAX_SECURE_CARDS:
        raise _bad("secure_cards.entry", f"must be an object of at most {MAX_SECURE_CARDS} cards")
    keys: dict[str, bytes] = {}
    for uid, key in entry.items():
        where = f"secure_cards.entry[{str(uid)[:24]!r}]"
        keys[_rule(validation.card_uid_hex, uid, where)] = _aes_key(key, where)
    return GateCardKeys(uid_read, keys)


def parse_body(body: bytes) -> EnrollmentBundle:
    """Signed JSON -> `EnrollmentBundle`, or a `BundleError` naming the bad field."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError("malformed", f"body is not valid UTF-8 JSON: {str(exc)[:80]}") from None
    d = _Doc(doc, "")
    if d.get("format") != "doorpi-bundle":
        raise _bad("format", 'must be "doorpi-bundle"')
    version = d.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(
            "unknown_version", f"body version {version!r} is not supported (this gate reads 1)"
        )
    site, gate = d.text("site", 32), d.text("gate", 32)
    for name, fp in (("site", site), ("gate", gate)):
        if not fp or not FP_RE.fullmatch(fp):
            raise _bad(name, "must be a fingerprint (32 hex digits)")
    seq = d.get("sequence")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 2**53:
        raise _bad("sequence", "must be a whole number from 1")
    created = d.time("created")
    if created is None:
        raise _bad("created", "is missing")
    residents = d.each("residents", MAX_RESIDENTS, parse_resident)
    tombstones = d.each("tombstones", MAX_TOMBSTONES, _check_key)
    templates = d.each("templates", MAX_TEMPLATES, parse_template)
    template_tombstones = d.each("template_tombstones", MAX_TOMBSTONES, _check_key)
    peers = d.each("peers", MAX_PEERS, parse_peer)
    key_gate = d.text("card_key_gate", 32, optional=True)
    if key_gate is not None and not FP_RE.fullmatch(key_gate):
        raise _bad("card_key_gate", "must be a gate fingerprint (32 hex digits) or null")
    raw_key = d.get("card_key", required=False)
    card_key = None
    if raw_key is not None:
        card_key = CardKeyEntry(*_sealed(_Doc(raw_key, "card_key"), "card_key"))
    settings = parse_settings(d.get("settings", required=False))
    secure_cards = parse_secure_cards(d.get("secure_cards", required=False))
    withdrawals, suspensions = (
        d.each(key, MAX_TOMBSTONES, parse_face_event, required=False)
        for key in ("face_withdrawals", "face_suspensions")
    )
    try:
        modes = parse_modes(d.get("modes", required=False))
    except ValueError as exc:
        where, _, msg = str(exc).partition(": ")
        raise _bad(where, msg) from None
    raw_ack = d.get("report_ack", required=False)
    ack = None if raw_ack is None else parse_ack(raw_ack, "report_ack")
    bundle = EnrollmentBundle(
        site=str(site),
        gate=str(gate),
        sequence=seq,
        created=created,
        site_name=d.text("site_name", 100) or "",
        residents=residents,
        tombstones=tombstones,
        templates=templates,
        template_tombstones=template_tombstones,
        peers=peers,
        face_withdrawals=withdrawals,
        face_suspensions=suspensions,
        card_key_gate=key_gate,
        card_key=card_key,
        modes=modes,
        report_ack=ack,
        settings=settings,
        secure_cards=secure_cards,
    )
    check_consistency(bundle)
    return bundle


def check_consistency(bundle: EnrollmentBundle) -> None:
    """Rules across entries: unique keys, keypad numbers, cards; consent for templates."""
    seen: dict[str, int] = {}
    keypads: dict[str, str] = {}
    cards: dict[str, str] = {}
    for i, r in enumerate(bundle.residents):
        if r.key in seen:
            raise _bad(
                f"residents[{i}].key", f"{r.key} appears twice (also residents[{seen[r.key]}])"
            )
        seen[r.key] = i
        if r.keypad_id is not None:
            if r.keypad_id in keypads:
                raise _bad(
                    f"residents[{i}].keypad_id",
                    f"{r.keypad_id} is also given to {keypads[r.keypad_id]}",
                )
            keypads[r.keypad_id] = r.key
        for j, c in enumerate(r.cards):
            if c.uid in cards:
                raise _bad(f"residents[{i}].cards[{j}]", f"card is also given to {cards[c.uid]}")
            cards[c.uid] = r.key
    for i, k in enumerate(bundle.tombstones):
        if k in seen:
            raise _bad(f"tombstones[{i}]", f"{k} is both deleted and listed as a resident")
    by_key = {r.key: r for r in bundle.residents}
    peer_fps = {p.fingerprint for p in bundle.peers}
    if bundle.card_key is not None:
        k = bundle.card_key
        if k.source_gate != bundle.card_key_gate or k.source_gate not in peer_fps:
            raise _bad("card_key.source_gate", "must be card_key_gate, one of this site's gates")
    for i, t in enumerate(bundle.templates):
        owner = by_key.get(t.resident)
        if owner is None:
            raise _bad(f"templates[{i}].resident", f"{t.resident} is not a resident in this bundle")
        if not (t.share_with_site_gates and owner.share_with_site_gates):
            raise BundleError(
                "no_consent",
                f"templates[{i}]: {t.resident} has not consented to sharing face data "
                "between gates (share_with_site_gates)",
            )
        if t.source_gate == bundle.gate:
            raise _bad(f"templates[{i}].source_gate", "a gate cannot send a template to itself")
        if t.source_gate not in {p.fingerprint for p in bundle.peers}:
            raise _bad(
                f"templates[{i}].source_gate",
                f"gate {t.source_gate[:12]} is not one of this site's gates (peers)",
            )
