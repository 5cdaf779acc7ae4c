#!/bin/bash -e
# Inside the image: no network surface. The gate has no network service (doorpi.service
# runs with PrivateNetwork=yes; the admin syncs over a USB stick), yet Raspberry Pi OS
# Lite ships avahi (mDNS answers on any interface), NetworkManager (DHCP on a USB
# network adapter plugged into the gate), wpa_supplicant and Bluetooth. They go:
# purged where the package can go, and their units masked in any case (a package that
# another one depends on stays installed but can never start). USB network adapters and
# Bluetooth get no driver, so a plugged adapter brings up no interface at all.
# Also run by firmware_image/rootfs-test.sh, then checked by network-surface-check.sh.
NET_PACKAGES="avahi-daemon avahi-autoipd libnss-mdns network-manager wpasupplicant
	bluez bluez-firmware pi-bluetooth dhcpcd dhcpcd5 isc-dhcp-client openssh-server
	modemmanager rpi-connect rpi-connect-lite"
NET_UNITS="avahi-daemon.service avahi-daemon.socket NetworkManager.service
	NetworkManager-wait-online.service NetworkManager-dispatcher.service
	wpa_supplicant.service bluetooth.service hciuart.service bthelper@.service
	dhcpcd.service ssh.service ssh.socket sshswitch.service ModemManager.service
	systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service
	systemd-resolved.service systemd-timesyncd.service rpi-connect.service"

installed=""
for p in $NET_PACKAGES; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$'; then
		installed="$installed $p"
	fi
done
if [ -n "$installed" ]; then
	# One by one: a package something essential depends on stays (and is masked below).
	for p in $installed; do
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$p" >/dev/null 2>&1 \
			|| echo "02-run-chroot: $p could not be purged; its units are masked" >&2
	done
fi
for unit in $NET_UNITS; do
	systemctl mask "$unit" >/dev/null 2>&1 || ln -sf /dev/null "/etc/systemd/system/$unit"
done
install -d -m 0755 /etc/modprobe.d
cat > /etc/modprobe.d/doorpi-no-network.conf <<'CONF'
# doorpi: no network interface from a plugged USB adapter, no Bluetooth (02-run-chroot.sh).
install usbnet /bin/false
install cdc_ether /bin/false
install cdc_ncm /bin/false
install rndis_host /bin/false
install r8152 /bin/false
install ax88179_178a /bin/false
install asix /bin/false
install smsc95xx /bin/false
install lan78xx /bin/false
install brcmfmac /bin/false
install bluetooth /bin/false
install btusb /bin/false
install hci_uart /bin/false
CONF
