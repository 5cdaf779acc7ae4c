#!/bin/sh
# Install the Debian packages doorpi's build and tests need, if any is missing.
# Runs apt-get only when something is absent; needs root (or sudo) then.
# qemu-system-x86, busybox-static and dmsetup: the power-cut tests' guest with the device
# mapper (tests/reliability/dmvm.py; it fetches Debian's kernel package into build/vm).
# `system-deps.sh image` adds what `make image-test` needs (an arm64 rootfs under qemu).
set -eu
IMAGE_PKGS="mmdebstrap arch-test qemu-user-static binfmt-support"
PKGS="python3-venv python3-dev gcc swig libpcsclite-dev pcscd vsmartcard-vpcd shellcheck systemd systemd-container mtools dosfstools fdisk e2fsprogs chromium fonts-wqy-microhei strace swtpm swtpm-tools libtss2-dev pkg-config util-linux chromium-driver qemu-system-x86 busybox-static dmsetup"
[ "${1:-}" = "image" ] && PKGS="$PKGS $IMAGE_PKGS"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing system packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
