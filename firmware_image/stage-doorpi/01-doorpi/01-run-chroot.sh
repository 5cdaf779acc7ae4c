#!/bin/bash -e
# Inside the image: the doorpi user, the venv, and the units.
# --system-site-packages: picamera2, lgpio and pyscard come from Raspberry Pi OS.
systemd-sysusers /usr/lib/sysusers.d/doorpi.conf
chown root:doorpi /etc/doorpi /etc/doorpi/doorpi.toml
chmod 0750 /etc/doorpi
chmod 0640 /etc/doorpi/doorpi.toml

python3 -m venv --system-site-packages /opt/doorpi/venv
/opt/doorpi/venv/bin/pip install --no-index --find-links /opt/doorpi/wheels \
	-r /opt/doorpi/wheels/requirement.txt
rm -rf /opt/doorpi/wheels
/opt/doorpi/venv/bin/python -c 'import doorpi'

systemctl enable doorpi.service doorpi-firstboot.service doorpi-selftest.service pcscd.socket
# Some pi-gen versions set root's password to "root": lock it (with the first user locked
# too unless DOORPI_ADMIN_PASS was set, console gettys grant nothing). A door controller offers
# no remote login either; admin work goes through the USB stick.
passwd -l root
systemctl disable ssh.service 2>/dev/null || true
