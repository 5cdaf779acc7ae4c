"""A credential taken away from the device CLI while the gate runs: the gate's
face-parity fault (a resident left with face as their only way in) shows within
its one-second poll, as after a sync import, not at the next start; `doorpi
status` shows it right after; giving the credential back clears it. Real gate
(SimulatedSite, MockFactory pins), `doorpi` as a subprocess on the same data dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from privacy_support import ALICE, FACE_ON, enrol, face_site, unit_vector

FAULT = "face_parity"


def _cfg_file(tmp_path: Path, access: list[str]) -> Path:
    """The CLI's config: the simulated gate's door rule and data dir, face on."""
    p = tmp_path / "doorpi.toml"
    p.write_text(
        f'[site]\ncontroller = "{FACE_ON["site"]["controller"]}"\n'
        f'contact = "{FACE_ON["site"]["contact"]}"\ndata_dir = "{tmp_path / "data"}"\n'
        f"[face]\nenabled = true\n[door]\naccess = {json.dumps(access)}\n"
    )
    return p


def doorpi(cfg: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=120, input=stdin)  # fmt: skip


def _site(tmp_path: Path, access: list[str]):  # type: ignore[no-untyped-def]
    site = face_site(tmp_path, {**FACE_ON, "door": {"access": access}})
    enrol(site.gate.face_privacy, site.rid, unit_vector(1))
    site.advance(1.5)  # past the gate's first one-second poll
    assert FAULT not in site.gate.faults.active
    return site


def _status_faults(cfg: Path) -> dict[str, str]:
    p = doorpi(cfg, "status", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["device_faults"]


def test_pin_clear_shows_the_face_parity_fault_at_once_and_pin_set_clears_it(tmp_path):
    access = ["card+face", "card+pin"]
    site = _site(tmp_path, access)
    cfg = _cfg_file(tmp_path, access)
    try:
        p = doorpi(cfg, "pin", "clear", str(site.rid))
        assert p.returncode == 0, p.stderr
        warn = [ln for ln in p.stdout.splitlines() if ln.startswith("WARNING:")]
        assert len(warn) == 1 and f"resident {site.rid}" in warn[0], p.stdout
        assert "no face-free way to finish" in warn[0]
        site.advance(1.1)
        assert FAULT in site.gate.faults.active
        assert "1 resident(s)" in site.gate.faults.active[FAULT]["detail"]
        assert FAULT in _status_faults(cfg)
        notes = [e for e in site.events if e["event"] == "face_parity"]
        assert [n["resident_id"] for n in notes] == [site.rid]

        p = doorpi(cfg, "pin", "set", str(site.rid), "--stdin", stdin=ALICE["pin"] + "\n")
        assert p.returncode == 0, p.stderr
        site.advance(1.1)
        assert FAULT not in site.gate.faults.active
        assert FAULT not in _status_faults(cfg)
    finally:
        site.close()


def test_card_remove_shows_the_fault_at_once(tmp_path):
    """At a pin+face | card+pin door, a resident whose card goes can still be
    asked for face (PIN then face) but has no face-free way to finish."""
    access = ["pin+face", "card+pin"]
    site = _site(tmp_path, access)
    cfg = _cfg_file(tmp_path, access)
    try:
        ref = site.gate.storage.residents.cards(site.rid)[0]["ref"]
        p = doorpi(cfg, "card", "remove", str(site.rid), ref)
        assert p.returncode == 0, p.stderr
        assert sum(ln.startswith("WARNING:") for ln in p.stdout.splitlines()) == 1, p.stdout
        site.advance(1.1)
        assert FAULT in site.gate.faults.active
    finally:
        site.close()


def test_a_change_that_leaves_a_face_free_way_raises_no_fault(tmp_path):
    """Card removed at a card+face | card+pin door: she can no longer be asked for
    face at all, so no fault (and the check did run: a fault set by hand is cleared)."""
    access = ["card+face", "card+pin"]
    site = _site(tmp_path, access)
    cfg = _cfg_file(tmp_path, access)
    try:
        site.gate._fault(FAULT, True, "stale")
        ref = site.gate.storage.residents.cards(site.rid)[0]["ref"]
        assert doorpi(cfg, "card", "remove", str(site.rid), ref).returncode == 0
        site.advance(1.1)
        assert FAULT not in site.gate.faults.active
    finally:
        site.close()


def test_no_change_no_recheck(tmp_path):
    """The poll re-checks only when a credential changed: a fault set by hand stays."""
    access = ["card+face", "card+pin"]
    site = _site(tmp_path, access)
    try:
        site.gate._fault(FAULT, True, "stale")
        site.advance(3.0)
        assert FAULT in site.gate.faults.active
    finally:
        site.close()
