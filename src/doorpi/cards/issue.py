"""Issuing: personalise a blank DESFire EV2/EV3 card or NTAG 424 DNA at the admin's laptop.

`issue_card` runs over a ``transmit`` function (pyscard on the laptop's USB
reader, or the emulator in tests). On a card with the factory PICC master key
(all zero, or ``picc_key``) it: reads the real UID, creates doorpi's
application with 3 AES keys, sets keys 1 and 2 (UID-read, entry) and then
key 0 (application master) to their AN10922 diversifications, and finally
replaces the PICC master key, so no default key is left on the card. It
returns the real UID for the roster. The site master key stays on the laptop;
gates get only the derived keys (`doorpi.cards.keys.GateCardKeys`).

A card that has no DESFire card level (the native SelectApplication is an
illegal command) is tried as an NTAG 424 DNA (NXP NT4H2421Gx datasheet,
ChangeKey, command C4h; NXP AN12196's ChangeKey examples): its one application,
selected by ISO DF name, comes with five all-zero AES keys. `issue_ntag424`
authenticates with key 0 (the application master key), reads the real UID,
sets keys 1 and 2 (UID-read, entry; the same keys a DESFire card gets, so the
gate reads both alike), keys 3 and 4 (unused, no default left), then key 0.
ChangeKey is the same command on both: CommMode.Full, new key XOR old key ||
version || CRC32 of the new key for another key, new key || version for
the authenticated key 0 (which ends the session).
"""

from __future__ import annotations

from doorpi.cards import crypto
from doorpi.cards.ev2 import (
    DOORPI_AID,
    INS_CHANGE_KEY,
    INS_CREATE_APPLICATION,
    KEY_APP_MASTER,
    KEY_ENTRY,
    KEY_UID_READ,
    Ev2Session,
    authenticate_ev2_first,
    get_card_uid,
    select_application,
    select_ntag424,
)
from doorpi.cards.keys import SiteCardKeys
from doorpi.cards.uid import CardProtocolError, Transmit

PICC_AID = bytes(3)
KEY_VERSION = 1
#: KeySett1 0x0B: app master key changeable, config changeable, no free
#: create/delete, directory listing needs auth; KeySett2 0x83: AES, 3 keys.
KEY_SETTINGS = bytes([0x0B, 0x83])
#: NTAG 424 DNA has keys 0-4; doorpi uses 0-2 and replaces the factory zeros of these.
NTAG_SPARE_KEYS = (3, 4)


def _change_other_key(t: Transmit, s: Ev2Session, key_no: int, old: bytes, new: bytes) -> None:
    plain = bytes(a ^ b for a, b in zip(new, old, strict=True))
    plain += bytes([KEY_VERSION]) + crypto.crc32_desfire(new)
    s.call(t, INS_CHANGE_KEY, bytes([key_no]), plain, full=True)


def _change_own_key(t: Transmit, s: Ev2Session, new: bytes) -> None:
    s.call(t, INS_CHANGE_KEY, b"\x00", new + bytes([KEY_VERSION]), full=True, answer_mac=False)


def issue_card(transmit: Transmit, site: SiteCardKeys, picc_key: bytes = bytes(16)) -> bytes:
    """Personalise a blank card (DESFire EV2/EV3, else NTAG 424 DNA); return its real UID.
    `CardProtocolError` names the step."""
    try:
        select_application(transmit, PICC_AID)
    except CardProtocolError as exc:
        try:
            select_ntag424(transmit)
        except CardProtocolError:
            raise CardProtocolError(
                f"not a DESFire EV2/EV3 or NTAG 424 DNA: {exc.reason}"
            ) from None
        return issue_ntag424(transmit, site)
    try:
        s = authenticate_ev2_first(transmit, 0, picc_key)
    except CardProtocolError as exc:
        raise CardProtocolError(f"not a blank card (PICC master key): {exc.reason}") from None
    uid = get_card_uid(transmit, s)
    s.call(transmit, INS_CREATE_APPLICATION, DOORPI_AID + KEY_SETTINGS, full=False)
    select_application(transmit, DOORPI_AID)
    zero = bytes(16)
    a = authenticate_ev2_first(transmit, KEY_APP_MASTER, zero)
    _change_other_key(transmit, a, KEY_UID_READ, zero, site.uid_read_key())
    _change_other_key(transmit, a, KEY_ENTRY, zero, site.entry_key(uid) or zero)
    _change_own_key(transmit, a, site.app_master_key(uid))
    select_application(transmit, PICC_AID)
    p = authenticate_ev2_first(transmit, 0, picc_key)
    _change_own_key(transmit, p, site.picc_master_key(uid))
    return uid


def issue_ntag424(transmit: Transmit, site: SiteCardKeys) -> bytes:
    """Personalise a factory NTAG 424 DNA whose application is selected; return its UID."""
    zero = bytes(16)
    try:
        a = authenticate_ev2_first(transmit, KEY_APP_MASTER, zero)
    except CardProtocolError as exc:
        raise CardProtocolError(f"not a blank NTAG 424 DNA (key 0): {exc.reason}") from None
    uid = get_card_uid(transmit, a)
    _change_other_key(transmit, a, KEY_UID_READ, zero, site.uid_read_key())
    _change_other_key(transmit, a, KEY_ENTRY, zero, site.entry_key(uid) or zero)
    for key_no in NTAG_SPARE_KEYS:
        _change_other_key(transmit, a, key_no, zero, site.ntag_spare_key(uid, key_no))
    _change_own_key(transmit, a, site.app_master_key(uid))
    return uid


__all__ = ["issue_card", "issue_ntag424"]
