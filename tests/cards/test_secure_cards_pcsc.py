"""Secure cards end to end: real pcscd + vpcd, the EV2 card emulator, the real PcscReader.

Each pytest session has its own private pcscd (tests/pcsc_fixtures.py). The
reader fixture starts the reader with `start_reader`: an empty field, then the
reader's "reader ready", which it sends only after its first status query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from doorpi.cards.keys import GateCardKeys, SiteCardKeys
from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow
from doorpi.core.events import CardPresented, CardReadFailed
from doorpi.hardware.reader import PcscReader
from doorpi.sim.ev2_card import Ev2CardApp
from pcsc_fixtures import READER_0, EventRecorder, start_reader

SITE = SiteCardKeys(bytes.fromhex("00112233445566778899AABBCCDDEEFF"))
OTHER = SiteCardKeys(bytes(16))
ALICE = bytes.fromhex("04112233445566")
DESFIRE_ATR = bytes.fromhex("3B8180018080")  # DESFire EV2 via a PC/SC reader (ISO 14443-4)


@pytest.fixture
def secure_reader(pcsc, pcsc_events: EventRecorder) -> Iterator[PcscReader]:
    keys = GateCardKeys.for_cards(SITE, [ALICE])
    reader = PcscReader(
        READER_0, CardPolicyProtocol(keys, LegacyWindow()), poll_seconds=0.5, backoff_max=1.0
    )
    start_reader(reader, pcsc_events)
    try:
        yield reader
    finally:
        reader.stop()


def outcome(events: EventRecorder, since: int) -> CardPresented | CardReadFailed:
    _, ev = events.wait_for(lambda e: isinstance(e, CardPresented | CardReadFailed), 6, since)
    return ev  # type: ignore[return-value]


def test_right_key_gives_the_real_uid_behind_a_random_id(secure_reader, pcsc_events, vcard):
    app = Ev2CardApp.issued(SITE, ALICE, random_uid=True)
    card = vcard(ALICE, atr=DESFIRE_ATR, handler=app)
    mark = pcsc_events.mark()
    log = card.tap(1.2)
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardPresented), ev
    assert ev.card_id == ALICE and ev.method == "desfire_ev2"
    ins = [apdu[1] for _, apdu, _ in log.apdus]
    assert ins == [0x5A, 0x71, 0xAF, 0x51, 0x71, 0xAF]
    # the real UID travelled only encrypted
    assert not any(ALICE in resp for _, _, resp in log.apdus)


def test_wrong_key_denied(secure_reader, pcsc_events, vcard):
    card = vcard(ALICE, atr=DESFIRE_ATR, handler=Ev2CardApp.issued(OTHER, ALICE))
    mark = pcsc_events.mark()
    card.tap(1.2)
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardReadFailed) and "refused the key" in ev.reason


def test_replayed_transcript_denied(secure_reader, pcsc_events, vcard):
    genuine = vcard(ALICE, atr=DESFIRE_ATR, handler=Ev2CardApp.issued(SITE, ALICE))
    mark = pcsc_events.mark()
    log = genuine.tap(1.2)
    assert isinstance(outcome(pcsc_events, mark), CardPresented)
    recorded = {}
    for _, apdu, resp in log.apdus:
        recorded.setdefault(apdu[:2], []).append(resp)

    def replay(apdu: bytes) -> bytes:
        answers = recorded.get(apdu[:2])
        return answers.pop(0) if answers else b"\x91\x1c"

    time.sleep(0.5)
    mark = pcsc_events.mark()
    vcard(ALICE, atr=DESFIRE_ATR, handler=replay).tap(1.2)
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardReadFailed) and "did not prove" in ev.reason, ev


def test_cloned_uid_without_keys_denied(secure_reader, pcsc_events, vcard):
    mark = pcsc_events.mark()
    vcard(ALICE).tap(1.2)  # a magic card answering only Alice's UID
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardReadFailed) and "not a secure card" in ev.reason
    assert not pcsc_events.of(CardPresented)


def test_card_pulled_mid_authentication_then_reader_keeps_working(
    secure_reader, pcsc_events, vcard
):
    app = Ev2CardApp.issued(SITE, ALICE)
    holder: dict = {}

    def pull_during_part2(apdu: bytes) -> bytes:
        if apdu[1] == 0xAF:
            holder["card"].lift_now()  # gone before the answer
        return app(apdu)

    card = vcard(ALICE, atr=DESFIRE_ATR, handler=pull_during_part2)
    holder["card"] = card
    mark = pcsc_events.mark()
    card.tap(1.2)
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardReadFailed), ev
    assert "\n" not in ev.reason
    time.sleep(0.5)
    mark = pcsc_events.mark()
    vcard(ALICE, atr=DESFIRE_ATR, handler=Ev2CardApp.issued(SITE, ALICE)).tap(1.2)
    ok = outcome(pcsc_events, mark)
    assert isinstance(ok, CardPresented) and ok.card_id == ALICE


def test_ntag424_dna_right_key_granted_factory_tag_refused(secure_reader, pcsc_events, vcard):
    tag = Ev2CardApp.issued(SITE, ALICE, ntag424=True)
    mark = pcsc_events.mark()
    log = vcard(ALICE, atr=DESFIRE_ATR, handler=tag).tap(1.2)
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardPresented), ev
    assert ev.card_id == ALICE and ev.method == "ntag424"
    assert [apdu[:2] for _, apdu, _ in log.apdus][:2] == [b"\x90\x5a", b"\x00\xa4"]
    time.sleep(0.5)
    mark = pcsc_events.mark()
    vcard(ALICE, atr=DESFIRE_ATR, handler=Ev2CardApp.ntag424_factory(ALICE)).tap(1.2)
    ev = outcome(pcsc_events, mark)
    assert isinstance(ev, CardReadFailed) and "NTAG 424 DNA without doorpi's keys" in ev.reason


def test_phones_and_bank_cards_are_refused_and_residents_still_get_in(
    secure_reader, pcsc_events, vcard
):
    """Random IDs and no doorpi application: each a plain refusal, never a lockout;
    the resident's card right after still works (the gate side: test_gate_weak_cards)."""
    import os

    def phone(apdu: bytes) -> bytes:  # an HCE phone / EMV card: a fresh ID, no such file
        return (b"\x08" + os.urandom(3) + b"\x90\x00") if apdu[:2] == b"\xff\xca" else b"\x6a\x82"

    for _ in range(3):
        mark = pcsc_events.mark()
        vcard(bytes(4), atr=DESFIRE_ATR, handler=phone).tap(1.0)
        ev = outcome(pcsc_events, mark)
        assert isinstance(ev, CardReadFailed) and "not a secure card" in ev.reason, ev
        time.sleep(0.5)
    mark = pcsc_events.mark()
    vcard(ALICE, atr=DESFIRE_ATR, handler=Ev2CardApp.issued(SITE, ALICE, random_uid=True)).tap(1.2)
    ok = outcome(pcsc_events, mark)
    assert isinstance(ok, CardPresented) and ok.card_id == ALICE
