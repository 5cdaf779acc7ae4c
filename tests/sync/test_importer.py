from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from doorpi.store.credentials import card_hash, hash_pin, verify_pin
from doorpi.store.db import get_state, integrity_check
from doorpi.sync.bundle import ReportAck, seal_bundle
from doorpi.sync.importer import BundleImporter, SyncSignalWatcher, read_signal
from doorpi.sync.keys import PublicIdentity, SiteKey
from doorpi.sync.report import open_report
from doorpi.sync.rules import GateRules, open_rules
from doorpi.sync.templates import unseal_for_vault
from sync.helpers import (
    EMBEDDING,
    RULES,
    T0,
    GateRig,
    MemorySink,
    other_gate,
    resident,
    template,
)


def _pin_ok(rig: GateRig, keypad: str, pin: str) -> bool:
    r = rig.storage.residents.by_keypad_id(keypad)
    assert r is not None
    stored = rig.storage.residents.pin_hash(r.id)
    return stored is not None and verify_pin(rig.storage.secrets, stored, pin)


def test_first_import_creates_residents_cards_and_pins(rig: GateRig, site: SiteKey) -> None:
    rep = rig.apply(rig.bundle(1, [resident("a-1", 1, site, pin="2468"),
                                   resident("b-2", 2, site, pin=None)]))  # fmt: skip
    assert rep.result == "applied", rep.reason
    assert rep.changes["added"] == 2 and rep.changes["pins_hashed"] == 1
    alice = rig.storage.residents.by_card_hash(
        card_hash(rig.storage.secrets, bytes.fromhex("04000000000001"))
    )
    assert alice is not None and alice.name == "Resident 1" and alice.keypad_id == "101"
    assert alice.valid_until == T0 + 365 * 86400
    assert _pin_ok(rig, "101", "2468") and not _pin_ok(rig, "101", "2469")
    assert rig.storage.residents.pin_hash(rig.storage.residents.by_keypad_id("102").id) is None
    db = rig.storage.db
    assert get_state(db, "sync_sequence") == "1"
    assert float(get_state(db, "clock_floor")) == T0 - 60  # the bundle vouched for its time
    assert integrity_check(db) == "ok"
    assert rig.storage.audit.tail(1)[0].data["action"] == "applied"


def test_unchanged_pin_is_not_rehashed_and_edits_apply(rig: GateRig, site: SiteKey) -> None:
    a, b = resident("a-1", 1, site, pin="2468"), resident("b-2", 2, site, pin="1357")
    rig.apply(rig.bundle(1, [a, b]))
    rid = rig.storage.residents.by_keypad_id("101").id
    before = rig.storage.residents.pin_hash(rid)
    rep = rig.apply(rig.bundle(2, [replace(a, unit="9-99"), b]))
    assert rep.changes == {"added": 0, "updated": 1, "unchanged": 1, "removed": 0,
                           "pins_hashed": 0, "templates_stored": 0, "templates_deleted": 0,
                           "templates_skipped": 0, "face_withdrawn": 0, "face_suspended": 0,
                           "settings_changed": 0}  # fmt: skip
    assert rig.storage.residents.get(rid).unit == "9-99"
    assert rig.storage.residents.pin_hash(rid) == before
    b2 = resident("b-2", 2, site, pin="8642")
    rep = rig.apply(rig.bundle(3, [replace(a, unit="9-99"), b2]))
    assert rep.changes["pins_hashed"] == 1 and rep.changes["updated"] == 1
    assert _pin_ok(rig, "102", "8642") and not _pin_ok(rig, "102", "1357")
    rep = rig.apply(rig.bundle(4, [replace(a, unit="9-99", pin=None, pin_tag=None), b2]))
    assert rig.storage.residents.pin_hash(rid) is None


def test_roster_wins_over_local_edits_of_roster_residents(rig: GateRig, site: SiteKey) -> None:
    a = resident("a-1", 1, site)
    rig.apply(rig.bundle(1, [a]))
    rid = rig.storage.residents.by_keypad_id("101").id
    rig.storage.residents.update(rid, T0, active=False)
    rep = rig.apply(rig.bundle(2, [a]))
    assert rep.changes["updated"] == 1 and rig.storage.residents.get(rid).active


