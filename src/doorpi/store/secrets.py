"""The gate's device secret and the keys derived from it.

One 32-byte random master key in ``<data_dir>/keys/device.key`` (0600, in a
0700 directory). Purpose keys are derived with keyed BLAKE2b so that a leak of
one (say, card hashes in an export) says nothing about another:

* ``card``: keyed hash of card identifiers (the database never holds a UID);
* ``pin``: pepper applied before Argon2id, so a stolen database alone cannot
  be brute-forced offline;
* ``audit``: keys the audit log's hash chain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from doorpi.fsutil import write_atomic


class KeyError_(RuntimeError):
    """Key material missing or unreadable; the message names the file."""


def write_secret_file(path: Path, data: bytes) -> None:
    """Create a 0600 file in a 0700 folder atomically (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    write_atomic(path, data, 0o600)


def derive(master: bytes, purpose: str, size: int = 32) -> bytes:
    return blake2b(
        b"",
        digest_size=size,
        key=master,
        person=f"doorpi:{purpose}"[:16].encode().ljust(16, b"\0"),
        encoder=RawEncoder,
    )


@dataclass(frozen=True)
class DeviceSecrets:
    master: bytes

    @property
    def card_key(self) -> bytes:
        return derive(self.master, "card")

    @property
    def pin_key(self) -> bytes:
        return derive(self.master, "pin")

    @property
    def audit_key(self) -> bytes:
        return derive(self.master, "audit")

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> DeviceSecrets:
        path = keys_dir / "device.key"
        if not path.exists():
            write_secret_file(path, os.urandom(32))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyError_(f"{path}: cannot read device key: {exc}") from None
        if len(data) != 32:
            raise KeyError_(f"{path}: device key must be 32 bytes, found {len(data)}")
        return cls(data)
