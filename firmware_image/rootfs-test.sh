#!/bin/bash
# rootfs-test.sh: the part of the image build that CAN run on an x86 CI machine.
#
# A full pi-gen build needs the Raspberry Pi OS archive (see build.sh). This script
# checks the next best thing: an arm64 Debian bookworm root filesystem (the base of
# Raspberry Pi OS bookworm) gets doorpi installed exactly the way the pi-gen stage
# installs it (a venv with --system-site-packages under /opt/doorpi, the units, the
# sysusers/tmpfiles files), and then the arm64 python runs `doorpi selftest` inside it
# through qemu-user (binfmt). It catches: a wheel that does not install on aarch64,
# a dependency without an aarch64 wheel, units that do not verify against the real
# file layout, and a missing user or data directory mode.
#
# The face runtime (the `face` extra: ai-edge-litert) is installed as the image installs
# it, on Debian's own python3-numpy (1.24 in bookworm, as in Raspberry Pi OS bookworm,
# whose python3-picamera2 is built against it): the wheels come from the lock files with
# their hashes and no resolver, numpy is not among them, and `pip check` proves they
# accept the system one. The network surface is checked (network-surface-check.sh) after
# the image's own removal step. Then the real face
# pipeline (BlazeFace, face mesh, SFace from models/build) runs under qemu on two photos
# of one person and one of another from the shared photo folder, and must put the same
# person above and the other below the shipped cosine threshold.
#
# Slow (the first run builds the base rootfs, ~5 min; later runs reuse the cached
# tarball under ~/.cache/doorpi/rootfs, and take ~1-2 min with the face check). Opt-in:
# `make image-test`. Needs root, mmdebstrap, qemu-user-static, binfmt-support, the Debian
# mirror + PyPI, models/build (`make models`) and the shared photos.
#
# Usage: sudo firmware_image/rootfs-test.sh [--keep]
#   env: DOORPI_ROOTFS_CACHE (default ~/.cache/doorpi/rootfs)
#        DOORPI_MIRROR (default http://deb.debian.org/debian)
#        DOORPI_WHEEL (a prebuilt wheel; default: built from this checkout)
#        DOORPI_FACE=0 (as build.sh: no face runtime, no face check)
#        DOORPI_SHARED_DIR (the folder holding faces/; default ../shared beside the checkout)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${DOORPI_ROOTFS_CACHE:-$HOME/.cache/doorpi/rootfs}"
MIRROR="${DOORPI_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
ARCH=arm64
FACE="${DOORPI_FACE:-1}"
SHARED="${DOORPI_SHARED_DIR:-$REPO/../shared}"
# Two photos of one person and one of another (the gate's real pipeline compares them).
FACE_PHOTOS=(faces/Ariel_Sharon/1.jpg faces/Ariel_Sharon/2.jpg faces/Barack_Obama/1.jpg)
KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1

