"""A real TPM 2.0 for tests (swtpm, the software TPM QEMU uses) and the shipped
data partition on a loop device. Both clean up whatever they made."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The shipped partition: made by firmware_image/add-data-partition.sh, mounted with
# the options of the image's fstab (read from the files, so the test follows them).
ROOT = Path(__file__).resolve().parents[2]
MAKE_SCRIPT = ROOT / "firmware_image" / "add-data-partition.sh"
FSTAB = ROOT / "firmware_image" / "stage-doorpi" / "00-system" / "files" / "fstab-doorpi"
MKFS = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "doorpi-data"]
TUNE = ["tune2fs", "-o", "journal_data"]


def shipped_mount_options() -> str:
    """The data partition's mount options in the image's fstab (``defaults`` dropped:
    it is mount's own default); fails the test if the fstab has no such line."""
    for line in FSTAB.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "LABEL=doorpi-data":
            return ",".join(o for o in fields[3].split(",") if o != "defaults")
    pytest.fail(f"{FSTAB}: no LABEL=doorpi-data line")


def _check_shipped_mkfs() -> None:
    """The image script still makes the partition the way this helper does."""
    script = MAKE_SCRIPT.read_text()
    for cmd in (" ".join(MKFS[:-1]) + ' "$LABEL"', " ".join(TUNE)):
        if cmd not in script:
            pytest.fail(
                f"{MAKE_SCRIPT}: no `{cmd}`: the shipped partition changed, update {__file__}"
            )


def _free_port_pair() -> int:
    """A free TCP port whose successor is free too (the swtpm TCTI talks to the
    control channel on port + 1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free pair of TCP ports for swtpm")


@contextmanager
def swtpm(state: Path) -> Iterator[str]:
    """Run swtpm on a fresh state folder; yields the TCTI string for tpm2-pytss."""
    if shutil.which("swtpm") is None:
        pytest.fail("swtpm is needed: apt-get install swtpm swtpm-tools libtss2-dev")
    try:
        import tpm2_pytss  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"tpm2-pytss is needed (make venv: the dev extra, libtss2-dev): {exc}")
    state.mkdir(parents=True, exist_ok=True)
    port = _free_port_pair()
    ctrl = port + 1
    proc = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
         "--server", f"type=tcp,port={port}", "--ctrl", f"type=tcp,port={ctrl}",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", ctrl), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"swtpm did not start: {proc.stderr.read()!r}") from None
                time.sleep(0.05)
        yield f"swtpm:host=127.0.0.1,port={port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def shipped_partition(tmp_path: Path, size_mib: int = 64) -> Iterator[tuple[Path, Path]]:
    """An ext4 file system made and mounted as the image ships it, on a loop device
    over a file; yields (image file, mount point). Read the image after the block."""
    if os.geteuid() != 0:
        pytest.fail(f"loop devices and mount need root (euid {os.geteuid()}); CI runs as root")
    _check_shipped_mkfs()
    options = shipped_mount_options()
    img, mnt = tmp_path / "data-partition.img", tmp_path / "mnt"
    with open(img, "wb") as f:
        f.truncate(size_mib << 20)
    _run(*MKFS, str(img))
    _run(*TUNE, str(img))
    mnt.mkdir()
    loop = _run("losetup", "--find", "--show", str(img))
    try:
        _run("mount", "-o", options, loop, str(mnt))
        try:
            yield img, mnt
        finally:
            _run("umount", str(mnt))
    finally:
        _run("losetup", "-d", loop)
