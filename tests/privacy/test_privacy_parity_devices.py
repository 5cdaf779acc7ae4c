"""Face never the only way in, for the devices actually fitted and for each
resident (requirement 1 and 4), and the device holding no template where
templates live on cards (requirement 18). Real config files, `doorpi` run as a
subprocess, a real gate on a real data dir (SimulatedSite: MockFactory pins,
the real face path with the built models where it is needed)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from privacy_support import ALICE, FACE_ON, MONDAY_9, PIA, face_site, unit_vector

from doorpi import selftest
from doorpi.clocks import ManualClock
from doorpi.config import load_config
from doorpi.core.events import FaceRejected
from doorpi.privacy.enrolment import EnrolmentError, build_face_privacy
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.sim.site import SimulatedSite, sim_config
from doorpi.store import Storage

TWO_FACTOR = ["card+face", "card+pin"]
SITE = '[site]\ncontroller = "Sunny Garden PM Co."\ncontact = "+86 10 5555 0100"\n'

# The three configs the issue found accepted, each with face the only way in.
FACE_ONLY_ON_THESE_DEVICES = {
    "face|pin, no keypad": '[door]\naccess = ["face", "pin"]\n[keypad]\nkind = "none"\n',
    "face|card, reader off": '[door]\naccess = ["face", "card"]\n[reader]\nenabled = false\n',
    "card+face|card+pin, no keypad": (
        '[door]\naccess = ["card+face", "card+pin"]\n[keypad]\nkind = "none"\n'
    ),
    "scheduled, no keypad": (
        '[door]\naccess = ["card"]\nschedule_access = [{schedule = "night", '
        'access = ["face+card", "pin"]}]\n[schedules]\nnight = ["mon-sun 22:00-06:00"]\n'
        '[keypad]\nkind = "none"\n'
    ),
}


def write_cfg(tmp_path: Path, body: str, face: bool = True) -> Path:
    cfg = tmp_path / "doorpi.toml"
    face_text = "[face]\nenabled = true\n" if face else ""
    cfg.write_text(SITE + f'data_dir = "{tmp_path / "data"}"\n' + face_text + body)
    return cfg


def doorpi(cfg: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=120, input=stdin)  # fmt: skip


@pytest.mark.parametrize("body", FACE_ONLY_ON_THESE_DEVICES.values(),
                         ids=FACE_ONLY_ON_THESE_DEVICES.keys())  # fmt: skip
def test_config_check_and_selftest_refuse_face_only_on_the_devices_fitted(tmp_path, body):
    cfg = write_cfg(tmp_path, body)
    p = doorpi(cfg, "config", "check")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "door." in lines[0] and "no way in without face" in lines[0]
    results = {r.name: r for r in selftest.run_checks(cfg, dev_dir=tmp_path,
                                                     list_readers=lambda: ["R"])}  # fmt: skip
    assert results["config"].status == selftest.FAIL
    assert "no way in without face" in results["config"].detail


@pytest.mark.parametrize(
    "body",
    [
        '[door]\naccess = ["face", "pin"]\n[keypad]\nkind = "matrix"\n',
        '[door]\naccess = ["face", "card"]\n[reader]\nenabled = true\n[keypad]\nkind = "none"\n',
        '[door]\naccess = ["card+face", "card+pin"]\n',
        '[door]\naccess = ["card+face", "card"]\n[keypad]\nkind = "none"\n',
    ],
)
def test_the_same_doors_pass_with_the_face_free_device_fitted(tmp_path, body):
    p = doorpi(write_cfg(tmp_path, body), "config", "check")
    assert p.returncode == 0, p.stderr
    assert ": ok (" in p.stdout


def _face_site_cfg(tmp_path: Path, door: list[str], **face: object) -> tuple[object, Path]:
    data = tmp_path / "data"
    s = Storage.open(data)
    AssessmentRegistry(s.db, s.audit).record(ImpactAssessment(**PIA, author="DPO", created=1.0))
    s.close()
    over = {**FACE_ON, "door": {"access": door}, "face": {"enabled": True, **face}}
    return sim_config(over, data), data


def test_gate_refuses_a_face_path_that_would_be_the_only_way_in(tmp_path):
    """A config that bypasses the loader (built in code, or devices changed under
    it): the gate starts with face off and says why; the reader still reads."""
    cfg, _ = _face_site_cfg(tmp_path, TWO_FACTOR)
    cfg = replace(cfg, keypad=replace(cfg.keypad, kind="none"))
    events: list[dict] = []
    site = SimulatedSite(cfg, ManualClock(MONDAY_9), [events.append])
    try:
        assert site.gate.face_privacy is None and site.gate.on_face_request is None
        assert "no way in without face" in site.gate.face_problem
        site.add_resident(ALICE)
        site.card(ALICE["cards"][0])
        assert [e["event"] for e in events if e["event"] == "face_requested"] == []
        assert any(e["event"] == "credential_presented" for e in events)
    finally:
        site.close()


# ---------------------------------------------------------------- a resident without a PIN


def _enrol(privacy, rid, seed=1):
    t = privacy.start_enrolment(rid, "admin_present", by="admin:test")
    privacy.consent(t, confirmed_by="admin:test")
    privacy.enrol(rid, unit_vector(seed))


def test_no_pin_resident_is_refused_face_up_front_and_told_why(tmp_path):
    site = face_site(tmp_path, {**FACE_ON, "door": {"access": TWO_FACTOR}})
    try:
        privacy = site.gate.face_privacy
        barack = site.add_resident({"name": "Barack", "cards": ["04aa0000000001"]})
        with pytest.raises(EnrolmentError) as exc:
            privacy.start_enrolment(barack, "admin_present", by="admin:test")
        msg = str(exc.value)
        assert "no face-free way to finish" in msg and "give them a PIN" in msg
        assert "card+face | card+pin" in msg and "holds: card" in msg
        kinds = [r.kind for r in site.gate.storage.audit.tail(50)]
        assert "face_enrolment_refused" in kinds
        assert privacy.consents.live(site.gate.storage.residents.get(barack).pseudonym,
                                     MONDAY_9) is None  # fmt: skip
        # Alice (card and PIN) may enrol at the same door.
        _enrol(privacy, site.rid)
        assert privacy.vault.count() == 1
    finally:
        site.close()


def test_a_door_where_card_alone_opens_lets_a_no_pin_resident_enrol(tmp_path):
    site = face_site(tmp_path, {**FACE_ON, "door": {"access": ["card", "face"]}})
    try:
        barack = site.add_resident({"name": "Barack", "cards": ["04aa0000000001"]})
        _enrol(site.gate.face_privacy, barack)
        assert site.gate.face_privacy.vault.count() == 1
    finally:
        site.close()


def _pin_cleared_after_enrolment(tmp_path):
    """Alice enrolled at a card+face | card+pin door, then lost her PIN (cleared
    by the admin or by a roster without one): face is her only way in now."""
    site = face_site(tmp_path, {**FACE_ON, "door": {"access": TWO_FACTOR}})
    _enrol(site.gate.face_privacy, site.rid)
    site.gate.storage.residents.set_pin_hash(site.rid, None, MONDAY_9)
    return site


def test_face_failure_with_no_pin_is_refused_at_once_not_left_waiting(tmp_path):
    site = _pin_cleared_after_enrolment(tmp_path)
    try:
        assert site.gate.on_face_request is not None  # the real face path (models built)
        site.card(ALICE["cards"][0])
        asked = [e for e in site.events if e["event"] == "factor_needed"]
        assert [e["factor"] for e in asked] == ["face"]
        n = len(site.events)
        site.gate.submit(FaceRejected("camera_fault"))
        site.gate.process_pending()
        after = site.events[n:]
        access = [e for e in after if e["event"] == "access"]
        assert len(access) == 1 and access[0]["granted"] is False
        assert access[0]["reason"] == "no_face_free_way" and access[0]["factors"] == ["card"]
        patterns = [e["pattern"] for e in after if e["event"] == "feedback"]
        assert "pin_needed" not in patterns and patterns[-1] == "denied"
        assert site.gate.attempt is None
        assert not any(e["event"] == "lockout_started" for e in site.events)
    finally:
        site.close()


def test_gate_reports_face_dependent_residents_at_start_and_after_a_change(tmp_path):
    site = _pin_cleared_after_enrolment(tmp_path)
    try:
        site.gate.check_face_parity()  # what the gate runs after each sync import
        faults = site.gate.faults.active
        assert "face_parity" in faults and "1 resident(s)" in faults["face_parity"]["detail"]
        notes = [e for e in site.events if e["event"] == "face_parity"]
        assert notes and notes[-1]["resident_id"] == site.rid
    finally:
        site.close()
    # A restart sees it too, and clears it once the resident has a PIN again.
    again = SimulatedSite(site.cfg, ManualClock(MONDAY_9 + 60))
    try:
        assert "face_parity" in again.gate.faults.active
        from doorpi.store.credentials import hash_pin

        store = again.gate.storage
        store.residents.set_pin_hash(site.rid, hash_pin(store.secrets, "2468", 1, 8192), 1.0)
        again.gate.check_face_parity()
        assert "face_parity" not in again.gate.faults.active
    finally:
        again.close()


def test_fallback_asks_for_the_face_free_factor_the_rule_needs(tmp_path):
    """Keypad number and PIN, then face under ["pin+face", "card+pin"]: a face
    failure asks for the card (the PIN is already in), and the card opens."""
    site = face_site(tmp_path, {**FACE_ON, "door": {"access": ["pin+face", "card+pin"]}})
    try:
        _enrol(site.gate.face_privacy, site.rid)
        for k in "101#2468#":
            site.key(k)
        assert [e["factor"] for e in site.events if e["event"] == "factor_needed"] == ["face"]
        n = len(site.events)
        site.gate.submit(FaceRejected("no_face"))
        site.gate.process_pending()
        patterns = [e["pattern"] for e in site.events[n:] if e["event"] == "feedback"]
        assert patterns[-1] == "card_needed"
        site.card(ALICE["cards"][0])
        access = [e for e in site.events if e["event"] == "access"]
        assert access[-1]["granted"] is True and access[-1]["factors"] == ["card", "pin"]
    finally:
        site.close()


def test_pin_clear_warns_the_admin_when_face_becomes_the_only_way(tmp_path):
    cfg_file = write_cfg(tmp_path, '[door]\naccess = ["card+face", "card+pin"]\n')
    cfg = load_config(cfg_file)
    store = Storage.open(cfg.site.data_dir)
    try:
        AssessmentRegistry(store.db, store.audit).record(
            ImpactAssessment(**PIA, author="DPO", created=1.0)
        )
        from doorpi.store.credentials import card_hash, hash_pin

        rid = store.residents.add("Alice", 1.0).id
        store.residents.add_card(rid, card_hash(store.secrets, bytes.fromhex("04a1b2c3")), 1.0)
        store.residents.set_pin_hash(rid, hash_pin(store.secrets, "2468", 1, 8192), 1.0)
        _enrol(build_face_privacy(cfg, store), rid)
    finally:
        store.close()
    p = doorpi(cfg_file, "pin", "clear", str(rid))
    assert p.returncode == 0, p.stderr
    warn = [ln for ln in p.stdout.splitlines() if ln.startswith("WARNING:")]
    assert len(warn) == 1 and "no face-free way to finish" in warn[0] and "PIN" in warn[0]


# ---------------------------------------------------------------- templates on cards


def test_switching_to_templates_on_cards_leaves_zero_templates_on_the_device(tmp_path):
    site = face_site(tmp_path, {**FACE_ON, "door": {"access": TWO_FACTOR}})
    e = unit_vector(7)
    try:
        _enrol(site.gate.face_privacy, site.rid, seed=7)
        assert site.gate.face_privacy.identify(e, 0.45) == site.rid
    finally:
        site.close()
    over = {**FACE_ON, "door": {"access": TWO_FACTOR},
            "face": {"enabled": True, "template_storage": "card"}}  # fmt: skip
    card = SimulatedSite(sim_config(over, tmp_path / "data"), ManualClock(MONDAY_9 + 60))
    try:
        privacy = card.gate.face_privacy
        assert privacy is not None and privacy.settings.template_storage == "card"
        assert privacy.vault.count() == 0
        assert privacy.identify(e, 0.45) is None  # face alone matches nothing here
        rows = card.gate.storage.db.execute("SELECT count(*) FROM face_templates").fetchone()
        assert rows[0] == 0
        kinds = [r.kind for r in card.gate.storage.audit.tail(50)]
        assert "face_templates_cleared" in kinds
        # The hands-free (1:N) path has no device gallery to search in card mode.
        engine = card.face_engine
        engine.card_source = lambda rid: None
        out = engine.process(object(), 0.0)
        assert out.state == "rejected" and out.reason == "templates_on_cards"
    finally:
        card.close()