def test_tombstone_deletes_resident_cards_and_template(rig: GateRig, site: SiteKey) -> None:
    rig.apply(rig.bundle(1, [resident("a-1", 1, site), resident("b-2", 2, site)]))
    gone = rig.storage.residents.by_keypad_id("102")
    rep = rig.apply(rig.bundle(2, [resident("a-1", 1, site)], tombstones=("b-2", "never-seen")))
    assert rep.changes["removed"] == 1
    assert rig.storage.residents.by_keypad_id("102") is None
    assert rig.storage.db.execute("SELECT count(*) FROM cards").fetchone()[0] == 1
    assert rig.sink.forgotten == [gone.pseudonym]
    keys = [r[0] for r in rig.storage.db.execute("SELECT key FROM sync_residents")]
    assert keys == ["a-1"]


def test_stale_and_replayed_bundles_are_refused(rig: GateRig, site: SiteKey) -> None:
    data = rig.seal(rig.bundle(5, [resident("a-1", 1, site)]))
    assert rig.importer.import_bytes(data).result == "applied"
    state = rig.snapshot()
    # The same file again (a stick left in or re-plugged): current, not a fault.
    rep = rig.importer.import_bytes(data)
    assert (rep.result, rep.code) == ("current", "already_applied") and not rep.needs_attention
    assert rep.summary() == "bundle 5 already applied here: nothing changed"
    assert rig.snapshot() == state
    assert rig.storage.audit.tail(1)[0].data == {
        "action": "current", "sequence": 5,
        "reason": "bundle 5 is already applied here (the same bundle again): nothing changed"}  # fmt: skip
    # Another bundle at the applied sequence (even the same content, sealed anew): a replay.
    rep = rig.importer.import_bytes(rig.seal(rig.bundle(5, [resident("a-1", 1, site)])))
    assert (rep.result, rep.code) == ("refused", "stale") and rep.needs_attention
    assert rep.reason == "sequence 5 is already applied here (replay refused, nothing changed)"
    old = rig.apply(rig.bundle(4, [], tombstones=("a-1",)))
    assert old.reason == "sequence 4 is older than the applied 5 (rollback refused)"
    assert rig.snapshot() == state and get_state(rig.storage.db, "sync_sequence") == "5"
    assert rig.storage.audit.tail(1)[0].data["code"] == "stale"


def test_conflict_midway_leaves_everything_as_it_was(rig: GateRig, site: SiteKey) -> None:
    rig.apply(rig.bundle(1, [resident("a-1", 1, site), resident("b-2", 2, site)]))
    local = rig.storage.residents.add("Local Guard", T0, keypad_id="900")
    rig.storage.residents.add_card(
        local.id, card_hash(rig.storage.secrets, b"\x04\x99\x99\x99"), T0
    )
    before = rig.snapshot()
    bad = rig.bundle(2, [
        resident("a-1", 1, site, unit="changed"),
        resident("c-3", 3, site),
        resident("d-4", 4, site, cards=(replace(resident("x", 1).cards[0], uid="04999999"),)),
    ], tombstones=("b-2",))  # fmt: skip
    rep = rig.apply(bad)
    assert (rep.result, rep.code) == ("refused", "conflict")
    assert (
        rep.reason.startswith("residents[2] (d-4): card ")
        and "already belongs to resident" in rep.reason
    )
    assert rig.snapshot() == before
    assert get_state(rig.storage.db, "sync_sequence") == "1"
    clash = rig.apply(rig.bundle(3, [resident("e-5", 5, site, keypad_id="900")]))
    assert clash.reason == (f"residents[0] (e-5): keypad number 900 is already used by resident "
                            f"{local.id} on this gate")  # fmt: skip
    assert rig.snapshot() == before


