"""Template on card: the resident's face template lives only on their own card.

Why (EDPB 3/2019 para. 88, CNIL "type 1"; law notes D18): if the device
keeps no templates, a stolen or copied gate leaks no faces; the resident
holds the only copy and can destroy it. Entry is then card tap + face (1:1):
the card says who, the face proves it is the card's holder.

The blob written to the card is

    magic "DPF1" | version (2) | site key id (8) | enrolling gate (8) | consent id (u32)
    | expires (f64) | nonce (24) | XChaCha20-Poly1305(template) | Ed25519 signature (64)

The template is first turned by the site's `InstallationTransform`, then
encrypted under a key derived from the site key, with the card's UID and
the header as associated data (a blob copied to another card fails), and
the whole is signed with the site's Ed25519 key (a blob from another site,
or edited, fails). The gate also checks that the consent named in the blob
(by the enrolling gate's fingerprint and its consent id there) is still
live, so a withdrawal at the desk stops matching even while the resident
still carries the card; `TemplateCard.erase` wipes the card itself.

Several gates of a site read each other's cards once they share the site's
card key: one gate's key travels sealed gate to gate with the USB sync
(doorpi.sync), and the consent records travel the same way. A
`CardKeyring` holds the key new cards are sealed with and every key this
gate still reads.

Card side: a small ISO 7816-4 file application (`TemplateCardApplet`) that
plugs into the vpcd emulator's handler hook: SELECT by AID, READ BINARY,
UPDATE BINARY, ERASE BINARY, plus the reader's GET UID. Data moves in chunks
of at most 200 bytes over any ``transmit(apdu) -> (data, sw1, sw2)``
(pyscard, the gate's reader adapter, or a test function).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from doorpi.cards.uid import GET_UID_APDU, CardProtocol, CardProtocolError, Transmit, UidCard
from doorpi.privacy.vault import (
    TEMPLATE_BYTES,
    InstallationTransform,
    check_embedding,
    key_id,
)
from doorpi.store.secrets import DeviceSecrets, derive

AID = bytes.fromhex("F0646F6F72706901")  # F0 "doorpi" 01: proprietary AID
MAGIC = b"DPF1"
VERSION = 2
_HEADER = struct.Struct(">4sB8s8sId")  # magic, version, site key id, gate, consent id, expires
NONCE = 24
SIG = 64
BLOB_BYTES = _HEADER.size + NONCE + TEMPLATE_BYTES + 16 + SIG
CHUNK = 200
FILE_BYTES = 1024  # the card's data file; the blob sits after a 2-byte length

SW_OK = (0x90, 0x00)


class OnCardError(RuntimeError):
    """The card's template cannot be used; ``reason`` is a short code for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# ---------------------------------------------------------------- site keys


@dataclass(frozen=True)
class SiteCardKeys:
    """The site's keys for card templates (shared by the site's gates)."""

    site_key: bytes

    @classmethod
    def from_secrets(cls, secrets: DeviceSecrets) -> SiteCardKeys:
        return cls(derive(secrets.master, "oncard-site"))

    # Derived once per key: the gate checks a card's template on every good frame.
    @cached_property
    def id(self) -> bytes:
        return bytes.fromhex(key_id(self.site_key))

    @cached_property
    def _enc(self) -> bytes:
        return derive(self.site_key, "oncard-enc")

    @cached_property
    def signing(self) -> SigningKey:
        return SigningKey(derive(self.site_key, "oncard-sign"))

    @cached_property
    def verify_key(self) -> VerifyKey:
        return self.signing.verify_key

    @cached_property
    def transform(self) -> InstallationTransform:
        return InstallationTransform(self.site_key)


@dataclass(frozen=True)
class CardTemplate:
    """A verified, decrypted card template (in memory only)."""

    consent_id: int
    expires: float
    template: np.ndarray  # transformed; compare with keys.transform.apply(probe)
    gate: str = ""  # hex prefix (16 digits) of the enrolling gate's fingerprint; "" unknown


@dataclass(frozen=True)
class CardKeyring:
    """The key new cards are sealed with, and every key this gate reads cards with."""

    sealing: SiteCardKeys
    reading: tuple[SiteCardKeys, ...] = ()

    def for_blob(self, blob: bytes) -> SiteCardKeys:
        kid = blob[len(MAGIC) + 1 : len(MAGIC) + 9]
        for k in (self.sealing, *self.reading):
            if k.id == kid:
                return k
        raise OnCardError("other_site", "signed for another site or an old key")


def seal(
    keys: SiteCardKeys,
    card_uid: bytes,
    embedding: np.ndarray,
    consent_id: int,
    expires: float,
    gate: str = "",
) -> bytes:
    """Encrypt and sign a template for one card of this site, enrolled at ``gate``."""
    protected = keys.transform.apply(check_embedding(embedding)).tobytes()
    origin = bytes.fromhex(gate[:16]).ljust(8, b"\0")
    header = _HEADER.pack(MAGIC, VERSION, keys.id, origin, consent_id, expires)
    nonce = os.urandom(NONCE)
    ct = crypto_aead_xchacha20poly1305_ietf_encrypt(protected, header + card_uid, nonce, keys._enc)
    body = header + nonce + ct
    return body + keys.signing.sign(body).signature


