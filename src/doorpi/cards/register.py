"""The laptop's side of secure cards: the site's card master key and the issued-card register.

Both live in the admin directory (``doorpi admin``), mode 0600, beside the site
signing key:

* ``card-master.key``: the 16-byte site card master key (raw bytes), made
  once, when the first card is issued. Every card key is an AN10922
  diversification of it (`doorpi.cards.keys.SiteCardKeys`). It never leaves
  the laptop: a gate receives only `GateCardKeys` (the UID-read key and the
  entry keys of its residents' issued cards) inside its bundle, which is
  sealed to that gate (`doorpi.sync.bundle`).
* ``secure-cards.json``: ``{"<uid hex>": {"resident": KEY, "issued": EPOCH,
  "label": TEXT}}``, every card `doorpi admin card issue` personalised. Only
  these UIDs get entry keys: a roster card that is not in the register is a
  UID-only card (accepted only while the gate's ``reader.legacy_uid`` says so).

A master key file that is there but wrong, or a register naming cards while
the master key is missing, is a fault reported as one line: never a reason
to make a new master key silently (every issued card would stop working).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorpi.cards.keys import GateCardKeys, SiteCardKeys

MASTER_FILE = "card-master.key"
REGISTER_FILE = "secure-cards.json"


class CardRegisterError(ValueError):
    """The card master key or register is missing or malformed (one line, naming the file)."""


@dataclass
class CardRegister:
    """Issued secure cards of a site: UID hex -> {resident, issued, label}."""

    admin_dir: Path
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, admin_dir: Path) -> CardRegister:
        path = admin_dir / REGISTER_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(admin_dir)
        except (OSError, ValueError) as exc:
            raise CardRegisterError(f"{path}: unreadable: {exc}") from None
        if not isinstance(raw, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("resident"), str) for v in raw.values()
        ):
            raise CardRegisterError(f"{path}: malformed (expected UID -> {{resident, issued}})")
        return cls(admin_dir, {str(k).lower(): dict(v) for k, v in raw.items()})

    def save(self) -> None:
        from doorpi.fsutil import write_atomic

        data = json.dumps(dict(sorted(self.cards.items())), indent=2).encode()
        write_atomic(self.admin_dir / REGISTER_FILE, data, 0o600)

    def record(self, uid: bytes, resident: str, label: str = "", now: float | None = None) -> None:
        self.cards[uid.hex()] = {
            "resident": resident,
            "issued": time.time() if now is None else now,
            "label": label,
        }


def load_master(admin_dir: Path, *, create: bool = False) -> SiteCardKeys | None:
    """The site card master key; None if there is none yet (and ``create`` is False).

    With ``create``, a missing key is made (16 bytes from ``os.urandom``) only
    while the register is empty; raises `CardRegisterError` otherwise or for a
    key file of the wrong size.
    """
    path = admin_dir / MASTER_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        issued = CardRegister.load(admin_dir).cards
        if issued:
            raise CardRegisterError(
                f"{path}: missing, but {len(issued)} secure cards were issued with it "
                "(restore it from the admin backup; a new key would lock those cards out)"
            ) from None
        if not create:
            return None
        from doorpi.fsutil import write_atomic

        raw = os.urandom(16)
        write_atomic(path, raw, 0o600)
    except OSError as exc:
        raise CardRegisterError(f"{path}: unreadable: {exc.strerror}") from None
    if len(raw) != 16:
        raise CardRegisterError(f"{path}: {len(raw)} bytes, a card master key is 16")
    return SiteCardKeys(raw)


def gate_keys(admin_dir: Path, card_uids: list[str]) -> GateCardKeys | None:
    """What one gate needs for these roster card UIDs (hex): the UID-read key and
    the entry keys of those that are issued secure cards. None while the site has
    no card master key (no secure card issued yet)."""
    master = load_master(admin_dir)
    if master is None:
        return None
    issued = CardRegister.load(admin_dir).cards
    entry = {u: master.entry_key(bytes.fromhex(u)) or b"" for u in card_uids if u in issued}
    return GateCardKeys(master.uid_read_key(), entry)


__all__ = [
    "MASTER_FILE",
    "REGISTER_FILE",
    "CardRegister",
    "CardRegisterError",
    "gate_keys",
    "load_master",
]
