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


def test_the_report_names_only_that_person(storage, privacy, clock, alice):
    bob = storage.residents.add("Bob Li", clock()).id
    enrol(privacy, alice, unit_vector(1))
    enrol(privacy, bob, unit_vector(2))
    for rid in (alice, bob):
        storage.audit.append("access", {"resident_id": rid, "granted": True, "reason": "ok",
                                        "factors": ["face"]}, ts=clock())  # fmt: skip
    rep = resident_report(storage, alice, by="operator:li", now=clock())
    text = repr(rep)
    assert "Bob" not in text and storage.residents.get(bob).pseudonym not in text
    assert rep["accesses_total"] == 1
    assert {c["id"] for c in rep["face"]["consents"]} == {1}
