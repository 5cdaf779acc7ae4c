"""Privacy choices made at the gate outlive every later sync, restart and roster
change (issue #14, requirement 3): a withdrawal, and a face-alone suspension
after a false match, and a refusal against copies from other gates (the
roster side of a refusal: tests/sync/test_refusal_survives.py).

The danger is the copy in transit: another gate exported the resident's
template before it heard of the choice, and the admin relays that copy in the
next bundles. Real keys, real SQLite, the real TemplateVault and FacePrivacy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from doorpi.store import Storage
from doorpi.sync.importer import BundleImporter
from doorpi.sync.keys import SiteKey
from sync.helpers import RULES, GateRig, resident, shared_template, unit, wire_vault

DAY = 86400.0


@pytest.fixture
def gate(data_dir: Path, site: SiteKey) -> GateRig:
    rig = GateRig(data_dir, site)
    rig.privacy = wire_vault(rig)  # type: ignore[attr-defined]
    return rig


def restart(rig: GateRig) -> None:
    """Close the gate's store and open it again as `doorpi run` does after a reboot."""
    rig.storage.close()
    rig.storage = Storage.open(rig.data_dir)
    rig.importer = BundleImporter(rig.storage, rig.identity, RULES, None, lambda: rig.now)
    rig.importer.trust_site(rig.site.public)
    rig.privacy = wire_vault(rig)  # type: ignore[attr-defined]


def alice(site: SiteKey, **kw):  # type: ignore[no-untyped-def]
    return resident("a-1", 1, site, **{"share_with_site_gates": True, **kw})


def later_syncs(gate: GateRig, site: SiteKey, copy, first_seq: int):  # type: ignore[no-untyped-def]
    """Bundles after the choice, each relaying the stale copy: the same roster, an
    edited entry, a restart, then the same roster again. Yields after each."""
    seq = first_seq
    for step in ("same roster", "edited entry", "restart"):
        gate.now += 3600
        if step == "restart":
            restart(gate)
        entry = alice(site, name="Alice Li", unit="7-702") if step != "same roster" else alice(site)
        rep = gate.apply(gate.bundle(seq, [entry], templates=(copy,)))
        assert rep.result == "applied", rep.reason
        seq += 1
        yield step, rep


def test_a_withdrawal_at_the_gate_outlives_a_copy_in_transit(gate: GateRig, site: SiteKey):
    emb = unit(1)
    copy = shared_template("a-1", gate.peer, gate.identity, emb)  # consent given T0 - 1 day
    rep = gate.apply(gate.bundle(1, [alice(site)], templates=(copy,)))
    assert rep.changes["templates_stored"] == 1  # the copy is usable before the choice
    rid = gate.storage.residents.by_keypad_id("101").id
    assert gate.privacy.identify(emb, 0.45) == rid  # type: ignore[attr-defined]

    gate.now += 60
    assert gate.privacy.withdraw(rid, by="resident", channel="gate")  # type: ignore[attr-defined]
    for step, rep in later_syncs(gate, site, copy, 2):
        privacy = gate.privacy  # type: ignore[attr-defined]
        assert privacy.vault.count() == 0, step
        assert privacy.identify(emb, 0.45) is None, step
        pseudonym = gate.storage.residents.get(rid).pseudonym
        assert privacy.consents.live(pseudonym, gate.now) is None, step
        assert rep.skipped == {"withdrawn": 1}, step

    # Consent given again after the withdrawal (at the other gate) is the
    # resident's new choice: its copy is taken.
    fresh = shared_template("a-1", gate.peer, gate.identity, unit(2), id=8, given_at=gate.now - 5)
    rep = gate.apply(gate.bundle(9, [alice(site)], templates=(fresh,)))
    assert rep.changes["templates_stored"] == 1
    assert gate.privacy.identify(unit(2), 0.45) == rid  # type: ignore[attr-defined]


def test_a_withdrawal_by_the_admin_here_outlives_a_copy_in_transit(gate: GateRig, site: SiteKey):
    copy = shared_template("a-1", gate.peer, gate.identity, unit(1))
    gate.apply(gate.bundle(1, [alice(site)], templates=(copy,)))
    rid = gate.storage.residents.by_keypad_id("101").id
    gate.now += 60
    gate.privacy.withdraw(rid, by="operator:li", channel="admin")  # type: ignore[attr-defined]
    for step, _ in later_syncs(gate, site, copy, 2):
        assert gate.privacy.vault.count() == 0, step  # type: ignore[attr-defined]