def test_import_help_says_a_conflict_refuses_the_whole_bundle() -> None:
    """The help a person reads matches the two tests above: a keypad number or card
    clash refuses everything; an entry past the gate's limits alone is skipped."""
    p = subprocess.run([sys.executable, "-m", "doorpi", "sync", "import", "--help"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    assert "bad entries are named and skipped" not in text
    skipped, refused = text.split("Refused whole, nothing changes:")
    assert (
        "a PIN too short, too long or too weak" in skipped and "is named in the report" in skipped
    )
    assert "keypad number or card already used by another resident on this gate" in refused
    listing = subprocess.run([sys.executable, "-m", "doorpi", "sync", "--help"],
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    assert "a conflict refuses the whole bundle" in " ".join(listing.split())


def test_local_residents_are_left_alone(rig: GateRig, site: SiteKey) -> None:
    local = rig.storage.residents.add("Caretaker", T0, keypad_id="77")
    rig.apply(rig.bundle(1, [resident("a-1", 1, site)]))
    rig.apply(rig.bundle(2, [], tombstones=("a-1",)))
    assert [r.name for r in rig.storage.residents.all()] == [local.name]


def test_keypad_numbers_can_swap(rig: GateRig, site: SiteKey) -> None:
    a, b = resident("a-1", 1, site), resident("b-2", 2, site)
    rig.apply(rig.bundle(1, [a, b]))
    rep = rig.apply(rig.bundle(2, [replace(a, keypad_id="102"), replace(b, keypad_id="101")]))
    assert rep.result == "applied", rep.reason
    assert rig.storage.residents.by_keypad_id("101").name == "Resident 2"


def test_gate_rules_refuse_the_entry_not_the_bundle(rig: GateRig, site: SiteKey) -> None:
    """A bad entry is named and skipped; other entries and move-outs still apply."""
    a, b, m = (
        resident("a-1", 1, site, pin="2468"),
        resident("b-2", 2, site),
        resident("m-9", 9, site),
    )
    assert rig.apply(rig.bundle(1, [a, b, m])).result == "applied"
    before = rig.storage.residents.by_keypad_id("101")
    weak = resident("a-1", 1, site, pin="1111", unit="9-99")  # edit with a weak PIN
    new = resident("c-3", 3, site, schedule="nights")  # unknown schedule
    long_pin = resident("d-4", 4, site, pin="1357924680")  # 10 digits, gate allows 4-8
    rep = rig.apply(rig.bundle(2, [weak, replace(b, unit="7-07"), new, long_pin],
                               tombstones=("m-9",)))  # fmt: skip
    assert rep.result == "applied", rep.reason
    assert rep.changes["removed"] == 1 and rep.changes["updated"] == 1  # move-out and b-2
    assert rep.refused_entries == [
        {"resident": "a-1", "field": "pin", "kept": "previous entry",
         "reason": "a PIN may not be one repeated digit or a straight run"},
        {"resident": "c-3", "field": "schedule", "kept": "not added",
         "reason": "'nights' is not a schedule on this gate (known: always, workdays)"},
        {"resident": "d-4", "field": "pin", "kept": "not added",
         "reason": "a PIN has 4 to 8 digits"},
    ]  # fmt: skip
    assert "3 entries refused" in rep.summary() and rep.needs_attention
    kept = rig.storage.residents.by_keypad_id("101")
    assert kept.unit == before.unit and _pin_ok(rig, "101", "2468")  # a-1 as before
    assert rig.storage.residents.by_keypad_id("102").unit == "7-07"
    assert rig.storage.residents.by_keypad_id("103") is None
    assert rig.storage.residents.by_keypad_id("109") is None  # moved out
    assert rep.status["rules"] == {"schedules": ["always", "workdays"], "pin_min": 4,
                                   "pin_max": 8}  # fmt: skip


def test_whole_bundle_faults_still_refuse_everything(rig: GateRig, site: SiteKey) -> None:
    """Replay and another gate's bundle refuse the lot, bad entries or not."""
    rig.apply(rig.bundle(1, [resident("a-1", 1, site)]))
    rep = rig.apply(rig.bundle(1, [resident("b-2", 2, site, pin="1111")]))
    assert rep.result == "refused" and rep.code == "stale" and not rep.refused_entries
    other = other_gate("b-gate")
    sealed = seal_bundle(replace(rig.bundle(2, [resident("b-2", 2, site)]),
                                 gate=other.fingerprint), site, other.public)  # fmt: skip
    rep = rig.importer.import_bytes(sealed)
    assert rep.result == "refused"
    assert rig.storage.residents.by_keypad_id("102") is None


def test_templates_go_to_the_sink_under_the_local_pseudonym(rig: GateRig, site: SiteKey) -> None:
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                   templates=(template("a-1", rig.peer, rig.identity),))  # fmt: skip
    rep = rig.apply(b)
    assert rep.result == "applied" and rep.changes["templates_stored"] == 1
    p = rig.storage.residents.by_keypad_id("101").pseudonym
    assert list(rig.sink.stored) == [p]
    assert unseal_for_vault(rig.sink.stored[p], rig.identity) == EMBEDDING
    rig.apply(rig.bundle(2, [resident("a-1", 1, site)], template_tombstones=("a-1",)))
    assert rig.sink.stored == {}


def test_template_without_consent_is_refused_whole(rig: GateRig, site: SiteKey) -> None:
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=False)],
                   templates=(template("a-1", rig.peer, rig.identity, True),))  # fmt: skip
    rep = rig.apply(b)
    assert (rep.result, rep.code) == ("refused", "no_consent")
    assert rig.sink.stored == {} and rig.storage.residents.all() == []


