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

from datapart import MKFS, TUNE, check_shipped_mkfs, shipped_mount_options


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
    check_shipped_mkfs()
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
