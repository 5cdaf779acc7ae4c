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
