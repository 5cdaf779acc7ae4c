"""The admin's gate settings in the bundle: checked by the gate's validator, applied with
the roster all or nothing, reported back; and the same check on the laptop."""

from __future__ import annotations

from pathlib import Path

import pytest

from doorpi.config import default_config_text, load_config
from doorpi.settings import Layers
from doorpi.sync.admin import AdminError, check_gate_settings
from doorpi.sync.bundle import BundleError, parse_settings
from sync.helpers import GateRig, resident

REAL = {"controller": "Sunny Garden PM Co.", "contact": "+86 10 5555 0100"}


@pytest.fixture
def package(rig: GateRig, tmp_path: Path) -> Path:
    path = tmp_path / "doorpi.toml"
    path.write_text(default_config_text().replace("/var/lib/doorpi", str(rig.data_dir)))
    (rig.data_dir / "config").mkdir(exist_ok=True)
    (rig.data_dir / "config" / "installer.toml").write_text("[gpio]\nstrike = 10\n")
    rig.importer.layers = Layers.load(path)
    return path


def test_settings_are_applied_with_the_roster(rig: GateRig, package: Path) -> None:
    settings = {"site": REAL, "schedules": {"weekdays": ["mon-fri 08:00-18:00"]}}
    # The resident's schedule exists only in the new settings: checked against them.
    report = rig.apply(rig.bundle(1, [resident("a-1", 1, rig.site, schedule="weekdays")],
                                  settings=settings))  # fmt: skip
    assert report.result == "applied", report.reason
    assert report.changes["settings_changed"] == 3 and "3 settings_changed" in report.summary()
    cfg = load_config(package)
    assert cfg.site.controller == REAL["controller"] and "weekdays" in cfg.schedules
    assert cfg.gpio.strike == 10  # the installer's layer stays
    last = rig.storage.audit.tail(1)[0]
    assert last.data["settings_keys"] == ["schedules.weekdays", "site.contact", "site.controller"]
    # No settings in the next bundle: the gate's stay; the same settings: nothing changed.
    assert rig.apply(rig.bundle(2)).changes["settings_changed"] == 0
    report = rig.apply(rig.bundle(3, settings=settings))
    assert report.result == "applied" and report.changes["settings_changed"] == 0
    assert load_config(package).site.contact == REAL["contact"]


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"gpio": {"strike": 5}}, "gpio.strike: the installer's setting"),
        ({"site": {"data_dir": "/tmp"}}, "site.data_dir: fixed by the image"),
        ({"face": {"enabled": True}}, "site.controller: "),
        ({"lockout": {"threshold": 0}}, "lockout.threshold: must be a whole number"),
        ({"keypad": {"pin_min_length": 9}}, "pin_max_length: must not be below"),
    ],
)
def test_settings_the_gate_refuses_refuse_the_bundle(
    rig: GateRig, package: Path, settings: dict, reason: str
) -> None:
    before = (rig.data_dir / "config" / "installer.toml").read_text()
    report = rig.apply(rig.bundle(1, [resident("a-1", 1, rig.site)], settings=settings))
    assert report.result == "refused" and report.code == "settings"
    assert report.reason.startswith("settings: ") and reason in report.reason
    assert rig.snapshot() == [] and rig.importer.last_sequence() == 0  # nothing applied
    assert not (rig.data_dir / "config" / "admin.toml").exists()
    assert (rig.data_dir / "config" / "installer.toml").read_text() == before


def test_a_roster_that_breaks_the_new_settings_is_refused(rig: GateRig, package: Path) -> None:
    """Longer PINs in the settings: a 5-digit PIN in the roster is then too short, and
    that entry is refused under the new settings (the rest, settings included, apply)."""
    settings = {"keypad": {"pin_min_length": 6, "pin_max_length": 8}}
    report = rig.apply(rig.bundle(1, [resident("a-1", 1, rig.site)], settings=settings))
    assert report.result == "applied", report.reason
    assert [(e["resident"], e["field"]) for e in report.refused_entries] == [("a-1", "pin")]
    assert rig.storage.residents.by_keypad_id("101") is None  # not added
    assert (rig.data_dir / "config" / "admin.toml").exists()


def test_a_gate_without_layers_refuses_settings(rig: GateRig) -> None:
    report = rig.apply(rig.bundle(1, settings={"site": REAL}))
    assert report.result == "refused" and report.code == "settings"


@pytest.mark.parametrize(
    "raw",
    [[], {"site": "x"}, {"site": {"name": None}}, {"site": {"name": "x" * 70000}},
     {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}],
)  # fmt: skip
def test_bundle_settings_shape_is_checked_strictly(raw: object) -> None:
    with pytest.raises(BundleError) as err:
        parse_settings(raw)
    assert err.value.code == "malformed" and str(err.value).startswith("settings")


def test_laptop_checks_with_the_gates_validator() -> None:
    check_gate_settings({"site": REAL, "face": {"enabled": True}}, "gate north")
    for bad, msg in (
        ({"face": {"enabled": True}}, "shipped placeholder"),
        ({"gpio": {"strike": 5}}, "installer's setting"),
        ({"door": {"access": ["face"]}}, "door.access"),
        ({"door": {"acess": ["card"]}}, "did you mean access"),
    ):
        with pytest.raises(AdminError, match=msg) as err:
            check_gate_settings(bad, "gate north")
        assert str(err.value).startswith("gate north: ")
