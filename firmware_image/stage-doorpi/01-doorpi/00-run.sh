#!/bin/bash -e
# Host side: copy the doorpi build (prepared in files/ by firmware_image/build.sh)
# into the image. Nothing here is fetched from the network.
test -d files/wheels || { echo "files/wheels missing: run firmware_image/build.sh" >&2; exit 1; }
install -d -m 0755 "${ROOTFS_DIR}/opt/doorpi" "${ROOTFS_DIR}/opt/doorpi/libexec" "${ROOTFS_DIR}/etc/doorpi"
rm -rf "${ROOTFS_DIR}/opt/doorpi/wheels"
cp -r files/wheels "${ROOTFS_DIR}/opt/doorpi/wheels"
install -m 0644 files/requirement.txt "${ROOTFS_DIR}/opt/doorpi/wheels/requirement.txt"
if [ -d files/models ]; then
	rm -rf "${ROOTFS_DIR}/opt/doorpi/models"
	cp -r files/models "${ROOTFS_DIR}/opt/doorpi/models"
	chmod -R u=rwX,go=rX "${ROOTFS_DIR}/opt/doorpi/models"
fi
install -m 0640 files/doorpi.toml "${ROOTFS_DIR}/etc/doorpi/doorpi.toml"
for unit in doorpi.service doorpi-firstboot.service doorpi-settings.service doorpi-sync@.service doorpi-selftest.service \
	doorpi-pcscd-watch.service doorpi-pcscd-watch.timer; do
	install -m 0644 "files/systemd/${unit}" "${ROOTFS_DIR}/etc/systemd/system/${unit}"
done
install -m 0644 files/systemd/99-doorpi-usb.rules "${ROOTFS_DIR}/etc/udev/rules.d/99-doorpi-usb.rules"
install -m 0644 files/systemd/doorpi-sysusers.conf "${ROOTFS_DIR}/usr/lib/sysusers.d/doorpi.conf"
install -m 0644 files/systemd/doorpi-tmpfiles.conf "${ROOTFS_DIR}/usr/lib/tmpfiles.d/doorpi.conf"
install -m 0755 files/systemd/doorpi-usb-sync "${ROOTFS_DIR}/opt/doorpi/libexec/doorpi-usb-sync"
