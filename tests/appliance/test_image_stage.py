"""The pi-gen stage and image scripts, checked without building an image.

A full pi-gen build needs the Raspberry Pi OS archive and cannot run here
(firmware_image/build.sh). These tests catch what would otherwise only fail an hour
into that build or on the device: a step pi-gen silently ignores because of its name or
mode, a shell error, a package the units need missing from the lists, a file installed
with the wrong mode, and a data partition or boot command line that is not what the
read-only design assumes. (rootfs-test.sh is the slow, opt-in install test.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "firmware_image"
STAGE = IMAGE / "stage-doorpi"
SYSTEMD = REPO / "systemd"

# pi-gen runs, in each numbered sub-stage, only files with exactly these names
# (scripts must be executable, or pi-gen skips them without a word).
STEP_FILE = re.compile(r"^\d\d-(packages|packages-nr|debconf|run\.sh|run-chroot\.sh|patches)$")


def all_scripts() -> list[Path]:
    """Every shell script of the appliance: image scripts, stage steps, the sync helper."""
    scripts = sorted(IMAGE.glob("*.sh")) + sorted(STAGE.glob("**/*.sh"))
    return [*scripts, STAGE / "EXPORT_IMAGE", IMAGE / "config", SYSTEMD / "doorpi-usb-sync"]


def package_list() -> set[str]:
    names: set[str] = set()
    for path in STAGE.glob("*/[0-9][0-9]-packages*"):
        for line in path.read_text().splitlines():
            names.update(line.split("#")[0].split())
    return names


def test_stage_top_level_layout() -> None:
    prerun = STAGE / "prerun.sh"
    assert "copy_previous" in prerun.read_text()
    assert os.access(prerun, os.X_OK)
    assert (STAGE / "EXPORT_IMAGE").is_file()
    assert 'IMG_SUFFIX="-doorpi"' in (STAGE / "EXPORT_IMAGE").read_text()
    steps = sorted(p.name for p in STAGE.iterdir() if p.is_dir())
    assert steps == ["00-system", "01-doorpi", "02-readonly"]


@pytest.mark.parametrize("step", ["00-system", "01-doorpi", "02-readonly"])
def test_step_files_are_named_and_executable_as_pi_gen_expects(step: str) -> None:
    entries = [p for p in (STAGE / step).iterdir() if p.name != "files"]
    assert entries
    for path in entries:
        assert STEP_FILE.match(path.name), f"pi-gen ignores {step}/{path.name}"
        if path.name.endswith(".sh"):
            assert os.access(path, os.X_OK), f"{step}/{path.name} not executable"
            assert path.read_text().startswith("#!/bin/bash -e"), "pi-gen steps stop on error"


def test_packages_lists_are_clean() -> None:
    for path in STAGE.glob("*/[0-9][0-9]-packages*"):
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        assert lines, path
        assert len(lines) == len(set(lines)), f"duplicates in {path}"
        for line in lines:
            assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", line), f"{path}: {line!r}"


def test_packages_cover_what_the_units_and_gate_need() -> None:
    packages = package_list()
    needed = {
        "pcscd",  # doorpi.service Wants=pcscd.socket
        "libccid",  # USB CCID readers
        "python3-venv",  # /opt/doorpi/venv
        "python3-picamera2",  # camera, through --system-site-packages
        "python3-lgpio",  # gpiozero's pin factory on Pi 5
        "python3-pyscard",  # selftest and the reader adapter
        "util-linux",  # setpriv, blkid in doorpi-usb-sync
        "mount",  # mount/umount in doorpi-usb-sync
        "exfatprogs",  # exFAT sticks
        "overlayroot",  # read-only root
        "initramfs-tools",  # overlayroot runs in the initramfs
        "tpm-udev",  # /dev/tpmrm0 group tss, which the units' SupplementaryGroups=tss rely on
    }
    assert needed <= packages, needed - packages
    # Tools the sync helper calls are in the lists' packages.
    script = (SYSTEMD / "doorpi-usb-sync").read_text()
    for tool in ("blkid", "mount", "setpriv", "umount"):
        assert re.search(rf"\b{tool}\b", script)


@pytest.mark.parametrize("script", all_scripts(), ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (apt-get install shellcheck)"
    # EXPORT_IMAGE and config have no shebang (pi-gen sources them from bash).
    shell = ["--shell=bash"] if script.name in ("EXPORT_IMAGE", "config") else []
    proc = subprocess.run(
        [shellcheck, *shell, str(script)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


def test_image_scripts_are_executable() -> None:
    for name in ("build.sh", "rootfs-test.sh", "add-data-partition.sh", "update-card.sh"):
        assert os.access(IMAGE / name, os.X_OK), name
    assert "stage-doorpi" in (IMAGE / "config").read_text()
    config = (IMAGE / "config").read_text()
    assert re.search(r"^ENABLE_SSH=0$", config, re.M)
    assert re.search(r"^ENABLE_CLOUD_INIT=0$", config, re.M)


def test_doorpi_step_installs_every_systemd_file_with_modes() -> None:
    run = (STAGE / "01-doorpi/00-run.sh").read_text()
    for path in SYSTEMD.iterdir():
        assert path.name in run, f"{path.name} is not installed into the image"
    assert re.search(r"install -m 0640 files/doorpi\.toml", run)
    assert re.search(r"install -m 0755 files/systemd/doorpi-usb-sync", run)
    for unit in ("doorpi.service", "doorpi-firstboot.service", "doorpi-sync@.service"):
        assert unit in run
    chroot = (STAGE / "01-doorpi/01-run-chroot.sh").read_text()
    assert "--system-site-packages" in chroot
    assert "--no-index" in chroot, "the image installs from the wheelhouse, offline"
    assert "systemctl enable doorpi.service doorpi-firstboot.service" in chroot
    assert re.search(r"systemctl enable [^\n]*\\\n\s*doorpi-pcscd-watch\.timer", chroot)
    # Timers too: build.sh hands them to the stage, rootfs-test.sh installs and enables them.
    assert '"$REPO"/systemd/*.timer' in (IMAGE / "build.sh").read_text()
    rootfs = (IMAGE / "rootfs-test.sh").read_text()
    assert '"$REPO"/systemd/*.timer' in rootfs
    assert re.search(r"in_root systemctl enable [^\n]*\\\n[^\n]*doorpi-pcscd-watch\.timer", rootfs)
    assert "systemd-sysusers" in chroot
    assert "passwd -l root" in chroot


def test_image_ships_the_face_runtime_on_the_system_numpy() -> None:
    """The face extra is in the image by default, installed against Raspberry Pi OS's own
    numpy (python3-picamera2 is built against it), never with a numpy of its own."""
    build = (IMAGE / "build.sh").read_text()
    assert '"${DOORPI_FACE:-1}" != "0"' in build, "face runtime by default, DOORPI_FACE=0 opts out"
    assert 'LOCKS+=("$HERE/requirements-face.lock")' in build
    # ai-edge-litert 2.x is manylinux_2_27_aarch64 only, and pip does not widen --platform.
    assert "$(seq 17 36)" in build and "manylinux_2_${minor}_aarch64" in build

    chroot = (STAGE / "01-doorpi/01-run-chroot.sh").read_text()
    # numpy is in no lock (test_image_locks_pin_the_tested_versions_with_hashes), and
    # no resolver runs: pip check proves the locked packages accept the system numpy.
    assert "--no-deps" in chroot and "pip check" in chroot
    assert '"/usr/lib/python3/dist-packages/"' in chroot, "the venv must import the system numpy"
    assert chroot.index("import ai_edge_litert.interpreter") < chroot.index(
        "rm -rf /opt/doorpi/wheels"
    )

    # The opt-in qemu test installs it the same way and runs the real pipeline.
    rootfs = (IMAGE / "rootfs-test.sh").read_text()
    assert INSTALL_ORDER in rootfs and "pip check" in rootfs
    assert "rootfs-face-check.py" in rootfs and (IMAGE / "rootfs-face-check.py").is_file()
    # The known answers travel with the models; the qemu test proves they catch a bad CPU.
    assert 'cp "$REPO/models/kat.json" "$FILES/models/kat.json"' in build
    assert 'cp "$REPO/models/kat.json" "$ROOT/opt/doorpi/models/kat.json"' in rootfs
    assert "in_root_cpu max" in rootfs and '*"known-answer test failed"*' in rootfs


def test_rootfs_face_check_runs_the_real_pipeline(faces_dir: Path) -> None:
    """The check rootfs-test.sh runs under qemu, run here: same person above the shipped
    threshold, another person below it (the photos rootfs-test.sh uses)."""
    from doorpi.vision.models import REPO_BUILD_DIR, SUMS

    models = Path(os.environ.get("DOORPI_MODELS_DIR") or REPO_BUILD_DIR)
    if not (models / SUMS).is_file():
        pytest.fail(f"face models not found in {models}: run make models")
    photos = ["Ariel_Sharon/1.jpg", "Ariel_Sharon/2.jpg", "Barack_Obama/1.jpg"]
    rootfs = (IMAGE / "rootfs-test.sh").read_text()
    for photo in photos:
        assert f"faces/{photo}" in rootfs

    def check(*names: str) -> subprocess.CompletedProcess[str]:
        script = str(IMAGE / "rootfs-face-check.py")
        argv = [sys.executable, script, str(models), *(str(faces_dir / n) for n in names)]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    run = check(*photos)
    assert run.returncode == 0, run.stdout + run.stderr
    same, different = map(
        float, re.search(r"same person ([\d.-]+), different person ([\d.-]+)", run.stdout).groups()
    )
    assert same > 0.45 > different
    assert re.search(r"^numpy \d", run.stdout, re.M) and "ai-edge-litert" in run.stdout

    # And it fails when the two photos are of different people.
    wrong = check(photos[0], photos[2], photos[1])
    assert wrong.returncode == 1 and "wrong side of the threshold" in wrong.stderr


def test_files_in_the_stage_are_not_executable_by_accident() -> None:
    for path in STAGE.glob("*/files/**/*"):
        if path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert not mode & 0o111, f"{path} is executable"


def test_data_partition_and_read_only_root_settings() -> None:
    fstab = (STAGE / "00-system/files/fstab-doorpi").read_text()
    entry = next(line for line in fstab.splitlines() if line.startswith("LABEL="))
    spec, mountpoint, fstype, options, _, passno = entry.split()
    assert (spec, mountpoint, fstype, passno) == (
        "LABEL=doorpi-data",
        "/var/lib/doorpi",
        "ext4",
        "2",
    )
    opts = set(options.split(","))
    assert {"data=journal", "nosuid", "nodev", "noexec"} <= opts
    readonly = (STAGE / "02-readonly/01-run.sh").read_text()
    assert "overlayroot=tmpfs:recurse=0" in readonly
    assert "update-initramfs" in readonly
    journald = (STAGE / "00-system/files/journald-doorpi.conf").read_text()
    assert "Storage=volatile" in journald


def make_pi_gen_like_image(path: Path) -> None:
    """A 64 MiB image shaped like pi-gen's: FAT boot partition with cmdline.txt + root."""
    subprocess.run(["truncate", "-s", "64M", str(path)], check=True)
    table = "label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=table, text=True, check=True)
    boot = path.with_suffix(".fat")
    subprocess.run(["truncate", "-s", "16M", str(boot)], check=True)
    subprocess.run(["mkfs.vfat", "-n", "BOOTFS", str(boot)], check=True, capture_output=True)
    cmdline = path.with_suffix(".txt")
    cmdline.write_text(
        "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 "
        "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
    )
    subprocess.run(["mcopy", "-i", str(boot), str(cmdline), "::cmdline.txt"], check=True)
    subprocess.run(
        ["dd", f"if={boot}", f"of={path}", "bs=512", "seek=2048", "conv=notrunc", "status=none"],
        check=True,
    )


