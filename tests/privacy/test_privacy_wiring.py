"""The privacy wiring in gate.py, config.py, cli/status.py, cli/resident.py,
cli/keys.py and cli/__init__.py, through a simulated gate. Each test names the
wiring step it proves.
"""

from __future__ import annotations

import numpy as np
import pytest
from privacy_support import FACE_ON, face_site, unit_vector

from doorpi.config import ConfigError
from doorpi.core.events import FaceRejected
from doorpi.sim.site import sim_config
from doorpi.store import Storage

_site = face_site


def _enrol(site, e):
    p = site.gate.face_privacy
    t = p.start_enrolment(site.rid, "admin_present", by="admin:test")
    p.consent(t, confirmed_by="admin:test")
    p.enrol(site.rid, e)


def _menu(site) -> list[str]:
    return [ev["action"] for ev in site.events if ev["event"] == "face_menu"]


def _patterns(site) -> list[str]:
    return [ev["pattern"] for ev in site.events if ev["event"] == "feedback"]


def _granted(site) -> list[dict]:
    return [ev for ev in site.events if ev["event"] == "access" and ev["granted"]]


# Wiring 1 + 2: Gate builds FacePrivacy + GateFaceMenu(verify_pin=...); a bare '#' on an
# idle keypad arms it, the next tap goes to it (never to entry), keys go to it first,
# "release" keys are replayed, Notice("face_menu", {"action": kind, "resident_id": id}).
def test_withdraw_at_the_gate_hash_card_pin_then_9_1(tmp_path):
    site = _site(tmp_path, FACE_ON)
    try:
        e = unit_vector(1)
        _enrol(site, e)
        site.key("#")
        site.card("04a1b2c3d4e5f6")
        for k in "2468#9#1#":
            site.key(k)
        assert _menu(site) == ["armed", "pin_needed", "menu", "ask_withdraw", "withdrawn"]
        assert not _granted(site)
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


@pytest.mark.parametrize("access", [["card", "pin"], ["card+pin"]])
def test_entering_the_menu_never_opens_the_door(tmp_path, access):
    """Issue #13: on a card-only door the tap that entered the menu opened the door.
    Now '#' then the tap is the menu's, on every door: no grant, strike never
    released, each step its own pattern; a second tap afterwards goes in."""
    site = _site(tmp_path, {**FACE_ON, "door": {"access": access}})
    try:
        released: list[bool] = []
        site.key("#")
        site.card("04a1b2c3d4e5f6")
        released.append(site.gate.door.strike_released)
        for k in "2468#7#":
            site.key(k)
            released.append(site.gate.door.strike_released)
        assert not _granted(site) and not any(released)
        assert _menu(site) == ["armed", "pin_needed", "menu", "ask_consent"]
        assert [p for p in _patterns(site) if p != "key"] == [
            "card_needed",
            "pin_needed",
            "face_menu",
            "face_question",
        ]
        notice = [ev for ev in site.events if ev["event"] == "face_menu"][-1]["notice"]
        assert notice.split()[-1] == site.gate.face_privacy.notice("consent").version
        site.key("*")  # leaves without answering: nothing recorded
        assert _menu(site)[-1] == "cancelled"
        assert site.gate.face_privacy.consents.live(
            site.storage.residents.get(site.rid).pseudonym, site.clock.wall()
        ) is None  # fmt: skip
        site.card("04a1b2c3d4e5f6")  # then in, the usual way
        if access == ["card+pin"]:
            for k in "2468#":
                site.key(k)
        assert len(_granted(site)) == 1
    finally:
        site.close()


def test_the_menu_is_not_left_open_after_somebody_else_s_grant(tmp_path):
    """Before, a card+PIN grant left the menu open for 20 s: the next person at the
    keypad could answer 7 # 1 # for the resident who had just gone in."""
    site = _site(tmp_path, {**FACE_ON, "door": {"access": ["card+pin"]}})
    try:
        site.card("04a1b2c3d4e5f6")
        for k in "2468#":
            site.key(k)
        assert len(_granted(site)) == 1
        for k in "7#1#":  # a stranger, seconds later
            site.key(k)
        assert _menu(site) == []
        assert site.gate.face_privacy.consents.history(
            site.storage.residents.get(site.rid).pseudonym
        ) == []  # fmt: skip
    finally:
        site.close()


def test_a_wrong_pin_in_the_menu_counts_and_the_door_stays_shut(tmp_path):
    site = _site(tmp_path, {**FACE_ON, "door": {"access": ["card", "pin"]}})
    try:
        site.key("#")
        site.card("04a1b2c3d4e5f6")
        for k in "1111#":
            site.key(k)
        assert _menu(site)[-1] == "wrong_pin" and not _granted(site)
        assert site.gate.lockout.failures(f"resident:{site.rid}") == 1
        site.key("#")
        site.card("ffffffff")  # an unknown card after '#': refused as ever, no menu
        assert _menu(site)[-1] == "armed" and _patterns(site)[-1] == "denied"
    finally:
        site.close()


def test_a_capture_timeout_ends_with_its_own_pattern_not_card_needed(tmp_path):
    """Issue #13: the enrolment capture timing out played "card needed". Now it is
    "face not captured" (try again or see the office), it is no face failure at the
    door (no pause count), and the consent stays for the next try."""
    site = _site(tmp_path, {**FACE_ON, "door": {"access": ["card", "pin"]}})
    try:
        assert site.face_path is not None, "face models missing: run `make models`"
        site.key("#")
        site.card("04a1b2c3d4e5f6")
        for k in "2468#7#1#":
            site.key(k)
        assert _menu(site)[-1] == "capture" and _patterns(site)[-1] == "face_needed"
        seen = len(site.events)
        site.advance(site.cfg.face.window_seconds + 1)  # nobody looks at the camera
        after = [ev["pattern"] for ev in site.events[seen:] if ev["event"] == "feedback"]
        assert after == ["face_not_captured"]
        assert [ev["event"] for ev in site.events[seen:] if ev["event"] != "feedback"] == [
            "face_not_captured"
        ]
        assert site.gate.face_lockout.failures("face") == 0
        assert site.gate.face_privacy.consents.live(
            site.storage.residents.get(site.rid).pseudonym, site.clock.wall()
        ) is not None  # fmt: skip
        # A face attempt at the door still falls back as before.
        site.gate.submit(FaceRejected("timeout"))
        site.gate.process_pending()
        assert _patterns(site)[-1] == "card_needed"
    finally:
        site.close()


def test_an_admin_capture_timeout_says_not_captured_too(tmp_path):
    site = _site(tmp_path, FACE_ON)
    try:
        p = site.gate.face_privacy
        t = p.start_enrolment(site.rid, "admin_present", by="admin:test")
        p.consent(t, confirmed_by="admin:test")
        site.gate._enrol_capture(site.rid)  # what the CLI's capture request starts
        seen = len(site.events)
        site.advance(site.cfg.face.window_seconds + 1)
        assert [ev["pattern"] for ev in site.events[seen:] if ev["event"] == "feedback"] == [
            "face_not_captured"
        ]
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
        f'[site]\ndata_dir = "{tmp_path / "data"}"\ncontroller = "C"\ncontact = "c"\n'
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
        site.key("#")
        site.card("04a1b2c3d4e5f6")
        for k in "2468#7#1#":
            site.key(k)
        assert _menu(site)[-2:] == ["ask_consent", "capture"]
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
