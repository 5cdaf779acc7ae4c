"""Door inputs through the real gpiozero adapters on MockFactory pins, device faults,
unknown-card pacing and lockouts that survive a restart, on a simulated site
(real SQLite, real Gate) and through the real `doorpi status` CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from doorpi.clocks import ManualClock
from doorpi.core.events import CardPresented, DeviceStatus
from site_support import MONDAY_9, recorded_site

CARD = "04a1b2c3d4e5f6"


@pytest.fixture
def site(tmp_path):
    s = recorded_site(tmp_path / "data", [
        {"name": "Alice", "keypad_id": "101", "cards": [CARD], "pin": "2468"},
        {"name": "Bob", "keypad_id": "102", "pin": "1357"},
    ])  # fmt: skip
    yield s
    s.close()


def kinds(site, *wanted):
    return [e["event"] for e in site.events if e["event"] in wanted]


def alarms(site):
    return [(e["alarm"], e["active"]) for e in site.events if e["event"] == "alarm"]


def decisions(site):
    return [(e["granted"], e["reason"]) for e in site.events if e["event"] == "access"]


def chatter(site, pin_no, levels, gap=0.01):
    """Drive a real MockFactory pin through a sequence of levels, ``gap`` s apart."""
    pin = site.factory.pin(pin_no)
    for high in levels:
        (pin.drive_high if high else pin.drive_low)()
        site.gate.process_pending()
        site.advance(gap, step=gap)


# ---------------------------------------------------------------- debounce


def test_bounce_after_a_grant_is_one_opening_no_forced_alarm(site):
    site.card(CARD)
    site.advance(1)
    chatter(site, site.cfg.gpio.door_contact, [True, False, True, False, True])
    site.advance(3)
    chatter(site, site.cfg.gpio.door_contact, [False, True, False, True, False])  # slam
    site.advance(1.5)  # door_closed once the contact stayed closed close_confirm_seconds (1 s)
    assert kinds(site, "door_opened", "door_closed") == ["door_opened", "door_closed"]
    assert alarms(site) == []


def test_forced_door_with_chatter_raises_and_clears_the_alarm_once(site):
    chatter(site, site.cfg.gpio.door_contact, [True, False, True, False, True])
    site.advance(2)
    chatter(site, site.cfg.gpio.door_contact, [False, True, False, True, False, True, False])
    site.advance(1.5)  # cleared once the contact stayed closed close_confirm_seconds (1 s)
    assert alarms(site) == [("forced", True), ("forced", False)]  # no flicker


def test_exit_button_bounce_is_one_request(site):
    chatter(site, site.cfg.gpio.exit_button, [False, True, False, True, False], gap=0.005)
    site.advance(0.3)
    chatter(site, site.cfg.gpio.exit_button, [True, False, True], gap=0.005)  # release bounce
    site.advance(0.3)
    assert decisions(site) == [(True, "exit_request")]


def test_tamper_chatter_is_one_alarm(site):
    chatter(site, site.cfg.gpio.tamper, [True, False, True, False, True])
    site.advance(1)
    assert alarms(site) == [("tamper", True)]


def test_tamper_clears_once_the_lid_stayed_on_and_a_glitch_restarts_the_count(site):
    """Case 01's kind on the tamper input (tests/field_variants/v01y): the alarm clears
    only once the lid has stayed on close_confirm_seconds (1 s); a 10 ms bounce half
    way, too short to settle, starts the second again."""
    pin = site.factory.pin(site.cfg.gpio.tamper)

    def lid(off: bool, then: float, step: float = 0.1) -> None:
        (pin.drive_high if off else pin.drive_low)()
        site.gate.process_pending()
        site.advance(then, step=step)

    lid(True, 0.2)  # lid off: the alarm at once
    lid(False, 0.5)  # lid on (settled at the next tick, 0.1 s)
    lid(True, 0.01, step=0.01)  # a 10 ms bounce, 0.5 s later
    lid(False, 0.7)  # 1.2 s after the lid went on, 0.7 s after the bounce
    assert alarms(site) == [("tamper", True)]
    site.advance(0.4)
    assert alarms(site) == [("tamper", True), ("tamper", False)]


def test_settle_time_comes_from_the_config(tmp_path):
    gpio = {"settle_seconds": 0, "close_confirm_seconds": 0}  # both off: every edge counts
    s = recorded_site(tmp_path / "data", config={"gpio": gpio}, settle=False)
    try:
        s.advance(0.2)
        chatter(s, s.cfg.gpio.door_contact, [True, False, True])
        s.advance(1)
        assert kinds(s, "door_opened", "door_closed") == ["door_opened", "door_closed",
                                                         "door_opened"]  # fmt: skip
    finally:
        s.close()


@pytest.mark.parametrize("confirm,closed_blip,forced", [(1.0, 0.9, False), (0.5, 0.9, True),
                                                        (2.0, 1.5, False)])  # fmt: skip
def test_close_confirmation_comes_from_the_config(tmp_path, confirm, closed_blip, forced):
    """gpio.close_confirm_seconds: a closed spell shorter than it is the same opening."""
    s = recorded_site(tmp_path / "data", [{"name": "Alice", "cards": [CARD]}],
                      config={"gpio": {"close_confirm_seconds": confirm}})  # fmt: skip
    try:
        s.card(CARD)
        s.advance(1)
        chatter(s, s.cfg.gpio.door_contact, [True], gap=0.5)
        chatter(s, s.cfg.gpio.door_contact, [False], gap=closed_blip)
        chatter(s, s.cfg.gpio.door_contact, [True], gap=0.5)
        assert decisions(s) == [(True, "granted")]
        assert (("forced", True) in alarms(s)) is forced
        assert s.cfg.gpio.close_confirm_seconds == confirm
    finally:
        s.close()


# ---------------------------------------------------------------- faults and status


def status(site) -> dict:
    cfg = site.cfg.site.data_dir.parent / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{site.cfg.site.data_dir}"\n')
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "status", "--json"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return json.loads(p.stdout)


def test_stuck_exit_button_is_a_fault_in_audit_and_status_then_clears(site):
    pin = site.factory.pin(site.cfg.gpio.exit_button)
    pin.drive_low()
    site.gate.process_pending()
    site.advance(site.cfg.gpio.exit_stuck_seconds + 1, step=1.0)
    assert decisions(site) == [(True, "exit_request")]  # the press itself, once
    faults = [e for e in site.events if e["event"] == "fault"]
    assert [(f["device"], f["active"]) for f in faults] == [("exit_button", True)]
    audit = [r.kind for r in site.storage.audit.tail(20)]
    assert "fault" in audit
    info = status(site)
    assert "exit_button" in info["device_faults"]
    assert any("exit_button" in w and "stuck" in w for w in info["warnings"])
    pin.drive_high()
    site.gate.process_pending()
    site.advance(0.2)
    faults = [e for e in site.events if e["event"] == "fault"]
    assert [(f["device"], f["active"]) for f in faults][-1] == ("exit_button", False)
    assert status(site)["device_faults"] == {}
    pin.drive_low()  # the button works again
    site.gate.process_pending()
    site.advance(0.2)
    assert decisions(site)[-1] == (True, "exit_request") and len(decisions(site)) == 2


def test_keypad_gone_and_back_is_shown_in_status(site):
    site.gate.submit(DeviceStatus("usb-keypad", False, "read failed: No such device"))
    site.advance(0.1)
    assert status(site)["device_faults"] == {"usb-keypad": "read failed: No such device"}
    site.gate.submit(DeviceStatus("usb-keypad", True, "keypad ready"))
    site.advance(0.1)
    assert status(site)["device_faults"] == {}


# ---------------------------------------------------------------- unknown cards


def test_unknown_uids_from_renaming_readers_share_one_counter(site):
    reader = site.devices.reader
    for i in range(20):  # a device that renames itself on every read, walking UIDs
        site.gate.submit(CardPresented(bytes.fromhex(f"04a1b2c3d4{i:04x}"), f"Rogue PCD {i:02X}"))
        site.gate.process_pending()
        site.advance(1)
    assert decisions(site)[-1] == (False, "unknown_card")
    site.gate.submit(CardPresented(bytes.fromhex("04a1b2c3d40009"), "Rogue PCD 09 00"))
    site.gate.process_pending()
    assert decisions(site)[-1] == (False, "rate_limited")
    assert not kinds(site, "lockout_started")
    site.advance(5)
    reader.present(CARD)
    site.gate.process_pending()
    assert decisions(site)[-1] == (True, "granted")


def test_enrolled_card_opens_during_an_enumeration_slow_down(site):
    t_checked = 0
    for i in range(200):  # a cloner trying a UID every 0.3 s for a minute
        site.card(f"04{i:012x}")
        site.advance(0.3, step=0.3)
    refused = decisions(site)
    t_checked = refused.count((False, "unknown_card"))
    assert t_checked <= 20 + 60 / 5 + 1  # a walk of 20, then one guess per 5 s pause
    assert refused.count((False, "rate_limited")) > 150
    site.advance(5)
    site.card(CARD)  # a resident after the last pause: in at once
    assert decisions(site)[-1] == (True, "granted")
    site.advance(6)
    site.card(CARD)  # enrolled cards never start a pause
    assert decisions(site)[-1] == (True, "granted")


# ---------------------------------------------------------------- PIN lockouts


def pin_entry(site, number, pin):
    for k in f"{number}#{pin}#":
        site.key(k)


def test_lockout_survives_a_power_cut(tmp_path):
    clock = ManualClock(MONDAY_9)
    first = recorded_site(tmp_path / "data", clock=clock, settle=False)
    first.add_resident({"name": "Alice", "keypad_id": "101", "pin": "2468"})
    for _ in range(5):
        pin_entry(first, "101", "0000")
    assert decisions(first)[-1] == (False, "wrong_pin")
    assert kinds(first, "lockout_started")
    # power cut: no shutdown, the process is gone; a new one opens the same SQLite file
    first.storage.close()
    clock.advance(10)
    second = recorded_site(tmp_path / "data", clock=clock, settle=False)
    try:
        pin_entry(second, "101", "2468")
        assert decisions(second)[-1] == (False, "locked_out")
        clock.advance(25)
        pin_entry(second, "101", "2468")
        assert decisions(second)[-1] == (True, "granted")
    finally:
        second.close()
        first.devices.close()


def test_a_correct_pin_clears_only_that_residents_counter(site):
    for _ in range(4):
        pin_entry(site, "102", "0000")  # guesses at Bob's PIN
    pin_entry(site, "101", "2468")  # Alice comes home in between
    assert decisions(site)[-1] == (True, "granted")
    site.advance(6)
    pin_entry(site, "102", "0000")  # the fifth guess still locks the keypad
    locked = [e["subject"] for e in site.events if e["event"] == "lockout_started"]
    assert "keypad:keypad" in locked
    pin_entry(site, "999", "0000")  # the next guess, at any number, is not even checked
    assert decisions(site)[-1] == (False, "locked_out")
    site.card(CARD)  # the card path is not locked
    assert decisions(site)[-1] == (True, "granted")


def test_strangers_wrong_pins_never_lock_out_a_card_holder_at_a_card_and_pin_door(tmp_path):
    """Case 04's kind at the keypad (a newcomer's variant): five wrong entries by
    strangers lock the keypad-wide counter (it stops one PIN tried over many numbers),
    but a resident whose card names them is held back only by their own counter."""
    site = recorded_site(tmp_path / "data", [
        {"name": "Alice", "keypad_id": "101", "cards": [CARD], "pin": "2468"},
    ], config={"door": {"access": ["card+pin"]}})  # fmt: skip
    try:
        for number in ("901", "902", "903", "904", "905"):
            pin_entry(site, number, "0000")
            site.advance(1)
        assert ("keypad:keypad" in
                [e["subject"] for e in site.events if e["event"] == "lockout_started"])  # fmt: skip
        pin_entry(site, "101", "2468")  # no card: a keypad entry, held by the keypad counter
        assert decisions(site)[-1] == (False, "locked_out")
        site.card(CARD)
        for k in "2468#":
            site.key(k)
        assert decisions(site)[-1] == (True, "granted"), decisions(site)
        # The card holder's own wrong PINs still lock their card+PIN (their counter).
        site.advance(10)
        for _ in range(5):
            site.card(CARD)
            for k in "0000#":
                site.key(k)
            site.advance(1)
        site.card(CARD)
        for k in "2468#":
            site.key(k)
        assert decisions(site)[-1] == (False, "locked_out"), decisions(site)[-3:]
    finally:
        site.close()
