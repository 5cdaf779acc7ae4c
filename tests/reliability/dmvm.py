"""A small KVM guest with the real device mapper, for the power-cut rig (harness.py).

This host's kernel has no device mapper, so the write stream is recorded by the real
``dm-log-writes`` target inside a guest: qemu-system-x86_64 (``-accel kvm``, or
``-accel tcg`` when /dev/kvm is missing or refuses KVM_CREATE_VM), Debian bookworm's
kernel (``linux-image-amd64``'s current ``linux-image-6.1.0-*-amd64``, fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` into ``build/vm``: nothing is
installed into the host's /boot or /lib/modules), and an initramfs built here:
busybox-static plus the few modules the guest needs, in dependency order from each
module's own ``depends=`` (modinfo; the .deb ships no modules.dep, depmod writes it at
install time).

The guest's root is the host's ``/`` over virtio-9p, read-only (so the venv's Python
and the project are at the same paths), with a tmpfs on /run (HOME and TMPDIR there;
not on /tmp, which would hide a tree or test directory under the host's /tmp) and the
test's work directory as the one writable 9p share, mounted over its own path. Two virtio disks: the data image and the
log. No network device (``-nic none``). `run_guest` always kills and reaps qemu.
The guest runs vm_guest.py (dmsetup, mount, the workload, marks), then powers off.

What this is not: the Pi's SD card and its controller. The guest's disk is a virtio
block device with a volatile write cache (qemu ``cache=unsafe``: the guest sees a
write-back cache and sends flushes and FUA; the host need not keep them, nothing
cuts the VM itself). What a cut may lose is modelled on the log afterwards.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "vm"
GUEST = Path(__file__).resolve().parent / "vm_guest.py"
# What the guest loads: virtio disks and 9p, the device mapper's log-writes target,
# ext4, and crc32c (ext4 and jbd2 ask the crypto API for it; there is no modprobe in the
# guest to load it on demand). No dm-flakey: a cut replays a prefix of the log-writes
# stream, which is what dropping every write after that point would give.
MODULES = ("virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "dm_mod", "dm_log_writes",
           "crc32c_generic", "ext4")  # fmt: skip
KVM_GET_API_VERSION, KVM_CREATE_VM = 0xAE00, 0xAE01


class VMError(AssertionError):
    """Something about the guest failed (one line, naming it)."""


def kvm_usable() -> str:
    """'' when /dev/kvm creates a VM, else why not (then qemu runs with TCG)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"/dev/kvm: {exc.strerror}"
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
            return "/dev/kvm: unexpected KVM API version"
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
        return ""
    except OSError as exc:
        return f"/dev/kvm: KVM_CREATE_VM: {exc.strerror}"
    finally:
        os.close(fd)


def missing_tools() -> str:
    """'' or the first host tool the guest rig lacks (with its Debian package)."""
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("dmsetup", "dmsetup"),
                      ("apt-get", "apt"), ("dpkg-deb", "dpkg")):  # fmt: skip
        if shutil.which(tool) is None:
            return f"power-cut tests need {tool} (apt package {pkg}; scripts/system-deps.sh)"
    if not _static_elf(Path("/bin/busybox")):
        return "power-cut tests need a static /bin/busybox (apt package busybox-static)"
    return ""


def _static_elf(path: Path) -> bool:
    """A 64-bit ELF executable with no PT_INTERP program header (needs no ld.so)."""
    try:
        data = path.read_bytes()[: 1 << 16]
    except OSError:
        return False
    if data[:5] != b"\x7fELF\x02" or len(data) < 64:
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    size, count = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * size)[0] for i in range(count)
             if phoff + (i + 1) * size <= len(data)]  # fmt: skip
    return bool(types) and 3 not in types  # PT_INTERP


def _run(*cmd: str, cwd: Path | None = None, timeout: int = 600) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if p.returncode:
        raise VMError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return p.stdout


@dataclass(frozen=True)
class Kernel:
    version: str  # e.g. 6.1.0-57-amd64
    package: str  # the .deb's file name
    vmlinuz: Path
    initrd: Path


