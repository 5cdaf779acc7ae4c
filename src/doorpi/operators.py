"""Operators: the people who may run admin actions on the gate, by name and passphrase.

Why (law notes F21): the audit log must say *who* recorded a consent, removed
a resident or re-keyed the vault. ``$LOGNAME`` says whatever the caller sets,
so it proves nothing. The gate has no network, so an operator proves who they
are on the device: ``doorpi operator add NAME`` stores an Argon2id hash of
their passphrase (libsodium's *interactive* cost, 64 MiB and 2 passes: about
0.1-0.5 s on a Pi 4) in ``<data_dir>/operators.json`` (mode 0600, in the
root-only data directory), and every admin action names the operator and
gives the passphrase (see `doorpi.cli.operator`). The audit record then names
``operator:NAME``, never the login name. Bundles from the admin's laptop are
admin actions that arrive signed by the site key (`doorpi.sync`), so
``sync import`` needs no operator.

Once the first operator exists, the database remembers it (state
``operators_enrolled``): a lost or emptied operators file is then a fault to
report, never a silent return to unauthenticated admin.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from nacl import pwhash
from nacl.exceptions import InvalidkeyError

from doorpi.fsutil import write_atomic

FILENAME = "operators.json"
#: Shortest passphrase: NIST SP 800-63B asks at least 8 characters of a memorised
#: secret; two more because it guards every admin action on the device.
MIN_PASSPHRASE = 10
MAX_PASSPHRASE = 1024
_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
OPSLIMIT = pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT = pwhash.argon2id.MEMLIMIT_INTERACTIVE


class OperatorError(ValueError):
    """An operator that may not be added, a failed sign-in, or a damaged file;
    one line naming what and where."""


@dataclass(frozen=True)
class Operator:
    """An operator who gave the right passphrase in this process."""

    name: str

    @property
    def label(self) -> str:
        """How audit records and consent records name them."""
        return f"operator:{self.name}"


def check_name(name: str) -> str:
    """An operator name: 2 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter."""
    n = unicodedata.normalize("NFKC", name).strip()
    if not _NAME.fullmatch(n):
        raise OperatorError(
            f"operator name {name!r}: 2 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter"
        )
    return n


def _passphrase(p: str) -> bytes:
    p = unicodedata.normalize("NFKC", p)
    if not MIN_PASSPHRASE <= len(p) <= MAX_PASSPHRASE:
        raise OperatorError(f"a passphrase has {MIN_PASSPHRASE} to {MAX_PASSPHRASE} characters")
    return p.encode("utf-8")


class OperatorStore:
    """The operators file of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILENAME

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise OperatorError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if self.path.stat().st_mode & 0o077:
            raise OperatorError(
                f"{self.path}: readable by others (mode {self.path.stat().st_mode & 0o777:o}); "
                "chmod 600 it"
            )
        try:
            doc = json.loads(raw.decode("utf-8"))
            ops = doc["operators"]
            if doc.get("version") != 1 or not isinstance(ops, dict):
                raise ValueError
            for name, entry in ops.items():
                check_name(name)
                if not str(entry["hash"]).startswith("$argon2id$"):
                    raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, OperatorError):
            raise OperatorError(f"{self.path}: damaged (restore it from a backup)") from None
        return ops

    def names(self) -> list[str]:
        return sorted(self._load())

    def enrolled(self) -> bool:
        return bool(self._load())

    def _save(self, ops: dict[str, dict[str, object]]) -> None:
        data = json.dumps({"version": 1, "operators": ops}, indent=1, sort_keys=True)
        write_atomic(self.path, data.encode("utf-8") + b"\n", mode=0o600)

    def add(self, name: str, passphrase: str, now: float, by: str) -> Operator:
        """Store a new operator; raises OperatorError for a taken name or a short passphrase."""
        name = check_name(name)
        ops = self._load()
        if name in ops:
            raise OperatorError(f"operator {name} already exists")
        digest = pwhash.argon2id.str(_passphrase(passphrase), opslimit=OPSLIMIT, memlimit=MEMLIMIT)
        ops[name] = {"hash": digest.decode("ascii"), "added": now, "added_by": by}
        self._save(ops)
        return Operator(name)

    def remove(self, name: str) -> None:
        """Remove an operator; the last one cannot go (admin would be unauthenticated)."""
        ops = self._load()
        if name not in ops:
            raise OperatorError(f"no operator {name}")
        if len(ops) == 1:
            raise OperatorError(f"{name} is the last operator: add another one first")
        del ops[name]
        self._save(ops)

    def verify(self, name: str, passphrase: str) -> Operator:
        """The operator if the passphrase is theirs; else OperatorError (the same
        message for an unknown name and a wrong passphrase)."""
        ops = self._load()
        try:
            n = check_name(name)
            entry = ops[n]
            if pwhash.argon2id.verify(str(entry["hash"]).encode("ascii"), _passphrase(passphrase)):
                return Operator(n)
        except (KeyError, OperatorError, InvalidkeyError):
            pass
        raise OperatorError(f"operator {name!r}: unknown operator or wrong passphrase")


__all__ = ["FILENAME", "Operator", "OperatorError", "OperatorStore", "check_name"]
