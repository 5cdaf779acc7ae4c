"""SecureCard against the card emulator, without PC/SC (the protocol logic)."""

from __future__ import annotations

import pytest

from doorpi.cards.ev2 import DOORPI_AID, SecureCard, authenticate_ev2_first, get_card_uid
from doorpi.cards.keys import GateCardKeys, SiteCardKeys
from doorpi.cards.uid import CardProtocolError, UidCard
from doorpi.sim.ev2_card import Ev2CardApp
from doorpi.sim.vpcd_card import uid_handler

SITE = SiteCardKeys(bytes(range(16)))
OTHER_SITE = SiteCardKeys(bytes(range(1, 17)))
UID = bytes.fromhex("04112233445566")


def transmit_to(handler):
    log: list[tuple[bytes, bytes]] = []

    def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
        resp = handler(bytes(apdu))
        log.append((bytes(apdu), resp))
        return list(resp[:-2]), resp[-2], resp[-1]

    transmit.log = log  # type: ignore[attr-defined]
    return transmit


def test_right_keys_give_the_real_uid() -> None:
    card = Ev2CardApp.issued(SITE, UID)
    assert SecureCard(SITE).identify(transmit_to(card)) == UID


def test_gate_keys_without_master() -> None:
    card = Ev2CardApp.issued(SITE, UID)
    gate = GateCardKeys.for_cards(SITE, [UID])
    assert SecureCard(gate).identify(transmit_to(card)) == UID
    unknown = GateCardKeys.for_cards(SITE, [bytes.fromhex("04000000000001")])
    with pytest.raises(CardProtocolError, match="no entry key"):
        SecureCard(unknown).identify(transmit_to(Ev2CardApp.issued(SITE, UID)))


def test_random_uid_card_shows_real_uid_only_after_auth() -> None:
    card = Ev2CardApp.issued(SITE, UID, random_uid=True)
    shown = bytes(UidCard().identify(transmit_to(card)))
    assert shown != UID and shown[0] == 0x08
    card.power_cycle()
    assert bytes(UidCard().identify(transmit_to(card))) != shown
    assert SecureCard(SITE).identify(transmit_to(card)) == UID


def test_wrong_site_key_refused() -> None:
    card = Ev2CardApp.issued(OTHER_SITE, UID)
    with pytest.raises(CardProtocolError, match="refused the key"):
        SecureCard(SITE).identify(transmit_to(card))


def test_card_with_right_read_key_but_wrong_entry_key_refused() -> None:
    """A card that claims Alice's UID under the site read key, but lacks her entry key."""
    card = Ev2CardApp.issued(SITE, UID)
    card.apps[DOORPI_AID][2] = SITE.entry_key(bytes.fromhex("04999999999999")) or b""
    with pytest.raises(CardProtocolError, match="key 2"):
        SecureCard(SITE).identify(transmit_to(card))


def test_cloned_uid_without_keys_refused() -> None:
    with pytest.raises(CardProtocolError, match="no doorpi application"):
        SecureCard(SITE).identify(transmit_to(uid_handler(UID)))


def test_replayed_transcript_refused() -> None:
    card = Ev2CardApp.issued(SITE, UID)
    t = transmit_to(card)
    SecureCard(SITE).identify(t)
    answers = [resp for _, resp in t.log]

    def replay(apdu: bytes) -> bytes:
        return answers.pop(0)

    with pytest.raises(CardProtocolError, match="did not prove"):
        SecureCard(SITE).identify(transmit_to(replay))


def test_tampered_uid_answer_refused() -> None:
    card = Ev2CardApp.issued(SITE, UID)
    t = transmit_to(card)
    from doorpi.cards.ev2 import KEY_UID_READ, select_application

    select_application(t)
    s = authenticate_ev2_first(t, KEY_UID_READ, SITE.uid_read_key())

    def flip(apdu: list[int]) -> tuple[list[int], int, int]:
        data, sw1, sw2 = t(apdu)
        data[0] ^= 1
        return data, sw1, sw2

    with pytest.raises(CardProtocolError, match="MAC does not match"):
        get_card_uid(flip, s)


def test_card_mac_checks_commands() -> None:
    card = Ev2CardApp.issued(SITE, UID)
    t = transmit_to(card)
    from doorpi.cards.ev2 import KEY_UID_READ, select_application

    select_application(t)
    s = authenticate_ev2_first(t, KEY_UID_READ, SITE.uid_read_key())
    s.mac_key = bytes(16)  # a reader without the session key
    with pytest.raises(CardProtocolError, match="91AE"):
        get_card_uid(t, s)


def test_derivation_labels_distinct() -> None:
    keys = {SITE.app_master_key(UID), SITE.uid_read_key(), SITE.entry_key(UID)}
    assert len(keys) == 3
    assert SITE.entry_key(UID) != SITE.entry_key(bytes.fromhex("04112233445567"))
    assert "00010203" not in repr(SITE)
