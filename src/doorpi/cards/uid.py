"""Credential protocols over a ``transmit`` function, and the UID-only card.

A protocol never touches PC/SC itself: the reader adapter hands it a
``transmit(apdu) -> (data, sw1, sw2)`` bound to the connected card, so the
same code runs against pyscard, the vpcd emulator, the demo's simulated
reader and a plain fake function in unit tests. Secure protocols (MIFARE
DESFire EV2/EV3 AuthenticateEV2First, NTAG 424 DNA) slot in as further
`CardProtocol` implementations next to this module.

A UID is not a secret (magic cards, Proxmark and Flipper clone it); `UidCard`
exists for cheap cards and the demo, and says so in its ``method``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from doorpi.core.uid import blank_uid

#: ``transmit(apdu)`` -> ``(response data, SW1, SW2)``. It raises
#: `CardProtocolError` (or anything else) if the card cannot be reached.
Transmit = Callable[[list[int]], tuple[list[int], int, int]]

#: PC/SC part 3 "Get Data / UID" pseudo-APDU, answered by the reader itself.
GET_UID_APDU: tuple[int, ...] = (0xFF, 0xCA, 0x00, 0x00, 0x00)

#: ISO/IEC 14443-3 UID lengths: single, double, triple size.
VALID_UID_LENGTHS = (4, 7, 10)


class CardProtocolError(Exception):
    """The card answered, but not the way the protocol requires.

    ``str(exc)`` is a one-line reason suitable for `CardReadFailed.reason`
    and the audit log (never contains key material).
    """

    def __init__(self, reason: str) -> None:
        reason = " ".join(str(reason).split())  # force one line
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class CardProtocol(Protocol):
    """How a card proves who it is.

    ``method`` is the short, stable name that ends up in
    `CardPresented.method` ("uid", later "desfire_ev2", "ntag424").
    ``identify`` returns the identity bytes the store looks up (a UID, or an
    authenticated card number) or raises `CardProtocolError`.
    """

    method: str

    def identify(self, transmit: Transmit) -> bytes: ...


def format_sw(sw1: int, sw2: int) -> str:
    return f"{sw1 & 0xFF:02X}{sw2 & 0xFF:02X}"


class UidCard:
    """Read the anti-collision UID with ``FF CA 00 00 00``.

    Accepts only status 90 00 with a 4, 7 or 10-byte UID.
    """

    method = "uid"

    def identify(self, transmit: Transmit) -> bytes:
        data, sw1, sw2 = transmit(list(GET_UID_APDU))
        if (sw1, sw2) != (0x90, 0x00):
            raise CardProtocolError(f"get UID failed: status {format_sw(sw1, sw2)}")
        if len(data) not in VALID_UID_LENGTHS:
            raise CardProtocolError(f"bad UID length {len(data)} (expected 4, 7 or 10 bytes)")
        try:
            uid = bytes(data)
        except (TypeError, ValueError) as exc:
            raise CardProtocolError(f"malformed UID bytes: {exc}") from exc
        blank = blank_uid(uid)  # a read of nothing, not a card (doorpi.core.uid)
        if blank:
            raise CardProtocolError(f"{blank} UID")
        return uid


__all__ = [
    "GET_UID_APDU",
    "VALID_UID_LENGTHS",
    "CardProtocol",
    "CardProtocolError",
    "Transmit",
    "UidCard",
    "format_sw",
]
