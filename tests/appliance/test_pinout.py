"""hw/pinout.md must describe exactly the pins the default configuration uses.

An installer wires from pinout.md and the gate drives what doorpi.toml says: if they
disagree, the strike relay ends up on an input or a keypad row on the reed contact.
"""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PINOUT = REPO / "hw" / "pinout.md"
CONFIG = REPO / "src" / "doorpi" / "data" / "doorpi.toml"

# The 40-pin header, BCM number -> physical pin (Raspberry Pi 2 B and later, 4, 5):
# an independent copy of the datasheet so a typo in pinout.md cannot check itself.
BCM_TO_PHYSICAL = {
    2: 3, 3: 5, 4: 7, 17: 11, 27: 13, 22: 15, 10: 19, 9: 21, 11: 23, 0: 27, 5: 29,
    6: 31, 13: 33, 19: 35, 26: 37, 14: 8, 15: 10, 18: 12, 23: 16, 24: 18, 25: 22,
    8: 24, 7: 26, 1: 28, 12: 32, 16: 36, 20: 38, 21: 40,
}  # fmt: skip
# Pins the recommended add-ons need: HAT ID EEPROM, I2C1 (DS3231 RTC), UART0 (console).
MUST_RESERVE = {0, 1, 2, 3, 14, 15}
OUTPUTS = {"gpio.strike", "gpio.led_green", "gpio.led_red", "gpio.buzzer", "gpio.camera_led"}
PULL_UP_INPUTS = {"gpio.door_contact", "gpio.exit_button", "gpio.tamper"}


def markdown_table(text: str, first_header: str) -> list[dict[str, str]]:
    """Rows of the markdown table whose header starts with ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def config_pins() -> dict[str, int]:
    """Config key -> BCM GPIO for every pin in [gpio] and [keypad] (0 = disabled)."""
    config = tomllib.loads(CONFIG.read_text())
    pins = {
        f"gpio.{key}": value
        for key, value in config["gpio"].items()
        if isinstance(value, int) and not isinstance(value, bool)
    }
    for group in ("rows", "cols"):
        for i, value in enumerate(config["keypad"][group]):
            pins[f"keypad.{group}[{i}]"] = value
    return {key: value for key, value in pins.items() if value != 0}


@pytest.fixture(scope="module")
def functions() -> list[dict[str, str]]:
    return markdown_table(PINOUT.read_text(), "Function")


@pytest.fixture(scope="module")
def reserved() -> list[dict[str, str]]:
    return markdown_table(PINOUT.read_text(), "BCM GPIO")


def documented_pins(rows: list[dict[str, str]]) -> dict[str, int]:
    pins = {}
    for row in rows:
        key = row["Config key"].strip("`")
        assert key not in pins, f"{key} listed twice"
        pins[key] = int(row["BCM GPIO"])
    return pins


def test_table_equals_default_config(functions: list[dict[str, str]]) -> None:
    assert documented_pins(functions) == config_pins()


def test_physical_pins_match_the_header(functions: list[dict[str, str]]) -> None:
    for row in functions:
        bcm = int(row["BCM GPIO"])
        assert bcm in BCM_TO_PHYSICAL, f"GPIO{bcm} is not on the 40-pin header"
        assert int(row["Physical pin"]) == BCM_TO_PHYSICAL[bcm], row["Function"]


def test_no_pin_is_used_twice(functions: list[dict[str, str]]) -> None:
    bcm = [int(r["BCM GPIO"]) for r in functions]
    assert len(bcm) == len(set(bcm))
    assert len(set(config_pins().values())) == len(config_pins())


def test_reserved_pins_are_declared_and_unused(
    functions: list[dict[str, str]], reserved: list[dict[str, str]]
) -> None:
    declared = {int(r["BCM GPIO"]) for r in reserved}
    assert declared >= MUST_RESERVE
    for row in reserved:
        assert int(row["Physical pin"]) == BCM_TO_PHYSICAL[int(row["BCM GPIO"])]
    used = set(config_pins().values())
    assert not used & declared, f"functions on reserved pins: {sorted(used & declared)}"


def test_directions_and_pulls_match_the_drivers(functions: list[dict[str, str]]) -> None:
    """Outputs drive, inputs wired to GND need the pull-up the gate's drivers enable."""
    for row in functions:
        key = row["Config key"].strip("`")
        if key in OUTPUTS or key.startswith("keypad.rows"):
            assert row["Direction"] == "out", key
        else:
            assert row["Direction"] == "in", key
        if key in PULL_UP_INPUTS or key.startswith("keypad.cols"):
            assert row["Pull"] == "up", key


def test_strike_pin_is_low_at_power_on(functions: list[dict[str, str]]) -> None:
    """BCM 9-27 are pulled down at reset (0-8 up): the strike pin must be one of them.

    With the active-high driver the strike then stays de-energised (locked, for a
    fail-secure strike) from power-on until the gate takes the line.
    """
    strike = config_pins()["gpio.strike"]
    assert 9 <= strike <= 27
    row = next(r for r in functions if r["Config key"] == "`gpio.strike`")
    assert re.search(r"active-high", row["Notes"])


def test_wiring_diagram_names_every_configured_pin() -> None:
    """hw/wiring.svg is well-formed SVG and labels every GPIO the configuration uses."""
    root = ET.parse(REPO / "hw" / "wiring.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    labels = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for key, bcm in config_pins().items():
        assert re.search(rf"\bGPIO{bcm}\b", labels), f"{key} (GPIO{bcm}) not in wiring.svg"
        # The header drawing labels the physical pin with its number too.
        assert re.search(rf"\b{BCM_TO_PHYSICAL[bcm]}\b", labels)


def test_every_reserved_pin_the_config_can_name_is_refused_for_inputs(
    reserved: list[dict[str, str]],
) -> None:
    """The config's table of reserved pins (doorpi.pinsafety.RESERVED) is pinout.md's
    table within the range the config accepts (2-27: 0 disables, 1 is refused)."""
    from doorpi.pinsafety import RESERVED

    declared = {int(r["BCM GPIO"]) for r in reserved}
    assert set(RESERVED) == {p for p in declared if 2 <= p <= 27}


def test_every_gpio_pin_key_is_an_input_or_an_output() -> None:
    """A pin key added to [gpio] must be classed, or it escapes both the input refusal
    and the output warning."""
    from doorpi.config import GpioConfig
    from doorpi.pinsafety import INPUTS, OTHER_OUTPUTS

    pins = {k for k, v in vars(GpioConfig()).items() if type(v) is int}
    assert pins == {"strike", *INPUTS, *OTHER_OUTPUTS}
    assert not set(INPUTS) & set(OTHER_OUTPUTS)
    assert {f"gpio.{k}" for k in OTHER_OUTPUTS} >= OUTPUTS - {"gpio.strike"}