def unseal(keys: SiteCardKeys, card_uid: bytes, blob: bytes, now: float) -> CardTemplate:
    """Verify and decrypt a card's blob, or OnCardError with the reason."""
    if len(blob) != BLOB_BYTES:
        raise OnCardError("malformed", f"{len(blob)} bytes")
    body, sig = blob[:-SIG], blob[-SIG:]
    magic, version, kid, origin, consent_id, expires = _HEADER.unpack(body[: _HEADER.size])
    if magic != MAGIC or version != VERSION:
        raise OnCardError("malformed", "not a doorpi face template")
    if kid != keys.id:
        raise OnCardError("other_site", "signed for another site or an old key")
    try:
        keys.verify_key.verify(body, sig)
    except BadSignatureError:
        raise OnCardError("bad_signature") from None
    nonce = body[_HEADER.size : _HEADER.size + NONCE]
    ct = body[_HEADER.size + NONCE :]
    try:
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct, body[: _HEADER.size] + card_uid, nonce, keys._enc
        )
    except CryptoError:
        raise OnCardError("wrong_card", "the template belongs to another card") from None
    if expires <= now:
        raise OnCardError("expired")
    gate = origin.hex() if any(origin) else ""
    return CardTemplate(consent_id, expires, np.frombuffer(plain, np.float32).copy(), gate)


# ---------------------------------------------------------------- APDUs


def _check(resp: tuple[list[int], int, int], what: str) -> list[int]:
    data, sw1, sw2 = resp
    if (sw1, sw2) != SW_OK:
        raise OnCardError("card_error", f"{what}: status {sw1:02X}{sw2:02X}")
    return list(data)


