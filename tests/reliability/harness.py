"""Power cuts at the block layer: a loop device on the write recorder (blocklog.py).

`PowerCutRig` makes an ext4 image formatted and mounted as the image build ships the
data partition (firmware_image/add-data-partition.sh: ``mkfs.ext4`` then
``tune2fs -o journal_data``; fstab-doorpi's options), runs the setup on it, then runs
the workload with every block write recorded, and afterwards replays prefixes of the
write stream ("the power went at write k") onto the starting image, mounts each
(the kernel replays the ext4 journal, as at the next boot) and runs the checks.

Needs root, loop devices, /dev/fuse and fusermount3 (package fuse3): a missing one
fails the test naming it. Every loop device, mount and FUSE daemon is released
by `close()`, which the fixture calls also when a test fails.
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

from blocklog import entries, replay

HERE = Path(__file__).resolve().parent
CHILD = HERE / "powercut_child.py"
# firmware_image/stage-doorpi/00-system/files/fstab-doorpi (checked by test_shipped_options).
FSTAB = HERE.parents[1] / "firmware_image/stage-doorpi/00-system/files/fstab-doorpi"
IMAGE_MIB = 48


def shipped_mount_options() -> str:
    """The data partition's mount options, read from the image's fstab fragment."""
    for line in FSTAB.read_text().splitlines():
        if line.startswith("LABEL=doorpi-data"):
            return line.split()[3]
    raise AssertionError(f"{FSTAB}: no LABEL=doorpi-data line")


def missing_precondition() -> str:
    """'' when this machine can run the rig, else what is missing (one line)."""
    if os.geteuid() != 0:
        return "power-cut tests need root (loop devices, mount); CI runs as root"
    if not Path("/dev/loop-control").exists():
        return "power-cut tests need loop devices (/dev/loop-control missing)"
    if not Path("/dev/fuse").exists():
        return "power-cut tests need /dev/fuse (the write recorder is a FUSE file)"
    if shutil.which("fusermount3") is None:
        return "power-cut tests need fusermount3 (apt package fuse3; scripts/system-deps.sh)"
    try:
        import mfusepy  # noqa: F401
    except ImportError:
        return "power-cut tests need mfusepy (pip install -e .[dev])"
    return ""


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
    entries: int  # log entries that reached the medium
    phase: str
    dropped: int  # unflushed writes lost out of order (volatile cache model)
    result: str = ""


@dataclass
class PowerCutRig:
    tmp: Path
    _undo: list[tuple[str, str]] = field(default_factory=list)  # (kind, what), newest last
    acks: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, id, log bytes)
    phases: list[tuple[str, int]] = field(default_factory=list)  # (name, log bytes at start)
    workload_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.base = self.tmp / "base.img"
        self.live = self.tmp / "live.img"
        self.log = self.tmp / "writes.log"
        self.work = self.tmp / "work"
        self.mnt = self.tmp / "mnt"
        self.fusemnt = self.tmp / "fuse"
        for d in (self.work, self.mnt, self.fusemnt):
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
        elif kind == "fuse":
            # Busy (the loop device on it not freed yet): detach lazily, never leave a
            # dead FUSE mount behind once the recorder is killed.
            if subprocess.run(["fusermount3", "-u", what], capture_output=True,
                              timeout=60).returncode:  # fmt: skip
                subprocess.run(["fusermount3", "-u", "-z", what], capture_output=True, timeout=60)
        elif kind == "pid":
            pid = int(what)
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

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
        _run("mkfs.ext4", "-q", "-F", "-L", "doorpi-data", str(self.base))
        _run("tune2fs", "-o", "journal_data", str(self.base))
        depth = len(self._undo)
        self._mount(self._attach(self.base))
        self._child("setup")
        self._release_to(depth)

    def record(self) -> None:
        """Run the workload on the recorded device; acks and phases come with log sizes."""
        shutil.copyfile(self.base, self.live)
        depth = len(self._undo)
        ready = Path(str(self.log) + ".ready")
        daemon = subprocess.Popen(
            [sys.executable, str(HERE / "blocklog.py"), str(self.live), str(self.log),
             str(self.fusemnt)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self._undo.append(("pid", str(daemon.pid)))
        self._undo.append(("fuse", str(self.fusemnt)))
        deadline = time.monotonic() + 20
        while not (self.fusemnt / "disk.img").exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                err = daemon.stderr.read().decode() if daemon.stderr else ""
                raise AssertionError(f"write recorder did not start: {err.strip()}")
            time.sleep(0.05)
        assert ready.exists()
        self._mount(self._attach(self.fusemnt / "disk.img"))
        t = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), "run", str(self.mnt / "doorpi"), str(self.work)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self._env(),
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            size = self.log.stat().st_size
            words = line.split()
            if words[:1] == ["ack"]:
                self.acks.append((words[1], int(words[2]), size))
            elif words[:1] == ["phase"]:
                self.phases.append((words[1], size))
        err = proc.stderr.read() if proc.stderr else ""
        if proc.wait(timeout=300):
            raise AssertionError(f"workload failed: {err.strip()[-2000:]}")
        self.workload_seconds = time.monotonic() - t
        self._release_to(depth)

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
        ends, flushes, pos = [], [], 0
        from blocklog import HEADER

        for i, (kind, _, data) in enumerate(entries(self.log)):
            pos += HEADER.size + len(data)
            ends.append(pos)
            if kind == b"F":
                flushes.append(i)
        self._ends, self._flushes = ends, flushes
        rnd = random.Random(seed)
        bounds = [*self.phases, ("end", pos)]
        out = []
        for k in range(cuts):
            name, start = bounds[k % (len(bounds) - 1)]
            stop = bounds[k % (len(bounds) - 1) + 1][1]
            candidates = [i + 1 for i, e in enumerate(ends) if start < e <= stop] or [len(ends)]
            n = rnd.choice(candidates)
            if k % 2:  # a cut with writes in the cache: end just before a flush
                n = min((f for f in flushes if f >= n - 1), default=n)
            last_flush = max((f for f in flushes if f < n), default=-1)
            unflushed = list(range(last_flush + 1, n))
            drop = (
                set(rnd.sample(unflushed, rnd.randint(1, len(unflushed))))
                if k % 2 and unflushed
                else set()
            )
            at = ends[n - 1] if n else 0
            name = [p for p, b in self.phases if b < at][-1] if at > self.phases[0][1] else "start"
            out.append(Cut(n, name, len(drop)))
            out[-1]._drop = drop  # type: ignore[attr-defined]
        return out

    def check(self, cut: Cut) -> str:
        """Replay the cut, mount (journal recovery), run the checks; '' or the problem."""
        acked_at = self._ends[cut.entries - 1] if cut.entries else 0
        acks: dict[str, list[int]] = {}
        for kind, ident, size in self.acks:
            if size <= acked_at:
                acks.setdefault(kind, []).append(ident)
        (self.work / "acks.json").write_text(json.dumps(acks))
        (self.work / "pins.log").unlink(missing_ok=True)
        image = self.tmp / "cut.img"
        replay(self.base, self.log, image, cut.entries, getattr(cut, "_drop", None))
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
