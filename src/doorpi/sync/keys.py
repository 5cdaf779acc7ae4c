"""Key pairs for USB sync: the gate's identity and the site's key, with fingerprints.

A gate holds an X25519 key (bundles are sealed to it) and an Ed25519 key (it
signs its reports). The admin's site key is the same pair the other way round:
Ed25519 signs bundles, X25519 receives the gates' sealed reports, so a lost
stick reveals neither the roster nor the gates' audit logs. Private halves
are raw 32-byte files written 0600; public halves travel as small JSON
"cards" whose fingerprint a person can compare on two screens.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from doorpi.store.secrets import derive, write_secret_file

GATE_BOX_FILE = "gate-x25519.key"
GATE_SIGN_FILE = "gate-ed25519.key"
SITE_KEY_FILE = "site.key"
PUBLIC_CARD_MAX = 4096


class KeyFileError(ValueError):
    """Key material missing, malformed or already present; one line naming the file."""


def fingerprint(kind: str, box_key: bytes, sign_key: bytes) -> str:
    """32 hex digits binding both public keys; used in file names and for pairing."""
    return blake2b(
        f"doorpi-{kind}-v1".encode() + box_key + sign_key, digest_size=16, encoder=RawEncoder
    ).hex()


def pretty(fp: str) -> str:
    """A fingerprint grouped for reading aloud: 8 groups of 4."""
    return "-".join(fp[i : i + 4] for i in range(0, len(fp), 4))


@dataclass(frozen=True)
class PublicIdentity:
    """The public half of a gate or a site, as written to a stick."""

    kind: str  # "gate" or "site"
    name: str
    box_key: bytes
    sign_key: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.box_key, self.sign_key)

    @property
    def box(self) -> PublicKey:
        return PublicKey(self.box_key)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.sign_key)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": f"doorpi-{self.kind}-public",
                "version": 1,
                "name": self.name,
                "box_key": base64.b64encode(self.box_key).decode(),
                "sign_key": base64.b64encode(self.sign_key).decode(),
                "fingerprint": self.fingerprint,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, kind: str, where: str = "public key") -> PublicIdentity:
        try:
            doc: Any = json.loads(text)
        except ValueError as exc:
            raise KeyFileError(f"{where}: not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != f"doorpi-{kind}-public":
            raise KeyFileError(f"{where}: not a doorpi {kind} public key file")
        if doc.get("version") != 1:
            raise KeyFileError(f"{where}: unsupported version {doc.get('version')!r}")
        keys: list[bytes] = []
        for field in ("box_key", "sign_key"):
            try:
                raw = base64.b64decode(str(doc.get(field, "")), validate=True)
            except ValueError:
                raise KeyFileError(f"{where}: {field} is not base64") from None
            if len(raw) != 32:
                raise KeyFileError(f"{where}: {field} must be 32 bytes, got {len(raw)}")
            keys.append(raw)
        name = doc.get("name", "")
        if not isinstance(name, str) or len(name) > 100:
            raise KeyFileError(f"{where}: name must be a short string")
        ident = cls(kind, name, keys[0], keys[1])
        if doc.get("fingerprint") not in (None, ident.fingerprint):
            raise KeyFileError(f"{where}: fingerprint does not match the keys (file edited?)")
        return ident

    @classmethod
    def read(cls, path: Path, kind: str) -> PublicIdentity:
        try:
            data = path.read_bytes()[: PUBLIC_CARD_MAX + 1]
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
        if len(data) > PUBLIC_CARD_MAX:
            raise KeyFileError(f"{path}: too large for a public key file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyFileError(f"{path}: not UTF-8 text") from None
        return cls.from_json(text, kind, str(path))


def _read_key(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) != 32:
        raise KeyFileError(f"{path}: key must be 32 bytes, found {len(data)}")
    return data


@dataclass(frozen=True)
class GateIdentity:
    """The gate's private keys: open bundles sealed to it, sign its reports."""

    box: PrivateKey
    signing: SigningKey
    name: str = ""

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity("gate", self.name, bytes(self.box.public_key),
                              bytes(self.signing.verify_key))  # fmt: skip

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    @staticmethod
    def exists(keys_dir: Path) -> bool:
        return (keys_dir / GATE_BOX_FILE).exists() or (keys_dir / GATE_SIGN_FILE).exists()

    @classmethod
    def create(cls, keys_dir: Path, name: str = "") -> GateIdentity:
        """New key pairs; refuses to overwrite (that would unpair the gate)."""
        if cls.exists(keys_dir):
            raise KeyFileError(f"{keys_dir}: gate keys already exist (remove them to re-pair)")
        box, signing = PrivateKey.generate(), SigningKey.generate()
        write_secret_file(keys_dir / GATE_BOX_FILE, bytes(box))
        write_secret_file(keys_dir / GATE_SIGN_FILE, bytes(signing))
        return cls(box, signing, name)

    @classmethod
    def load(cls, keys_dir: Path, name: str = "") -> GateIdentity:
        box = _read_key(keys_dir / GATE_BOX_FILE)
        sign = _read_key(keys_dir / GATE_SIGN_FILE)
        return cls(PrivateKey(box), SigningKey(sign), name)


@dataclass(frozen=True)
class SiteKey:
    """The admin's key for one site: signs bundles, opens the gates' reports.

    One 32-byte seed file; the Ed25519 and X25519 halves are derived from it
    so there is exactly one secret to back up.
    """

    seed: bytes
    name: str = ""

    @property
    def signing(self) -> SigningKey:
        return SigningKey(derive(self.seed, "site-sign"))

    @property
    def box(self) -> PrivateKey:
        return PrivateKey(derive(self.seed, "site-box"))

    @property
    def pin_tag_key(self) -> bytes:
        """Keys the PIN change tags (see bundle.pin_tag); never leaves the laptop."""
        return derive(self.seed, "site-pintag")

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity("site", self.name, bytes(self.box.public_key),
                              bytes(self.signing.verify_key))  # fmt: skip

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    @classmethod
    def create(cls, admin_dir: Path, name: str) -> SiteKey:
        import os

        path = admin_dir / SITE_KEY_FILE
        if path.exists():
            raise KeyFileError(f"{path}: a site key already exists")
        key = cls(os.urandom(32), name)
        write_secret_file(path, key.seed)
        return key

    @classmethod
    def load(cls, admin_dir: Path, name: str = "") -> SiteKey:
        return cls(_read_key(admin_dir / SITE_KEY_FILE), name)


def fingerprint_matches(actual: str, given: str) -> bool:
    """Does a fingerprint typed by a person (dashes, spaces, any case) match the key's?

    Only the full 32 hex digits count: a prefix can be matched by a key an
    attacker generated for it (16 hex digits is 64 bits, within reach).
    """
    want = given.replace("-", "").replace(" ", "").lower()
    return len(want) == len(actual) == 32 and actual == want
