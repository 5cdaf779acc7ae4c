"""A person's records never attach to someone else (#14): a removed resident's id
is never given to the next resident, so the audit trail, consents and the
resident report of the new one hold none of the old one's data."""

from __future__ import annotations

import sqlite3

import pytest
from privacy_support import enrol, unit_vector

from doorpi.privacy.report import resident_report


def test_a_new_resident_never_gets_a_removed_residents_id(storage, privacy, clock, alice):
    bob = storage.residents.add("Bob Li", clock(), unit="5-501").id
    storage.audit.append("access", {"resident_id": bob, "granted": True, "reason": "ok",
                                    "factors": ["card"]}, ts=clock())  # fmt: skip
    enrol(privacy, bob, unit_vector(2))
    privacy.forget_resident(bob, by="operator:li")
    storage.residents.remove(bob)  # bob held the highest id: SQLite alone would reuse it
    carol = storage.residents.add("Carol Zhao", clock(), unit="5-501").id
    assert carol > bob
    rep = resident_report(storage, carol, by="operator:li", now=clock())
    assert rep["accesses"] == [] and rep["privacy_events"] == []
    assert rep["face"]["consents"] == [] and rep["face"]["template"] == {"stored": False}
    # Even by hand: the database refuses to hand the old id out again.
    with pytest.raises(sqlite3.IntegrityError, match="removed resident"):
        storage.db.execute(
            "INSERT INTO residents(id, pseudonym, name, created, updated) "
            "VALUES (?, 'p', 'Eve', 0, 0)",
            [bob],
        )


def test_a_deleted_consent_records_id_is_never_given_out_again(storage, privacy, clock, alice):
    """Consent records are kept as proof, but one may be deleted (a processing-record
    retention period, an admin's repair): its id must not pass to the next consent,
    or audit lines naming consent_id would point at someone else's."""
    bob = storage.residents.add("Bob Li", clock(), unit="5-501").id
    enrol(privacy, alice, unit_vector(1))
    enrol(privacy, bob, unit_vector(2))
    pseudonym = storage.residents.get(bob).pseudonym
    (old,) = [c.id for c in privacy.consents.history(pseudonym)]
    privacy.withdraw(bob, by="operator:li", channel="admin")
    storage.db.execute("DELETE FROM face_consents WHERE id = ?", [old])  # the newest row
    carol = storage.residents.add("Carol Zhao", clock(), unit="5-502").id
    enrol(privacy, carol, unit_vector(3))
    (new,) = [c.id for c in privacy.consents.history(storage.residents.get(carol).pseudonym)]
    assert new > old
    with pytest.raises(sqlite3.IntegrityError, match="deleted consent record"):
        storage.db.execute(
            "INSERT INTO face_consents(id, pseudonym, notice_version, notice_hash, lang, "
            "given_at, confirmed_by, channel, retention_end) "
            "VALUES (?, 'p', 'v', 'h', 'zh', 1, 'x', 'gate', 2)",
            [old],
        )


def test_the_report_names_only_that_person(storage, privacy, clock, alice):
    bob = storage.residents.add("Bob Li", clock()).id
    enrol(privacy, alice, unit_vector(1))
    enrol(privacy, bob, unit_vector(2))
    for rid, h in ((alice, "a1" * 16), (bob, "b2" * 16)):
        storage.audit.append("access", {"resident_id": rid, "granted": True, "reason": "ok",
                                        "factors": ["face"]}, ts=clock())  # fmt: skip
        storage.residents.add_card(rid, h, clock(), label=f"card of {rid}")
    rep = resident_report(storage, alice, by="operator:li", now=clock())
    text = repr(rep)
    assert "Bob" not in text and storage.residents.get(bob).pseudonym not in text
    assert "b2b2" not in text and f"card of {bob}" not in text
    assert [c["label"] for c in rep["resident"]["cards"]] == [f"card of {alice}"]
    assert rep["accesses_total"] == 1
    assert {c["id"] for c in rep["face"]["consents"]} == {1}
