"""Power cuts at the block layer: the write stream recorded by dm-log-writes in a guest.

`PowerCutRig` makes an ext4 image formatted and mounted as the image build ships the
data partition (firmware_image/add-data-partition.sh: ``mkfs.ext4`` then
``tune2fs -o journal_data``; fstab-doorpi's options) and runs the setup on it (on this
host, through a loop device). Then it boots a small qemu guest (dmvm.py: KVM, or TCG
where KVM guests do not run; Debian's 6.1 kernel, which has the device mapper this
host's kernel lacks) that puts the
``log-writes`` target over a copy of that image, mounts it with the same options and
runs the workload, marking each acknowledged write's place in the log (vm_guest.py).
Back here it reads the log (dmlog.py), replays prefixes of the write stream onto the
starting image ("the power went at write k"), mounts each on this host (the kernel
replays the ext4 journal, as at the next boot) and runs the checks.

Needs root, loop devices, qemu-system-x86_64, dmsetup, busybox-static and the kernel
package (fetched once into build/vm by `dmvm.kernel`): a missing one fails the test
naming it. Every loop device and mount is released, and qemu killed and reaped, by
`close()` / `run_guest`, also when a test fails.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dmvm
from dmlog import Stream, parse, replay

from datapart import MKFS, TUNE, shipped_mount_options

HERE = Path(__file__).resolve().parent
CHILD = HERE / "powercut_child.py"
IMAGE_MIB = 48
LOG_MIB = 512  # sparse; a run logs about 25 MiB (a full log disables logging: checked)


def missing_precondition() -> str:
    """'' when this machine can run the rig, else what is missing (one line)."""
    if os.geteuid() != 0:
        return "power-cut tests need root (loop devices, mount); CI runs as root"
    if not Path("/dev/loop-control").exists():
        return "power-cut tests need loop devices (/dev/loop-control missing)"
    return dmvm.missing_tools()


def loops_left(folder: Path) -> list[str]:
    """Loop devices on files under ``folder`` that this rig has not let go of.

    `losetup -d` on a device something still holds only sets autoclear; the kernel
    frees it when the last holder lets go. Another engineer's pcscd, started in its
    own mount namespace while our image was mounted, holds a copy of that mount until
    it exits: a device with autoclear set and no mount in our namespace is released
    as far as this rig can release it, and is not counted."""
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    ours = Path("/proc/self/mountinfo").read_text()
    left = []
    for line in out.splitlines():
        dev = line.split(":")[0]
        if str(folder) not in line:
            continue
        auto = Path(f"/sys/block/{Path(dev).name}/loop/autoclear")
        if auto.exists() and auto.read_text().strip() == "1" and f" {dev} " not in ours:
            continue
        left.append(line)
    return left


def _run(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


@dataclass
class Cut:
    entries: int  # stream entries (writes and flushes) that reached the medium
    phase: str
    dropped: int  # unflushed writes lost out of order (volatile cache model)
    result: str = ""


@dataclass
class PowerCutRig:
    tmp: Path
    _undo: list[tuple[str, str]] = field(default_factory=list)  # (kind, what), newest last
    acks: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, id, writes before)
    phases: list[tuple[str, int]] = field(default_factory=list)  # (name, writes before it)
    workload_seconds: float = 0.0
    guest: dmvm.GuestRun | None = None
    stream: Stream | None = None
    guest_result: dict = field(default_factory=dict)  # vm_guest.py's result file

    def __post_init__(self) -> None:
        self.base = self.tmp / "base.img"
        self.live = self.tmp / "live.img"
        self.log = self.tmp / "writes.log"
        self.work = self.tmp / "work"
        self.mnt = self.tmp / "mnt"
        for d in (self.work, self.mnt):
            d.mkdir()

    # ------------------------------------------------------------ devices, always undone

    def _attach(self, image: Path) -> str:
        dev = _run("losetup", "--find", "--show", str(image))
        self._undo.append(("loop", dev))
        return dev

    def _mount(self, dev: str) -> None:
        _run("mount", "-t", "ext4", "-o", shipped_mount_options(), dev, str(self.mnt))
        self._undo.append(("mount", str(self.mnt)))

    def _undo_last(self) -> None:
        kind, what = self._undo.pop()
        if kind == "mount":
            if subprocess.run(["umount", what], capture_output=True, timeout=60).returncode:
                time.sleep(1)  # busy for a moment (a child just exited): again, then lazily
                if subprocess.run(["umount", what], capture_output=True, timeout=60).returncode:
                    subprocess.run(["umount", "-l", what], capture_output=True, timeout=60)
        elif kind == "loop":
            subprocess.run(["losetup", "-d", what], capture_output=True, timeout=60)

    def close(self) -> None:
        """Unmount, detach and stop everything this rig set up (newest first)."""
        while self._undo:
            self._undo_last()

    def _release_to(self, depth: int) -> None:
        while len(self._undo) > depth:
            self._undo_last()

    # ------------------------------------------------------------ the stages

    def setup(self) -> None:
        _run("truncate", "-s", f"{IMAGE_MIB}M", str(self.base))
        _run(*MKFS, str(self.base))
        _run(*TUNE, str(self.base))
        depth = len(self._undo)
        self._mount(self._attach(self.base))
        self._child("setup")
        self._release_to(depth)

    def record(self) -> None:
        """Run the workload in the guest on dm-log-writes; read the log and its marks."""
        kernel = dmvm.kernel()
        shutil.copyfile(self.base, self.live)
        self.log.unlink(missing_ok=True)
        _run("truncate", "-s", f"{LOG_MIB}M", str(self.log))
        result = self.tmp / "vm-result.json"
        result.unlink(missing_ok=True)
        job = {"data": "/dev/vda", "log": "/dev/vdb", "options": shipped_mount_options(),
               "mnt": str(self.mnt), "result": str(result), "env": self._env(),
               "argv": [sys.executable, str(CHILD), "run", str(self.mnt / "doorpi"),
                        str(self.work)]}  # fmt: skip
        (self.tmp / "vm-job.json").write_text(json.dumps(job))
        self.guest = dmvm.run_guest(kernel, self.tmp, [self.live, self.log])
        tail = self.guest.console.strip()[-1500:]
        if not result.exists():
            raise AssertionError(f"the guest wrote no result; its console ends: {tail}")
        out = json.loads(result.read_text())
        if "error" in out:
            raise AssertionError(f"in the guest: {out['error']}")
        if out["rc"]:
            raise AssertionError(f"workload failed in the guest: {out['stderr'].strip()}")
        if "logging_disabled" in out["status"]:
            raise AssertionError(f"dm-log-writes stopped logging (log full?): {out['status']}")
        self.guest_result = out
        self.workload_seconds = out["workload_seconds"]
        self.stream = parse(self.log)
        for text, before in self.stream.marks:
            words = text.split(":")
            if words[0] == "ack":
                self.acks.append((words[1], int(words[2]), before))
            elif words[0] == "phase":
                self.phases.append((words[1], before))

    def _env(self) -> dict[str, str]:
        return {**os.environ, "GPIOZERO_PIN_FACTORY": "mock",
                "DOORPI_PIN_LOG": str(self.work / "pins.log")}  # fmt: skip

    def _child(self, mode: str) -> str:
        p = subprocess.run(
            [sys.executable, str(CHILD), mode, str(self.mnt / "doorpi"), str(self.work)],
            capture_output=True, text=True, timeout=300, env=self._env(),
        )  # fmt: skip
        if p.returncode:
            raise AssertionError(f"{mode}: {(p.stdout + p.stderr).strip()[-2000:]}")
        return p.stdout.strip()

    # ------------------------------------------------------------ cuts

    def plan(self, cuts: int, seed: int) -> list[Cut]:
        """``cuts`` cut points spread over every phase; every other one also loses a
        random part of the writes since the last flush (a write cache that reorders)."""
        assert self.stream is not None, "record() first"
        total = len(self.stream.writes)
        flushes = [i for i, w in enumerate(self.stream.writes) if w.kind == b"F"]
        rnd = random.Random(seed)
        bounds = [*self.phases, ("end", total)]
        out = []
        for k in range(cuts):
            name, start = bounds[k % (len(bounds) - 1)]
            stop = bounds[k % (len(bounds) - 1) + 1][1]
            n = rnd.choice(range(start + 1, stop + 1) if stop > start else [total])
            if k % 2:  # a cut with writes in the cache: end just before a flush
                n = min((f for f in flushes if f >= n - 1), default=n)
            last_flush = max((f for f in flushes if f < n), default=-1)
            unflushed = list(range(last_flush + 1, n))
            drop = (
                set(rnd.sample(unflushed, rnd.randint(1, len(unflushed))))
                if k % 2 and unflushed
                else set()
            )
            name = [p for p, b in self.phases if b < n][-1] if n > self.phases[0][1] else "start"
            out.append(Cut(n, name, len(drop)))
            out[-1]._drop = drop  # type: ignore[attr-defined]
        return out

    def check(self, cut: Cut) -> str:
        """Replay the cut, mount (journal recovery), run the checks; '' or the problem."""
        assert self.stream is not None, "record() first"
        acks: dict[str, list[int]] = {}
        for kind, ident, before in self.acks:
            if before <= cut.entries:
                acks.setdefault(kind, []).append(ident)
        (self.work / "acks.json").write_text(json.dumps(acks))
        (self.work / "pins.log").unlink(missing_ok=True)
        image = self.tmp / "cut.img"
        replay(self.base, self.log, self.stream, image, cut.entries, getattr(cut, "_drop", None))
        depth = len(self._undo)
        try:
            self._mount(self._attach(image))
            cut.result = self._child("check")
            return ""
        except AssertionError as exc:
            cut.result = str(exc)
            return str(exc)
        finally:
            self._release_to(depth)
            image.unlink(missing_ok=True)