def test_templates_at_a_gate_without_face_are_skipped_not_refused(
    data_dir: Path, site: SiteKey
) -> None:
    """A gate with face off still takes the roster: the templates are left out and
    the report says why, so the admin's other changes are not held up."""
    rig = GateRig(data_dir, site, sink=None)
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                   templates=(template("a-1", rig.peer, rig.identity),))  # fmt: skip
    rep = rig.apply(b)
    assert rep.result == "applied" and rep.changes["templates_skipped"] == 1
    assert rep.skipped == {"face_off": 1} and rep.changes["templates_stored"] == 0
    assert "1 templates_skipped" in rep.summary()
    assert len(rig.storage.residents.all()) == 1
    assert rig.storage.audit.tail(1)[0].data["templates_skipped_why"] == {"face_off": 1}


def test_forged_template_is_refused_even_where_face_is_off(data_dir: Path, site: SiteKey) -> None:
    rig = GateRig(data_dir, site, sink=None)
    forged = template("a-1", other_gate("intruder"), rig.identity)
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                   templates=(replace(forged, source_gate=rig.peer.fingerprint),))  # fmt: skip
    assert rig.apply(b).code == "bad_signature" and rig.storage.residents.all() == []


def test_untrusted_gate_refuses_everything(data_dir: Path, site: SiteKey) -> None:
    rig = GateRig(data_dir, site, MemorySink())
    rig.storage.db.execute("DELETE FROM state WHERE key = 'sync_site_key'")
    rep = rig.apply(rig.bundle(1, [resident("a-1", 1, site)]))
    assert rep.code == "no_site_key"


