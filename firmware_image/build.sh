#!/bin/bash
# build.sh: build the doorpi SD-card image with pi-gen (Raspberry Pi OS Lite, arm64,
# bookworm) plus stage-doorpi, then add the data partition.
#
# Cannot run on the project's CI machines: pi-gen needs the Raspberry Pi OS archive
# (archive.raspberrypi.com) for the kernel, firmware, python3-picamera2 and
# python3-lgpio. Run it on a Debian/Ubuntu machine with that access, as root:
#
#   sudo firmware_image/build.sh [PI_GEN_DIR]
#
# PI_GEN_DIR: a checkout of https://github.com/RPi-Distro/pi-gen (branch "bookworm"
# for 32-bit, "arm64" for 64-bit; default ./pi-gen, cloned if missing). Needs pi-gen's
# dependencies (see its README: coreutils quilt parted qemu-user-static debootstrap
# zerofree zip dosfstools libarchive-tools libcap2-bin grep rsync xz-utils file git
# curl bc gpg pigz xxd arch-test bmap-tools kmod) plus mtools for add-data-partition.sh.
#
# What it does:
#  1. builds the doorpi wheel and downloads its aarch64 dependencies, the face runtime
#     included (a wheelhouse: the image installs offline), copies models/build +
#     models/manifest.toml, the systemd files and the default config into
#     stage-doorpi/01-doorpi/files/;
#  2. runs pi-gen with stages 0-2 (Lite) and stage-doorpi (config: ./config);
#  3. runs add-data-partition.sh on the exported image (ext4 "doorpi-data" for
#     /var/lib/doorpi, data=journal) and compresses it.
# The result: deploy/<date>-doorpi-arm64.img.xz, to flash with Raspberry Pi Imager
# (no customisation: the image has no login user with a password and no SSH).
#
# env: DOORPI_FACE=0 builds without the face runtime (the `face` extra, ai-edge-litert;
#      default 1). Shipping it enables nothing: face stays off in the config until the
#      operator turns it on and records an impact assessment.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PI_GEN="${1:-$HERE/pi-gen}"
STAGE="$HERE/stage-doorpi"
FILES="$STAGE/01-doorpi/files"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"

[[ $EUID -eq 0 ]] || { echo "build.sh: run as root (pi-gen needs it)" >&2; exit 1; }
if [[ ! -d "$PI_GEN" ]]; then
	git clone --depth 1 --branch arm64 https://github.com/RPi-Distro/pi-gen "$PI_GEN"
fi

echo "== 1. doorpi build artefacts -> $FILES"
rm -rf "$FILES/wheels" "$FILES/models" "$FILES/systemd" "$FILES/requirement.txt"
mkdir -p "$FILES/wheels" "$FILES/systemd"
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
# The wheel carries the model build's hashes (doorpi/data/models.SHA256SUMS): the gate
# checks its model files against them, not against the list copied beside the files.
if [[ -d "$REPO/models/build" ]]; then
	cmp -s "$REPO/models/build/SHA256SUMS" "$REPO/src/doorpi/data/models.SHA256SUMS" || {
		echo "build.sh: src/doorpi/data/models.SHA256SUMS is not models/build's (run make models)" >&2
		exit 1
	}
fi
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./models --exclude=./build \
	--exclude=./firmware_image --exclude='*.egg-info' -cf - . | tar -C "$SRC" -xf -
"$PYTHON" -m pip wheel --no-deps -w "$FILES/wheels" "$SRC"
# Extras: the reader and keypad extras are satisfied by Raspberry Pi OS's python3-pyscard
# and python3-evdev (pyscard has no Linux wheels: they are not downloaded and must be met
# by the system packages at install time). The face extra (ai-edge-litert) is downloaded
# unless DOORPI_FACE=0. It runs on the system numpy 1.24 that python3-picamera2 is built
# against (not in the locks: pip never puts numpy 2 into the venv; `pip check` in the
# chroot proves the locked packages accept it, and rootfs-test.sh runs the real face
# pipeline on bookworm's python3-numpy 1.24.2 under qemu).
EXTRAS="reader,keypad"
if [[ "${DOORPI_FACE:-1}" != "0" ]]; then
	EXTRAS="$EXTRAS,face"
fi
echo "doorpi[$EXTRAS]" > "$FILES/requirement.txt"
# pip does not widen --platform to older manylinux tags: every glibc from 2.17 to
# bookworm's 2.36 is listed (ai-edge-litert 2.x is manylinux_2_27_aarch64 only).
PLATFORMS=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do
	PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64")
done
# Exactly the versions the tests ran, each wheel checked against its sha256
# (requirements*.lock, written by tools/image/lock.py from the test venv): no resolver,
# no `>=` range decided at build time.
LOCKS=("$HERE/requirements.lock")
[[ "${DOORPI_FACE:-1}" != "0" ]] && LOCKS+=("$HERE/requirements-face.lock")
for lock in "${LOCKS[@]}"; do
	"$PYTHON" -m pip download --dest "$FILES/wheels" --only-binary=:all: --no-deps --require-hashes \
		"${PLATFORMS[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
		-r "$lock"
	cp "$lock" "$FILES/wheels/"
done
# The TPM key root's tpm2-pytss: a source archive (no aarch64 wheel) and its pure-Python
# dependency, checked against their sha256; 01-run-chroot.sh builds it against libtss2.
"$PYTHON" -m pip download --dest "$FILES/wheels" --no-binary=tpm2-pytss --no-deps --require-hashes \
	-r "$HERE/requirements-tpm.lock"
cp "$HERE/requirements-tpm.lock" "$FILES/wheels/"
if [[ -d "$REPO/models/build" ]]; then
	cp -r "$REPO/models/build" "$FILES/models"
	cp "$REPO/models/manifest.toml" "$FILES/models/manifest.toml"
	cp "$REPO/models/kat.json" "$FILES/models/kat.json"
else
	echo "   (no models/build: the image ships without face models; face stays disabled)"
fi
cp "$REPO"/systemd/*.service "$REPO"/systemd/*.timer "$REPO/systemd/99-doorpi-usb.rules" "$REPO/systemd/doorpi-sysusers.conf" \
	"$REPO/systemd/doorpi-tmpfiles.conf" "$REPO/systemd/doorpi-usb-sync" "$FILES/systemd/"
cp "$REPO/src/doorpi/data/doorpi.toml" "$FILES/doorpi.toml"

echo "== 2. pi-gen"
cp "$HERE/config" "$PI_GEN/config"
# stage2 must not export its own image; only stage-doorpi does.
touch "$PI_GEN/stage2/SKIP_IMAGES"
rm -f "$PI_GEN/stage2/EXPORT_IMAGE"
ln -sfn "$STAGE" "$PI_GEN/stage-doorpi"
(cd "$PI_GEN" && ./build.sh -c config)

echo "== 3. data partition"
shopt -s nullglob
IMG=""
for candidate in "$PI_GEN"/deploy/*doorpi*.img; do
	[[ -z "$IMG" || "$candidate" -nt "$IMG" ]] && IMG="$candidate"
done
[[ -n "$IMG" ]] || { echo "build.sh: pi-gen exported no *doorpi*.img in $PI_GEN/deploy" >&2; exit 1; }
OUT="$HERE/deploy"
mkdir -p "$OUT"
cp "$IMG" "$OUT/"
"$HERE/add-data-partition.sh" "$OUT/$(basename "$IMG")"
xz -T0 -f "$OUT/$(basename "$IMG")"
echo "done: $OUT/$(basename "$IMG").xz"
