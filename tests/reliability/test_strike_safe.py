"""The strike after the gate stops (issue #18): systemd's ExecStopPost= step,
`doorpi strike-safe`, claims the strike line and drives it de-energised.

A process that dies leaves a Pi's GPIO output at its last level; gpiozero's
MockFactory keeps a pin's level the same way when the device holding it is
dropped without `close()` (its reservation released, as the kernel frees a dead
process's line), so the tests kill the gate's strike that way, mid-unlock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from doorpi.hardware.strike import DoorStrike
from doorpi.strikesafe import StrikeLine, drive_safe, strike_line


def died_mid_unlock(factory: MockFactory, **kw: bool) -> DoorStrike:
    strike = DoorStrike(17, pin_factory=factory, **kw)
    strike.release()
    assert strike.released
    factory.release_all(strike._relay)  # the process is gone; the line keeps its level
    return strike


@pytest.mark.parametrize("active_high", [True, False], ids=["active-high", "active-low"])
def test_strike_released_by_a_dead_gate_is_driven_locked(active_high: bool) -> None:
    factory = MockFactory()
    died_mid_unlock(factory, active_high=active_high)
    pin = factory.pin(17)
    assert pin.state == active_high  # still energised: released
    drive_safe(StrikeLine(17, active_high, True, "test"), factory)
    assert pin.state == (not active_high)  # de-energised: a fail-secure strike locks
    again = DoorStrike(17, active_high=active_high, pin_factory=factory)
    assert not again.released and pin.state == (not active_high)
    again.close()


def test_fail_safe_maglock_is_left_de_energised() -> None:
    factory = MockFactory()
    strike = DoorStrike(17, fail_secure=False, pin_factory=factory)
    assert strike.energised  # a maglock holds while the gate runs
    factory.release_all(strike._relay)
    drive_safe(StrikeLine(17, True, False, "test"), factory)
    assert factory.pin(17).state is False  # no controller: released, as fail-safe means


def test_a_line_the_gate_still_holds_is_not_taken() -> None:
    factory = MockFactory()
    strike = DoorStrike(17, pin_factory=factory)
    with pytest.raises(GPIOPinInUse):
        drive_safe(StrikeLine(17, True, True, "test"), factory)
    strike.close()


def _cli(config: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(config), "strike-safe", "--sim"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOORPI_PIN_LOG": str(tmp_path / "pins.log"), **env},
    )  # fmt: skip


def test_cli_after_an_exit_2_config_reads_the_gpio_table(tmp_path: Path) -> None:
    """The config the gate refused (why it exited 2) still names the strike pin."""
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text('[site]\ntimezone = "Mars/Olympus"\n[gpio]\nstrike = 27\n'
                   'strike_active_high = false\n')  # fmt: skip
    line = strike_line(cfg)
    assert (line.pin, line.active_high, line.fail_secure) == (27, False, True)
    p = _cli(cfg, tmp_path, SERVICE_RESULT="exit-code", EXIT_STATUS="2")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout.startswith("strike on GPIO27 de-energised after the gate stopped "
                               "(exit-code 2); pin from raw [gpio]/[door]")  # fmt: skip
    assert "Mars/Olympus" in p.stdout
    # An active-low relay board: de-energised is the high level (the mock pin starts low).
    levels = (tmp_path / "pins.log").read_text().split()
    assert levels[-2:] == ["GPIO27", "1"], levels


def test_cli_with_no_usable_pin_drives_nothing_and_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text("[gpio\nstrike = 17\n")
    p = _cli(cfg, tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "strike not driven" in lines[0] and str(cfg) in lines[0]
    assert not (tmp_path / "pins.log").exists()
