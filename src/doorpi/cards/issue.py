"""Issuing: personalise a blank DESFire EV2/EV3 card at the admin's laptop.

`issue_card` runs over a ``transmit`` function (pyscard on the laptop's USB
reader, or the emulator in tests). On a card with the factory PICC master key
(all zero, or ``picc_key``) it: reads the real UID, creates doorpi's
application with 3 AES keys, sets keys 1 and 2 (UID-read, entry) and then
key 0 (application master) to their AN10922 diversifications, and finally
replaces the PICC master key, so no default key is left on the card. It
returns the real UID for the roster. The site master key stays on the laptop;
gates get only the derived keys (`doorpi.cards.keys.GateCardKeys`).
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
)
from doorpi.cards.keys import SiteCardKeys
from doorpi.cards.uid import CardProtocolError, Transmit

PICC_AID = bytes(3)
KEY_VERSION = 1
#: KeySett1 0x0B: app master key changeable, config changeable, no free
#: create/delete, directory listing needs auth; KeySett2 0x83: AES, 3 keys.
KEY_SETTINGS = bytes([0x0B, 0x83])


def _change_other_key(t: Transmit, s: Ev2Session, key_no: int, old: bytes, new: bytes) -> None:
    plain = bytes(a ^ b for a, b in zip(new, old, strict=True))
    plain += bytes([KEY_VERSION]) + crypto.crc32_desfire(new)
    s.call(t, INS_CHANGE_KEY, bytes([key_no]), plain, full=True)


def _change_own_key(t: Transmit, s: Ev2Session, new: bytes) -> None:
    s.call(t, INS_CHANGE_KEY, b"\x00", new + bytes([KEY_VERSION]), full=True, answer_mac=False)


def issue_card(transmit: Transmit, site: SiteCardKeys, picc_key: bytes = bytes(16)) -> bytes:
    """Personalise a blank card; return its real UID. `CardProtocolError` names the step."""
    select_application(transmit, PICC_AID)
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


__all__ = ["issue_card"]
