"""Face templates between gates, into real vaults: consent travels with the template.

Real keys, real SQLite, the real TemplateVault and FacePrivacy on both sides;
the end-to-end test also uses the real face models on real photos.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from doorpi.hardware.camera import load_rgb
from doorpi.privacy.share import (
    BY_REMOVED,
    BY_SHARE_ENDED,
    BY_SITE_WITHDRAWAL,
    ShareError,
    TemplatePayload,
    parse_payload,
)
from doorpi.store.audit import GENESIS
from doorpi.sync.bundle import FaceEvent, ReportAck
from doorpi.sync.keys import SiteKey
from doorpi.sync.templates import seal_template
from doorpi.vision.models import REPO_BUILD_DIR, SUMS, load_models
from doorpi.vision.pipeline import FacePipeline
from sync.helpers import (
    SHARING_ROSTER,
    T0,
    GateRig,
    TwoGateSite,
    other_gate,
    resident,
    shared_template,
    unit,
    wire_vault,
)

DAY = 86400.0


def consents(rig: GateRig) -> list[tuple]:  # type: ignore[type-arg]
    return rig.storage.db.execute(
        "SELECT origin_gate, origin_consent_id, withdrawn_by, notice_hash FROM face_consents "
        "ORDER BY id"
    ).fetchall()


@pytest.fixture
def gate(data_dir: Path, site: SiteKey) -> GateRig:
    rig = GateRig(data_dir, site)
    rig.privacy = wire_vault(rig)  # type: ignore[attr-defined]
    return rig


def alice_bundle(rig: GateRig, site: SiteKey, seq: int, *templates, **kw):  # type: ignore[no-untyped-def]
    return rig.bundle(seq, [resident("a-1", 1, site, share_with_site_gates=True)],
                      templates=tuple(templates), **kw)  # fmt: skip


def test_received_template_is_stored_with_its_consent_and_matches(
    gate: GateRig, site: SiteKey
) -> None:
    emb = unit(1)
    rep = gate.apply(
        alice_bundle(gate, site, 1, shared_template("a-1", gate.peer, gate.identity, emb))
    )
    assert rep.result == "applied" and rep.changes["templates_stored"] == 1
    alice = gate.storage.residents.by_keypad_id("101")
    privacy = gate.privacy  # type: ignore[attr-defined]
    rec = privacy.consents.live(alice.pseudonym, gate.now)
    assert (rec.origin_gate, rec.origin_consent_id, rec.share_site_gates) == (
        gate.peer.fingerprint, 7, True)  # fmt: skip
    assert (rec.notice_hash, rec.channel, rec.retention_end) == ("ab" * 32, "gate", T0 + 300 * DAY)
    assert privacy.identify(emb, threshold=0.45) == alice.id
    assert privacy.identify(unit(2), threshold=0.45) is None
    got = gate.storage.audit.tail(2)
    assert [a.kind for a in got] == ["sync", "face_template_received"]
    assert got[1].data["from_gate"] == gate.peer.fingerprint[:12]
    assert not any(isinstance(v, list) and len(v) > 100 for v in got[1].data.values())


def test_same_template_again_changes_nothing(gate: GateRig, site: SiteKey) -> None:
    emb = unit(1)
    gate.apply(alice_bundle(gate, site, 1, shared_template("a-1", gate.peer, gate.identity, emb)))
    before = consents(gate)
    rep = gate.apply(
        alice_bundle(gate, site, 2, shared_template("a-1", gate.peer, gate.identity, emb))
    )
    assert rep.changes["templates_stored"] == 0 and rep.changes["templates_skipped"] == 0
    assert consents(gate) == before
    # Re-enrolled at the source under a new consent: the old copy is superseded.
    new = shared_template("a-1", gate.peer, gate.identity, unit(3), id=8, given_at=T0 - 10)
    rep = gate.apply(alice_bundle(gate, site, 3, new))
    assert rep.changes["templates_stored"] == 1
    assert [c[1:3] for c in consents(gate)] == [(7, "superseded"), (8, None)]
    assert gate.privacy.identify(unit(3), 0.45) is not None  # type: ignore[attr-defined]
    assert gate.privacy.identify(unit(1), 0.45) is None  # type: ignore[attr-defined]


def test_consent_given_here_wins_over_a_copy(gate: GateRig, site: SiteKey) -> None:
    gate.apply(alice_bundle(gate, site, 1))
    privacy = gate.privacy  # type: ignore[attr-defined]
    alice = gate.storage.residents.by_keypad_id("101")
    ticket = privacy.start_enrolment(alice.id, "admin_present", by="admin:li")
    privacy.consent(ticket, confirmed_by="admin:li")
    privacy.enrol(alice.id, unit(5))
    rep = gate.apply(
        alice_bundle(gate, site, 2, shared_template("a-1", gate.peer, gate.identity, unit(1)))
    )
    assert rep.result == "applied" and rep.skipped == {"own_consent": 1}
    assert privacy.identify(unit(5), 0.45) == alice.id
    assert [c[0] for c in consents(gate)] == [None]


@pytest.mark.parametrize(
    ("consent", "why"),
    [
        ({"retention_end": T0 - 1, "given_at": T0 - 2 * DAY}, "expired"),
        ({}, "inactive"),
    ],
)
def test_templates_that_cannot_be_used_are_skipped(
    gate: GateRig, site: SiteKey, consent: dict, why: str
) -> None:
    res = resident("a-1", 1, site, share_with_site_gates=True, active=why != "inactive")
    t = shared_template("a-1", gate.peer, gate.identity, unit(1), **consent)
    rep = gate.apply(gate.bundle(1, [res], templates=(t,)))
    assert rep.result == "applied" and rep.skipped == {why: 1}
    assert gate.privacy.vault.count() == 0 and consents(gate) == []  # type: ignore[attr-defined]


def test_gate_that_does_not_allow_sharing_skips(data_dir: Path, site: SiteKey) -> None:
    rig = GateRig(data_dir, site)
    privacy = wire_vault(rig, allow_site_sharing=False)
    rep = rig.apply(
        alice_bundle(rig, site, 1, shared_template("a-1", rig.peer, rig.identity, unit(1)))
    )
    assert rep.result == "applied" and rep.skipped == {"sharing_off": 1}
    assert privacy.vault.count() == 0


def test_payload_without_sharing_consent_refuses_the_bundle(gate: GateRig, site: SiteKey) -> None:
    """The source gate would never export it; if one arrives, something is wrong."""
    t = shared_template("a-1", gate.peer, gate.identity, unit(1), share_site_gates=False)
    rep = gate.apply(alice_bundle(gate, site, 1, t))
    assert rep.code == "vault" and "does not allow the site's other gates" in rep.reason
    assert gate.storage.residents.all() == [] and consents(gate) == []


def test_a_plain_template_without_consent_is_refused(gate: GateRig, site: SiteKey) -> None:
    raw = unit(1).tobytes()  # a bare embedding, as an older or foreign gate might send
    t = replace(shared_template("a-1", gate.peer, gate.identity, unit(1)),
                sealed=seal_template(gate.peer, gate.identity.public, "a-1", raw))  # fmt: skip
    rep = gate.apply(alice_bundle(gate, site, 1, t))
    assert rep.code == "vault"
    assert rep.reason.endswith("not a doorpi template payload (DPT1)")
    assert gate.storage.residents.all() == [] and gate.importer.last_sequence() == 0


def test_sharing_ended_removes_copies_only(gate: GateRig, site: SiteKey) -> None:
    gate.apply(
        alice_bundle(gate, site, 1, shared_template("a-1", gate.peer, gate.identity, unit(1)))
    )
    rep = gate.apply(gate.bundle(2, [resident("a-1", 1, site)], template_tombstones=("a-1",)))
    assert rep.changes["templates_deleted"] == 1
    assert gate.privacy.vault.count() == 0  # type: ignore[attr-defined]
    assert [c[2] for c in consents(gate)] == [BY_SHARE_ENDED]
    kinds = [a.kind for a in gate.storage.audit.tail(2)]
    assert kinds == ["sync", "face_consent_withdrawn"]


def test_withdrawal_at_another_gate_ends_every_earlier_consent(
    gate: GateRig, site: SiteKey
) -> None:
    gate.apply(
        alice_bundle(gate, site, 1, shared_template("a-1", gate.peer, gate.identity, unit(1)))
    )
    gate.now += DAY
    rep = gate.apply(
        alice_bundle(gate, site, 2, face_withdrawals=(FaceEvent("a-1", gate.now - 60),))
    )
    assert rep.changes["face_withdrawn"] == 1 and gate.privacy.vault.count() == 0  # type: ignore[attr-defined]
    assert [c[2] for c in consents(gate)] == [BY_SITE_WITHDRAWAL]
    # A withdrawal travels in every later bundle; a consent given after it stays.
    privacy = gate.privacy  # type: ignore[attr-defined]
    alice = gate.storage.residents.by_keypad_id("101")
    privacy.consent(privacy.start_enrolment(alice.id, "gate", by="resident"), "resident:card+pin")
    privacy.enrol(alice.id, unit(4))
    rep = gate.apply(
        alice_bundle(gate, site, 3, face_withdrawals=(FaceEvent("a-1", gate.now - 60),))
    )
    assert rep.changes["face_withdrawn"] == 0 and privacy.identify(unit(4), 0.45) == alice.id


def test_copy_in_transit_from_before_a_withdrawal_does_not_survive(
    gate: GateRig, site: SiteKey
) -> None:
    gate.now += DAY
    t = shared_template("a-1", gate.peer, gate.identity, unit(1), given_at=T0 - DAY)
    b = alice_bundle(gate, site, 1, t, face_withdrawals=(FaceEvent("a-1", T0),))
    rep = gate.apply(b)
    assert rep.changes["templates_stored"] == 1 and rep.changes["face_withdrawn"] == 1
    assert gate.privacy.vault.count() == 0  # type: ignore[attr-defined]


def test_removed_resident_consents_end(gate: GateRig, site: SiteKey) -> None:
    gate.apply(
        alice_bundle(gate, site, 1, shared_template("a-1", gate.peer, gate.identity, unit(1)))
    )
    rep = gate.apply(gate.bundle(2, [], tombstones=("a-1",)))
    assert rep.changes["removed"] == 1 and [c[2] for c in consents(gate)] == [BY_REMOVED]
    assert gate.privacy.vault.count() == 0  # type: ignore[attr-defined]
    raw = (gate.data_dir / "doorpi.db").read_bytes()
    assert unit(1).tobytes()[:32] not in raw


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-4], "payload is"),
        (lambda b: b"XXXX" + b[4:], "not a doorpi template payload"),
        (lambda b: b[:6] + b"\xff" + b[7:], "consent record is not valid UTF-8 JSON"),
        (lambda b: b[:-512] + np.full(128, np.nan, "<f4").tobytes(), "embedding:"),
        (lambda b: b"DPT1" + (20000).to_bytes(2, "big") + b"[" * 20000, "not valid UTF-8 JSON"),
        (lambda b: b.replace(b'"channel": "gate"', b'"channel": "post"'), "consent.channel"),
        (lambda b: b.replace(b'"minor": false', b'"minor": "no!"'), "consent.minor"),
    ],
)
def test_payload_parser_names_what_is_wrong(mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    from doorpi.privacy.consent import ConsentRecord

    rec = ConsentRecord(3, "", "v2", "cd" * 32, "en", T0, "admin:li", "gate", T0 + DAY, False,
                        None, True, None, None)  # fmt: skip
    good = TemplatePayload(rec, T0 + DAY, unit(9)).to_bytes()
    back = parse_payload(good)
    assert back.consent.id == 3 and np.allclose(back.embedding, unit(9))
    with pytest.raises(ShareError) as info:
        parse_payload(mangle(good))
    assert message in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------ end to end, real faces

ROSTER = (
    SHARING_ROSTER
    + """
