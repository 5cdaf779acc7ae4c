"""Template on card (law notes D18): the template lives only on the resident's
card, sealed for the site; entry is card tap + face 1:1. End to end over a
real pcscd with the vpcd virtual card."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from privacy_support import enrol, found, near, unit_vector

from doorpi.core.events import CardPresented, CardReadFailed
from doorpi.privacy.enrolment import EnrolmentError
from doorpi.privacy.oncard import (
    BLOB_BYTES,
    OnCardError,
    OnCardTemplateProtocol,
    SiteCardKeys,
    TemplateCard,
    TemplateCardApplet,
    pcsc_card,
    seal,
    unseal,
)
from doorpi.store.credentials import card_hash
from pcsc_fixtures import READER_0, EventRecorder, start_reader

ALICE_UID = bytes.fromhex("04a1b2c3d4e5f6")
OTHER_UID = bytes.fromhex("04999999999999")


def direct(applet: TemplateCardApplet):
    """A transmit wired straight to the applet (no PC/SC) for the unit tests."""

    def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
        r = applet(bytes(apdu))
        return list(r[:-2]), r[-2], r[-1]

    return transmit


@pytest.fixture
def card_mode(privacy, storage, alice, clock):
    privacy.settings = replace(privacy.settings, template_storage="card")
    storage.residents.add_card(alice, card_hash(storage.secrets, ALICE_UID), clock())
    ticket = privacy.start_enrolment(alice, "admin_present", by="admin:test")
    privacy.consent(ticket, confirmed_by="admin:test")
    return privacy


def test_seal_binds_to_the_card_and_the_site():
    keys = SiteCardKeys(b"\x11" * 32)
    e = unit_vector(1)
    blob = seal(keys, ALICE_UID, e, consent_id=7, expires=2e9)
    assert len(blob) == BLOB_BYTES and e.tobytes() not in blob
    t = unseal(keys, ALICE_UID, blob, now=1e9)
    assert t.consent_id == 7 and float(t.template @ keys.transform.apply(e)) > 0.999
    with pytest.raises(OnCardError) as exc:
        unseal(keys, OTHER_UID, blob, now=1e9)
    assert exc.value.reason == "wrong_card"
    with pytest.raises(OnCardError) as exc:
        unseal(SiteCardKeys(b"\x22" * 32), ALICE_UID, blob, now=1e9)
    assert exc.value.reason == "other_site"
    for i in (20, 100, BLOB_BYTES - 1):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(OnCardError) as exc:
            unseal(keys, ALICE_UID, bytes(bad), now=1e9)
        assert exc.value.reason == "bad_signature"
    with pytest.raises(OnCardError) as exc:
        unseal(keys, ALICE_UID, blob, now=2e9 + 1)
    assert exc.value.reason == "expired"


def test_applet_speaks_iso7816_files():
    applet = TemplateCardApplet(ALICE_UID)
    card = TemplateCard(direct(applet))
    assert card.uid() == ALICE_UID
    assert card.read() is None
    card.write(b"x" * 700)  # needs 4 UPDATE BINARY chunks
    assert card.read() == b"x" * 700
    card.erase()
    assert card.read() is None and applet.memory == bytearray(len(applet.memory))
    # Without SELECT the file is not reachable.
    fresh = TemplateCardApplet(ALICE_UID)
    assert fresh(bytes([0x00, 0xB0, 0, 0, 2])) == b"\x69\x86"


def test_card_mode_refuses_to_store_on_the_device(card_mode, alice):
    with pytest.raises(EnrolmentError, match="cards"):
        card_mode.enrol(alice, unit_vector(2))
    assert card_mode.vault.count() == 0


def test_card_template_for_someone_elses_card_is_refused(card_mode, alice):
    applet = TemplateCardApplet(OTHER_UID)
    with pytest.raises(EnrolmentError, match="does not belong"):
        card_mode.enrol_on_card(alice, unit_vector(3), direct(applet))
    assert applet.memory == bytearray(len(applet.memory))


def test_withdrawal_stops_card_matching_even_while_the_card_is_carried(card_mode, alice):
    applet = TemplateCardApplet(ALICE_UID)
    e = unit_vector(4)
    card_mode.enrol_on_card(alice, e, direct(applet))
    blob = TemplateCard(direct(applet)).read()
    assert card_mode.verify_card_face(ALICE_UID, blob, near(e, 0.05, 1), 0.45) == (alice, "ok")
    card_mode.withdraw(alice, by="admin:li", channel="admin")
    assert card_mode.verify_card_face(ALICE_UID, blob, e, 0.45) == (None, "no_consent")


def test_a_copied_card_blob_does_not_open_for_another_card(card_mode, storage, alice, clock):
    bob = storage.residents.add("Bob", clock(), keypad_id="202").id
    storage.residents.add_card(bob, card_hash(storage.secrets, OTHER_UID), clock())
    applet = TemplateCardApplet(ALICE_UID)
    e = unit_vector(5)
    card_mode.enrol_on_card(alice, e, direct(applet))
    blob = TemplateCard(direct(applet)).read()
    # Bob copies Alice's blob to his own card and shows Alice's photo.
    assert card_mode.verify_card_face(OTHER_UID, blob, e, 0.45) == (None, "wrong_card")
    rejected = [r for r in storage.audit.records() if r.kind == "face_card_rejected"]
    assert rejected[-1].data == {"resident_id": bob, "reason": "wrong_card"}


def test_end_to_end_over_pcsc_card_tap_plus_face(card_mode, storage, alice, data_dir, pcsc, vcard):
    applet = TemplateCardApplet(ALICE_UID)  # one physical card, tapped twice
    e = unit_vector(6)
    # 1. Enrolment desk: the card lies on the reader, the template is written over PC/SC.
    card = vcard(ALICE_UID, handler=applet)
    card.insert()
    time.sleep(1.0)  # lying on the desk reader: pcscd has powered it (polls every 0.4 s)
    with pcsc_card(READER_0) as transmit:
        card_mode.enrol_on_card(alice, e, transmit)
    card.remove()
    writes = [a for _, a, _ in card.log.apdus if a[1] == 0xD6]
    assert len(writes) >= 4  # chunked UPDATE BINARY
    assert any(applet.memory)
    # 2. The device keeps no template: none in the vault, no bytes on disk.
    assert card_mode.vault.count() == 0
    storage.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    transform = SiteCardKeys.from_secrets(storage.secrets).transform
    assert (
        found(data_dir, [e.tobytes(), transform.apply(e).tobytes(), bytes(applet.memory[2:200])])
        == []
    )
    # 3. At the gate: the real PC/SC reader adapter reads UID + template on the tap.
    from doorpi.hardware.reader import PcscReader

    protocol = OnCardTemplateProtocol()
    events = EventRecorder()
    reader = PcscReader(READER_0, protocol, poll_seconds=0.5, backoff_max=1.0)
    start_reader(reader, events)  # the desk card has left the reader; reader ready
    try:
        vcard(ALICE_UID, handler=applet).tap(1.2)
        _, ev = events.wait_for(lambda e: isinstance(e, CardPresented | CardReadFailed), timeout=8)
    finally:
        reader.stop()
    assert isinstance(ev, CardPresented) and ev.card_id == ALICE_UID
    assert ev.method == "uid+face_template"
    blob = protocol.take(ALICE_UID)
    assert blob is not None and protocol.take(ALICE_UID) is None  # kept in memory once
    # 4. 1:1 face check against the card's template.
    assert card_mode.verify_card_face(ALICE_UID, blob, near(e, 0.05, 2), 0.45) == (alice, "ok")
    assert card_mode.verify_card_face(ALICE_UID, blob, unit_vector(99), 0.45) == (None, "no_match")
    kinds = [r.kind for r in storage.audit.records()]
    assert "face_card_written" in kinds and "face_template_stored" not in kinds


def test_erase_at_the_desk_wipes_the_card(card_mode, alice, pcsc, vcard):
    applet = TemplateCardApplet(ALICE_UID)
    card_mode.enrol_on_card(alice, unit_vector(7), direct(applet))
    time.sleep(1.0)  # an earlier card has left the reader
    card = vcard(ALICE_UID, handler=applet)
    card.insert()
    time.sleep(1.0)
    with pcsc_card(READER_0) as transmit:
        TemplateCard(transmit).erase()
        assert TemplateCard(transmit).read() is None
    card.remove()
    assert not any(applet.memory)


def test_device_mode_enrolment_is_unaffected(privacy, alice):
    enrol(privacy, alice, unit_vector(8))
    assert privacy.vault.count() == 1
    assert np.isfinite(privacy.vault.verify(privacy.storage.residents.get(alice).pseudonym,
                                            unit_vector(8)))  # fmt: skip
