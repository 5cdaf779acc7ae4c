#!/bin/bash -e
# Inside the image: the doorpi user, the venv, and the units.
# --system-site-packages: picamera2, lgpio and pyscard come from Raspberry Pi OS.
systemd-sysusers /usr/lib/sysusers.d/doorpi.conf
chown root:doorpi /etc/doorpi /etc/doorpi/doorpi.toml
chmod 0750 /etc/doorpi
chmod 0640 /etc/doorpi/doorpi.toml

python3 -m venv --system-site-packages /opt/doorpi/venv
# Exactly the versions the tests ran (firmware_image/requirements*.lock), each wheel
# checked against its sha256, no resolver. numpy stays the system's python3-numpy (1.24
# on bookworm), the one python3-picamera2 is built against: it is not in the locks, so
# pip never puts numpy 2 into the venv; pip check proves the locked packages accept it.
for lock in /opt/doorpi/wheels/requirements*.lock; do
	/opt/doorpi/venv/bin/pip install --no-index --find-links /opt/doorpi/wheels \
		--require-hashes --no-deps -r "$lock"
done
/opt/doorpi/venv/bin/pip install --no-index --no-deps /opt/doorpi/wheels/doorpi-*.whl
/opt/doorpi/venv/bin/pip check
/opt/doorpi/venv/bin/python -c 'import doorpi'
/opt/doorpi/venv/bin/python -c 'import numpy, sys; sys.exit(0 if numpy.__file__.startswith("/usr/lib/python3/dist-packages/") else "venv numpy " + numpy.__file__)'
if [ -f /opt/doorpi/wheels/requirements-face.lock ]; then
	/opt/doorpi/venv/bin/python -c 'import ai_edge_litert.interpreter'
fi
rm -rf /opt/doorpi/wheels

systemctl enable doorpi.service doorpi-firstboot.service doorpi-settings.service doorpi-selftest.service pcscd.socket
# Some pi-gen versions set root's password to "root": lock it (with the first user locked
# too unless DOORPI_ADMIN_PASS was set, console gettys grant nothing). A door controller offers
# no remote login either; admin work goes through the USB stick.
passwd -l root
systemctl disable ssh.service 2>/dev/null || true
