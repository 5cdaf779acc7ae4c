"""Card keys derived from the site's card master key (NXP AN10922).

The 16-byte card master key lives on the admin's laptop. Every key on a card
is an AN10922 diversification of it with a distinct full label, so no two
derivations can ever produce the same key by accident:

* application master key (key 0): M = ``doorpi-card-appmaster-v1`` (24) || UID
  (7; 4- and 10-byte UIDs are hashed down, see `_uid7`)
* UID-read key (key 1): M = ``doorpi-card-uid-read-v1`` (23): site-wide, it
  only reveals a card's real UID (cards that show random IDs)
* entry key (key 2): M = ``doorpi-card-entry-v1`` (20) || UID (7)
* card (PICC) master key: M = ``doorpi-card-picc-v1`` (19) || UID (7); replaces
  the factory default at issue so nobody else can reformat the card
* NTAG 424 DNA's keys 3 and 4 (unused by doorpi, but all-zero from the
  factory): M = ``doorpi-card-ntag-key-v1`` (23) || key number (1) || UID (7)

M is at most 31 bytes, AN10922's limit for one AES-128 key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from doorpi.cards.crypto import diversify_an10922

log = logging.getLogger(__name__)

LABEL_APP_MASTER = b"doorpi-card-appmaster-v1"
LABEL_UID_READ = b"doorpi-card-uid-read-v1"
LABEL_ENTRY = b"doorpi-card-entry-v1"
LABEL_PICC = b"doorpi-card-picc-v1"
LABEL_NTAG_KEY = b"doorpi-card-ntag-key-v1"


def _uid7(uid: bytes) -> bytes:
    """7 bytes standing for the UID: itself if 7 bytes long, else BLAKE2b-56 of it."""
    if len(uid) == 7:
        return uid
    return hashlib.blake2b(b"doorpi-card-uid-v1" + uid, digest_size=7).digest()


@dataclass(frozen=True)
class SiteCardKeys:
    """All card keys of a site, derived on demand from ``master`` (16 bytes)."""

    master: bytes

    def __post_init__(self) -> None:
        if len(self.master) != 16:
            raise ValueError(f"card master key must be 16 bytes, got {len(self.master)}")

    def app_master_key(self, uid: bytes) -> bytes:
        return diversify_an10922(self.master, LABEL_APP_MASTER + _uid7(uid))

    def uid_read_key(self) -> bytes:
        return diversify_an10922(self.master, LABEL_UID_READ)

    def picc_master_key(self, uid: bytes) -> bytes:
        return diversify_an10922(self.master, LABEL_PICC + _uid7(uid))

    def entry_key(self, uid: bytes) -> bytes | None:
        return diversify_an10922(self.master, LABEL_ENTRY + _uid7(uid))

    def ntag_spare_key(self, uid: bytes, key_no: int) -> bytes:
        """NTAG 424 DNA key 3 or 4: doorpi does not use them, issuing replaces
        their factory zeros so no default key is left on the tag."""
        if key_no not in (3, 4):
            raise ValueError(f"NTAG 424 DNA spare key number must be 3 or 4, got {key_no}")
        return diversify_an10922(self.master, LABEL_NTAG_KEY + bytes([key_no]) + _uid7(uid))

    def __repr__(self) -> str:  # never print key material
        return "SiteCardKeys(<master hidden>)"


@dataclass(frozen=True)
class GateCardKeys:
    """What a gate holds: the UID-read key and one entry key per issued card.

    The site master key never reaches a gate: the laptop sends these derived
    keys, sealed to the gate, with the roster. ``entry_keys`` maps UID hex to
    the card's 16-byte entry key.
    """

    uid_read: bytes
    entry_keys: dict[str, bytes]

    def uid_read_key(self) -> bytes:
        return self.uid_read

    def entry_key(self, uid: bytes) -> bytes | None:
        return self.entry_keys.get(uid.hex())

    @classmethod
    def for_cards(cls, site: SiteCardKeys, uids: list[bytes]) -> GateCardKeys:
        return cls(site.uid_read_key(), {u.hex(): site.entry_key(u) or b"" for u in uids})

    def __repr__(self) -> str:
        return f"GateCardKeys(<{len(self.entry_keys)} card keys hidden>)"


GATE_KEYS_FILE = "card-keys.json"


def load_gate_keys(data_dir: Path) -> GateCardKeys | None:
    """The gate's card keys from ``data_dir/card-keys.json``, or None if absent.

    Shape: ``{"uid_read": "<32 hex>", "entry": {"<uid hex>": "<32 hex>"}}``.
    A file that is there but wrong raises ``ValueError`` naming the file:
    a broken key file is a fault, never a reason to run without it silently.
    """
    path = data_dir / GATE_KEYS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read card keys: {exc}") from None
    try:
        uid_read = bytes.fromhex(raw["uid_read"])
        entry = {str(u).lower(): bytes.fromhex(k) for u, k in dict(raw["entry"]).items()}
        if len(uid_read) != 16 or any(len(k) != 16 for k in entry.values()):
            raise ValueError("keys must be 16 bytes")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: malformed card keys: {exc}") from None
    return GateCardKeys(uid_read, entry)


class GateKeysFile:
    """``card-keys.json`` as a running gate sees it: reloaded when the file changes.

    The importer (``doorpi sync import``, another process) replaces the file
    atomically (a new inode), so `current`, called by the reader at every
    tap, notices a new bundle's keys with one ``os.stat`` (microseconds) and
    no restart. The first load happens here and raises ``ValueError`` like
    `load_gate_keys` (a broken key file stops the gate at start). Later,
    a file that turns unreadable or malformed, or disappears, is a fault
    logged once as one line: the keys loaded last stay in use (nothing is
    thrown away silently) until a good file replaces it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / GATE_KEYS_FILE
        self.problem: str | None = None  # the fault last logged, if any
        self.reloads = 0  # loads after the first (diagnostics, tests)
        self._seen = self._signature()
        self._keys = load_gate_keys(self.data_dir)

    def _signature(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return (-1, exc.errno or 0, 0, 0)
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)

    def current(self) -> GateCardKeys | None:
        """The keys to use now (None: the gate has never had card keys)."""
        sig = self._signature()
        if sig == self._seen:
            return self._keys
        self._seen = sig
        try:
            keys = load_gate_keys(self.data_dir)
            if keys is None and self._keys is not None:
                raise ValueError(f"{self.path}: removed")
        except ValueError as exc:
            kept = "keeping the card keys loaded before" if self._keys else "no card keys"
            self.problem = f"{exc} ({kept})"
            log.error("card keys: %s", self.problem)
            return self._keys
        self._keys, self.problem = keys, None
        self.reloads += 1
        log.info("card keys reloaded from %s: %d cards", self.path, len(keys.entry_keys))
        return keys

    def __repr__(self) -> str:
        return f"GateKeysFile({str(self.path)!r})"


def write_gate_keys(data_dir: Path, keys: GateCardKeys) -> Path:
    """Write ``card-keys.json`` (mode 0600, atomically) for `load_gate_keys`."""
    from doorpi.fsutil import write_atomic

    path = data_dir / GATE_KEYS_FILE
    doc = {
        "uid_read": keys.uid_read.hex(),
        "entry": {u: k.hex() for u, k in keys.entry_keys.items()},
    }
    write_atomic(path, json.dumps(doc).encode(), 0o600)
    return path


__all__ = [
    "GATE_KEYS_FILE",
    "LABEL_APP_MASTER",
    "LABEL_ENTRY",
    "LABEL_NTAG_KEY",
    "LABEL_PICC",
    "LABEL_UID_READ",
    "GateCardKeys",
    "GateKeysFile",
    "SiteCardKeys",
    "load_gate_keys",
    "write_gate_keys",
]