def test_add_data_partition_on_a_synthetic_image(tmp_path: Path) -> None:
    image = tmp_path / "doorpi.img"
    make_pi_gen_like_image(image)
    run = subprocess.run(
        [str(IMAGE / "add-data-partition.sh"), str(image), "32"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    dump = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
    ).stdout
    parts = json.loads(dump)["partitiontable"]["partitions"]
    assert len(parts) == 3
    data = parts[2]
    assert data["type"] == "83"
    assert data["start"] >= parts[1]["start"] + parts[1]["size"], "after the root partition"
    assert data["size"] == 32 * 2048
    # Pull the new file system out and read its superblock.
    fs = tmp_path / "data.ext4"
    subprocess.run(
        [
            "dd",
            f"if={image}",
            f"of={fs}",
            "bs=512",
            f"skip={data['start']}",
            f"count={data['size']}",
            "status=none",
        ],
        check=True,
    )
    sb = subprocess.run(
        ["dumpe2fs", "-h", str(fs)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"Filesystem volume name:\s+doorpi-data", sb)
    assert re.search(r"Default mount options:.*journal_data", sb)
    assert "has_journal" in sb
    cmdline = subprocess.run(
        ["mtype", "-i", f"{image}@@{2048 * 512}", "::cmdline.txt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert cmdline.startswith("overlayroot=tmpfs:recurse=0 ")
    assert "raspberrypi-sys-mods/firstboot" not in cmdline
    assert "root=PARTUUID=1234abcd-02" in cmdline

    # A second run must refuse rather than add a fourth partition.
    again = subprocess.run(
        [str(IMAGE / "add-data-partition.sh"), str(image), "32"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode != 0 and "already" in again.stderr


def sfdisk_parts(image: Path) -> list[dict[str, int | str]]:
    dump = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
    )
    return json.loads(dump.stdout)["partitiontable"]["partitions"]


def read_sectors(image: Path, start: int, count: int) -> bytes:
    with open(image, "rb") as fh:
        fh.seek(start * 512)
        return fh.read(count * 512)


def _flashed_card(tmp_path: Path) -> Path:
    """A card as the image leaves it: pi-gen's two partitions plus the 16 MiB data one."""
    card = tmp_path / "card.img"
    make_pi_gen_like_image(card)
    subprocess.run(
        [str(IMAGE / "add-data-partition.sh"), str(card), "16"], check=True, capture_output=True
    )
    return card


def test_update_card_keeps_the_data_partition(tmp_path: Path) -> None:
    """An update rewrites boot and root, never the keys and database on partition 3."""
    card = _flashed_card(tmp_path)
    data = sfdisk_parts(card)[2]
    data_before = read_sectors(card, int(data["start"]), int(data["size"]))

    new = tmp_path / "new.img"
    make_pi_gen_like_image(new)
    root = sfdisk_parts(new)[1]
    marker = b"doorpi 0.2.0 root".ljust(512, b"\0")
    with open(new, "r+b") as fh:
        fh.seek(int(root["start"]) * 512 + 4096)
        fh.write(marker)
    subprocess.run(["sfdisk", "--disk-id", str(new), "0x0badcafe"], check=True, capture_output=True)

    run = subprocess.run(
        [str(IMAGE / "update-card.sh"), str(new), str(card)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert read_sectors(card, int(root["start"]) + 8, 1) == marker
    assert read_sectors(card, int(data["start"]), int(data["size"])) == data_before
    assert len(sfdisk_parts(card)) == 3
    disk_id = subprocess.run(
        ["sfdisk", "--disk-id", str(card)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert disk_id == "0x0badcafe", "PARTUUIDs in cmdline.txt and fstab must match"


def test_update_card_refuses_a_root_that_does_not_fit(tmp_path: Path) -> None:
    card = _flashed_card(tmp_path)
    before = card.read_bytes()
    new = tmp_path / "new.img"
    subprocess.run(["truncate", "-s", "96M", str(new)], check=True)
    table = "label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n"
    subprocess.run(["sfdisk", "-q", str(new)], input=table, text=True, check=True)
    run = subprocess.run(
        [str(IMAGE / "update-card.sh"), str(new), str(card)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0 and "does not fit" in run.stderr
    assert card.read_bytes() == before


def test_update_card_refuses_a_card_without_data_partition(tmp_path: Path) -> None:
    card = tmp_path / "card.img"
    make_pi_gen_like_image(card)
    run = subprocess.run(
        [str(IMAGE / "update-card.sh"), str(card), str(card)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0 and "no data partition" in run.stderr
    # Only here may a full flash come up, and then with what it costs.
    assert "erases the gate's keys, database and audit log" in run.stderr
    assert "pair again" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def _update_card(*args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(user or []), "bash", str(IMAGE / "update-card.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _one_line_without_flash_advice(run: subprocess.CompletedProcess[str], *words: str) -> None:
    """A failure that is not "the card truly lacks partition 3" must never suggest
    flashing the full image: following that advice wipes the gate's keys and data."""
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "flash" not in run.stderr and "partition 3" not in run.stderr, run.stderr
    for word in words:
        assert word in lines[0], run.stderr


def test_update_card_usage_is_a_usage_line() -> None:
    for args in ((), ("only-one.img",), ("a.img", "")):
        run = _update_card(*args)
        assert run.returncode == 2
        assert run.stderr.startswith("usage: update-card.sh NEW_IMAGE CARD"), run.stderr
        assert "line " not in run.stderr


def test_update_card_names_a_missing_image_or_card(tmp_path: Path) -> None:
    card = _flashed_card(tmp_path)
    before = card.read_bytes()
    _one_line_without_flash_advice(
        _update_card(str(tmp_path / "nonexist.img"), str(card)), "image", "does not exist"
    )
    typo = tmp_path / "sdz"
    _one_line_without_flash_advice(_update_card(str(card), str(typo)), "card", str(typo))
    assert not typo.exists(), "a mistyped device must not become a file"
    _one_line_without_flash_advice(
        _update_card(str(card), "/dev/null"), "/dev/null", "not a block device"
    )
    # An image file the card "reader" cannot parse: sfdisk's own reason, not "flash".
    blank = tmp_path / "blank.img"
    subprocess.run(["truncate", "-s", "8M", str(blank)], check=True)
    _one_line_without_flash_advice(_update_card(str(card), str(blank)), "sfdisk", str(blank))
    _one_line_without_flash_advice(_update_card(str(blank), str(card)), "image", str(blank))
    assert card.read_bytes() == before


@pytest.fixture
def dead_block_device() -> Iterator[Path]:
    """A block device node no driver answers (major 240 is reserved for local use): what
    sfdisk sees for a card reader with no card or a device that went away. It lives in a
    directory anyone may enter (pytest's tmp_path is root's alone), with the image."""
    assert os.geteuid() == 0, "making a block device node needs root (make test runs as root)"
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o755)
        node = Path(shared) / "sdz"
        os.mknod(node, 0o660 | stat.S_IFBLK, os.makedev(240, 0))
        yield node


def test_update_card_needs_root_for_a_device(dead_block_device: Path) -> None:
    image = dead_block_device.parent / "new.img"
    make_pi_gen_like_image(image)
    image.chmod(0o644)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    run = _update_card(str(image), str(dead_block_device), user=nobody)
    _one_line_without_flash_advice(run, str(dead_block_device), "root", "sudo")


def test_update_card_names_a_card_sfdisk_cannot_read(
    tmp_path: Path, dead_block_device: Path
) -> None:
    image = tmp_path / "new.img"
    make_pi_gen_like_image(image)
    run = _update_card(str(image), str(dead_block_device))
    _one_line_without_flash_advice(run, "sfdisk cannot read", str(dead_block_device))


def _unit(name: str) -> dict[str, list[str]]:
    from appliance.test_systemd import parse_unit

    return parse_unit(SYSTEMD / name)


def test_boot_partition_settings_are_taken_before_the_keys_and_the_gate() -> None:
    """doorpi-settings.service: whenever /boot/firmware/doorpi.toml is there, before the
    pairing name is used (firstboot's keys) and before the gate reads its config."""
    unit = _unit("doorpi-settings.service")
    assert unit["Unit.ConditionPathExists"] == ["/boot/firmware/doorpi.toml"]
    before = unit["Unit.Before"][0].split()
    assert {"doorpi-firstboot.service", "doorpi.service"} <= set(before)
    assert set(unit["Unit.RequiresMountsFor"][0].split()) == {"/var/lib/doorpi", "/boot/firmware"}
    assert unit["Service.ExecStart"][0].endswith("config import-boot /boot/firmware/doorpi.toml")
    assert set(unit["Service.ReadWritePaths"][0].split()) == {"/var/lib/doorpi", "/boot/firmware"}
    assert unit["Service.PrivateNetwork"] == ["yes"]
    for name in ("doorpi.service", "doorpi-firstboot.service"):
        assert "doorpi-settings.service" in _unit(name)["Unit.After"][0].split(), name
    assert "doorpi-settings.service" in _unit("doorpi.service")["Unit.Wants"][0].split()
    # Installed, enabled, and its data folder made private to the gate.
    assert "doorpi-settings.service" in (STAGE / "01-doorpi/00-run.sh").read_text()
    enable = (STAGE / "01-doorpi/01-run-chroot.sh").read_text()
    assert re.search(r"systemctl enable [^\n]*doorpi-settings\.service", enable)
    tmpfiles = (SYSTEMD / "doorpi-tmpfiles.conf").read_text()
    assert re.search(r"^d /var/lib/doorpi/config\s+0700 doorpi doorpi", tmpfiles, re.M)
    # The slow qemu test proves it on an arm64 root: boot file in, bundle changes it.
    rootfs = (IMAGE / "rootfs-test.sh").read_text()
    assert "$ROOT/boot/firmware/doorpi.toml" in rootfs and "doorpi-settings.service" in rootfs
    assert "3 settings_changed" in rootfs
    assert (
        "mmdebstrap arch-test qemu-user-static binfmt-support"
        in (REPO / "scripts/system-deps.sh").read_text()
    )
    assert "system-deps.sh image" in (REPO / "Makefile").read_text()


def test_settings_unit_command_takes_the_boot_file(tmp_path: Path) -> None:
    """The unit's own command line, on a fake root: the file moves to the data partition,
    the boot partition keeps a note, the gate's effective config has the installer's values."""
    from doorpi.config import default_config_text, load_config

    root = tmp_path / "root"
    argv = _unit("doorpi-settings.service")["Service.ExecStart"][0].split()
    assert argv[0] == "/opt/doorpi/venv/bin/doorpi"
    cmd = [sys.executable, "-m", "doorpi"] + [
        str(root) + a if a.startswith(("/etc/", "/boot/")) else a for a in argv[1:]
    ]
    config = root / "etc/doorpi/doorpi.toml"
    config.parent.mkdir(parents=True)
    data = root / "var/lib/doorpi"
    config.write_text(default_config_text().replace("/var/lib/doorpi", str(data)))
    boot = root / "boot/firmware/doorpi.toml"
    boot.parent.mkdir(parents=True)
    boot.write_text('[door]\nname = "east-gate"\n[reader]\nname = "ACS ACR122U"\n')
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not boot.exists() and (boot.parent / "doorpi.toml.applied.txt").is_file()
    cfg = load_config(config)
    assert (cfg.door.name, cfg.reader.name) == ("east-gate", "ACS ACR122U")
    # No file on the next boot: the unit's condition skips it, and the command is harmless.
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and load_config(config).door.name == "east-gate"


# ---------------------------------------------------------------- network surface (#15)

CHECK = IMAGE / "network-surface-check.sh"
NO_NETWORK = STAGE / "00-system" / "02-run-chroot.sh"


def _fake_unit(root: Path, name: str, body: str, enable: bool = True) -> None:
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / name).write_text(body)
    if enable:
        target = "sockets.target" if name.endswith(".socket") else "multi-user.target"
        wants = root / f"etc/systemd/system/{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / name).symlink_to(f"/usr/lib/systemd/system/{name}")


def _pi_os_lite(root: Path) -> None:
    """What Raspberry Pi OS Lite enables, as far as the network is concerned."""
    _fake_unit(root, "avahi-daemon.service", "[Service]\nExecStart=/usr/sbin/avahi-daemon -s\n")
    _fake_unit(root, "avahi-daemon.socket", "[Socket]\nListenStream=/run/avahi-daemon/socket\n")
    _fake_unit(root, "NetworkManager.service", "[Service]\nExecStart=/usr/sbin/NetworkManager\n")
    _fake_unit(root, "ssh.socket", "[Socket]\nListenStream=22\nAccept=yes\n")
    _fake_unit(root, "pcscd.socket", "[Socket]\nListenStream=/run/pcscd/pcscd.comm\n")
    _fake_unit(root, "doorpi.service", "[Service]\nExecStart=/opt/doorpi/venv/bin/doorpi run\n")


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CHECK), str(root)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def _masked_and_no_drivers(root: Path) -> None:
    etc = root / "etc/systemd/system"
    for name in ("avahi-daemon.service", "avahi-daemon.socket", "NetworkManager.service",
                 "ssh.socket"):  # fmt: skip
        (etc / name).symlink_to("/dev/null")
    conf = root / "etc/modprobe.d/doorpi-no-network.conf"
    conf.parent.mkdir(parents=True)
    # The drivers exactly as the image's step writes them.
    text = NO_NETWORK.read_text()
    conf.write_text(text.split("<<'CONF'\n")[1].split("CONF\n")[0])


def test_network_check_finds_what_raspberry_pi_os_lite_enables(tmp_path: Path) -> None:
    _pi_os_lite(tmp_path)
    p = _check(tmp_path)
    assert p.returncode == 1
    for finding in ("avahi-daemon.service starts a network daemon", "ssh.socket listens on '22'",
                    "NetworkManager.service is enabled", "driver usbnet is not disabled"):  # fmt: skip
        assert finding in p.stderr, p.stderr
    assert "pcscd" not in p.stderr and "doorpi.service" not in p.stderr  # AF_UNIX, no daemon


def test_network_check_passes_masked_units_and_unix_sockets(tmp_path: Path) -> None:
    _pi_os_lite(tmp_path)
    _masked_and_no_drivers(tmp_path)
    p = _check(tmp_path)
    assert p.returncode == 0, p.stderr
    assert "2 enabled units" in p.stdout  # pcscd.socket and doorpi.service were read


@pytest.mark.parametrize("listen", ["0.0.0.0:80", "[::]:5353", "8080", "vsock:2:1234"])
def test_network_check_refuses_any_network_listener(tmp_path: Path, listen: str) -> None:
    _pi_os_lite(tmp_path)
    _masked_and_no_drivers(tmp_path)
    _fake_unit(tmp_path, "vendor-thing.socket", f"[Socket]\nListenDatagram={listen}\n")
    p = _check(tmp_path)
    assert p.returncode == 1 and f"vendor-thing.socket listens on '{listen}'" in p.stderr


def test_image_step_masks_every_unit_the_check_requires_masked() -> None:
    step = NO_NETWORK.read_text()
    check = CHECK.read_text()
    required = re.search(r"NET_UNITS=\(([^)]*)\)", check)
    assert required
    for unit in required.group(1).split():
        assert unit in step, f"02-run-chroot.sh does not mask {unit}"
    assert "systemctl mask" in step and "apt-get purge" in step
    stage1 = (STAGE / "00-system" / "01-run.sh").read_text()
    assert "dtoverlay=disable-wifi" in stage1 and "dtoverlay=disable-bt" in stage1


# ---------------------------------------------------------------- locked wheels (#15)


def _lock_pins(name: str) -> dict[str, tuple[str, list[str]]]:
    text = "".join(line for line in (IMAGE / name).read_text().splitlines(True)
                   if not line.startswith("#"))  # fmt: skip
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", text.strip()):
        head = re.match(r"([a-z0-9._-]+)==(\S+)", block)
        assert head, block
        pins[head.group(1)] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


@pytest.mark.parametrize(
    "lock", ["requirements.lock", "requirements-face.lock", "requirements-tpm.lock"]
)
def test_image_locks_pin_the_tested_versions_with_hashes(lock: str) -> None:
    from importlib.metadata import version

    pins = _lock_pins(lock)
    assert pins
    # Pinned apart from the tests only where the image's numpy 1.24 demands it, and said so.
    overrides = dict(re.findall(r"^# ([a-z0-9._-]+)==(\S+), not the tests' version: .+$",
                                (IMAGE / lock).read_text(), re.M))  # fmt: skip
    assert set(overrides) <= {"ml-dtypes"}, overrides
    for name, (ver, hashes) in pins.items():
        assert hashes, f"{lock}: {name} has no sha256"
        want = overrides.get(name, version(name))
        assert ver == want, f"{lock}: {name}=={ver}, the tests run {version(name)}"
    # Raspberry Pi OS provides these: never from PyPI into the venv.
    assert not {"numpy", "pyscard", "evdev"} & set(pins)
    if lock == "requirements-face.lock":
        assert "ai-edge-litert" in pins
    if lock == "requirements-tpm.lock":
        assert "tpm2-pytss" in pins
        assert not set(pins) & set(_lock_pins("requirements.lock")), "each package locked once"


# The order both image scripts install the locks in: the tpm2-pytss build (no build
# isolation, offline) takes cffi, cryptography and pycparser from the base lock.
INSTALL_ORDER = "for name in requirements.lock requirements-face.lock requirements-tpm.lock; do"


def _tpm_linked_libraries() -> set[str]:
    """Debian packages holding the libtss2 libraries the test venv's tpm2-pytss links
    (ldd, then dpkg -S): what the image's built copy links too (same libtss2 3.2.1)."""
    import tpm2_pytss

    ext = next(Path(tpm2_pytss.__file__).parent.glob("_libtpm2_pytss*.so"))
    ldd = subprocess.run(["ldd", str(ext)], capture_output=True, text=True, check=True).stdout
    paths = re.findall(r"=> (\S*libtss2[^ ]*\.so[^ ]*)", ldd)
    assert paths, ldd
    owners = subprocess.run(["dpkg", "-S", *(os.path.realpath(p) for p in paths)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {line.split(":")[0] for line in owners.splitlines()}


def test_image_builds_tpm2_pytss_from_its_locked_source_against_libtss2() -> None:
    """tpm2-pytss has no aarch64 wheel (and Debian's python3-tpm2-pytss 1.2 does not
    import beside the venv's cryptography): the image downloads its locked source archive,
    builds it in the chroot offline, proves it imports after the build tools are purged,
    and keeps every libtss2 library it links."""
    lock = (IMAGE / "requirements-tpm.lock").read_text()
    assert "# tpm2-pytss: source archive" in lock
    for script in (IMAGE / "build.sh", IMAGE / "rootfs-test.sh"):
        text = script.read_text()
        dl = text.index('-r "$HERE/requirements-tpm.lock"')
        line_start = text.rindex("pip", 0, dl)
        assert "--no-binary=tpm2-pytss" in text[line_start:dl], script
        assert "--require-hashes" in text[line_start:dl], script
    chroot = (STAGE / "01-doorpi" / "01-run-chroot.sh").read_text()
    rootfs = (IMAGE / "rootfs-test.sh").read_text()
    for text in (chroot, rootfs):
        loop = text.index(INSTALL_ORDER)
        assert "--no-index" in text[loop:] and "--no-build-isolation" in text[loop:]
    # Built, imported, build tools purged, imported again, before the wheels go.
    built = chroot.index("from tpm2_pytss import ESAPI, TCTILdr")
    purge = chroot.index("apt-get purge -y --auto-remove $added")
    again = chroot.index("from tpm2_pytss import ESAPI, TCTILdr", purge)
    assert built < purge < again < chroot.index("rm -rf /opt/doorpi/wheels")
    assert "libtss2-dev" in re.search(r'TPM_BUILD_DEPS="([^"]+)"', chroot).group(1)
    # The runtime libraries are packages of their own (not purged with libtss2-dev).
    needed = _tpm_linked_libraries() | {"libtss2-tcti-device0"}  # TCTI "device:/dev/tpmrm0"
    packages = package_list()
    assert needed <= packages, needed - packages
    assert needed <= set(re.search(r'PACKAGES="\$PACKAGES,(libtss2[^"]+)"', rootfs)
                         .group(1).split(","))  # fmt: skip


def test_image_installs_only_locked_wheels() -> None:
    for script in (IMAGE / "build.sh", IMAGE / "rootfs-test.sh",
                   STAGE / "01-doorpi" / "01-run-chroot.sh"):  # fmt: skip
        text = script.read_text()
        assert "--require-hashes" in text, script
        assert "constraints.txt" not in text, f"{script}: a resolver still decides versions"
    chroot = (STAGE / "01-doorpi" / "01-run-chroot.sh").read_text()
    assert "--no-deps" in chroot and "pip check" in chroot


def test_image_wheel_carries_the_model_builds_hashes() -> None:
    """The doorpi wheel the image installs holds models/build's SHA256SUMS as package
    data (doorpi.vision.models.PACKAGE_SUMS); both image scripts refuse to build it
    from a checkout whose package copy is not this build's."""
    for script in (IMAGE / "build.sh", IMAGE / "rootfs-test.sh"):
        text = script.read_text()
        cmp = text.index('cmp -s "$REPO/models/build/SHA256SUMS" "$REPO/src/doorpi/data/models')
        wheel = re.search(r'pip"? wheel', text)
        assert wheel and cmp < wheel.start(), script


def test_image_lock_holds_every_runtime_dependency() -> None:
    """`pip check` in the image fails on a dependency the lock lacks (tomli-w was
    once missing, found only by `make image-test`): every requirement of doorpi
    itself is pinned, apart from what Raspberry Pi OS provides."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {canonicalize_name(n) for n in _lock_pins("requirements.lock")}
    system = {"numpy", "pyscard", "evdev"}
    missing = [d for d in deps if canonicalize_name(Requirement(d).name) not in pins | system]
    assert missing == [], f"firmware_image/requirements.lock lacks {missing}: make image-lock"
