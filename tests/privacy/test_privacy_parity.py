"""Parity from the legal angle (SPC Art. 10, MFR Art. 10, law notes A1-A5):
face is never the only way in, and no face failure locks anyone out."""

from __future__ import annotations

import pytest

from doorpi.config import ConfigError
from doorpi.core.events import FaceRejected
from doorpi.sim.site import sim_config
from site_support import recorded_site

ALICE = {"name": "Alice", "keypad_id": "101", "cards": ["04a1b2c3d4e5f6"], "pin": "2468"}


@pytest.mark.parametrize(
    "door",
    [
        {"access": ["face"]},
        {"access": ["face+card", "face+pin"]},
        {"access": ["FACE"]},
        {"access": ["card", "pin"], "schedule_access": [{"schedule": "daytime", "access": ["face"]}]},
        {"access": ["card"], "schedule_access": [
            {"schedule": "workdays", "access": ["card"]},
            {"schedule": "daytime", "access": ["face+pin", "face+card"]}]},
    ],
)  # fmt: skip
def test_config_refuses_any_face_only_door_or_schedule(tmp_path, door):
    with pytest.raises(ConfigError, match="face is the only way in"):
        sim_config({"door": door}, tmp_path / "data")


@pytest.mark.parametrize(
    "access", [["card", "face"], ["face+card", "pin"], ["card+pin", "face+card", "face"]]
)
def test_face_as_one_option_among_card_or_pin_is_allowed(tmp_path, access):
    cfg = sim_config({"door": {"access": access}}, tmp_path / "data")
    assert any("face" not in c for c in cfg.door.policy.default)


@pytest.fixture
def site(tmp_path, request):
    overrides = getattr(request, "param", {})
    s = recorded_site(tmp_path / "data", [ALICE], overrides, settle=False)
    yield s
    s.close()


def granted(site) -> list[bool]:
    return [e["granted"] for e in site.events if e["event"] == "access"]


def test_with_face_off_card_and_pin_still_open(site):
    assert site.cfg.face.enabled is False
    site.card("04a1b2c3d4e5f6")
    site.advance(6)
    for k in "101#2468#":
        site.key(k)
    assert granted(site) == [True, True]


@pytest.mark.parametrize(
    "site",
    [{"face": {"enabled": True}, "door": {"access": ["card", "pin", "face"]}}],
    indirect=True,
)
@pytest.mark.parametrize("reason", ["no_match", "liveness", "camera_fault", "model_error"])
def test_every_face_failure_falls_back_and_never_locks_out(site, reason):
    for _ in range(7):  # past the 5-failure pause
        site.gate.submit(FaceRejected(reason))
        site.gate.process_pending()
    rejected = [e for e in site.events if e["event"] == "face_rejected"]
    assert len(rejected) == 7 and all(e["reason"] == reason for e in rejected)
    assert any(e["event"] == "face_paused" for e in site.events)
    assert site.gate.face_paused()
    site.card("04a1b2c3d4e5f6")
    site.advance(6)
    for k in "101#2468#":
        site.key(k)
    assert granted(site) == [True, True]
    assert not any(e["event"] == "lockout_started" for e in site.events)


@pytest.mark.parametrize(
    "site", [{"face": {"enabled": True}, "door": {"access": ["card", "face"]}}], indirect=True
)
def test_face_pauses_at_least_30_seconds_after_5_failures(site):
    for _ in range(5):
        site.gate.submit(FaceRejected("no_match"))
        site.gate.process_pending()
    assert site.gate.face_paused()
    site.advance(29)
    assert site.gate.face_paused()
    site.advance(2)
    assert not site.gate.face_paused()
