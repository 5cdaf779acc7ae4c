"""Issuing a blank card, against the card emulator."""

from __future__ import annotations

import pytest

from doorpi.cards.ev2 import DOORPI_AID, SecureCard
from doorpi.cards.issue import issue_card
from doorpi.cards.keys import GateCardKeys, SiteCardKeys
from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow
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


def test_issue_a_factory_ntag424_then_the_gate_policy_reads_it_as_ntag424() -> None:
    """NTAG 424 DNA: keys 1, 2, 3, 4 changed under key 0, then key 0; no zero key left."""
    tag = Ev2CardApp.ntag424_factory(UID)
    assert issue_card(transmit_to(tag), SITE) == UID
    keys = tag.apps[DOORPI_AID]
    assert keys == [
        SITE.app_master_key(UID),
        SITE.uid_read_key(),
        SITE.entry_key(UID),
        SITE.ntag_spare_key(UID, 3),
        SITE.ntag_spare_key(UID, 4),
    ]
    assert bytes(16) not in keys and len(set(keys)) == 5
    assert tag.apps.keys() == {DOORPI_AID}  # no DESFire application was made
    tag.power_cycle()
    policy = CardPolicyProtocol(GateCardKeys.for_cards(SITE, [UID]), LegacyWindow())
    assert policy.identify(transmit_to(tag)) == UID and policy.method == "ntag424"
    # a gate of another site (other keys) refuses it
    tag.power_cycle()
    other = CardPolicyProtocol(GateCardKeys.for_cards(SiteCardKeys(bytes(16)), [UID]),
                               LegacyWindow())  # fmt: skip
    with pytest.raises(CardProtocolError):
        other.identify(transmit_to(tag))


def test_issue_refuses_an_ntag424_already_issued_and_changes_nothing() -> None:
    tag = Ev2CardApp.issued(SITE, UID, ntag424=True)
    before = list(tag.apps[DOORPI_AID])
    with pytest.raises(CardProtocolError, match=r"not a blank NTAG 424 DNA \(key 0\)"):
        issue_card(transmit_to(tag), SITE)
    assert tag.apps[DOORPI_AID] == before


def test_issue_refuses_a_card_that_is_neither() -> None:
    def plain_uid_card(apdu: bytes) -> bytes:
        return UID + b"\x90\x00" if apdu[:2] == b"\xff\xca" else b"\x6e\x00"

    with pytest.raises(CardProtocolError, match="not a DESFire EV2/EV3 or NTAG 424 DNA"):
        issue_card(transmit_to(plain_uid_card), SITE)


def test_ntag_spare_keys_are_distinct_per_key_and_card() -> None:
    other = bytes.fromhex("04AABBCCDDEE00")
    k = {SITE.ntag_spare_key(u, n) for u in (UID, other) for n in (3, 4)}
    assert len(k) == 4 and SITE.entry_key(UID) not in k
    with pytest.raises(ValueError, match="3 or 4"):
        SITE.ntag_spare_key(UID, 2)