[[residents]]
key = "c-3"
name = "Carol"
keypad_id = "103"
share_face_with_site_gates = true
"""
)


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    d = Path(os.environ.get("DOORPI_MODELS_DIR") or REPO_BUILD_DIR)
    if not (d / SUMS).is_file():
        pytest.fail(f"face models not found in {d}: run make models")
    return FacePipeline(load_models(d, num_threads=2))


def face(pipeline: FacePipeline, faces_dir: Path, rel: str) -> np.ndarray:
    res = pipeline.process(load_rgb(faces_dir / rel, max_side=1280))
    assert res.ok, f"{rel}: {res.reason}"
    assert res.embedding is not None
    return res.embedding


def enrol(rig: GateRig, keypad: str, emb: np.ndarray, share: bool) -> int:
    privacy = rig.privacy  # type: ignore[attr-defined]
    r = rig.storage.residents.by_keypad_id(keypad)
    privacy.consent(privacy.start_enrolment(r.id, "admin_present", by="admin:li"),
                    "admin:li", share_site_gates=share)  # fmt: skip
    privacy.enrol(r.id, emb)
    return int(r.id)


def test_face_enrolled_at_one_gate_opens_another_and_withdrawal_reaches_both(
    tmp_path: Path, pipeline: FacePipeline, faces_dir: Path
) -> None:
    site = TwoGateSite(tmp_path, ROSTER)
    home, away, admin, stick = site.home, site.away, site.admin, site.stick
    site.visit(home)
    site.visit(away)
    # At home: Alice consents to the other gates, Bob enrols without sharing (and
    # the roster does not share him), Carol's roster says share but she did not agree.
    alice_emb = face(pipeline, faces_dir, "Ariel_Sharon/1.jpg")
    enrol(home, "101", alice_emb, share=True)
    enrol(home, "102", face(pipeline, faces_dir, "Barack_Obama/1.jpg"), share=True)
    enrol(home, "103", face(pipeline, faces_dir, "Angela_Bassett/1.jpg"), share=False)

    site.visit(home)  # home seals what may leave it
    outbox = sorted(p.name for p in (stick / "doorpi" / "outbox").rglob("*.templates"))
    assert outbox == [f"{home.identity.fingerprint}.templates"]
    left = site.admin.collect_outbox(stick)[away.identity.fingerprint]
    assert [t.resident for t in left] == ["a-1"]
    rep = site.visit(away)  # the admin relays it, unread
    assert rep.changes["templates_stored"] == 1
    for where in [stick, tmp_path / "admin"]:
        for f in where.rglob("*"):
            assert not f.is_file() or alice_emb.tobytes()[:32] not in f.read_bytes()

    away_alice = away.storage.residents.by_keypad_id("101")
    another_photo = face(pipeline, faces_dir, "Ariel_Sharon/2.jpg")
    assert away.privacy.identify(another_photo, 0.45) == away_alice.id  # type: ignore[attr-defined]
    assert away.privacy.identify(face(pipeline, faces_dir, "Angela_Bassett/1.jpg"), 0.45) is None  # type: ignore[attr-defined]
    home_rec = home.privacy.consents.live(
        home.storage.residents.by_keypad_id("101").pseudonym, home.now
    )  # type: ignore[attr-defined]
    away_rec = away.privacy.consents.live(away_alice.pseudonym, away.now)  # type: ignore[attr-defined]
    assert (away_rec.origin_gate, away_rec.origin_consent_id) == (
        home.identity.fingerprint,
        home_rec.id,
    )
    assert (away_rec.notice_hash, away_rec.confirmed_by) == (home_rec.notice_hash, "admin:li")

    # Home exports again on every visit; the away gate sees the same template.
    site.visit(home)
    assert site.visit(away).changes["templates_stored"] == 0

    # Alice withdraws at the away gate; the report tells the admin; home withdraws too.
    away.now = home.now = T0 + DAY
    away.privacy.withdraw(away_alice.id, by="resident", channel="gate")  # type: ignore[attr-defined]
    away_rep = site.visit(away)
    assert [w["resident"] for w in away_rep.face_withdrawals] == ["a-1"]
    assert admin.withdrawals == {"a-1": pytest.approx(T0 + DAY)}
    home_rep = site.visit(home)
    assert home_rep.changes["face_withdrawn"] == 1 and home_rep.face_withdrawals == []
    assert home.privacy.identify(alice_emb, 0.45) is None  # type: ignore[attr-defined]
    assert home.privacy.vault.count() == 2  # type: ignore[attr-defined]  # Bob and Carol stay
    assert not list((stick / "doorpi" / "outbox").rglob("*.templates"))


def test_withdrawals_are_reported_once_and_survive_audit_pruning(
    gate: GateRig, site: SiteKey, tmp_path: Path
) -> None:
    gate.apply(
        alice_bundle(gate, site, 1, shared_template("a-1", gate.peer, gate.identity, unit(1)))
    )
    privacy = gate.privacy  # type: ignore[attr-defined]
    gate.now += 60
    privacy.withdraw(gate.storage.residents.by_keypad_id("101").id, by="resident", channel="gate")
    # The audit log may be pruned before the next stick comes: the consent records stay.
    gate.storage.db.execute("INSERT INTO state(key, value) VALUES ('audit_prune_upto', '999999')")
    gate.storage.db.execute("DELETE FROM audit")
    rep = gate.importer.import_bytes(b"not a bundle")
    assert rep.result == "refused"
    assert rep.face_withdrawals == [{"resident": "a-1", "at": gate.now}]
    gate.importer.write_report(rep, tmp_path / "r.report")
    # A report that left on some stick is not delivered: the next one says it again ...
    again = gate.importer.import_bytes(b"not a bundle").face_withdrawals
    assert again == [{"resident": "a-1", "at": gate.now}]
    # ... until the admin's signed bundle acknowledges it (sequence 0: no audit read).
    ack = ReportAck(0, GENESIS, withdrawals_at=gate.now)
    gate.apply(
        alice_bundle(
            gate,
            site,
            2,
            shared_template("a-1", gate.peer, gate.identity, unit(2), id=9, given_at=gate.now),
            report_ack=ack,
        )
    )
    assert gate.importer.import_bytes(b"not a bundle").face_withdrawals == []
    # Withdrawals the sync made are never reported back (no loop round the site).
    gate.now += 60
    rep = gate.apply(gate.bundle(3, [resident("a-1", 1, site)], template_tombstones=("a-1",)))
    assert rep.changes["templates_deleted"] == 1 and rep.face_withdrawals == []


@pytest.mark.parametrize("newer_first", [True, False])
def test_enrolled_at_two_gates_the_newest_consent_wins_and_stays(
    gate: GateRig, site: SiteKey, newer_first: bool
) -> None:
    third = other_gate("car-park-2")
    peers = (gate.peer.public, third.public)
    older = shared_template("a-1", gate.peer, gate.identity, unit(1), id=3, given_at=T0 - 2 * DAY)
    newer = shared_template("a-1", third, gate.identity, unit(2), id=4, given_at=T0 - DAY)
    both = (newer, older) if newer_first else (older, newer)
    for seq in (1, 2):  # the same pair again: nothing moves
        rep = gate.apply(alice_bundle(gate, site, seq, *both, peers=peers))
        assert rep.result == "applied", rep.reason
    assert rep.changes["templates_stored"] == 0 and rep.skipped == {"older": 1}
    live = [c for c in consents(gate) if c[2] is None]
    assert live == [(third.fingerprint, 4, None, "ab" * 32)]
    assert gate.privacy.identify(unit(2), 0.45) is not None  # type: ignore[attr-defined]


def test_false_match_at_one_gate_stops_face_alone_at_every_gate(tmp_path: Path) -> None:
    site = TwoGateSite(tmp_path, SHARING_ROSTER)
    home, away, admin, visit = site.home, site.away, site.admin, site.visit
    visit(home)
    visit(away)
    e = unit(31)
    alice_home = home.storage.residents.by_keypad_id("101")
    privacy = home.privacy  # type: ignore[attr-defined]
    privacy.consent(privacy.start_enrolment(alice_home.id, "admin_present", by="admin:li"),
                    "admin:li", share_site_gates=True)  # fmt: skip
    privacy.enrol(alice_home.id, e)
    visit(home)
    assert visit(away).changes["templates_stored"] == 1
    alice_away = away.storage.residents.by_keypad_id("101")
    # A stranger got in as Alice at the away gate; the guard reports it there.
    away.now = home.now = T0 + DAY
    assert away.privacy.vault.suspend_hands_free(alice_away.pseudonym, away.now)  # type: ignore[attr-defined]
    assert away.privacy.identify(e, 0.45) is None  # type: ignore[attr-defined]
    rep = visit(away)
    assert rep.face_suspensions == [{"resident": "a-1", "at": away.now}]
    assert admin.suspensions == {"a-1": away.now}
    rep = visit(home)
    assert rep.changes["face_suspended"] == 1 and rep.face_suspensions == []  # not sent back
    assert privacy.identify(e, 0.45) is None
    assert privacy.vault.verify(alice_home.pseudonym, e) > 0.99  # with her card or number
    # Alice enrols again at home: the new template is not touched by later bundles.
    home.now += 60
    privacy.consent(privacy.start_enrolment(alice_home.id, "gate", by="resident"),
                    "resident:card+pin", share_site_gates=True)  # fmt: skip
    privacy.enrol(alice_home.id, e)
    assert visit(home).changes["face_suspended"] == 0
    assert privacy.identify(e, 0.45) == alice_home.id
    assert visit(away).face_suspensions == []  # reported once
