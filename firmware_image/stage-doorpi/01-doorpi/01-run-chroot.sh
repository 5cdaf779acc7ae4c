#!/bin/bash -e
# Inside the image: the doorpi user, the venv, and the units.
# --system-site-packages: picamera2, lgpio and pyscard come from Raspberry Pi OS.
systemd-sysusers /usr/lib/sysusers.d/doorpi.conf
chown root:doorpi /etc/doorpi /etc/doorpi/doorpi.toml
chmod 0750 /etc/doorpi
chmod 0640 /etc/doorpi/doorpi.toml

python3 -m venv --system-site-packages /opt/doorpi/venv
# tpm2-pytss (the TPM key root, docs/keys.md) has no aarch64 wheel: requirements-tpm.lock
# holds its source archive's sha256, built here against Raspberry Pi OS's libtss2 by build
# tools installed for it and purged again (only those this script added). The runtime
# libraries (libtss2-*, tpm-udev) are in 00-system/00-packages and stay.
TPM_BUILD_DEPS="gcc pkg-config libtss2-dev python3-dev python3-setuptools python3-setuptools-scm python3-pkgconfig python3-packaging"
added=""
if [ -f /opt/doorpi/wheels/requirements-tpm.lock ]; then
	for pkg in $TPM_BUILD_DEPS; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || added="$added $pkg"
	done
	# shellcheck disable=SC2086  # a list of package names
	[ -z "$added" ] || apt-get install -y --no-install-recommends $added
fi
# Exactly the versions the tests ran (firmware_image/requirements*.lock), each file
# checked against its sha256, no resolver. numpy stays the system's python3-numpy (1.24
# on bookworm), the one python3-picamera2 is built against: it is not in the locks, so
# pip never puts numpy 2 into the venv; pip check proves the locked packages accept it.
# The base lock first: the tpm build takes cffi, cryptography and pycparser from it
# (--no-build-isolation: nothing is fetched, every build input is locked or Debian's).
for name in requirements.lock requirements-face.lock requirements-tpm.lock; do
	lock="/opt/doorpi/wheels/$name"
	[ -f "$lock" ] || continue
	/opt/doorpi/venv/bin/pip install --no-index --find-links /opt/doorpi/wheels \
		--require-hashes --no-deps --no-build-isolation -r "$lock"
done
/opt/doorpi/venv/bin/pip install --no-index --no-deps /opt/doorpi/wheels/doorpi-*.whl
/opt/doorpi/venv/bin/pip check
/opt/doorpi/venv/bin/python -c 'import doorpi'
/opt/doorpi/venv/bin/python -c 'import numpy, sys; sys.exit(0 if numpy.__file__.startswith("/usr/lib/python3/dist-packages/") else "venv numpy " + numpy.__file__)'
if [ -f /opt/doorpi/wheels/requirements-face.lock ]; then
	/opt/doorpi/venv/bin/python -c 'import ai_edge_litert.interpreter'
fi
if [ -f /opt/doorpi/wheels/requirements-tpm.lock ]; then
	/opt/doorpi/venv/bin/python -c 'from tpm2_pytss import ESAPI, TCTILdr'
	# shellcheck disable=SC2086  # a list of package names
	[ -z "$added" ] || apt-get purge -y --auto-remove $added
	/opt/doorpi/venv/bin/python -c 'from tpm2_pytss import ESAPI, TCTILdr'
fi
rm -rf /opt/doorpi/wheels

# The timer alone starts doorpi-pcscd-watch.service (every 30 s: a frozen pcscd restarted).
systemctl enable doorpi.service doorpi-firstboot.service doorpi-settings.service doorpi-selftest.service pcscd.socket \
	doorpi-pcscd-watch.timer
# Some pi-gen versions set root's password to "root": lock it (with the first user locked
# too unless DOORPI_ADMIN_PASS was set, console gettys grant nothing). A door controller offers
# no remote login either; admin work goes through the USB stick.
passwd -l root
systemctl disable ssh.service 2>/dev/null || true
