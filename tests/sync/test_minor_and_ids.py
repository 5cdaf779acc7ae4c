"""The minor flag travels roster -> bundle -> gate; a removed resident's id is never
given to the next one (law notes B8; #14 "records never attach to someone else")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from doorpi.sync.roster import RosterError, parse_roster
from sync.helpers import GateRig, resident


def _minor(rig: GateRig, key: str) -> bool:
    row = rig.storage.db.execute(
        "SELECT r.minor FROM residents r JOIN sync_residents s ON s.resident_id = r.id "
        "WHERE s.key = ?",
        [key],
    ).fetchone()
    return bool(row[0])


def test_roster_minor_reaches_the_gate_and_back(rig: GateRig) -> None:
    kid, mum = resident("a-1-kid", 1, rig.site, minor=True), resident("a-1-mum", 2, rig.site)
    sealed = rig.seal(rig.bundle(1, [kid, mum]))
    assert rig.importer.import_bytes(sealed).result == "applied"
    assert _minor(rig, "a-1-kid") and not _minor(rig, "a-1-mum")
    # The roster says the child turned 14: the flag follows.
    assert rig.apply(rig.bundle(2, [replace(kid, minor=False), mum])).result == "applied"
    assert not _minor(rig, "a-1-kid")


def test_roster_minor_field(tmp_path) -> None:
    doc = {"residents": [{"key": "a-kid", "name": "Kid Wang", "minor": True},
                         {"key": "a-mum", "name": "Fang Wang"}]}  # fmt: skip
    roster = parse_roster(doc, b"k" * 32)
    assert [r.entry.minor for r in roster.residents] == [True, False]
    doc["residents"][0]["minor"] = "yes"
    with pytest.raises(
        RosterError, match=r"residents\[0\] \(a-kid\)\.minor: must be true or false"
    ):
        parse_roster(doc, b"k" * 32)


def test_an_imported_resident_never_gets_a_removed_residents_id(rig: GateRig) -> None:
    a, b = resident("k-a", 1, rig.site), resident("k-b", 2, rig.site)
    assert rig.apply(rig.bundle(1, [a, b])).result == "applied"
    ids = dict(rig.storage.db.execute("SELECT key, resident_id FROM sync_residents").fetchall())
    assert (
        rig.apply(rig.bundle(2, [a], tombstones=("k-b",))).result == "applied"
    )  # b moved out: removed
    assert rig.storage.residents.get(ids["k-b"]) is None
    c = resident("k-c", 3, rig.site)
    assert rig.apply(rig.bundle(3, [a, c])).result == "applied"
    new = dict(rig.storage.db.execute("SELECT key, resident_id FROM sync_residents").fetchall())
    assert new["k-c"] > ids["k-b"]  # SQLite alone would hand out k-b's id again


def test_each_gate_reports_its_face_holders_and_the_admin_adds_them_up(rig: GateRig) -> None:
    """MFR Art. 15 (law notes F22): the count travels in the report; the admin warns."""
    from doorpi.privacy.report import site_face_count

    for p in ("p-1", "p-2"):  # two live consents (one of them with a template would count once)
        rig.storage.db.execute(
            "INSERT INTO face_consents(pseudonym, notice_version, notice_hash, lang, given_at, "
            "confirmed_by, channel, retention_end) VALUES (?, 'v', 'h', 'zh', ?, "
            "'operator:li', 'admin_present', ?)",
            [p, rig.now - 10, rig.now + 86400],
        )
    rep = rig.apply(rig.bundle(1, [resident("k-a", 1, rig.site)]))
    assert rep.result == "applied" and rep.status["face_holders"] == 2
    reports = [("gate-a", 2.0, rep.status), ("gate-a", 1.0, {"face_holders": 50_000}),
               ("gate-b", 1.0, {"face_holders": 89_997})]  # fmt: skip
    assert site_face_count(reports) == (89_999, [])
    total, warn = site_face_count([*reports, ("gate-c", 1.0, {"face_holders": 1})])
    assert total == 90_000 and "nearing the 100,000 filing threshold" in warn[0]
    total, warn = site_face_count([*reports, ("gate-c", 1.0, {"face_holders": 10_001})])
    assert total == 100_000 and "must file with the regulator" in warn[0]
