#!/bin/bash -e
# Read-only root: the root file system is mounted read-only under a tmpfs overlay by
# overlayroot in the initramfs, so a power cut cannot corrupt it and nothing written at
# run time survives a reboot. recurse=0 leaves the other fstab mounts alone, so the
# data partition on /var/lib/doorpi stays a real, journalled, writable file system.
CMDLINE="${ROOTFS_DIR}/boot/firmware/cmdline.txt"
if ! grep -q 'overlayroot=' "${CMDLINE}"; then
	sed -i '1 s/^/overlayroot=tmpfs:recurse=0 /' "${CMDLINE}"
fi
# The root partition is no longer the last one (the data partition follows it), so
# Raspberry Pi OS's first-boot root resize must not run.
sed -i 's# init=/usr/lib/raspberrypi-sys-mods/firstboot##' "${CMDLINE}"
on_chroot <<'CHROOT'
set -e
# Build an initramfs (with the overlayroot hook) for every installed kernel; the
# raspi-firmware hook copies it to /boot/firmware, loaded by auto_initramfs=1.
for kernel in /lib/modules/*; do
	update-initramfs -u -k "$(basename "$kernel")" || update-initramfs -c -k "$(basename "$kernel")"
done
CHROOT
