"""Face data sealed gate to gate, so the laptop and the stick only carry ciphertext.

A template (with its consent record, see doorpi.privacy.share) leaves its
source gate as::

    SealedBox(destination X25519, Ed25519-signature(source) || inner)
    inner = b"doorpi-template-v1\\0" || destination fingerprint (16) || len(key) (1)
            || roster key || payload

The site's card key (template-on-card sites) travels the same way under the
label ``CARD_KEY_LABEL``, which no roster key can equal.

The signature matters: SealedBox alone is anonymous, so without it anyone
with a stick could slip their own face in under a resident's name. The
destination checks that a gate of the site (from the signed peer list in the
bundle) made it, for this resident and for this gate. Only residents whose
roster entry says ``share_face_with_site_gates`` are exported or accepted.
"""

from __future__ import annotations

from typing import Any

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import SealedBox

from doorpi.sync.bundle import SIGNATURE_BYTES, BundleError
from doorpi.sync.keys import GateIdentity, PublicIdentity

DOMAIN = b"doorpi-template-v1\0"
MAX_TEMPLATE = 48 * 1024
CARD_KEY_LABEL = "~card-key"  # roster keys start with a-z or 0-9


def seal_template(source: GateIdentity, dest: PublicIdentity, key: str, template: bytes) -> bytes:
    """The source gate's side: sign, bind to resident and destination, seal."""
    if len(template) > MAX_TEMPLATE:
        raise ValueError(f"template of {len(template)} bytes is over {MAX_TEMPLATE}")
    raw_key = key.encode()
    inner = DOMAIN + bytes.fromhex(dest.fingerprint) + bytes([len(raw_key)]) + raw_key + template
    return SealedBox(dest.box).encrypt(bytes(source.signing.sign(inner)))


def _open(sealed: bytes, dest: GateIdentity) -> tuple[bytes, bytes]:
    try:
        signed = SealedBox(dest.box).decrypt(sealed)
    except CryptoError:
        raise BundleError("undecryptable", "template is not sealed to this gate") from None
    return signed[:SIGNATURE_BYTES], signed[SIGNATURE_BYTES:]


def _parse_inner(inner: bytes, dest: GateIdentity) -> tuple[str, bytes]:
    head = len(DOMAIN) + 16
    if len(inner) < head + 1 or not inner.startswith(DOMAIN):
        raise BundleError("malformed", "template envelope is not doorpi-template-v1")
    if inner[len(DOMAIN) : head].hex() != dest.fingerprint:
        raise BundleError("wrong_gate", "template was sealed for another gate")
    n = inner[head]
    key = inner[head + 1 : head + 1 + n].decode("utf-8", "replace")
    return key, inner[head + 1 + n :]


def open_template(sealed: bytes, dest: GateIdentity, source: PublicIdentity, key: str) -> bytes:
    """The destination's check: made by ``source``, for ``key``, for this gate."""
    signature, inner = _open(sealed, dest)
    try:
        source.verify_key.verify(inner, signature)
    except (BadSignatureError, ValueError):
        raise BundleError(
            "bad_signature", f"template was not signed by gate {source.fingerprint[:12]}"
        ) from None
    got, template = _parse_inner(inner, dest)
    if got != key:
        raise BundleError("malformed", f"template belongs to {got!r}, not {key!r}")
    return template


def unseal_for_vault(sealed: bytes, dest: GateIdentity) -> bytes:
    """The template bytes for the vault, from a blob the importer has already verified.

    For the `TemplateSink` adapter, which is only called after `open_template`
    succeeded inside the import; it needs no peer keys.
    """
    _, inner = _open(sealed, dest)
    return _parse_inner(inner, dest)[1]


# ------------------------------------------------------------------ the stick's outbox

PACK_SUFFIX = ".templates"  # outbox/<destination>/<source>.templates
PACK_FORMAT = "doorpi-outbox"


def seal_pack(entries: list[tuple[str, bytes]], site: PublicIdentity, limit: int) -> bytes:
    """The templates one gate leaves for another, as one file sealed to the site key.

    ``entries`` are (roster key, blob from `seal_template`). The roster keys name
    residents, so they travel inside the seal (the admin opens it; the
    templates stay sealed gate to gate), and the JSON is padded to a power of
    two (`doorpi.sync.bundle.padded`) so a lost stick shows neither who
    enrolled nor, beyond the order of magnitude, how many.
    """
    import base64
    import json

    from doorpi.sync.bundle import SEAL_OVERHEAD, padded

    doc = {"format": PACK_FORMAT, "version": 1,
           "templates": [{"resident": k, "sealed": base64.b64encode(b).decode()}
                         for k, b in entries]}  # fmt: skip
    body = padded(json.dumps(doc, separators=(",", ":")).encode(), limit - SEAL_OVERHEAD)
    return bytes(SealedBox(site.box).encrypt(body))


def open_pack(data: bytes, site_box: Any) -> list[tuple[str, bytes]]:
    """(roster key, sealed template) pairs from `seal_pack`; `BundleError` if damaged.

    ``site_box`` is the site's X25519 private key (`doorpi.sync.keys.SiteKey.box`).
    """
    import base64
    import binascii
    import json

    from doorpi.sync.bundle import KEY_RE

    try:
        doc = json.loads(SealedBox(site_box).decrypt(data))
        if doc.get("format") != PACK_FORMAT or doc.get("version") != 1:
            raise ValueError("not a version 1 outbox file")
        out = []
        for t in doc["templates"]:
            key, sealed = t["resident"], base64.b64decode(t["sealed"], validate=True)
            if not (isinstance(key, str) and KEY_RE.fullmatch(key)):
                raise ValueError("bad roster key")
            if len(sealed) > MAX_TEMPLATE + 200:
                raise ValueError("template too large")
            out.append((key, sealed))
        return out
    except CryptoError:
        raise BundleError("undecryptable", "outbox file is not sealed to this site") from None
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as exc:
        raise BundleError("malformed", f"outbox file: {exc}") from None
