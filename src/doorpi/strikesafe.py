"""Driving the strike line to its de-energised level after the gate has stopped.

systemd runs ``doorpi strike-safe`` as the gate unit's ``ExecStopPost=`` whenever
the gate process ends, for any reason: a clean stop, exit 2, a crash, a watchdog
kill. A Pi's GPIO output keeps its last level when the process that drove it dies
(hardware/strike.py), so without this step a crash during an unlock would leave a
fail-secure strike released until the restarted gate claims the line again, or,
if the gate then exits 2, until a reboot. This step bounds it by its own run time
(about a second on a Pi: Python and gpiozero start-up).

De-energised is the level with no controller for both lock kinds: a fail-secure
strike locks, a fail-safe maglock releases (what fail-safe means: the fire code's
choice, hardware/strike.py). The pin and polarity come from the gate's config; a
config the gate refuses (the reason for an exit 2) is read for ``[gpio]`` and
``[door]`` alone, and when not even that is readable, nothing is driven and the
command says so: driving a guessed pin could switch something else.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doorpi.config import GpioConfig


@dataclass(frozen=True)
class StrikeLine:
    """Where the strike is and how its relay is driven (``[gpio]``, ``[door].strike``)."""

    pin: int
    active_high: bool
    fail_secure: bool
    source: str  # "config" or "raw [gpio]/[door] of FILE (config refused: ...)"


class StrikeLineUnknown(ValueError):
    """Neither the config nor its [gpio]/[door] tables say which pin the strike is on."""


def strike_line(config_path: str | Path) -> StrikeLine:
    """The strike line from the gate's config, or from its raw tables when the
    config as a whole is refused. Raises StrikeLineUnknown (one line)."""
    from doorpi.config import ConfigError, load_config

    try:
        cfg = load_config(config_path)
        return StrikeLine(cfg.gpio.strike, cfg.gpio.strike_active_high, cfg.door.fail_secure,
                          "config")  # fmt: skip
    except ConfigError as exc:
        refused = str(exc)
    try:
        doc = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StrikeLineUnknown(
            f"{config_path}: unreadable ({exc}); config refused: {refused}"
        ) from None
    gpio, door = doc.get("gpio", {}), doc.get("door", {})
    d = GpioConfig()
    pin = gpio.get("strike", d.strike) if isinstance(gpio, dict) else None
    high = gpio.get("strike_active_high", d.strike_active_high) if isinstance(gpio, dict) else None
    kind = door.get("strike", "fail-secure") if isinstance(door, dict) else None
    if not (isinstance(pin, int) and 2 <= pin <= 27 and isinstance(high, bool)
            and kind in ("fail-secure", "fail-safe")):  # fmt: skip
        raise StrikeLineUnknown(
            f"{config_path}: [gpio] strike/strike_active_high or [door] strike unusable; "
            f"config refused: {refused}"
        )
    return StrikeLine(pin, high, kind == "fail-secure",
                      f"raw [gpio]/[door] of {config_path} (config refused: {refused})")  # fmt: skip


def drive_safe(line: StrikeLine, pin_factory: Any) -> None:
    """Claim the line, drive it de-energised, release it (the level stays: see above).

    Raises gpiozero's errors (line busy: the gate still holds it) unchanged."""
    from gpiozero import DigitalOutputDevice

    relay = DigitalOutputDevice(
        line.pin, active_high=line.active_high, initial_value=False, pin_factory=pin_factory
    )
    try:
        relay.off()
    finally:
        relay.close()


__all__ = ["StrikeLine", "StrikeLineUnknown", "drive_safe", "strike_line"]
