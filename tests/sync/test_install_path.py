"""From a flashed image's boot partition to a second bundle that changes the gate's
settings, through two gates of one image: real `doorpi` subprocesses, real files.

The gate side runs as doorpi-settings.service, doorpi-firstboot.service and
doorpi-sync@.service run it on the Pi, with a fake boot partition and data
partition in a temporary folder; the admin side as the README tells the admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from doorpi.config import default_config_text
from human_output import repr_problems

ROSTER = """
[site]
name = "Sunny Garden"

[[residents]]
key = "a-3101-wang"
name = "Alice Wang"
keypad_id = "101"
pin = "246813"
cards = ["04a1b2c3d4e5f6"]
schedule = "weekdays"
gates = ["north-gate"]
"""


def doorpi(*argv: str, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "doorpi", *argv], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    shown = proc.stdout + proc.stderr
    assert "Traceback" not in shown, shown
    if "--json" not in argv:  # what a person reads: no reprs, None, dicts, epoch floats
        assert not repr_problems(shown), (argv, repr_problems(shown), shown)
    if ok:
        assert proc.returncode == 0, shown
    return proc


class Gate:
    """One gate flashed from the image: /etc/doorpi, /boot/firmware, /var/lib/doorpi."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.boot = root / "boot" / "firmware"
        self.boot.mkdir(parents=True)
        self.data = root / "var" / "lib" / "doorpi"
        self.config = root / "etc" / "doorpi" / "doorpi.toml"
        self.config.parent.mkdir(parents=True)
        self.config.write_text(default_config_text().replace("/var/lib/doorpi", str(self.data)))
        self.env = env

    def run(self, *argv: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return doorpi("--config", str(self.config), *argv, env=self.env, ok=ok)

    def boot_once(self) -> None:
        """What the units run at boot: the installer's file, then the keys."""
        self.run("config", "import-boot", str(self.boot / "doorpi.toml"))
        if not (self.data / "keys").exists():
            self.run("keys", "init")

    def show(self) -> dict:
        return json.loads(self.run("config", "show", "--json").stdout)["settings"]


def test_boot_partition_to_second_bundle_through_two_gates(tmp_path: Path) -> None:
    env = {**os.environ, "DOORPI_ADMIN_DIR": str(tmp_path / "admin"), "TZ": "UTC"}
    env.pop("DOORPI_CONFIG", None)
    north, south = Gate(tmp_path / "north", env), Gate(tmp_path / "south", env)
    stick = tmp_path / "stick"
    stick.mkdir()

    # The installer: a file on each card's boot partition before first boot.
    hw = "[gpio]\nstrike = 10\n[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
    (north.boot / "doorpi.toml").write_text(
        f'[door]\nname = "north-gate"\nstrike = "fail-safe"\n{hw}'
    )
    (south.boot / "doorpi.toml").write_text(hw)  # no name: the gate derives its own
    for gate in (north, south):
        gate.boot_once()
        assert not (gate.boot / "doorpi.toml").exists()
        assert (gate.boot / "doorpi.toml.applied.txt").exists()
    s = north.show()
    assert s["door.name"]["value"] == "north-gate" and s["door.name"]["source"].startswith(
        "installer"
    )
    assert s["door.strike"]["value"] == "fail-safe" and s["gpio.strike"]["value"] == 10
    assert s["site.contact"]["source"].startswith("package")
    # A bad file on a later boot: the gate keeps its settings, the installer sees why.
    (north.boot / "doorpi.toml").write_text('[door]\naccess = ["card"]\n')
    proc = north.run("config", "import-boot", str(north.boot / "doorpi.toml"), ok=False)
    assert proc.returncode == 1 and "door.access: the admin's setting" in proc.stderr
    assert "door.access" in (north.boot / "doorpi.toml.rejected.txt").read_text().splitlines()[0]
    assert "installer's boot file was rejected" in north.run("status").stdout
    assert north.show()["gpio.strike"]["value"] == 10

    # Pairing both gates from one image: distinct names.
    doorpi("admin", "init", "--site-name", "Sunny Garden", env=env)
    doorpi("admin", "stick", str(stick), env=env)
    for gate in (north, south):
        gate.run("keys", "export", str(stick))
        gate.run("keys", "trust-site", str(stick), "--yes")
    cards = sorted((stick / "doorpi" / "gates").glob("*.pub"))
    names = {json.loads(c.read_text())["name"] for c in cards}
    assert "north-gate" in names and any(n.startswith("gate-") for n in names)
    for card in cards:
        doorpi("admin", "gate", "add", str(card), env=env)
    south_name = next(n for n in names if n.startswith("gate-"))
    # A third card whose installer copied the north gate's file: told to give --name.
    west = Gate(tmp_path / "west", env)
    (west.boot / "doorpi.toml").write_text('[door]\nname = "north-gate"\n')
    west.boot_once()
    west.run("keys", "export", str(tmp_path / "west.pub"))
    clash = doorpi("admin", "gate", "add", str(tmp_path / "west.pub"), env=env, ok=False)
    assert clash.returncode == 2 and "already registered" in clash.stderr
    assert "--name north-gate-2" in clash.stderr
    doorpi("admin", "gate", "add", str(tmp_path / "west.pub"), "--name", "west-gate", env=env)

    # The admin: settings per gate, checked with the gate's validator on the laptop.
    bad = doorpi("admin", "gate", "settings", "north-gate", "--set", "face.enabled=true",
                 env=env, ok=False)  # fmt: skip
    assert bad.returncode == 2 and "site.controller" in bad.stderr and "placeholder" in bad.stderr
    bad = doorpi(
        "admin", "gate", "settings", "north-gate", "--set", "gpio.strike=8", env=env, ok=False
    )
    assert bad.returncode == 2 and "installer's setting" in bad.stderr
    doorpi("admin", "gate", "settings", "north-gate",
           "--set", "site.controller=Sunny Garden PM Co.", "--set", 'site.contact="+86 10 5555 0100"',
           "--set", 'schedules.weekdays=["mon-fri 07:00-20:00"]',
           "--set", "keypad.pin_min_length=6", env=env)  # fmt: skip
    roster = tmp_path / "roster.toml"
    roster.write_text(ROSTER)
    roster.chmod(0o600)
    out = doorpi("admin", "bundle", str(roster), str(stick), "--gate", "north-gate", env=env).stdout
    assert "sequence 1" in out

    # The gate: the stick is plugged in.
    out = north.run("sync", "import", str(stick)).stdout
    assert "applied bundle 1: 1 added" in out and "4 settings_changed" in out
    assert "apply when the gate restarts" in out
    s = north.show()
    assert s["site.controller"]["value"] == "Sunny Garden PM Co."
    assert s["site.controller"]["source"].startswith("admin")
    assert s["keypad.pin_min_length"]["value"] == 6
    assert s["door.name"]["source"].startswith("installer") and s["gpio.strike"]["value"] == 10
    assert (
        "admin, installer, package (each value: doorpi config show)" in north.run("status").stdout
    )
    north.run("config", "check")
    rep = doorpi("admin", "report", "read", str(stick), env=env).stdout
    assert "north-gate" in rep and "4 settings_changed" in rep

    # A second round changes them again; the other gate is untouched.
    doorpi("admin", "gate", "settings", "north-gate", "--set", "face.enabled=true",
           "--unset", "keypad.pin_min_length", env=env)  # fmt: skip
    doorpi("admin", "bundle", str(roster), str(stick), env=env)
    out = north.run("sync", "import", str(stick)).stdout
    assert "applied bundle 2" in out and "2 settings_changed" in out
    s = north.show()
    assert (
        s["face.enabled"]["value"] is True
        and s["keypad.pin_min_length"]["source"] == (s["keypad.pin_max_length"]["source"])
    )
    out = south.run("sync", "import", str(stick)).stdout
    assert "applied bundle 2" in out and "settings_changed" not in out
    assert south.show()["site.controller"]["value"].startswith("Example Court")
    assert south_name in doorpi("admin", "gate", "list", env=env).stdout
