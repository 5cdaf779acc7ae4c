"""What a card's UID says about itself (ISO/IEC 14443-3), pure.

Sources: ISO/IEC 14443-3:2018, 6.5.4 (UID): a single-size UID (4 bytes) whose
first byte UID0 is ``0x08`` is a random ID, generated anew on every read
(anticollision); UID0 ``0x?F`` marks a fixed non-unique ID, other single-size
values are proprietary fixed numbers. In double (7-byte) and triple (10-byte)
UIDs the first byte is the manufacturer code of ISO/IEC 7816-6, not a random
flag. The field reports behind doorpi's case 04: pretix/pretix#3494 (UIDs
starting 08 are random per read), adonno/tagreader#76 and
adafruit/Adafruit-PN532#91 (a phone gives a different UID on every tap:
Android HCE, Apple/Google Pay, many bank cards).

A UID whose bytes are all ``00`` or all ``FF`` is no card's (`blank_uid`): it
is what a read of nothing gives (a bus or buffer left at zero, or a line
floating high), and ``FF`` as UID0 is no single card either (single size:
``xF`` marks a fixed *non-unique* ID, shared by several cards, NXP AN10927
"MIFARE product and handling of UIDs", 2.1; double and triple size: 0xFF
is no ISO/IEC 7816-6 manufacturer code). Enrolled, such a UID would open
for a reader fault or for every card that shares it.
"""

from __future__ import annotations

#: UID0 of a single-size random ID (ISO/IEC 14443-3, 6.5.4).
RANDOM_UID0 = 0x08
#: A single-size UID has 4 bytes (ISO/IEC 14443-3, 6.5.4).
SINGLE_SIZE = 4


def is_random_uid(uid: bytes) -> bool:
    """Is ``uid`` (the bytes a reader saw, 4, 7 or 10 of them) a random ID that
    changes on every read? True only for the single-size ``08xxxxxx`` form."""
    return len(uid) == SINGLE_SIZE and uid[0] == RANDOM_UID0


def blank_uid(uid: bytes) -> str | None:
    """``"all-zero"`` or ``"all-FF"`` when every byte of ``uid`` is 00 or FF (no
    card's UID, see the module docstring), else None."""
    if not uid or uid.count(uid[0]) != len(uid):
        return None
    return {0x00: "all-zero", 0xFF: "all-FF"}.get(uid[0])


def random_uid_problem(uid: bytes) -> str | None:
    """None, or one line saying why ``uid`` can never be bound to a resident."""
    if not is_random_uid(uid):
        return None
    return (
        f"{uid.hex()} is a random ID (ISO/IEC 14443-3): a phone or bank card, "
        "it changes on every tap; enrol a card"
    )


__all__ = ["RANDOM_UID0", "SINGLE_SIZE", "blank_uid", "is_random_uid", "random_uid_problem"]
