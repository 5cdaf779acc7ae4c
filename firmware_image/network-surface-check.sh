#!/bin/bash
# network-surface-check.sh ROOT: prove an installed root file system offers no network
# service, without booting it (rootfs-test.sh runs it on the arm64 rootfs; `ss -l` needs
# a running system, which qemu-user cannot give). What it proves, and how:
#  - every unit that would start at boot (a symlink in a *.wants/ or *.requires/ folder
#    under /etc or /usr/lib, not masked) is read: no socket unit may listen on anything
#    but a file-system or abstract AF_UNIX socket (ListenStream=/path, @name), and no
#    service may run a known network daemon (mDNS, DHCP, Wi-Fi, Bluetooth, SSH, ...);
#  - those daemons' units, where installed, are masked (a link to /dev/null);
#  - USB network adapters and Bluetooth get no driver (modprobe.d).
# Exit 0 with a summary, or 1 naming every finding.
set -uo pipefail
ROOT="${1:?usage: network-surface-check.sh ROOT}"
DIRS=(etc/systemd/system run/systemd/system usr/lib/systemd/system lib/systemd/system)
DAEMONS='avahi-daemon|avahi-autoipd|NetworkManager|wpa_supplicant|dhcpcd|dhclient|udhcpc|sshd|dropbear|bluetoothd|hciattach|btattach|systemd-networkd|systemd-resolved|ModemManager|dnsmasq|hostapd|rpcbind|connmand|rpi-connect|cupsd|exim4|smbd|nmbd|lighttpd|nginx|apache2|telnetd|inetd'
NET_UNITS=(avahi-daemon.service avahi-daemon.socket NetworkManager.service wpa_supplicant.service
	bluetooth.service hciuart.service dhcpcd.service ssh.service ssh.socket ModemManager.service
	systemd-networkd.service systemd-networkd.socket systemd-resolved.service)
problems=()

unit_file() { # the file a unit name loads from (template instances from their template)
	local name="$1" d
	local template="${name/@*./@.}"
	for d in "${DIRS[@]}"; do
		for n in "$name" "$template"; do
			if [[ -e "$ROOT/$d/$n" || -L "$ROOT/$d/$n" ]]; then
				echo "$ROOT/$d/$n"
				return
			fi
		done
	done
}
masked() {
	local f
	f="$(unit_file "$1")"
	[[ -n "$f" && -L "$f" && "$(readlink "$f")" == /dev/null ]]
}

enabled=()
while IFS= read -r link; do
	enabled+=("$(basename "$link")")
done < <(find "${DIRS[@]/#/$ROOT/}" -mindepth 2 -maxdepth 2 \( -path '*.wants/*' -o -path '*.requires/*' \) 2>/dev/null | sort -u)
mapfile -t enabled < <(printf '%s\n' "${enabled[@]}" | sort -u)

checked=0
for u in "${enabled[@]}"; do
	[[ -z "$u" ]] && continue
	masked "$u" && continue
	f="$(unit_file "$u")"
	[[ -z "$f" ]] && continue
	checked=$((checked + 1))
	case "$u" in
	*.socket)
		while IFS= read -r value; do
			[[ "$value" == /* || "$value" == @* ]] || problems+=("$u listens on '$value' (not AF_UNIX)")
		done < <(sed -n -E 's/^[[:space:]]*Listen(Stream|Datagram|SequentialPacket)=[[:space:]]*//p' "$f")
		;;
	*.service)
		if grep -E '^[[:space:]]*Exec(Start|StartPre)=' "$f" | grep -qwE "$DAEMONS"; then
			problems+=("$u starts a network daemon: $(grep -E '^[[:space:]]*ExecStart=' "$f" | head -n 1)")
		fi
		;;
	esac
	if [[ "$u" =~ ^($DAEMONS) ]]; then
		problems+=("$u is enabled")
	fi
done

for u in "${NET_UNITS[@]}"; do
	f="$(unit_file "$u")"
	if [[ -n "$f" ]] && ! masked "$u"; then
		problems+=("$u is installed and not masked")
	fi
done

conf="$ROOT/etc/modprobe.d/doorpi-no-network.conf"
for mod in usbnet cdc_ether r8152 ax88179_178a btusb brcmfmac; do
	grep -q "^install $mod /bin/false" "$conf" 2>/dev/null || problems+=("driver $mod is not disabled in $conf")
done

if ((${#problems[@]})); then
	printf 'network-surface-check: FAIL: %s\n' "${problems[@]}" >&2
	exit 1
fi
echo "network-surface-check: ok: ${checked} enabled units, none listens beyond AF_UNIX or runs a network daemon; network daemons absent or masked; USB network and Bluetooth drivers disabled"