log() { printf '== rootfs-test: %s\n' "$*" >&2; }
die() { printf 'rootfs-test: FAIL: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (chroot, mounts)"
for tool in mmdebstrap arch-test qemu-aarch64-static update-binfmts; do
	command -v "$tool" >/dev/null || die "missing $tool (apt-get install mmdebstrap arch-test qemu-user-static binfmt-support)"
done
if [[ "$FACE" == "1" ]]; then
	[[ -f "$REPO/models/build/sface.tflite" ]] || die "no models/build: run make models (or DOORPI_FACE=0)"
	for photo in "${FACE_PHOTOS[@]}"; do
		[[ -f "$SHARED/$photo" ]] || die "missing $SHARED/$photo (set DOORPI_SHARED_DIR, or DOORPI_FACE=0)"
	done
fi

# The Debian (not Raspberry Pi OS) subset of the stage's package lists: python3-lgpio
# and python3-picamera2 exist only in the Raspberry Pi archive, so they are left out
# here and selftest is told to skip the camera and GPIO checks.
PACKAGES="python3,python3-venv,python3-pip,python3-numpy,python3-nacl,python3-cryptography,python3-pil,python3-pyscard,python3-evdev,pcscd,libccid,sqlite3,ca-certificates"
# What Raspberry Pi OS Lite brings that opens a network surface (mDNS, DHCP on a USB
# adapter, Wi-Fi, Bluetooth, SSH): installed here so the image's own removal step
# (stage-doorpi/00-system/02-run-chroot.sh) is proven against the real packages.
# The TPM key root: the stage's libtss2 runtime (00-system/00-packages) and the build
# tools 01-run-chroot.sh installs for tpm2-pytss's source archive (and purges there).
PACKAGES="$PACKAGES,libtss2-esys-3.0.2-0,libtss2-tctildr0,libtss2-tcti-device0,libtss2-fapi1,libtss2-rc0,libtss2-mu0,libtss2-sys1,tpm-udev"
PACKAGES="$PACKAGES,gcc,pkg-config,libtss2-dev,python3-dev,python3-setuptools,python3-setuptools-scm,python3-pkgconfig,python3-packaging"
PACKAGES="$PACKAGES,systemd,avahi-daemon,network-manager,wpasupplicant,bluez,openssh-server"
KEY="$(printf '%s %s %s %s' "$SUITE" "$ARCH" "$PACKAGES" "v1" | sha256sum | cut -c1-16)"
BASE="$CACHE/$SUITE-$ARCH-$KEY.tar"

# binfmt: lets the host kernel run arm64 ELF files through qemu-aarch64-static.
if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || die "binfmt for qemu-aarch64 is not registered"

mkdir -p "$CACHE"
if [[ ! -s "$BASE" ]]; then
	log "building $SUITE/$ARCH base rootfs into $BASE (first run only)"
	rm -rf "$BASE.partial"
	mmdebstrap --format=tar --variant=minbase --architectures="$ARCH" --include="$PACKAGES" \
		"$SUITE" "$BASE.partial" "$MIRROR"
	mv "$BASE.partial" "$BASE"
else
	log "reusing cached base rootfs $BASE"
fi

WORK="$(mktemp -d /tmp/doorpi-rootfs.XXXXXX)"
ROOT="$WORK/root"
cleanup() {
	for m in dev/pts dev proc/cpuinfo proc sys; do
		mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"
	done
	if [[ $KEEP -eq 1 ]]; then
		log "kept $ROOT"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"

# Commands inside the rootfs get a clean environment: the host's PIP_*/PYTHON* settings
# (an extra index, find-links) must not leak into the install being tested.
# QEMU_CPU: qemu emulates the Raspberry Pi 4's core (Cortex-A72) rather than its default
# "max" CPU, which advertises SVE and SME: on "max" (qemu 7.2) ai-edge-litert 2.3's XNNPACK
# computes the int8 SFace wrongly (cosines ~0.99 for any two faces); with "max,sme=off", or
# as cortex-a72 or cortex-a76 (Pi 5), it matches x86 to 0.003. No Pi has SVE or SME.
in_root() {
	in_root_cpu cortex-a72 "$@"
}
in_root_cpu() {
	local cpu="$1"
	shift
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU="$cpu" \
		chroot "$ROOT" "$@"
}

# The system python's numpy (python3-numpy, what python3-picamera2 is built against on
# the Pi): the face extra must resolve against exactly this version.
SYSTEM_NUMPY="$(in_root python3 -c 'import numpy; print(numpy.__version__)')"
log "system numpy in the rootfs: $SYSTEM_NUMPY"

# The wheel and its arm64 dependencies are fetched on the host (fast, no qemu) into a
# wheelhouse and installed offline inside the rootfs, as the pi-gen stage does.
WHEELS="$WORK/wheels"
mkdir -p "$WHEELS"
if [[ -n "${DOORPI_WHEEL:-}" ]]; then
	cp "$DOORPI_WHEEL" "$WHEELS/"
else
	# Built from a copy so setuptools' build/ and egg-info never land in the checkout.
	log "building the doorpi wheel from $REPO"
	# As build.sh: the wheel carries the model build's hashes, which the gate checks against.
	if [[ "$FACE" == "1" ]]; then
		cmp -s "$REPO/models/build/SHA256SUMS" "$REPO/src/doorpi/data/models.SHA256SUMS" \
			|| die "src/doorpi/data/models.SHA256SUMS is not models/build's (run make models)"
	fi
	mkdir -p "$WORK/src"
	tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./models --exclude=./build \
		--exclude=./firmware_image --exclude='*.egg-info' -cf - . | tar -C "$WORK/src" -xf -
	"$REPO/.venv/bin/pip" wheel --quiet --no-deps -w "$WHEELS" "$WORK/src"
fi
ls "$WHEELS"/doorpi-*.whl >/dev/null || die "no doorpi wheel in $WHEELS"
# The base requirements and, as build.sh does, the face extra: pyscard has no Linux
# wheels, and the reader/keypad extras are met by Debian's packages inside the rootfs.
# pip does not widen --platform to older manylinux tags: every glibc from 2.17 to
# bookworm's 2.36 is listed (ai-edge-litert 2.x is manylinux_2_27_aarch64 only).
PLATFORMS=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do
	PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64")
done
EXTRAS="reader,keypad"
if [[ "$FACE" == "1" ]]; then
	EXTRAS="$EXTRAS,face"
fi
# As build.sh: exactly the versions the tests ran, from the lock files, each wheel
# checked against its sha256 (tools/image/lock.py writes them from the test venv).
LOCKS=("$HERE/requirements.lock")
[[ "$FACE" == "1" ]] && LOCKS+=("$HERE/requirements-face.lock")
log "downloading the locked aarch64 wheels for doorpi[$EXTRAS] (--require-hashes)"
for lock in "${LOCKS[@]}"; do
	"$REPO/.venv/bin/pip" download --quiet --dest "$WHEELS" --only-binary=:all: --no-deps \
		--require-hashes "${PLATFORMS[@]}" --python-version 3.11 --implementation cp \
		--abi cp311 --abi abi3 --abi none -r "$lock" || die "locked download failed: $lock"
	cp "$lock" "$WHEELS/"
done
# As build.sh: tpm2-pytss as its locked source archive, built inside the rootfs.
"$REPO/.venv/bin/pip" download --quiet --dest "$WHEELS" --no-binary=tpm2-pytss --no-deps \
	--require-hashes -r "$HERE/requirements-tpm.lock" || die "locked download failed: requirements-tpm.lock"
cp "$HERE/requirements-tpm.lock" "$WHEELS/"

# Same layout as stage-doorpi/01-doorpi/00-run.sh + 01-run-chroot.sh.
install -d -m 0755 "$ROOT/opt/doorpi" "$ROOT/etc/doorpi" "$ROOT/opt/doorpi/libexec"
install -m 0644 "$REPO/src/doorpi/data/doorpi.toml" "$ROOT/etc/doorpi/doorpi.toml"
install -m 0644 "$REPO"/systemd/*.service "$REPO"/systemd/*.timer "$ROOT/etc/systemd/system/"
install -D -m 0644 "$REPO/systemd/99-doorpi-usb.rules" "$ROOT/etc/udev/rules.d/99-doorpi-usb.rules"
install -D -m 0644 "$REPO/systemd/doorpi-sysusers.conf" "$ROOT/usr/lib/sysusers.d/doorpi.conf"
install -D -m 0644 "$REPO/systemd/doorpi-tmpfiles.conf" "$ROOT/usr/lib/tmpfiles.d/doorpi.conf"
install -m 0755 "$REPO/systemd/doorpi-usb-sync" "$ROOT/opt/doorpi/libexec/doorpi-usb-sync"
if [[ -d "$REPO/models/build" ]]; then
	cp -r "$REPO/models/build" "$ROOT/opt/doorpi/models"
	[[ -f "$REPO/models/manifest.toml" ]] && cp "$REPO/models/manifest.toml" "$ROOT/opt/doorpi/models/"
	cp "$REPO/models/kat.json" "$ROOT/opt/doorpi/models/kat.json"
fi
cp -r "$WHEELS" "$ROOT/tmp/wheels"
echo "doorpi[$EXTRAS]" > "$ROOT/tmp/wheels/requirement.txt"
if [[ "$FACE" == "1" ]]; then
	for photo in "${FACE_PHOTOS[@]}"; do
		install -D -m 0644 "$SHARED/$photo" "$ROOT/tmp/$photo"
	done
	install -m 0644 "$HERE/rootfs-face-check.py" "$ROOT/tmp/rootfs-face-check.py"
fi

# The host's systemd applies our sysusers/tmpfiles files to the foreign root: the
# same result as running them at first boot on the Pi.
systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/doorpi.conf"
systemd-tmpfiles --root="$ROOT" --create "$ROOT/usr/lib/tmpfiles.d/doorpi.conf"
grep -q '^doorpi:' "$ROOT/etc/passwd" || die "sysusers did not create user doorpi"
grep -q '^doorpi-stick:' "$ROOT/etc/passwd" || die "sysusers did not create user doorpi-stick"

mount --bind /dev "$ROOT/dev"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
# qemu-user (7.2, bookworm's) passes the host's x86 /proc/cpuinfo through. ai-edge-litert
# 2.3's CPU detection segfaults on it (in allocate_tensors, or creating SFace's
# interpreter; 1.4.0 does not), whatever the numpy: show the arm64 processes what a
# Raspberry Pi 4 shows (Cortex-A72, as QEMU_CPU above), one entry per host CPU.
for ((cpu = 0; cpu < $(nproc); cpu++)); do
	printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
	printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
	printf 'CPU revision\t: 3\n\n'
done > "$WORK/cpuinfo"
printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated)\n' >> "$WORK/cpuinfo"
mount --bind "$WORK/cpuinfo" "$ROOT/proc/cpuinfo"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

log "installing doorpi[$EXTRAS] in a venv inside the arm64 rootfs (qemu)"
# shellcheck disable=SC2016  # expanded by the chroot's shell, not here
in_root /bin/sh -ec '
	test "$(uname -m)" = aarch64 || { echo "not running under qemu-aarch64"; exit 1; }
	python3 -m venv --system-site-packages /opt/doorpi/venv
	# As the image (01-run-chroot.sh): the locked wheels with their hashes, no resolver;
	# numpy, pyscard and evdev are Debian'"'"'s, through --system-site-packages.
	# The base lock first: the tpm2-pytss build takes cffi, cryptography, pycparser from it.
	for name in requirements.lock requirements-face.lock requirements-tpm.lock; do
		[ -f "/tmp/wheels/$name" ] || continue
		/opt/doorpi/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels \
			--require-hashes --no-deps --no-build-isolation -r "/tmp/wheels/$name"
	done
	/opt/doorpi/venv/bin/pip install --quiet --no-index --no-deps /tmp/wheels/doorpi-*.whl
	/opt/doorpi/venv/bin/pip check
	/opt/doorpi/venv/bin/python -c "import smartcard, evdev"
	/opt/doorpi/venv/bin/python -c "from tpm2_pytss import ESAPI, TCTILdr"
	rm -rf /tmp/wheels
'
# The venv must import the system numpy (the one python3-picamera2 uses), never its own.
in_root /opt/doorpi/venv/bin/python -c '
import numpy, sys
sys.exit(0 if numpy.__file__.startswith("/usr/lib/python3/dist-packages/") else numpy.__file__)' \
	|| die "the venv does not use the system numpy"

log "python3 -c 'import doorpi' inside the rootfs"
in_root /opt/doorpi/venv/bin/python -c \
	'import doorpi, platform; print("doorpi imported on", platform.machine())'
in_root /opt/doorpi/venv/bin/doorpi --help >/dev/null || die "doorpi --help failed"

log "units verify against the installed rootfs"
for unit in "$ROOT"/etc/systemd/system/doorpi*.service "$ROOT"/etc/systemd/system/doorpi*.timer; do
	systemd-analyze verify --recursive-errors=no --root="$ROOT" "$unit" \
		|| die "systemd-analyze verify $(basename "$unit")"
done

# The installer's settings on the boot partition, taken as doorpi-settings.service takes
# them (as root, before the keys): they must become the gate's effective config.
log "installer's settings on the boot partition -> the gate's config (doorpi-settings.service)"
install -d -m 0755 "$ROOT/boot/firmware"
cat > "$ROOT/boot/firmware/doorpi.toml" <<'TOML'
# Installer's settings, written on a laptop before first boot.
[door]
name = "rootfs-gate"
strike = "fail-safe"
[gpio]
strike = 10
[pin]
opslimit = 1
memlimit_kib = 8192
TOML
settings_unit="$ROOT/etc/systemd/system/doorpi-settings.service"
import_boot="$(sed -n 's/^ExecStart=//p' "$settings_unit")"
# shellcheck disable=SC2086  # the unit's command line, split as systemd splits it
in_root $import_boot || die "doorpi config import-boot failed"
[[ ! -e "$ROOT/boot/firmware/doorpi.toml" ]] || die "the boot copy was not removed"
[[ -f "$ROOT/boot/firmware/doorpi.toml.applied.txt" ]] || die "no applied note on the boot partition"
[[ "$(in_root stat -c %U /var/lib/doorpi/config/installer.toml)" == doorpi ]] \
	|| die "installer.toml is not owned by doorpi"
show() {
	in_root /usr/sbin/runuser -u doorpi -- /opt/doorpi/venv/bin/doorpi --config /etc/doorpi/doorpi.toml \
		config show | grep -E "^$1 "
}
show door.name | grep -q '"rootfs-gate".*# installer' || die "door.name is not the installer's: $(show door.name)"
show gpio.strike | grep -q '= 10 ' || die "gpio.strike is not the installer's"

log "network surface: the image's removal step, then network-surface-check.sh"
in_root systemctl enable doorpi.service doorpi-firstboot.service doorpi-selftest.service \
	pcscd.socket doorpi-pcscd-watch.timer >/dev/null 2>&1 || die "systemctl enable (as the image does) failed"
# The check must see the Raspberry-Pi-OS-like base as open, or it proves nothing.
if "$HERE/network-surface-check.sh" "$ROOT" >/dev/null 2>&1; then
	die "network-surface-check.sh passed a root with avahi, NetworkManager and SSH enabled"
fi
install -m 0755 "$HERE/stage-doorpi/00-system/02-run-chroot.sh" "$ROOT/tmp/no-network.sh"
in_root /bin/bash /tmp/no-network.sh || die "02-run-chroot.sh failed"
rm -f "$ROOT/tmp/no-network.sh"
"$HERE/network-surface-check.sh" "$ROOT" || die "the rootfs still has a network surface"

# Keys as doorpi-firstboot.service makes them. Until the lead registers `keys` in the
# CLI, the module's own parser is driven directly (same code, same arguments).
SKIP="reader,camera,gpio"
KEYS_INIT=(/opt/doorpi/venv/bin/doorpi --config /etc/doorpi/doorpi.toml keys init --tpm-if-present /dev/tpmrm0)
if ! in_root /opt/doorpi/venv/bin/doorpi keys --help >/dev/null 2>&1; then
	KEYS_INIT=(/opt/doorpi/venv/bin/python -c '
import argparse, sys
from doorpi.cli import keys
p = argparse.ArgumentParser()
p.add_argument("--config")
keys.register(p.add_subparsers())
a = p.parse_args(["--config", "/etc/doorpi/doorpi.toml", "keys", "init"])
sys.exit(a.func(a))')
fi
if in_root /opt/doorpi/venv/bin/python -c 'import doorpi.cli.keys' >/dev/null 2>&1; then
	log "doorpi keys init as user doorpi (what doorpi-firstboot.service runs)"
	in_root /usr/sbin/runuser -u doorpi -- "${KEYS_INIT[@]}" || die "doorpi keys init failed"
else
	log "this build has no doorpi.cli.keys yet: keys check skipped"
	SKIP="$SKIP,keys"
fi

# The admin's settings, signed in a bundle, change the gate's config (doorpi-sync@.service
# runs `doorpi sync import` as doorpi). The admin's side runs here too, as root.
if [[ "$SKIP" != *keys* ]]; then
	log "the admin's settings in a bundle -> the gate's config (doorpi sync import)"
	admin() { in_root env DOORPI_ADMIN_DIR=/root/doorpi-admin /opt/doorpi/venv/bin/doorpi admin "$@"; }
	as_gate() {
		in_root /usr/sbin/runuser -u doorpi -- /opt/doorpi/venv/bin/doorpi --config /etc/doorpi/doorpi.toml "$@"
	}
	install -d -m 0777 "$ROOT/tmp/stick"
	admin init --site-name "Rootfs Court" >/dev/null || die "admin init"
	admin stick /tmp/stick >/dev/null || die "admin stick"
	# A real stick is mounted for doorpi-stick and the gate gets the bundle through a pipe
	# (doorpi-usb-sync, tested in tests/appliance/test_systemd.py); here the gate reads it.
	stick_to_gate() { in_root chown -R doorpi:doorpi /tmp/stick; }
	stick_to_gate
	as_gate keys export /tmp/stick >/dev/null || die "keys export"
	as_gate keys trust-site /tmp/stick --yes >/dev/null || die "keys trust-site"
	pub=("$ROOT"/tmp/stick/doorpi/gates/*.pub)
	admin gate add "/tmp/stick/doorpi/gates/$(basename "${pub[0]}")" \
		--fingerprint "$(basename "${pub[0]}" .pub)" || die "admin gate add"
	admin gate settings rootfs-gate --set "site.controller=Rootfs Court PM Co." \
		--set 'site.contact="+86 10 5555 0100"' --set 'door.access=["card"]' >/dev/null \
		|| die "admin gate settings"
	printf '[site]\nname = "Rootfs Court"\n' > "$ROOT/tmp/roster.toml"
	admin bundle /tmp/roster.toml /tmp/stick >/dev/null || die "admin bundle"
	stick_to_gate
	as_gate sync import /tmp/stick | tee "$WORK/import.txt" || die "sync import refused the bundle"
	grep -q "3 settings_changed" "$WORK/import.txt" || die "the bundle's settings were not applied"
	show door.access | grep -q '\["card"\].*# admin' || die "door.access is not the admin's: $(show door.access)"
	show door.name | grep -q '# installer' || die "door.name lost its installer source"
fi

# The hardware checks (reader, camera, GPIO) cannot pass in a chroot without the Pi;
# everything else (config, data dir, keys, database, installation) must.
log "doorpi selftest inside the rootfs (skipping $SKIP)"
in_root /usr/sbin/runuser -u doorpi -- /opt/doorpi/venv/bin/python -m doorpi.selftest \
	--config /etc/doorpi/doorpi.toml --skip "$SKIP" \
	|| die "selftest failed inside the rootfs"

if [[ "$FACE" == "1" ]]; then
	log "the real face pipeline on the system numpy, under qemu (${FACE_PHOTOS[*]})"
	started=$SECONDS
	in_root /usr/sbin/runuser -u doorpi -- /opt/doorpi/venv/bin/python -u /tmp/rootfs-face-check.py \
		/opt/doorpi/models "${FACE_PHOTOS[@]/#//tmp/}" \
		|| die "face pipeline check failed inside the rootfs"
	log "face check took $((SECONDS - started)) s"
	# The known-answer test (doorpi.vision.kat) must catch the miscomputing CPU above:
	# on qemu's "max" CPU (SVE/SME) loading the models must fail, and face stay off.
	log "known-answer test on a CPU where SFace miscomputes (qemu max: SVE/SME)"
	kat_out="$(in_root_cpu max /usr/sbin/runuser -u doorpi -- /opt/doorpi/venv/bin/python -c '
from doorpi.vision.models import load_models
from doorpi.vision.runtime import ModelError
try:
    load_models("/opt/doorpi/models")
except ModelError as exc:
    print("refused:", exc)
else:
    print("loaded")' 2>&1 | grep -v '^INFO' || true)"
	echo "   $kat_out"
	[[ "$kat_out" == *"known-answer test failed"* ]] \
		|| die "the known-answer test let a miscomputing SFace through"
fi
log "OK ($SECONDS s)"
