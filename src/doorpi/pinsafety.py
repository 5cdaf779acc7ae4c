"""Which Raspberry Pi GPIOs may drive the strike, and which outputs deserve a warning.

A strike line must sit still from power-on until the gate owns it. Three kinds
of header pins do not (BCM numbers, 40-pin header):

* GPIO0-8 are pulled **high** at reset (BCM2835/BCM2711 datasheets, "GPIO
  pull at reset": GPIO0-8 pull-up, GPIO9-27 pull-down). A driver on them sees
  a high line through boot, restarts and crashes; GPIO0/1 are also probed for
  the HAT ID EEPROM by the firmware.
* GPIO2/3 are I2C1 (SDA/SCL) for the real-time clock, with 1.8 kOhm pull-ups
  on the board and clocked by the kernel's RTC driver.
* GPIO14/15 are UART0 (TXD/RXD): the serial console prints on GPIO14 during
  every boot, so a relay there chatters open.

The strike is refused on all of them (config and selftest). Other outputs
(LEDs, buzzer, camera LED) are only warned about: they flash or chirp at boot
but do not open a door.

Inputs and keypad matrix pins are refused on the pins hw/pinout.md reserves
(GPIO2/3 and 14/15; 0/1 are below the config's range): an input on I2C1 reads the
bus's pull-ups instead of the wiring (a normally-closed fire contact there reads
"alarm" and holds the door in fire release) and the gate claiming the pin takes
the clock off the bus; on UART0 it reads console traffic and ends the console.
Pure tables; documented for installers in hw/pinout.md.
"""

from __future__ import annotations

from collections.abc import Iterable

PULLED_HIGH_AT_RESET = frozenset(range(0, 9))
BUSY_AT_BOOT = {
    2: "I2C1 SDA of the real-time clock",
    3: "I2C1 SCL of the real-time clock",
    14: "UART0 TXD: the serial console toggles it during boot",
    15: "UART0 RXD of the serial console",
}
# Pins hw/pinout.md reserves (GPIO0/1, the HAT EEPROM, are outside the config's 2-27).
RESERVED = {
    2: "reserved for the DS3231 real-time clock (I2C1 SDA, pulled up on the board)",
    3: "reserved for the DS3231 real-time clock (I2C1 SCL, pulled up on the board)",
    14: "reserved for the serial console (UART0 TXD)",
    15: "reserved for the serial console (UART0 RXD)",
}
# Inputs in [gpio], by config key (doorpi.hw; hw/pinout.md "Direction").
INPUTS = ("door_contact", "exit_button", "tamper", "presence", "fire_alarm",
          "fire_supervision", "lockdown_switch")  # fmt: skip
# Outputs besides the strike, by config key.
OTHER_OUTPUTS = ("led_green", "led_red", "buzzer", "camera_led", "duress_output")


def boot_problem(pin: int) -> str:
    """Why ``pin`` does not hold still from power-on ("" when it does)."""
    if pin in BUSY_AT_BOOT:
        return f"GPIO{pin} is {BUSY_AT_BOOT[pin]}"
    if pin in PULLED_HIGH_AT_RESET:
        return f"GPIO{pin} is pulled high from power-on until the gate runs"
    return ""


def reserved_pin_problem(pin: int) -> str:
    """One line saying why an input or keypad pin may not be ``pin`` ("" when it may)."""
    if pin not in RESERVED:
        return ""
    what = "the bus" if pin in (2, 3) else "console traffic"
    return (
        f"GPIO{pin} is {RESERVED[pin]}: an input or keypad line there reads {what}, "
        "not its wiring, and disturbs it; use a free pin (hw/pinout.md)"
    )


def strike_pin_problem(pin: int) -> str:
    """One line saying why the strike may not be on ``pin`` ("" when it may)."""
    why = boot_problem(pin)
    if not why:
        return ""
    return f"{why}, so the strike could release during boot; use GPIO9-13 or 16-27 (hw/pinout.md)"


def output_warnings(outputs: Iterable[tuple[str, int]]) -> list[str]:
    """Warnings for non-strike outputs (``(config key, pin)``; 0 = not fitted)."""
    return [
        f"{key} = {pin}: {boot_problem(pin)}; it may switch on while the Pi boots"
        for key, pin in outputs
        if pin and boot_problem(pin)
    ]