def test_report_is_signed_sealed_and_free_of_secrets(
    rig: GateRig, site: SiteKey, tmp_path: Path
) -> None:
    stick = tmp_path / "stick"
    (stick / "doorpi").mkdir(parents=True)
    fp = rig.identity.fingerprint
    (stick / "doorpi" / f"{fp}.bundle").write_bytes(
        rig.seal(rig.bundle(1, [resident("a-1", 1, site, pin="2468")]))
    )
    _, path = rig.importer.import_stick(stick)
    raw = path.read_bytes()
    assert b"Resident" not in raw and b"applied" not in raw  # sealed to the site
    got = open_report(raw, site, {fp: rig.identity.public})
    assert got.result == "applied" and got.status["residents"] == 1
    assert got.status["integrity"] == "ok" and got.status["audit_chain"] == "ok"
    kinds = [a["kind"] for a in got.audit]
    assert "sync" in kinds
    # Random fingerprints and hashes are hex and may contain any digit run: blank
    # long hex runs first, so the check looks for the secrets, not for chance.
    text = re.sub(r"[0-9a-f]{16,}", "<hex>", json.dumps(vars(got)))
    for secret in ("2468", "04000000000001", "pin_hash", "$argon2"):
        assert secret not in text
    assert read_signal(rig.storage.db)["result"] == "applied"
    # Written to a stick is not delivered: the next report carries the records again ...
    (stick / "doorpi" / f"{fp}.bundle").write_bytes(rig.seal(rig.bundle(2, [])))
    _, path = rig.importer.import_stick(stick)
    again = open_report(path.read_bytes(), site, {fp: rig.identity.public})
    assert again.audit[: len(got.audit)] == got.audit and again.audit_from == 0
    # ... until a signed bundle acknowledges them; then only the records written since.
    last = got.audit[-1]
    ack = ReportAck(last["seq"], last["hash"])
    (stick / "doorpi" / f"{fp}.bundle").write_bytes(rig.seal(rig.bundle(3, [], report_ack=ack)))
    _, path = rig.importer.import_stick(stick)
    third = open_report(path.read_bytes(), site, {fp: rig.identity.public})
    assert third.audit_from == last["seq"]
    assert min(a["seq"] for a in third.audit) == last["seq"] + 1
    assert third.audit_head == [third.audit[-1]["seq"], third.audit[-1]["hash"]]


def test_stick_without_bundle_gets_the_gate_public_key(rig: GateRig, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    (stick / "doorpi").mkdir(parents=True)
    report, _ = rig.importer.import_stick(stick)
    # A pairing visit is not a refusal: it says so, and the admin does not see "refused".
    assert report.result == "waiting" and report.code == "no_bundle"
    assert report.summary().startswith("paired, waiting for a bundle")
    assert not report.needs_attention
    fp = rig.identity.fingerprint
    card = PublicIdentity.read(stick / "doorpi" / "gates" / f"{fp}.pub", "gate")
    assert card == rig.identity.public
    # The gate's limits travel with its key, signed by it.
    raw = (stick / "doorpi" / "gates" / f"{fp}.rules").read_bytes()
    assert open_rules(raw, rig.identity.public) == GateRules(RULES.schedules, 4, 8)
    assert open_rules(raw, other_gate().public) is None  # another key: not believed
    forged = raw.replace(b"workdays", b"weekdays")
    assert open_rules(forged, rig.identity.public) is None
    # The running gate shows the pairing visit as done (green), not as a refusal (red).
    watcher = SyncSignalWatcher(rig.storage.db)
    rig.importer.import_stick(stick)
    assert watcher.poll() == ("done", 0.0)


def test_thousand_residents_import_time(rig: GateRig, site: SiteKey) -> None:
    """Measured figure for the report: 1,000 residents with cards and PINs."""
    people = [resident(f"r-{n}", n, site, keypad_id=str(1000 + n)) for n in range(1000)]
    t = time.perf_counter()
    rep = rig.apply(rig.bundle(1, people))
    first = time.perf_counter() - t
    assert rep.result == "applied" and rep.changes["added"] == 1000
    people[5] = replace(people[5], unit="moved")
    t = time.perf_counter()
    rep = rig.apply(rig.bundle(2, people))
    second = time.perf_counter() - t
    assert rep.changes["updated"] == 1 and rep.changes["pins_hashed"] == 0
    print(f"\n1000 residents: first import {first:.2f} s (cheap Argon2), re-import {second:.2f} s")
    assert second < 10


def test_pin_hash_cost_follows_gate_config(rig: GateRig, site: SiteKey) -> None:
    rig.apply(rig.bundle(1, [resident("a-1", 1, site)]))
    rid = rig.storage.residents.by_keypad_id("101").id
    stored = rig.storage.residents.pin_hash(rid)
    assert "m=8192,t=1" in stored
    assert stored != hash_pin(rig.storage.secrets, "0", RULES.opslimit, RULES.memlimit_kib)


def test_new_site_key_is_needed_to_open(rig: GateRig, site: SiteKey) -> None:
    imp = BundleImporter(rig.storage, rig.identity, RULES)
    assert imp.trusted_site() == site.public


class PickySink(MemorySink):
    def store_sealed(self, conn: Any, pseudonym: str, sealed: bytes, source_gate: str) -> str:
        raise ValueError("no live consent record for this pseudonym")


def test_vault_refusal_rolls_back_the_whole_bundle(data_dir: Path, site: SiteKey) -> None:
    rig = GateRig(data_dir, site, PickySink())
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                   templates=(template("a-1", rig.peer, rig.identity),))  # fmt: skip
    rep = rig.apply(b)
    assert (rep.code, rep.reason) == ("vault", "templates[0] (a-1): no live consent record for "
                                      "this pseudonym")  # fmt: skip
    assert rig.storage.residents.all() == [] and rig.importer.last_sequence() == 0
    assert (rig.sink.discarded, rig.sink.finished) == (1, 0)


