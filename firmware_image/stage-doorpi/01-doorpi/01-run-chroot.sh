#!/bin/bash -e
# Inside the image: the doorpi user, the venv, and the units.
# --system-site-packages: picamera2, lgpio and pyscard come from Raspberry Pi OS.
systemd-sysusers /usr/lib/sysusers.d/doorpi.conf
chown root:doorpi /etc/doorpi /etc/doorpi/doorpi.toml
chmod 0750 /etc/doorpi
chmod 0640 /etc/doorpi/doorpi.toml

python3 -m venv --system-site-packages /opt/doorpi/venv
# numpy stays the system's python3-numpy (1.24 on bookworm), the one python3-picamera2 is
# built against: pinned to the version found here, pip fails rather than install numpy 2
# into the venv, where it would shadow the system numpy and break the camera. The face
# runtime (ai-edge-litert, unless the image was built with DOORPI_FACE=0) runs on it.
python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > /opt/doorpi/wheels/constraints.txt
/opt/doorpi/venv/bin/pip install --no-index --find-links /opt/doorpi/wheels \
	-c /opt/doorpi/wheels/constraints.txt -r /opt/doorpi/wheels/requirement.txt
/opt/doorpi/venv/bin/python -c 'import doorpi'
/opt/doorpi/venv/bin/python -c 'import numpy, sys; sys.exit(0 if numpy.__file__.startswith("/usr/lib/python3/dist-packages/") else "venv numpy " + numpy.__file__)'
if grep -q face /opt/doorpi/wheels/requirement.txt; then
	/opt/doorpi/venv/bin/python -c 'import ai_edge_litert.interpreter'
fi
rm -rf /opt/doorpi/wheels

systemctl enable doorpi.service doorpi-firstboot.service doorpi-settings.service doorpi-selftest.service pcscd.socket
# Some pi-gen versions set root's password to "root": lock it (with the first user locked
# too unless DOORPI_ADMIN_PASS was set, console gettys grant nothing). A door controller offers
# no remote login either; admin work goes through the USB stick.
passwd -l root
systemctl disable ssh.service 2>/dev/null || true
