"""The privacy wiring in gate.py, config.py, cli/status.py, cli/resident.py,
cli/keys.py and cli/__init__.py, through a simulated gate. Each test names the
wiring step it proves.
"""

from __future__ import annotations

import numpy as np
import pytest
from privacy_support import FACE_ON, face_site, unit_vector

from doorpi.config import ConfigError
from doorpi.sim.site import sim_config
from doorpi.store import Storage

_site = face_site


def _enrol(site, e):
    p = site.gate.face_privacy
    t = p.start_enrolment(site.rid, "admin_present", by="admin:test")
    p.consent(t, confirmed_by="admin:test")
    p.enrol(site.rid, e)


# Wiring 1 + 2: Gate builds FacePrivacy + GateFaceMenu(verify_pin=...), arms it after a
# card grant (after_card) or a card+PIN grant (open), feeds keys to it first, replays
# "release" keys, records Notice("face_menu", {"action": kind, "resident_id": id}).
def test_withdraw_at_the_gate_card_then_pin_then_9_1(tmp_path):
    site = _site(tmp_path, FACE_ON)
    try:
        e = unit_vector(1)
        _enrol(site, e)
        site.card("04a1b2c3d4e5f6")
        for k in "#2468#9#1#":
            site.key(k)
        menu = [ev["action"] for ev in site.events if ev["event"] == "face_menu"]
        assert menu[-1] == "withdrawn"
        assert site.gate.face_privacy.vault.count() == 0
        assert site.gate.face_privacy.identify(e, 0.45) is None
    finally:
        site.close()


def test_next_persons_keypad_entry_is_not_swallowed_by_the_menu(tmp_path):
    site = _site(tmp_path, FACE_ON)
    try:
        site.add_resident({"name": "Bo", "keypad_id": "202", "pin": "1357"})
        site.card("04a1b2c3d4e5f6")
        for k in "202#1357#":
            site.key(k)
        granted = [ev for ev in site.events if ev["event"] == "access" and ev["granted"]]
        assert len(granted) == 2
    finally:
        site.close()


# Wiring 3: face_enable_problem at start-up: face off (card/PIN unaffected) without a PIA.
def test_face_stays_off_without_an_impact_assessment_but_cards_work(tmp_path):
    site = _site(tmp_path, FACE_ON, with_pia=False)
    try:
        assert site.gate.face_privacy is None
        site.card("04a1b2c3d4e5f6")
        assert [ev["granted"] for ev in site.events if ev["event"] == "access"] == [True]
    finally:
        site.close()


# Wiring 4: config.parse_config calls privacy_settings(face.settings).
def test_config_validates_privacy_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"face\.retention_days"):
        sim_config({"face": {"enabled": False, "retention_days": 0}}, tmp_path / "d")


# Wiring 5: cli/status.collect merges report.face_status (counts + warnings).
def test_status_shows_face_holders(tmp_path):
    from doorpi.cli.status import collect

    site = _site(tmp_path, FACE_ON)
    try:
        _enrol(site, unit_vector(2))
        info = collect(site.cfg, site.storage)
        assert info["face_templates"] == 1 and info["face_data_holders"] == 1
    finally:
        site.close()


# Wiring 6: resident remove calls FacePrivacy.forget_resident first (logged deletion).
def test_resident_remove_logs_the_template_deletion(tmp_path, monkeypatch):
    import doorpi.cli

    site = _site(tmp_path, FACE_ON)
    cfg_file = tmp_path / "doorpi.toml"
    cfg_file.write_text(
        f'[site]\ndata_dir = "{tmp_path / "data"}"\ncontroller = "C"\ncontact = "+86 10 5555 0100"\n'
        "[face]\nenabled = true\n"
    )
    try:
        _enrol(site, unit_vector(3))
    finally:
        site.close()
    assert doorpi.cli.main(["--config", str(cfg_file), "resident", "remove", "1"]) == 0
    s = Storage.open(tmp_path / "data")
    try:
        kinds = [r.kind for r in s.audit.records()]
        assert "face_template_deleted" in kinds
        assert s.db.execute("SELECT count(*) FROM face_templates").fetchone()[0] == 0
    finally:
        s.close()


# Wiring 7: commands registered: notice, pia, consent; keys rotate; resident report.
def test_privacy_commands_are_registered():
    import doorpi.cli

    assert {"notice", "pia", "consent"} <= set(doorpi.cli.COMMAND_MODULES)
    parser = doorpi.cli.build_parser()
    args = parser.parse_args(["keys", "rotate", "--revoke"])
    assert args.revoke is True
    args = parser.parse_args(["resident", "report", "1"])
    assert callable(args.func)


# Wiring 8: the face engine is given VaultGallery(face_privacy.vault), never a plain Gallery.
def test_face_engine_uses_the_vault(tmp_path):
    from doorpi.privacy.gallery import VaultGallery

    site = _site(tmp_path, FACE_ON)
    try:
        engine = getattr(site.gate, "face_engine", None) or getattr(site, "face_engine", None)
        assert engine is not None and isinstance(engine.gallery, VaultGallery)
        assert np.isfinite(engine.threshold)
    finally:
        site.close()


def test_enrolment_at_the_gate_captures_several_frames_into_one_template(tmp_path, faces_dir):
    """Card, #, PIN #, 7 # (notice), 1 # (consent): the camera takes three good frames,
    averages them into one template in the vault, and the next 1:1 at a card+face
    door opens for the resident."""
    from doorpi.hardware.camera import Frame, load_rgb

    overrides = {**FACE_ON, "door": {"access": ["card+face", "card+pin"]}}
    site = _site(tmp_path, overrides)
    try:
        site.card("04a1b2c3d4e5f6")
        for k in "#2468#":  # card+PIN door: the PIN grants, then the menu opens
            site.key(k)
        for k in "7#1#":
            site.key(k)
        actions = [ev["action"] for ev in site.events if ev["event"] == "face_menu"]
        assert actions[-2:] == ["show_notice", "capture"]
        rgb = load_rgb(faces_dir / "Barack_Obama" / "1.jpg", max_side=640)
        site.face([Frame(rgb, luma=rgb[:, :, 1])] * 4)
        assert [ev["event"] for ev in site.events if ev["event"] == "face_enrolled"]
        assert site.gate.face_privacy.vault.count() == 1
        site.advance(6)
        site.card("04a1b2c3d4e5f6")
        other = load_rgb(faces_dir / "Barack_Obama" / "2.jpg", max_side=640)
        site.face([Frame(other, luma=other[:, :, 1])] * 2)
        granted = [ev for ev in site.events if ev["event"] == "access" and ev["granted"]]
        assert granted[-1]["factors"] == ["card", "face"]
    finally:
        site.close()
