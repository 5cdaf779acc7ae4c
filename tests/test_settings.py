"""Settings layers: package defaults < installer's boot file < admin's signed settings.

Real files in a temporary data directory; the validator is the gate's own
(`doorpi.config.parse_config`) throughout.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from doorpi.config import ConfigError, default_config_text, load_config
from doorpi.settings import (
    ADMIN,
    APPLIED_NOTE,
    INSTALLER,
    REJECTED_NOTE,
    Layers,
    changed_keys,
    gate_name,
    import_boot_file,
    is_placeholder,
    last_intake,
    misplaced,
    owner,
    parse_assignment,
    placeholder_problem,
)

REAL_SITE = {"controller": "Sunny Garden PM Co.", "contact": "+86 10 5555 0100"}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """The shipped doorpi.toml, as the image installs it, with a temporary data dir."""
    path = tmp_path / "etc" / "doorpi.toml"
    path.parent.mkdir()
    path.write_text(default_config_text().replace("/var/lib/doorpi", str(tmp_path / "data")))
    return path


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    folder = tmp_path / "boot"
    folder.mkdir()
    return folder / "doorpi.toml"


def layer(tmp_path: Path, source: str, text: str) -> Path:
    path = tmp_path / "data" / "config" / f"{source}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ who sets what


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("gpio.strike", INSTALLER),
        ("reader.name", INSTALLER),
        ("keypad.rows", INSTALLER),
        ("door.name", INSTALLER),
        ("door.strike", INSTALLER),
        ("pin.memlimit_kib", INSTALLER),
        ("face.num_threads", INSTALLER),
        ("site.controller", ADMIN),
        ("site.timezone", ADMIN),  # a [site] key added later travels without a code change
        ("door.access", ADMIN),
        ("door.schedule_access", ADMIN),
        ("keypad.pin_min_length", ADMIN),
        ("schedules.weekdays", ADMIN),
        ("face.enabled", ADMIN),
        ("face.retention_days", ADMIN),
        ("lockout.threshold", ADMIN),
        ("site.data_dir", None),
    ],
)
def test_every_key_has_one_owner(key: str, expected: str | None) -> None:
    section, name = key.split(".")
    assert owner(section, name) == expected


def test_every_shipped_key_is_settable_by_someone_but_the_data_dir() -> None:
    doc = tomllib.loads(default_config_text())
    for section, table in doc.items():
        for key in table:
            assert (owner(section, key) is None) == (f"{section}.{key}" == "site.data_dir")


def test_misplaced_keys_are_named_with_their_owner() -> None:
    assert "admin's setting" in str(misplaced({"door": {"access": ["card"]}}, INSTALLER))
    assert "installer's setting" in str(misplaced({"gpio": {"strike": 10}}, ADMIN))
    assert "fixed by the image" in str(misplaced({"site": {"data_dir": "/tmp"}}, ADMIN))
    assert misplaced({"door": {"name": "n", "strike": "fail-safe"}}, INSTALLER) is None
    assert misplaced({"site": {"contact": "x"}, "schedules": {"w": []}}, ADMIN) is None


# ------------------------------------------------------------------ layering


def test_no_layers_is_the_package_file_with_sources(package: Path) -> None:
    cfg = load_config(package)
    assert cfg.gpio.strike == 17
    assert cfg.sources["gpio.strike"].startswith("package (")
    assert "door.name" not in cfg.sources  # the shipped file leaves the gate's name unset


def test_admin_over_installer_over_package(package: Path, tmp_path: Path) -> None:
    layer(tmp_path, "installer", '[door]\nname = "north-gate"\nstrike = "fail-safe"\n'
          "[gpio]\nstrike = 10\n")  # fmt: skip
    layer(
        tmp_path,
        "admin",
        '[door]\naccess = ["card"]\n[schedules]\nweekdays = ["mon-fri 08:00-18:00"]\n',
    )
    cfg = load_config(package)
    assert (cfg.door.name, cfg.door.fail_secure, cfg.gpio.strike) == ("north-gate", False, 10)
    assert [sorted(c) for c in cfg.door.policy.default] == [["card"]]
    assert {"always", "daytime", "workdays", "weekdays"} <= set(cfg.schedules)  # merged per key
    assert cfg.sources["gpio.strike"].startswith("installer (")
    assert cfg.sources["door.access"].startswith("admin (")
    assert cfg.sources["gpio.buzzer"].startswith("package (")
    assert load_config(package, layers=False).gpio.strike == 17


def test_a_bad_layer_is_one_line_naming_its_file(package: Path, tmp_path: Path) -> None:
    path = layer(tmp_path, "admin", "[door]\nunlock_seconds = 900\n")
    with pytest.raises(ConfigError) as err:
        load_config(package)
    assert str(err.value).startswith(f"{path}: door.unlock_seconds: must be a number")
    path.write_text("[door\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(package)


def test_candidate_checks_the_whole_merge(package: Path, tmp_path: Path) -> None:
    layer(tmp_path, "installer", "[gpio]\nstrike = 10\n")
    layers = Layers.load(package)
    # Fine alone, but its schedule_access names a schedule nobody defines.
    bad = {"door": {"schedule_access": [{"schedule": "weekdays", "access": ["card"]}]}}
    with pytest.raises(
        ConfigError, match=r"^settings: door.schedule_access\[0\]: unknown schedule"
    ):
        layers.candidate(ADMIN, bad, "settings")
    bad["schedules"] = {"weekdays": ["mon-fri 08:00-18:00"]}
    assert layers.candidate(ADMIN, bad, "settings").gpio.strike == 10
    with pytest.raises(ConfigError, match=r"door\.access"):
        layers.candidate(ADMIN, {"door": {"access": ["face"]}}, "settings")


# ------------------------------------------------------------------ placeholders


def test_face_is_refused_while_a_placeholder_remains(package: Path) -> None:
    layers = Layers.load(package)
    with pytest.raises(ConfigError, match=r"site.controller: .* shipped placeholder"):
        layers.candidate(ADMIN, {"face": {"enabled": True}}, "settings")
    half = {"site": {"controller": REAL_SITE["controller"]}, "face": {"enabled": True}}
    with pytest.raises(ConfigError, match=r"site.contact: .* shipped placeholder"):
        layers.candidate(ADMIN, half, "settings")
    cfg = layers.candidate(ADMIN, {"site": REAL_SITE, "face": {"enabled": True}}, "settings")
    assert cfg.face.enabled and placeholder_problem(cfg) is None
    # Without face the placeholders are allowed (card and PIN need no controller).
    assert layers.candidate(ADMIN, {"door": {"access": ["card"]}}, "settings")


@pytest.mark.parametrize(
    "value",
    ["Example Court Property Management Ltd.", "office@example.org, +86 10 0000 0000",
     "info@EXAMPLE.com", "EXAMPLE COURT management"],
)  # fmt: skip
def test_placeholder_values(value: str) -> None:
    assert is_placeholder(value)
    assert not is_placeholder("Sunny Garden PM Co., +86 10 5555 0100")


def test_gate_start_and_notices_refuse_placeholders(package: Path, tmp_path: Path) -> None:
    from doorpi.privacy.enrolment import face_enable_problem
    from doorpi.privacy.notices import NoticeDetails, NoticeError

    layer(tmp_path, "admin", "[face]\nenabled = true\n")  # as if written by hand
    cfg = load_config(package)
    assert "site.controller" in str(face_enable_problem(cfg, None))
    details = NoticeDetails("Court", cfg.site.controller, "+86 10 5555 0100", 90, "the gate")
    with pytest.raises(NoticeError, match=r"site\.controller"):
        details.check()
    NoticeDetails("Court", "Real Co.", "+86 10 5555 0100", 90, "the gate").check()


# ------------------------------------------------------------------ the installer's boot file


def test_boot_file_becomes_the_installer_layer(package: Path, boot: Path, tmp_path: Path) -> None:
    text = '# north gate, wired 2026-05\n[door]\nname = "north-gate"\n[gpio]\nstrike = 10\n'
    boot.write_text(text)
    (boot.parent / REJECTED_NOTE).write_text("old")
    result = import_boot_file(package, boot, now=1_780_000_000)
    assert result.result == "applied"
    assert not boot.exists() and not (boot.parent / REJECTED_NOTE).exists()
    assert "north-gate" not in (boot.parent / APPLIED_NOTE).read_text()  # nothing of it stays
    kept = tmp_path / "data" / "config" / "installer.toml"
    assert kept.read_text() == text and kept.stat().st_mode & 0o077 == 0
    cfg = load_config(package)
    assert (cfg.door.name, cfg.gpio.strike) == ("north-gate", 10)
    assert last_intake(cfg).result == "applied"
    # Nothing to do on the next boot.
    assert import_boot_file(package, boot).result == "none"
    assert load_config(package).gpio.strike == 10


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[door]\naccess = [\"card\"]\n", "door.access: the admin's setting"),
        ("[site]\ncontroller = \"Me\"\n", "site.controller: the admin's setting"),
        ("[gpio]\nstrike = 40\n", "gpio.strike: must be a BCM GPIO number"),
        ("[gpio]\nstrike = 22\n", "GPIO22 is already used"),
        ("[gpoi]\nstrike = 10\n", "gpoi: unknown section (did you mean gpio?)"),
        ("[gpio\nstrike = 10\n", "not valid TOML"),
        ("[site]\ndata_dir = \"/tmp/x\"\n", "site.data_dir: fixed by the image"),
    ],
)  # fmt: skip
def test_a_bad_boot_file_is_rejected_and_the_gate_keeps_its_settings(
    package: Path, boot: Path, tmp_path: Path, text: str, reason: str
) -> None:
    boot.write_text('[door]\nname = "north-gate"\n[gpio]\nstrike = 10\n')
    assert import_boot_file(package, boot).result == "applied"
    boot.write_text(text)
    result = import_boot_file(package, boot, now=1_780_000_000)
    assert result.result == "rejected" and reason in result.reason
    assert not boot.exists() and not (boot.parent / APPLIED_NOTE).exists()
    note = (boot.parent / REJECTED_NOTE).read_text()
    first, rest = note.split("\n", 1)
    assert first.startswith("# REJECTED by doorpi at ") and reason in first
    assert rest.endswith(text)  # the installer's own text, to fix on the laptop
    cfg = load_config(package)
    assert (cfg.door.name, cfg.gpio.strike) == ("north-gate", 10)  # the previous settings
    assert last_intake(cfg).result == "rejected"


def test_boot_file_that_is_not_utf8_or_too_big(package: Path, boot: Path) -> None:
    boot.write_bytes('[door]\nname = "北门"\n'.encode("gbk"))
    assert "save it as UTF-8" in import_boot_file(package, boot).reason
    boot.write_text("# x\n" * 20000)
    assert "over 64 KiB" in import_boot_file(package, boot).reason
    boot.write_text('[door]\nname = "北门"\n', encoding="utf-8-sig")  # Notepad's BOM
    assert import_boot_file(package, boot).result == "applied"
    assert load_config(package).door.name == "北门"


def test_gate_name_is_the_installers_or_unique(package: Path, tmp_path: Path) -> None:
    fp_a, fp_b = "1a2b3c" + "0" * 26, "4d5e6f" + "0" * 26
    cfg = load_config(package)
    assert gate_name(cfg, fp_a) == "gate-1a2b3c" != gate_name(cfg, fp_b)
    layer(tmp_path, "installer", '[door]\nname = "north-gate"\n')
    assert gate_name(load_config(package), fp_a) == "north-gate"


# ------------------------------------------------------------------ small parts


def test_parse_assignment_and_changed_keys() -> None:
    assert parse_assignment('door.access=["card", "pin"]') == ("door", "access", ["card", "pin"])
    assert parse_assignment("face.enabled=true") == ("face", "enabled", True)
    assert parse_assignment("site.name=Sunny Garden") == ("site", "name", "Sunny Garden")
    assert parse_assignment('site.contact="+86 10"') == ("site", "contact", "+86 10")
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_assignment("enabled=true")
    # A list of bare words is no TOML: said so, with the quoted form (seen in a trial:
    # "must be a list, got '[card]'", although it looked like one).
    with pytest.raises(ConfigError) as info:
        parse_assignment("door.access=[card, card+pin]")
    assert str(info.value) == (
        "'door.access=[card, card+pin]': [card, card+pin] is not a list TOML reads: quote "
        'each item, e.g. door.access=["card", "card+pin"]'
    )
    old = {"site": {"name": "a", "contact": "c"}, "door": {"access": ["card"]}}
    new = {"site": {"name": "b", "contact": "c"}, "face": {"enabled": False}}
    assert changed_keys(old, new) == ["door.access", "face.enabled", "site.name"]


def test_intake_record_is_json(package: Path, boot: Path, tmp_path: Path) -> None:
    boot.write_text("[gpio]\nstrike = 99\n")
    import_boot_file(package, boot, now=5.0)
    doc = json.loads((tmp_path / "data" / "config" / "intake.json").read_text())
    assert doc["result"] == "rejected" and doc["at"] == 5.0 and "gpio.strike" in doc["reason"]


def test_config_check_says_face_stays_off_with_a_placeholder(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from doorpi.cli import main

    assert main(["--config", str(package), "config", "check"]) == 0
    layer(tmp_path, "admin", "[face]\nenabled = true\n")
    assert main(["--config", str(package), "config", "check"]) == 1
    err = capsys.readouterr().err
    assert "face stays off: site.controller:" in err and "placeholder" in err
    layer(tmp_path, "admin", '[face]\nenabled = true\n[site]\ncontroller = "Real Co."\n'
          'contact = "+86 10 5555 0100"\n')  # fmt: skip
    assert main(["--config", str(package), "config", "check"]) == 0
