"""Issuing a blank card, against the card emulator."""

from __future__ import annotations

import pytest

from doorpi.cards.ev2 import DOORPI_AID, SecureCard
from doorpi.cards.issue import issue_card
from doorpi.cards.keys import GateCardKeys, SiteCardKeys
from doorpi.cards.uid import CardProtocolError
from doorpi.sim.ev2_card import Ev2CardApp

SITE = SiteCardKeys(bytes.fromhex("00112233445566778899AABBCCDDEEFF"))
UID = bytes.fromhex("04AABBCCDDEEFF")


def transmit_to(handler):
    def transmit(apdu):
        resp = handler(bytes(apdu))
        return list(resp[:-2]), resp[-2], resp[-1]

    return transmit


def test_issue_blank_card_then_gate_accepts_it() -> None:
    card = Ev2CardApp.blank(UID, random_uid=True)
    assert issue_card(transmit_to(card), SITE) == UID
    keys = card.apps[DOORPI_AID]
    assert keys == [SITE.app_master_key(UID), SITE.uid_read_key(), SITE.entry_key(UID)]
    assert bytes(16) not in keys and card.picc_key == SITE.picc_master_key(UID)
    card.power_cycle()
    gate = GateCardKeys.for_cards(SITE, [UID])
    assert SecureCard(gate).identify(transmit_to(card)) == UID
    # the issued card is the same as the emulator's ready-made one
    assert Ev2CardApp.issued(SITE, UID).apps == card.apps


def test_issue_refuses_a_card_already_issued() -> None:
    card = Ev2CardApp.issued(SITE, UID)
    with pytest.raises(CardProtocolError, match="not a blank card"):
        issue_card(transmit_to(card), SITE)