class TemplateCard:
    """The reader side: select, write, read and erase a card's template file."""

    def __init__(self, transmit: Transmit) -> None:
        self.transmit = transmit

    def uid(self) -> bytes:
        try:
            return UidCard().identify(self.transmit)
        except CardProtocolError as exc:
            raise OnCardError("card_error", str(exc)) from None

    def select(self) -> None:
        _check(self.transmit([0x00, 0xA4, 0x04, 0x00, len(AID), *AID]), "select")

    def _write(self, offset: int, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            part = data[i : i + CHUNK]
            off = offset + i
            _check(
                self.transmit([0x00, 0xD6, off >> 8, off & 0xFF, len(part), *part]),
                f"update binary at {off}",
            )

    def _read(self, offset: int, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            off = offset + len(out)
            want = min(CHUNK, n - len(out))
            data = _check(self.transmit([0x00, 0xB0, off >> 8, off & 0xFF, want]), "read binary")
            if not data:
                raise OnCardError("card_error", "short read")
            out += bytes(data)
        return bytes(out[:n])

    def write(self, blob: bytes) -> None:
        if len(blob) + 2 > FILE_BYTES:
            raise OnCardError("too_big", f"{len(blob)} bytes")
        self.select()
        self._write(0, struct.pack(">H", len(blob)) + blob)

    def read(self) -> bytes | None:
        """The stored blob, or None if the card holds no template."""
        self.select()
        (n,) = struct.unpack(">H", self._read(0, 2))
        if n == 0:
            return None
        if n > FILE_BYTES - 2:
            raise OnCardError("malformed", f"length {n}")
        return self._read(2, n)

    def erase(self) -> None:
        """Wipe the file on the card (withdrawal with the card present)."""
        self.select()
        _check(self.transmit([0x00, 0x0E, 0x00, 0x00, 0x00]), "erase binary")


class TemplateCardApplet:
    """The card side, for the vpcd emulator: ``VirtualCard(uid, handler=applet)``.

    Its memory outlives a tap (the same object is the same physical card).
    """

    def __init__(self, uid: bytes, size: int = FILE_BYTES) -> None:
        self.uid = bytes(uid)
        self.memory = bytearray(size)
        self.selected = False
        self._lock = threading.Lock()

    def __call__(self, apdu: bytes) -> bytes:
        with self._lock:
            return self._handle(bytes(apdu))

    def _handle(self, apdu: bytes) -> bytes:
        if apdu[:4] == bytes(GET_UID_APDU[:4]):
            return self.uid + b"\x90\x00"
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        if cla != 0x00:
            return b"\x6e\x00"
        if ins == 0xA4:  # SELECT by AID
            ok = p1 == 0x04 and len(apdu) >= 5 and apdu[5 : 5 + apdu[4]] == AID
            self.selected = ok
            return b"\x90\x00" if ok else b"\x6a\x82"
        if not self.selected:
            return b"\x69\x86"  # command not allowed: no current file
        off = (p1 << 8) | p2
        if ins == 0xB0:  # READ BINARY
            le = apdu[4] if len(apdu) > 4 else 0
            if off + le > len(self.memory):
                return b"\x6b\x00"
            return bytes(self.memory[off : off + le]) + b"\x90\x00"
        if ins == 0xD6:  # UPDATE BINARY
            lc = apdu[4] if len(apdu) > 4 else 0
            data = apdu[5 : 5 + lc]
            if len(data) != lc:
                return b"\x67\x00"
            if off + lc > len(self.memory):
                return b"\x6a\x84"
            self.memory[off : off + lc] = data
            return b"\x90\x00"
        if ins == 0x0E:  # ERASE BINARY
            self.memory[:] = bytes(len(self.memory))
            return b"\x90\x00"
        return b"\x6d\x00"


@contextmanager
def pcsc_card(reader_name: str, timeout: float = 5.0) -> Iterator[Transmit]:
    """A ``transmit`` for the card on a PC/SC reader (pyscard), for enrolment."""
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.scard import SCARD_LEAVE_CARD
    from smartcard.System import readers

    try:
        found = readers()
    except Exception as exc:  # EstablishContextException, ListReadersException: no pcscd
        hresult = getattr(exc, "hresult", None)
        from doorpi.hardware.reader import pcsc_error_text, service_down

        if isinstance(hresult, int) and service_down(hresult):
            raise OnCardError("no_service", pcsc_error_text(hresult)) from None
        raise OnCardError("no_service", f"{type(exc).__name__}: {exc}") from None
    match = [r for r in found if reader_name in str(r)]
    if not match:
        raise OnCardError("no_reader", reader_name)
    conn = match[0].createConnection()
    end = time.monotonic() + timeout
    while True:
        try:
            conn.connect(disposition=SCARD_LEAVE_CARD)
            break
        except (NoCardException, CardConnectionException) as exc:
            if time.monotonic() > end:
                raise OnCardError("no_card", str(exc)) from None
            time.sleep(0.1)

    def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
        data, sw1, sw2 = conn.transmit(list(apdu))
        return list(data), sw1, sw2

    try:
        yield transmit
    finally:
        conn.disconnect()
        conn.release()


# ---------------------------------------------------------------- the gate's side


class OnCardTemplateProtocol:
    """A `CardProtocol` for the reader: identifies the card and keeps its
    template blob in memory for the face step that follows (at most ``ttl``
    seconds, then forgotten). Nothing is written anywhere.

    ``identity`` says who the card is: by default its UID (weak, cloneable);
    with `doorpi.cards.policy.CardPolicyProtocol` the real UID proven by
    AES authentication, so a template is bound to the authenticated card
    (it is sealed with that UID as associated data), not to a presented ID.
    """

    method = "uid+face_template"

    def __init__(
        self,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        identity: CardProtocol | None = None,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.identity: CardProtocol = identity if identity is not None else UidCard()
        self._blobs: dict[bytes, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def identify(self, transmit: Transmit) -> bytes:
        card = TemplateCard(transmit)
        uid = self.identity.identify(transmit)
        self.method = f"{self.identity.method}+face_template"
        try:
            blob = card.read()
        except OnCardError:
            blob = None  # a plain card: card and PIN still work
        with self._lock:
            self._blobs = {u: v for u, v in self._blobs.items() if self.clock() - v[0] < self.ttl}
            if blob is not None:
                self._blobs[uid] = (self.clock(), blob)
            else:
                self._blobs.pop(uid, None)
        return uid

    def peek(self, uid: bytes) -> bool:
        """Is a fresh blob from this card waiting (without handing it over)?"""
        with self._lock:
            item = self._blobs.get(uid)
        return item is not None and self.clock() - item[0] < self.ttl

    def take(self, uid: bytes) -> bytes | None:
        """The blob read at this card's last tap (removed from memory)."""
        with self._lock:
            item = self._blobs.pop(uid, None)
        if item is None or self.clock() - item[0] >= self.ttl:
            return None
        return item[1]


@dataclass(frozen=True)
class OnCardResult:
    matched: bool
    score: float
    reason: str  # "ok", "no_match", "no_consent", or an OnCardError reason


def verify_on_card(
    keys: SiteCardKeys | CardKeyring,
    card_uid: bytes,
    blob: bytes,
    probe: np.ndarray,
    threshold: float,
    consent_live: Callable[[CardTemplate], bool],
    now: float,
) -> OnCardResult:
    """1:1: does the live probe match the template the tapped card carries?"""
    try:
        if isinstance(keys, CardKeyring):
            keys = keys.for_blob(blob)
        t = unseal(keys, card_uid, blob, now)
    except OnCardError as exc:
        return OnCardResult(False, -1.0, exc.reason)
    if not consent_live(t):
        return OnCardResult(False, -1.0, "no_consent")
    score = float(t.template @ keys.transform.apply(check_embedding(probe)))
    return OnCardResult(score >= threshold, score, "ok" if score >= threshold else "no_match")


__all__ = [
    "AID",
    "BLOB_BYTES",
    "CardKeyring",
    "CardTemplate",
    "OnCardError",
    "OnCardResult",
    "OnCardTemplateProtocol",
    "SiteCardKeys",
    "TemplateCard",
    "TemplateCardApplet",
    "pcsc_card",
    "seal",
    "unseal",
    "verify_on_card",
]