def kernel(cache: Path = CACHE) -> Kernel:
    """Debian's kernel and our initramfs, from the cache or fetched and built once.

    Concurrent sessions share the cache under a lock; a half-built one is never used
    (each piece is written beside and renamed into place)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        debs = sorted(cache.glob("linux-image-*-amd64_*.deb"))
        if not debs:
            debs = [_download(cache)]
        deb = debs[-1]
        tree = cache / deb.name.removesuffix(".deb")
        recipe = hashlib.sha256(INIT.encode() + repr(MODULES).encode()).hexdigest()[:12]
        vmlinuz, initrd = tree / "vmlinuz", tree / f"initrd-{recipe}.gz"
        if not (vmlinuz.exists() and initrd.exists()):
            # Unpack, keep the kernel and our initramfs, drop the rest (~400 MB).
            tmp = cache / "unpack.part"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                _run("dpkg-deb", "-x", str(deb), str(tmp))
                version = next((tmp / "lib/modules").iterdir()).name
                tree.mkdir(exist_ok=True)
                (tree / "version").write_text(version)
                shutil.copyfile(tmp / f"boot/vmlinuz-{version}", tree / "vmlinuz.part")
                (tree / "vmlinuz.part").rename(vmlinuz)
                part = initrd.with_suffix(".part")
                part.write_bytes(build_initramfs(tmp / "lib/modules" / version))
                part.rename(initrd)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        version = (tree / "version").read_text()
        return Kernel(version, deb.name, vmlinuz, initrd)


def _download(cache: Path) -> Path:
    """`apt-get download` the kernel package linux-image-amd64 depends on today."""
    deps = _run("apt-cache", "depends", "--important", "linux-image-amd64")
    names = re.findall(r"Depends: (linux-image-[0-9][^\s]*-amd64)\b", deps)
    if not names:
        raise VMError("apt-cache: linux-image-amd64 names no kernel (run apt-get update)")
    _run("apt-get", "download", "-q", names[0], cwd=cache)
    debs = sorted(cache.glob(f"{names[0]}_*.deb"))
    if not debs:
        raise VMError(f"apt-get download {names[0]}: no .deb in {cache}")
    return debs[-1]


def module_order(moddir: Path, wanted: tuple[str, ...] = MODULES) -> list[tuple[str, Path]]:
    """(name, file) for ``wanted`` and what they depend on, each after its dependencies."""
    files = {}
    for path in (moddir / "kernel").rglob("*.ko*"):
        files[path.name.split(".ko")[0].replace("-", "_")] = path
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in chain:
            raise VMError(f"{moddir}: module dependency loop {' -> '.join((*chain, name))}")
        if name not in files:
            raise VMError(f"{moddir}: no module {name} in this kernel package")
        for dep in _depends(_module_bytes(files[name])):
            visit(dep, (*chain, name))
        seen.add(name)
        order.append((name, files[name]))

    for name in wanted:
        visit(name, ())
    return order


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        raise VMError(f"{path}: zstd modules are not handled (Debian 12 ships .ko)")
    return data


def _depends(module: bytes) -> list[str]:
    """The ``depends=`` list of a module's .modinfo strings."""
    m = re.search(rb"\x00depends=([^\x00]*)\x00", module)
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d] if m else []


INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod "/lib/modules/$m" || echo "doorpi-vm: insmod $m failed"; done
arg() { sed -n "s/.*doorpi.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
work=$(arg work) python=$(arg python) guest=$(arg guest)
fail() { echo "doorpi-vm: $*"; reboot -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /newroot \
  || fail "mounting the host's root failed"
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mount -t tmpfs run /newroot/run
mkdir -p -m 1777 /newroot/run/tmp
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work "/newroot$work" \
  || fail "mounting the work share failed"
date +%s.%N > "/newroot$work/guest-started"
chroot /newroot /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/run TMPDIR=/run/tmp \
  PYTHONDONTWRITEBYTECODE=1 "$python" "$guest" "$work/vm-job.json"
echo "doorpi-vm: guest exit $?"
sync
umount "/newroot$work"
reboot -f
"""


def build_initramfs(moddir: Path) -> bytes:
    """A gzipped newc cpio: /init, a static busybox, the modules (decompressed) in order."""
    order = module_order(moddir)
    files: list[tuple[str, int, bytes]] = [
        ("bin", 0o40755, b""), ("lib", 0o40755, b""), ("lib/modules", 0o40755, b""),
        ("init", 0o100755, INIT.encode()),
        ("bin/busybox", 0o100755, Path("/bin/busybox").read_bytes()),
        ("modules.list", 0o100644, "".join(f"{n}.ko\n" for n, _ in order).encode()),
    ]  # fmt: skip
    files += [(f"lib/modules/{n}.ko", 0o100644, _module_bytes(p)) for n, p in order]
    return gzip.compress(cpio(files), compresslevel=6, mtime=0)


def cpio(files: list[tuple[str, int, bytes]]) -> bytes:
    """The newc ("070701") archive of (name, mode, data) the kernel unpacks as rootfs."""
    out = io.BytesIO()

    def entry(ino: int, name: str, mode: int, data: bytes) -> None:
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        out.write(b"070701" + b"".join(b"%08x" % f for f in fields) + raw)
        out.write(b"\0" * (-(110 + len(raw)) % 4) + data + b"\0" * (-len(data) % 4))

    for ino, (name, mode, data) in enumerate(files, 1):
        entry(ino, name, mode, data)
    entry(0, "TRAILER!!!", 0, b"")
    return out.getvalue()


@dataclass
class GuestRun:
    accel: str  # "kvm" or "tcg (why)"
    boot_seconds: float  # qemu start to the guest's root mounted (host clock)
    total_seconds: float
    console: str


# A working KVM guest prints its first console line within a second; this host's
# /dev/kvm creates VMs, but its guests (nested, under firecracker) printed nothing in
# 60 s while TCG printed the kernel's banner in under one: then fall back to TCG.
KVM_FIRST_LINE_SECONDS = 10.0
_kvm_refused = ""  # why KVM was given up for this process ("" = not yet)


def run_guest(k: Kernel, work: Path, disks: list[Path], timeout: float = 900) -> GuestRun:
    """Boot the guest on ``disks`` (vda, vdb, ...) with ``work`` as the writable share;
    it runs ``work/vm-job.json`` through vm_guest.py. Always kills and reaps qemu.

    Accelerator: KVM when /dev/kvm works and the guest shows life within
    KVM_FIRST_LINE_SECONDS, else TCG until the host reboots (``DOORPI_VM_ACCEL=kvm|tcg``
    forces one)."""
    global _kvm_refused
    forced = os.environ.get("DOORPI_VM_ACCEL", "")
    if forced not in ("", "kvm", "tcg"):
        raise VMError(f"DOORPI_VM_ACCEL={forced}: expected kvm or tcg")
    # The verdict holds until the host reboots (kept beside the kernel, by boot id).
    verdict = k.vmlinuz.parent / "kvm-refused"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    if not _kvm_refused and verdict.exists():
        seen, _, reason = verdict.read_text().partition(" ")
        _kvm_refused = reason.strip() if seen == boot_id else ""
    why = "DOORPI_VM_ACCEL=tcg" if forced == "tcg" else _kvm_refused or kvm_usable()
    if forced == "kvm":
        why = ""
    if not why:
        try:
            return _boot(k, work, disks, "kvm", timeout, probe=not forced)
        except _NoLife as exc:
            why = _kvm_refused = str(exc)
            verdict.write_text(f"{boot_id} {why}\n")
    run = _boot(k, work, disks, "tcg", timeout, probe=False)
    run.accel = f"tcg ({why})"
    return run


class _NoLife(Exception):
    """The KVM guest did not get going (why, one line): try TCG."""


def _boot(k: Kernel, work: Path, disks: list[Path], accel: str, timeout: float,
          probe: bool) -> GuestRun:  # fmt: skip
    args = {"work": work, "python": sys.executable, "guest": GUEST}
    if any(" " in str(v) for v in args.values()):
        raise VMError(f"the guest's kernel command line cannot hold a path with a space: {args}")
    console = work / "console.log"
    started = work / "guest-started"
    started.unlink(missing_ok=True)
    console.unlink(missing_ok=True)
    # The guest runs the host's Python and wheels, so it needs the host's instructions:
    # with qemu's default qemu64 model the workload died of SIGILL. KVM: the host's CPU,
    # without IA32_ARCH_CAPABILITIES (this host, itself a VM, refuses MSR 0x10a and qemu
    # aborts). TCG: `max`, all qemu 7.2 emulates (up to AVX2).
    cpu = ["-cpu", "max" if accel == "tcg" else "host,-arch-capabilities"]
    cmd = [
        "qemu-system-x86_64", "-accel", accel, *cpu, "-m", "1024", "-smp", "2",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-nic", "none",
        "-serial", f"file:{console}",
        "-kernel", str(k.vmlinuz), "-initrd", str(k.initrd),
        "-append", "console=ttyS0 panic=-1 loglevel=4 "
        + " ".join(f"doorpi.{a}={v}" for a, v in args.items()),
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
        "-virtfs", f"local,path={work},mount_tag=work,security_model=none,multidevs=remap",
    ]  # fmt: skip
    for disk in disks:
        cmd += ["-drive", f"file={disk},format=raw,if=virtio,cache=unsafe"]
    t0 = time.monotonic()
    boot = 0.0
    trying = probe  # KVM on trial: an early failure means "use TCG", not an error
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        while proc.poll() is None:
            now = time.monotonic() - t0
            if not boot and started.exists():
                boot = now
            if probe and now > KVM_FIRST_LINE_SECONDS:
                probe = False
                if not (console.exists() and console.stat().st_size):
                    raise _NoLife(
                        f"the KVM guest printed nothing in {KVM_FIRST_LINE_SECONDS:.0f} s"
                    )
            if now > timeout:
                raise VMError(f"guest still running after {timeout:.0f} s (console: {console})")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0].decode(errors="replace")
    text = console.read_text(errors="replace") if console.exists() else ""
    if proc.returncode:
        last = out.strip().splitlines()[-1:] or [""]
        if trying and not boot:
            raise _NoLife(f"qemu -accel kvm exit {proc.returncode}: {last[0]}")
        raise VMError(f"qemu exit {proc.returncode}: {out.strip()[-500:]}")
    return GuestRun(accel, boot, time.monotonic() - t0, text)
