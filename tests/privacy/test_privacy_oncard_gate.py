"""Template on card through the whole gate: a real pcscd, the virtual card with the
template applet, the real PcscReader with OnCardTemplateProtocol, the gate and the
face path with the real models. The device stores no template at any point."""

from __future__ import annotations

import time

import numpy as np
from privacy_support import PIA

from doorpi.facebuild import build_face_path
from doorpi.hardware.camera import Frame, load_rgb
from doorpi.hardware.reader import PcscReader
from doorpi.privacy.oncard import OnCardTemplateProtocol, TemplateCardApplet
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.store import Storage
from pcsc_fixtures import READER_0, EventRecorder, start_reader
from site_support import recorded_site

UID = bytes.fromhex("04a1b2c3d4e5f6")


def direct(applet):
    def transmit(apdu):
        r = applet(bytes(apdu))
        return list(r[:-2]), r[-2], r[-1]

    return transmit


def photo(faces_dir, rel):
    rgb = load_rgb(faces_dir / rel, max_side=640)
    return Frame(rgb, luma=rgb[:, :, 1])


def card_site(tmp_path):
    """A gate in card mode (impact assessment stored), with an event list."""
    data = tmp_path / "data"
    s = Storage.open(data)
    AssessmentRegistry(s.db, s.audit).record(ImpactAssessment(**PIA, author="DPO", created=1.0))
    s.close()
    over = {
        "face": {"enabled": True, "template_storage": "card"},
        "site": {"controller": "Sunny Garden PM Co.", "contact": "+86 10 5555 0100"},
        "door": {"access": ["card+face", "card+pin"]},
    }
    site = recorded_site(data, config=over, settle=False)
    return site, site.events, OnCardTemplateProtocol()


def test_card_tap_then_face_against_the_cards_template(tmp_path, pcsc, vcard, faces_dir):
    site, events, protocol = card_site(tmp_path)
    reader = PcscReader(READER_0, protocol, poll_seconds=0.3, backoff_max=1.0)
    try:
        rid = site.add_resident({"name": "Barack", "cards": [UID.hex()], "pin": "2468"})
        privacy = site.gate.face_privacy
        ticket = privacy.start_enrolment(rid, "admin_present", by="admin:test")
        privacy.consent(ticket, confirmed_by="admin:test")
        applet = TemplateCardApplet(UID)
        pipeline = site.face_engine.inner.pipeline
        res = pipeline.process(photo(faces_dir, "Barack_Obama/1.jpg").rgb)
        privacy.enrol_on_card(rid, res.embedding, direct(applet))
        res.embedding = None
        assert privacy.vault.count() == 0  # the device holds no template

        site.gate.card_templates = protocol  # what `doorpi run` does in card mode
        site.face_path = build_face_path(site.gate)
        start_reader(reader, EventRecorder(), forward=site.gate.submit)
        for attempt, (face, expect) in enumerate(
            [("Colin_Powell/1.jpg", False), ("Barack_Obama/2.jpg", True)]
        ):
            if attempt:
                time.sleep(1.0)  # pcscd (0.4 s polls) has seen the previous card leave
            vcard(UID, handler=applet).tap(1.2)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                site.gate.process_pending()
                if any(e["event"] == "face_requested" for e in events[-6:]):
                    break
                time.sleep(0.05)
            requested = [e for e in events if e["event"] == "face_requested"]
            assert len(requested) == attempt + 1 and requested[-1]["one_to_one"] is True
            site.face([photo(faces_dir, face)] * 4)
            site.advance(6)
            granted = [e for e in events if e["event"] == "access" and e["granted"]]
            if expect:
                assert granted and granted[-1]["factors"] == ["card", "face"]
            else:
                assert not granted
                assert [e["reason"] for e in events if e["event"] == "face_rejected"] == [
                    "no_match"
                ]
        assert privacy.vault.count() == 0
        assert not any(isinstance(e, np.ndarray) for e in events)
    finally:
        reader.stop()
        site.close()


def test_enrolment_at_the_gate_writes_the_template_onto_the_card(tmp_path, pcsc, vcard, faces_dir):
    """Card mode, enrolment started by the resident: #, card, PIN #, 7 #, 1 #, then the
    card is held on the reader while the camera captures; the sealed template is
    written to the card over PC/SC and nothing is stored on the device."""
    site, events, protocol = card_site(tmp_path)
    applet = TemplateCardApplet(UID)
    try:
        site.add_resident({"name": "Barack", "cards": [UID.hex()], "pin": "2468"})
        site.gate.card_templates = protocol
        site.face_path = build_face_path(site.gate)
        site.key("#")  # the face menu's key: the tap that follows is the menu's
        site.card(UID.hex())  # the tap (simulated reader): a plain card so far
        for k in "2468#7#1#":
            site.key(k)
        assert [e["action"] for e in events if e["event"] == "face_menu"][-1] == "capture"
        card = vcard(UID, handler=applet)
        card.insert()  # held on the reader while the camera captures
        time.sleep(1.0)
        try:
            site.face([photo(faces_dir, "Barack_Obama/1.jpg")] * 4)
        finally:
            card.remove()
        assert [e for e in events if e["event"] == "face_enrolled"]
        assert any(applet.memory)
        assert site.gate.face_privacy.vault.count() == 0
        kinds = [r.kind for r in site.storage.audit.records()]
        assert "face_card_written" in kinds and "face_template_stored" not in kinds
    finally:
        site.close()