def test_running_gate_sees_each_import_once(rig: GateRig, site: SiteKey, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    (stick / "doorpi").mkdir(parents=True)
    rig.importer.import_stick(stick)  # before the gate started: not replayed
    watcher = SyncSignalWatcher(rig.storage.db)
    assert watcher.poll() is None
    bundle = stick / "doorpi" / f"{rig.identity.fingerprint}.bundle"
    bundle.write_bytes(rig.seal(rig.bundle(1, [resident("a-1", 1, site)], created=T0 + 5)))
    rig.importer.import_stick(stick)
    assert watcher.poll() == ("done", T0 + 5)
    assert watcher.poll() is None
    rig.importer.import_stick(stick)  # the same bundle again: current, shown as done
    assert watcher.poll() == ("done", T0 + 5)
    bundle.write_bytes(rig.seal(rig.bundle(1, [resident("a-1", 1, site)], created=T0 + 5)))
    rig.importer.import_stick(stick)  # another bundle at the applied sequence: refused
    assert watcher.poll() == ("denied", T0 + 5)


def test_read_only_stick_still_imports(rig: GateRig, site: SiteKey, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    (stick / "doorpi").mkdir(parents=True)
    fp = rig.identity.fingerprint
    (stick / "doorpi" / f"{fp}.bundle").write_bytes(rig.seal(rig.bundle(1, [resident("a-1", 1)])))
    (stick / "doorpi" / f"{fp}.report").mkdir()  # the report cannot be written there
    report, out = rig.importer.import_stick(stick)
    assert report.result == "applied" and out is None
    assert rig.importer.last_sequence() == 1


def test_templates_at_a_gate_without_an_impact_assessment_are_skipped(
    data_dir: Path, site: SiteKey
) -> None:
    """No impact assessment on file (PIPL 55-56): the templates are left out with the
    reason in the report, the roster applies; once one is recorded they arrive."""
    rig = GateRig(data_dir, site, MemorySink(), pia=False)
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                   templates=(template("a-1", rig.peer, rig.identity),))  # fmt: skip
    rep = rig.apply(b)
    assert rep.result == "applied" and rep.changes["templates_stored"] == 0
    assert rep.skipped == {"no_impact_assessment": 1}
    assert rig.sink.stored == {} and len(rig.storage.residents.all()) == 1
    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
    from sync.helpers import PIA_TEXT

    AssessmentRegistry(rig.storage.db, rig.storage.audit).record(
        ImpactAssessment(**PIA_TEXT, author="DPO Li", created=rig.now)
    )
    b2 = rig.bundle(2, [resident("a-1", 1, site, share_with_site_gates=True)],
                    templates=(template("a-1", rig.peer, rig.identity),))  # fmt: skip
    assert rig.apply(b2).changes["templates_stored"] == 1
