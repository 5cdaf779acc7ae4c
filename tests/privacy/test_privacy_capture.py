"""`doorpi consent capture`: the admin asks, the running gate captures with its camera.

A real gate (SimulatedSite: real Gate, gpiozero mock pins, real SQLite, the
real face models on replayed real photos); the CLI's request goes through the
same database the gate process polls.
"""

from __future__ import annotations

import argparse

import pytest
from privacy_support import FACE_ON, face_site

from doorpi.cli import CliError
from doorpi.cli import consent as consent_cli
from doorpi.hardware.camera import Frame, load_rgb
from doorpi.privacy import capture


def _consent(site) -> None:  # type: ignore[no-untyped-def]
    p = site.gate.face_privacy
    p.consent(p.start_enrolment(site.rid, "admin_present", by="admin:li"), confirmed_by="admin:li")


def _frames(faces_dir, rel: str, n: int) -> list[Frame]:  # type: ignore[no-untyped-def]
    rgb = load_rgb(faces_dir / rel, max_side=640)
    return [Frame(rgb, luma=rgb[:, :, 1])] * n


def test_admin_present_capture_enrols_through_the_gate_camera(tmp_path, faces_dir) -> None:
    site = face_site(tmp_path, FACE_ON)
    try:
        _consent(site)
        db = site.gate.storage.db
        req = capture.request(db, site.rid, "admin:li", site.gate.clock.wall())
        site.advance(1.5)  # the gate polls once a second
        assert capture.read(db).status == "capturing"
        notes = [e for e in site.events if e["event"] == "face_capture"]
        assert notes[-1]["status"] == "capturing" and notes[-1]["by"] == "admin:li"
        site.face(_frames(faces_dir, "Barack_Obama/1.jpg", 4))
        done = capture.read(db)
        assert (done.id, done.status) == (req.id, "enrolled")
        assert site.gate.face_privacy.vault.count() == 1
        probe = site.gate.face_privacy.vault.pseudonyms()
        assert probe == [site.gate.storage.residents.get(site.rid).pseudonym]
    finally:
        site.close()


def test_capture_that_sees_no_face_says_so(tmp_path, nonfaces_dir) -> None:
    site = face_site(tmp_path, FACE_ON)
    try:
        _consent(site)
        db = site.gate.storage.db
        capture.request(db, site.rid, "admin:li", site.gate.clock.wall())
        site.advance(1.5)
        photo = sorted(p for p in nonfaces_dir.rglob("*.jpg"))[0]
        rgb = load_rgb(photo, max_side=640)
        site.face([Frame(rgb, luma=rgb[:, :, 1])] * 60)
        site.advance(10)
        done = capture.read(db)
        assert (done.status, done.reason) == ("failed", "no_face")
        assert site.gate.face_privacy.vault.count() == 0
    finally:
        site.close()


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("no_consent", "has no live face consent"),
        ("face_off", "face is off on this gate"),
    ],
)
def test_capture_is_refused_without_consent_or_face(tmp_path, setup: str, reason: str) -> None:
    site = face_site(tmp_path, {} if setup == "face_off" else FACE_ON)
    try:
        db = site.gate.storage.db
        capture.request(db, site.rid, "admin:li", site.gate.clock.wall())
        site.advance(1.5)
        done = capture.read(db)
        assert done.status == "failed" and reason in done.reason
        note = [e for e in site.events if e["event"] == "face_capture"][-1]
        assert note["status"] == "failed" and reason in note["reason"]
    finally:
        site.close()


def test_an_old_request_never_starts_the_camera(tmp_path) -> None:
    site = face_site(tmp_path, FACE_ON)
    try:
        _consent(site)
        db = site.gate.storage.db
        capture.request(db, site.rid, "admin:li", site.gate.clock.wall() - capture.MAX_AGE - 5)
        site.advance(2)
        assert capture.read(db).status == "requested"
        assert not [e for e in site.events if e["event"] == "face_capture"]
    finally:
        site.close()


def test_cli_needs_consent_and_a_running_gate(tmp_path, monkeypatch) -> None:
    site = face_site(tmp_path, FACE_ON)
    cfg_file = tmp_path / "doorpi.toml"
    data = site.gate.storage.db  # the same database file the CLI opens
    cfg_file.write_text(
        f'[site]\ndata_dir = "{tmp_path / "data"}"\ncontroller = "Sunny Garden PM Co."\n'
        'contact = "+86 10 5555 0100"\n[face]\nenabled = true\n'
    )
    args = argparse.Namespace(config=str(cfg_file), id=site.rid, wait=0.6)
    try:
        with pytest.raises(CliError) as info:
            consent_cli.cmd_capture(args)
        assert "no live face consent: record it first" in str(info.value)
        _consent(site)
        with pytest.raises(CliError) as info:  # nobody polls: the gate is not ticking
            consent_cli.cmd_capture(args)
        assert "no answer from the gate in 1 s: is doorpi.service running?" in str(info.value)
        assert capture.read(data).status == "requested"
    finally:
        site.close()