def test_sharing_ended_then_resumed_takes_the_copy_again(gate: GateRig, site: SiteKey):
    """Only the resident's withdrawals hold a copy back: the roster switching
    sharing off and on (BY_SHARE_ENDED) is no withdrawal of the consent."""
    copy = shared_template("a-1", gate.peer, gate.identity, unit(1))
    gate.apply(gate.bundle(1, [alice(site)], templates=(copy,)))
    gate.now += 60
    rep = gate.apply(
        gate.bundle(2, [alice(site, share_with_site_gates=False)], template_tombstones=("a-1",))
    )  # as `admin bundle` sends it
    assert gate.privacy.vault.count() == 0  # type: ignore[attr-defined]
    gate.now += 60
    rep = gate.apply(gate.bundle(3, [alice(site)], templates=(copy,)))
    assert rep.changes["templates_stored"] == 1


def test_a_suspension_at_the_gate_outlives_later_syncs(gate: GateRig, site: SiteKey):
    """A false match reported here stops face alone for the resident (her card
    or number plus face still works) until she enrols again."""
    emb = unit(3)
    copy = shared_template("a-1", gate.peer, gate.identity, emb)
    gate.apply(gate.bundle(1, [alice(site)], templates=(copy,)))
    rid = gate.storage.residents.by_keypad_id("101").id
    pseudonym = gate.storage.residents.get(rid).pseudonym
    gate.now += 60
    assert gate.privacy.vault.suspend_hands_free(pseudonym, gate.now)  # type: ignore[attr-defined]
    for step, _ in later_syncs(gate, site, copy, 2):
        privacy = gate.privacy  # type: ignore[attr-defined]
        assert privacy.identify(emb, 0.45) is None, step  # no face alone
        assert privacy.vault.verify(pseudonym, emb) > 0.99, step  # with her card or number
    # A copy of a newer enrolment at the other gate is a fresh template: not suspended.
    fresh = shared_template("a-1", gate.peer, gate.identity, unit(4), id=8, given_at=gate.now - 5)
    rep = gate.apply(gate.bundle(9, [alice(site)], templates=(fresh,)))
    assert rep.changes["templates_stored"] == 1
    assert gate.privacy.identify(unit(4), 0.45) == rid  # type: ignore[attr-defined]


def test_a_refusal_at_the_gate_keeps_copies_from_other_gates_out(gate: GateRig, site: SiteKey):
    """She said no here; a copy of a consent she gave elsewhere (before or after)
    is not used here until she enrols here, which lifts the refusal."""
    assert gate.apply(gate.bundle(1, [alice(site)])).result == "applied"
    rid = gate.storage.residents.by_keypad_id("101").id
    privacy = gate.privacy  # type: ignore[attr-defined]
    gate.now += 60
    privacy.refuse(rid, by="resident")
    before = shared_template("a-1", gate.peer, gate.identity, unit(1))  # given T0 - 1 day
    after = shared_template("a-1", gate.peer, gate.identity, unit(2), id=8, given_at=gate.now + 5)
    gate.now += 60
    for step, rep in later_syncs(gate, site, before, 2):
        assert rep.skipped == {"refused": 1}, step
        assert gate.privacy.vault.count() == 0, step  # type: ignore[attr-defined]
    rep = gate.apply(gate.bundle(9, [alice(site)], templates=(after,)))
    assert rep.skipped == {"refused": 1} and gate.privacy.vault.count() == 0  # type: ignore[attr-defined]
    # The resident enrols here: the refusal is lifted, her own consent wins.
    privacy = gate.privacy  # type: ignore[attr-defined]
    privacy.consent(privacy.start_enrolment(rid, "gate", by="resident"), "resident:card+pin")
    privacy.enrol(rid, unit(3))
    assert privacy.identify(unit(3), 0.45) == rid
    rep = gate.apply(gate.bundle(10, [alice(site)], templates=(after,)))
    assert rep.skipped == {"own_consent": 1}


def test_a_refusal_in_the_roster_keeps_copies_out_too(gate: GateRig, site: SiteKey):
    copy = shared_template("a-1", gate.peer, gate.identity, unit(1))
    rep = gate.apply(gate.bundle(1, [alice(site, face_refused=True)], templates=(copy,)))
    assert rep.skipped == {"refused": 1} and gate.privacy.vault.count() == 0  # type: ignore[attr-defined]
