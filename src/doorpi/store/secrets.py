"""The gate's device secret and the keys derived from it.

One 32-byte random master key, kept by the key root (doorpi.store.keyroot:
``<data_dir>/keys/device.key``, 0600 in a 0700 directory, or a TPM's NV memory). Purpose keys are derived with keyed BLAKE2b so that a leak of
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

from doorpi.fsutil import write_atomic
from doorpi.store.keyroot import KeyRootError, derive, open_root

__all__ = ["DeviceSecrets", "KeyError_", "derive", "write_secret_file"]


class KeyError_(RuntimeError):
    """Key material missing or unreadable; the message names the file."""


def write_secret_file(path: Path, data: bytes) -> None:
    """Create a 0600 file in a 0700 folder atomically (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    write_atomic(path, data, 0o600)


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

    @property
    def check_value(self) -> str:
        """A one-way tag of the master key, kept in the database so that a key
        that is not the one the database was written with is noticed at start
        (hex, 16 bytes; its own derivation label, so it says nothing of the others)."""
        return derive(self.master, "keycheck", 16).hex()

    @classmethod
    def load(cls, keys_dir: Path) -> DeviceSecrets:
        """Read ``keys_dir/device.key``. Raises FileNotFoundError when it does not
        exist, KeyError_ (naming the file) when it cannot be read or is not 32 bytes."""
        path = keys_dir / "device.key"
        try:
            root = open_root(keys_dir)
            data = root.read_master()
        except FileNotFoundError:
            raise
        except KeyRootError as exc:
            raise KeyError_(str(exc)) from None
        except OSError as exc:
            raise KeyError_(f"{path}: cannot read device key: {exc.strerror or exc}") from None
        if data is None:
            raise FileNotFoundError(f"{root.kind} key root holds no device master")
        if len(data) != 32:
            raise KeyError_(f"{path}: device key must be 32 bytes, found {len(data)}")
        return cls(data)

    @classmethod
    def create(cls, keys_dir: Path) -> DeviceSecrets:
        """Write a new random device key (first boot only: the caller checks)."""
        try:
            open_root(keys_dir).write_master(os.urandom(32))
        except KeyRootError as exc:
            raise KeyError_(str(exc)) from None
        return cls.load(keys_dir)

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> DeviceSecrets:
        """The key, created if there is none (``doorpi keys init`` before first run;
        Storage.open refuses a missing key once the database holds data)."""
        try:
            return cls.load(keys_dir)
        except FileNotFoundError:
            return cls.create(keys_dir)
