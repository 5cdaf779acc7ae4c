"""Pins that move during boot: refused for the strike, warned for other outputs,
in `doorpi config check`, `doorpi selftest` and the pinout documentation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi import selftest
from doorpi.pinsafety import strike_pin_problem

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, toml: str, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "data"}"\n{toml}')
    return subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize("pin", [2, 3, 4, 5, 6, 7, 8, 14, 15])
def test_config_check_refuses_the_strike_on_a_boot_unsafe_pin(tmp_path, pin):
    # move whatever default function sits on the pin out of the way
    free = "presence = 0\n" if pin == 4 else ""
    keypad = '[keypad]\nkind = "none"\n'
    p = run(tmp_path, f"[gpio]\nstrike = {pin}\n{free}{keypad}", "config", "check")
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert f"gpio.strike: GPIO{pin} " in lines[0] and "during boot" in lines[0]


@pytest.mark.parametrize("pin", [9, 10, 11, 12, 13, 16, 17, 26, 27])
def test_safe_pins_pass(pin):
    assert strike_pin_problem(pin) == ""


def test_other_outputs_on_unsafe_pins_are_warned_not_refused(tmp_path):
    toml = '[gpio]\nled_green = 14\nbuzzer = 5\n[keypad]\nkind = "none"\n'
    p = run(tmp_path, toml, "config", "check")
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stdout.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 2
    assert "gpio.led_green = 14" in warnings[0] and "serial console" in warnings[0]
    assert "gpio.buzzer = 5" in warnings[1] and "pulled high" in warnings[1]
    plain = run(tmp_path, '[keypad]\nkind = "none"\n', "config", "check")
    assert "WARNING" not in plain.stdout  # the shipped pins are quiet


# Every input and keypad matrix pin on a pin hw/pinout.md reserves (I2C1 of the RTC,
# UART0 of the console) is refused, naming the key; the default function on the pin
# (presence on 4 is not one) needs no moving since 2, 3, 14, 15 are free by default.
RESERVED_INPUTS = [
    ("[gpio]\nfire_alarm = 2\n", "gpio.fire_alarm", 2, "real-time clock"),
    ("[gpio]\nlockdown_switch = 3\n", "gpio.lockdown_switch", 3, "real-time clock"),
    ("[gpio]\ndoor_contact = 2\n", "gpio.door_contact", 2, "real-time clock"),
    ("[gpio]\nexit_button = 3\n", "gpio.exit_button", 3, "real-time clock"),
    ("[gpio]\ntamper = 14\n", "gpio.tamper", 14, "serial console"),
    ("[gpio]\npresence = 15\n", "gpio.presence", 15, "serial console"),
    ("[gpio]\nfire_alarm = 9\nfire_supervision = 3\n", "gpio.fire_supervision", 3, "clock"),
    ("[keypad]\nrows = [2, 3, 13, 19]\n", "keypad.rows[0]", 2, "real-time clock"),
    ("[keypad]\nrows = [5, 6, 13, 3]\n", "keypad.rows[3]", 3, "real-time clock"),
    ("[keypad]\ncols = [26, 16, 20, 14]\n", "keypad.cols[3]", 14, "serial console"),
]


@pytest.mark.parametrize(("toml", "key", "pin", "why"), RESERVED_INPUTS)
def test_config_check_refuses_inputs_and_keypad_on_reserved_pins(tmp_path, toml, key, pin, why):
    p = run(tmp_path, toml, "config", "check")
    assert p.returncode == 2, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert f"{key}: GPIO{pin} is reserved for the " in lines[0] and why in lines[0]
    assert "hw/pinout.md" in lines[0]


def test_the_gate_does_not_start_with_an_input_on_the_rtc_bus(tmp_path):
    """At start, before any pin is claimed: an NC fire contact on GPIO2 would read the
    I2C pull-up as "alarm" and hold the door released."""
    p = run(tmp_path, "[gpio]\nfire_alarm = 2\n", "run", "--sim")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpio.fire_alarm: GPIO2 is reserved" in lines[0]


def test_a_usb_keypad_ignores_the_matrix_pins_and_outputs_keep_their_warning(tmp_path):
    p = run(tmp_path, '[gpio]\nled_red = 3\n[keypad]\nkind = "none"\nrows = [2, 3, 13, 19]\n',
            "config", "check")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "WARNING: gpio.led_red = 3" in p.stdout


def test_gpio1_is_refused_like_the_message_says(tmp_path):
    p = run(tmp_path, "[gpio]\nbuzzer = 1\n", "config", "check")
    assert p.returncode == 2
    assert "gpio.buzzer: must be a BCM GPIO number from 2 to 27 (0 disables), got 1" in p.stderr


def test_selftest_fails_the_strike_on_14_and_warns_other_outputs(tmp_path):
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text('[gpio]\nstrike = 14\n[keypad]\nkind = "none"\n')
    results = {r.name: r for r in selftest.run_checks(cfg, skip=["models", "face_runtime"],
                                                      list_readers=lambda: [])}  # fmt: skip
    assert results["strike_boot"].status == selftest.FAIL
    assert "serial console" in results["strike_boot"].detail
    assert results["config"].status == selftest.FAIL
    cfg.write_text('[gpio]\ncamera_led = 15\n[keypad]\nkind = "none"\n')
    results = {r.name: r for r in selftest.run_checks(cfg, skip=["models", "face_runtime"],
                                                      list_readers=lambda: [])}  # fmt: skip
    assert results["config"].status == selftest.WARN
    assert "gpio.camera_led = 15" in results["config"].detail
    assert results["strike_boot"].status == selftest.PASS


def test_pinout_documents_the_safe_strike_pins_and_the_settle_time():
    text = (REPO / "hw" / "pinout.md").read_text(encoding="utf-8")
    section = text[text.index("## Pins the strike may use") :]
    assert re.search(r"GPIO9-13 and 16-27", section)
    for pin in ("14", "15", "2", "3", "0-8"):
        assert pin in section
    assert "gpio.settle_seconds" in text and "50 ms" in text
