#!/bin/bash -e
# Host side: system files that do not depend on the doorpi build.
# - vfat/exfat modules loaded at boot, so the sandboxed USB sync (which may not load
#   modules) can mount an admin's stick;
# - polkit rule letting the doorpi user talk to pcscd (pcsc-lite checks polkit);
# - journald in RAM only (the root is read-only; the audit log lives in the database);
# - the data partition in fstab;
# - Wi-Fi and Bluetooth off in config.txt (no radio);
# - the DS3231 RTC overlay for a Pi 4 (the Pi 5 has its own RTC): schedules and the audit
#   log need the right time after a power cut, and the gate has no network time.
install -m 0644 files/doorpi-modules.conf "${ROOTFS_DIR}/etc/modules-load.d/doorpi.conf"
install -d -m 0755 "${ROOTFS_DIR}/etc/polkit-1/rules.d"
install -m 0644 files/50-doorpi-pcscd.rules "${ROOTFS_DIR}/etc/polkit-1/rules.d/50-doorpi-pcscd.rules"
install -d -m 0755 "${ROOTFS_DIR}/etc/systemd/journald.conf.d"
install -m 0644 files/journald-doorpi.conf "${ROOTFS_DIR}/etc/systemd/journald.conf.d/doorpi.conf"
install -d -m 0755 "${ROOTFS_DIR}/var/lib/doorpi"
if ! grep -q 'LABEL=doorpi-data' "${ROOTFS_DIR}/etc/fstab"; then
	cat files/fstab-doorpi >> "${ROOTFS_DIR}/etc/fstab"
fi
CONFIG_TXT="${ROOTFS_DIR}/boot/firmware/config.txt"
if ! grep -q 'i2c-rtc,ds3231' "${CONFIG_TXT}"; then
	printf '\n[pi4]\n# doorpi: DS3231 real-time clock on I2C1 (GPIO2/3)\ndtoverlay=i2c-rtc,ds3231\n[all]\n' >> "${CONFIG_TXT}"
fi
# No radio: the gate uses neither Wi-Fi nor Bluetooth (02-run-chroot.sh removes their
# software; these keep the chips off, whatever is installed).
if ! grep -q '^dtoverlay=disable-wifi' "${CONFIG_TXT}"; then
	printf '\n[all]\n# doorpi: no Wi-Fi, no Bluetooth\ndtoverlay=disable-wifi\ndtoverlay=disable-bt\n' >> "${CONFIG_TXT}"
fi
