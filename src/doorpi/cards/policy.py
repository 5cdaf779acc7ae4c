"""Which cards a gate accepts: secure cards, and UID-only cards only if the admin says so.

Secure cards (DESFire EV2/EV3, NTAG 424 DNA with doorpi's application) are
always accepted. UID-only cards are accepted only with ``reader.legacy_uid =
true``, and then only until ``reader.legacy_uid_until`` (an ISO date, the end
of the changeover window; empty = no end). Their presentations carry
``method = "uid"``, which the gate flags ``weak_card`` in every audit record
they produce. A UID-only card showing the UID of an issued secure card is a
clone and is refused even during the changeover.

`legacy_allowed` is pure (time passed in); `CardPolicyProtocol` is the
`CardProtocol` the reader runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from doorpi.cards.ev2 import (
    KEY_UID_READ,
    CardKeySource,
    KeyRefused,
    SecureCard,
    select_application,
    select_ntag424,
)
from doorpi.cards.keys import GateKeysFile, load_gate_keys
from doorpi.cards.uid import CardProtocolError, Transmit, UidCard

WEAK_METHODS = frozenset({"uid", "uid+face_template"})
SECURE_METHODS = frozenset({"desfire_ev2", "ntag424"})


@dataclass(frozen=True)
class LegacyWindow:
    """``enabled``: legacy_uid; ``until``: first day UID-only cards are refused (UTC), or None."""

    enabled: bool = False
    until: date | None = None


def parse_until(text: str) -> date | None:
    """``""`` -> None; ``"2027-01-31"`` -> that date; else ``ValueError`` naming the value."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"reader.legacy_uid_until = {text!r}: expected a date like 2027-01-31"
        ) from None


def legacy_allowed(window: LegacyWindow, now_epoch: float) -> bool:
    """Are UID-only cards accepted at ``now_epoch`` (seconds, UTC)?"""
    if not window.enabled:
        return False
    if window.until is None:
        return True
    return datetime.fromtimestamp(now_epoch, UTC).date() < window.until


def card_status(
    reader: object, now_epoch: float, warnings: list[str], data_dir: Path | None = None
) -> dict[str, str]:
    """``doorpi status`` lines for the card policy; appends a warning while UID-only
    cards (weak, cloneable) are accepted, and (with ``data_dir``) one if the gate's
    ``card-keys.json`` is unreadable or malformed. ``reader`` is a `ReaderConfig`."""
    info = {}
    if data_dir is not None:
        try:
            keys = load_gate_keys(data_dir)
        except ValueError as exc:
            info["secure_card_keys"] = "fault"
            warnings.append(f"{exc}: import the last bundle again (a running gate keeps "
                            "the keys it loaded before)")  # fmt: skip
        else:
            n = len(keys.entry_keys) if keys is not None else 0
            plural = "" if n == 1 else "s"
            info["secure_card_keys"] = f"{n} card{plural}" if keys is not None else "none synced"
    enabled = bool(getattr(reader, "legacy_uid", False))
    until_text = str(getattr(reader, "legacy_uid_until", ""))
    window = LegacyWindow(enabled, parse_until(until_text))
    if not legacy_allowed(window, now_epoch):
        return {"cards_accepted": "secure cards only", **info}
    end = f" until {until_text}" if until_text else ""
    warnings.append(
        f"UID-only cards accepted{end} (reader.legacy_uid): WEAK, a UID can be cloned; "
        "issue secure cards with doorpi admin card issue"
    )
    return {"cards_accepted": f"secure cards and UID-only cards (weak){end}", **info}


class CardPolicyProtocol:
    """Secure card first; a card without doorpi's application falls back to its UID
    only while `legacy_allowed`. ``method`` of the last card is in `method`.

    ``keys`` is fixed key material, or a `GateKeysFile` (the running gate's
    ``card-keys.json``), asked for its current keys at every tap so a newly
    imported bundle's cards work without a restart.
    """

    def __init__(
        self,
        keys: CardKeySource | GateKeysFile | None,
        window: LegacyWindow,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.source = keys
        self.window = window
        self.now = now
        self.legacy = UidCard()
        self.method = "desfire_ev2"
        self._secure: SecureCard | None = None

    @property
    def keys(self) -> CardKeySource | None:
        """The keys in force now (a `GateKeysFile` is re-read if it changed)."""
        src = self.source
        return src.current() if isinstance(src, GateKeysFile) else src

    def identify(self, transmit: Transmit) -> bytes:
        """The card's UID: proven by AES authentication for a secure card, else (only
        while `legacy_allowed`) the UID it presents. `CardProtocolError` otherwise."""
        keys = self.keys
        kind = _secure_kind(transmit)
        if kind is not None:
            if keys is None:
                raise CardProtocolError("secure card but no card keys on this gate (sync them)")
            if self._secure is None or self._secure.keys is not keys:
                self._secure = SecureCard(keys)
            try:
                uid = self._secure.authenticate_selected(transmit)
            except KeyRefused as exc:
                # An NTAG 424 always has its application: one without doorpi's keys
                # is someone else's tag, a UID-only card as far as doorpi knows.
                if kind != "ntag424" or exc.key_no != KEY_UID_READ:
                    raise
                if not legacy_allowed(self.window, self.now()):
                    raise CardProtocolError(
                        "NTAG 424 DNA without doorpi's keys (UID-only cards are off: "
                        "reader.legacy_uid)"
                    ) from None
            else:
                self.method = kind
                return uid
        elif not legacy_allowed(self.window, self.now()):
            raise CardProtocolError("not a secure card (UID-only cards are off: reader.legacy_uid)")
        uid = self.legacy.identify(transmit)
        if keys is not None and keys.entry_key(uid) is not None:
            raise CardProtocolError("UID of a secure card on a card without its keys (a clone?)")
        self.method = UidCard.method
        return uid


def _secure_kind(transmit: Transmit) -> str | None:
    """Select doorpi's DESFire application or NTAG 424 DNA's; which one, or None."""
    for kind, select in (("desfire_ev2", select_application), ("ntag424", select_ntag424)):
        try:
            select(transmit)
        except CardProtocolError:
            continue
        return kind
    return None


__all__ = [
    "SECURE_METHODS",
    "WEAK_METHODS",
    "CardPolicyProtocol",
    "LegacyWindow",
    "card_status",
    "legacy_allowed",
    "parse_until",
]
