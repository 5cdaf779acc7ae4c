"""A face refusal made at the gate outlives every later sync, restart and roster
change (requirement 3: after a refusal the device never asks again unless the
resident starts enrolment). The roster says `face_refused = false` by default;
before, each import wrote that over the resident's own "no"."""

from __future__ import annotations

from dataclasses import replace

from doorpi.store import Storage
from sync.helpers import GateRig, resident, wire_vault


def _refused(storage: Storage, rid: int) -> bool:
    r = storage.residents.get(rid)
    assert r is not None
    return r.face_refused


def test_refusal_at_the_gate_survives_syncs_roster_changes_and_restart(tmp_path, site):
    rig = GateRig(tmp_path / "gate", site)
    privacy = wire_vault(rig)
    a = resident("a-1", 1, site)
    rig.apply(rig.bundle(1, [a]))
    rid = rig.storage.residents.by_keypad_id("101").id
    privacy.refuse(rid, by="resident")
    assert _refused(rig.storage, rid) and not privacy.may_offer(rid)

    result = rig.apply(rig.bundle(2, [a]))  # the same roster again: nothing to change
    assert _refused(rig.storage, rid) and result.changes["unchanged"] == 1
    rig.apply(rig.bundle(3, [replace(a, name="Resident One", unit="9-99")]))  # edited entry
    assert _refused(rig.storage, rid) and not privacy.may_offer(rid)
    assert rig.storage.residents.get(rid).name == "Resident One"

    rig.storage.close()  # restart
    again = Storage.open(tmp_path / "gate")
    try:
        assert _refused(again, rid)
    finally:
        again.close()


def test_the_roster_can_add_a_refusal_and_the_resident_lifts_it_by_enrolling(tmp_path, site):
    rig = GateRig(tmp_path / "gate", site)
    privacy = wire_vault(rig)
    a = resident("a-1", 1, site)
    rig.apply(rig.bundle(1, [replace(a, face_refused=True)]))
    rid = rig.storage.residents.by_keypad_id("101").id
    assert _refused(rig.storage, rid)
    ticket = privacy.start_enrolment(rid, "gate", by="resident")  # the resident asks
    privacy.consent(ticket, confirmed_by="resident")
    assert not _refused(rig.storage, rid)
    rig.apply(rig.bundle(2, [a]))
    assert not _refused(rig.storage, rid)
