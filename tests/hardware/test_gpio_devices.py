"""gpiozero devices on MockFactory: strike polarity, inputs, matrix keypad, feedback."""

from __future__ import annotations

import os

import pytest
from gpiozero.pins.mock import MockPin

from doorpi.core.events import (
    DoorContactChanged,
    ExitReleased,
    ExitRequested,
    KeyPressed,
    TamperChanged,
)
from doorpi.hardware.feedback import GateFeedback
from doorpi.hardware.inputs import DoorContact, ExitButton, TamperSwitch
from doorpi.hardware.keypad import LAYOUTS, MatrixKeypad, evdev_key
from doorpi.hardware.strike import DoorStrike


@pytest.mark.parametrize("active_high", [True, False])
def test_fail_secure_strike_never_energised_at_creation_or_close(mock_factory, active_high):
    s = DoorStrike(17, active_high=active_high, fail_secure=True, pin_factory=mock_factory)
    pin = mock_factory.pin(17)
    idle = not active_high  # the line level that leaves the relay de-energised
    # states[0] is the undriven input before doorpi ran (see hw/: active-low boards
    # need a pull-up so boot cannot energise them); from then on only `idle`.
    assert all(st.state == idle for st in pin.states[1:])
    assert pin.state == idle
    s.release()
    assert pin.state == active_high and s.released
    s.secure()
    s.close()
    driven = [st.state for st in pin.states[1:]]
    assert driven.count(active_high) == 1  # energised exactly once: the release
    assert driven[-1] == idle


def test_fail_safe_strike_is_energised_while_locked(mock_factory):
    s = DoorStrike(17, fail_secure=False, pin_factory=mock_factory)
    assert mock_factory.pin(17).state is True and not s.released
    s.release()
    assert mock_factory.pin(17).state is False and s.released


def test_inputs_emit_events(mock_factory):
    got: list = []
    devices = [
        DoorContact(27, got.append, pin_factory=mock_factory),
        ExitButton(22, got.append, pin_factory=mock_factory),
        TamperSwitch(23, got.append, pin_factory=mock_factory),
    ]
    door, exit_btn, tamper = (mock_factory.pin(n) for n in (27, 22, 23))
    door.drive_low()  # reed closes: door shut
    door.drive_high()  # door opens
    exit_btn.drive_low()
    exit_btn.drive_high()
    tamper.drive_low()  # lid on
    tamper.drive_high()  # lid off
    assert got == [
        DoorContactChanged(False),
        DoorContactChanged(True),
        ExitRequested(),
        ExitReleased(),
        TamperChanged(False),
        TamperChanged(True),
    ]
    assert devices[0].is_open and devices[2].tampered


class KeyMatrix:
    """Wires mock column pins to mock row pins the way a pressed key would."""

    def __init__(self, factory, rows, cols):
        self.factory, self.rows, self.cols = factory, rows, cols
        self.down: set[tuple[int, int]] = set()
        matrix = self

        class ColumnPin(MockPin):
            def _get_state(self):
                c = matrix.cols.index(self.info.name and int(self.info.name[4:]))
                for r, rp in enumerate(matrix.rows):
                    if (r, c) in matrix.down and not matrix.factory.pin(rp).state:
                        return False  # pressed key connects this column to a low row
                return True  # pull-up

        for p in cols:
            factory.pin(p, pin_class=ColumnPin)


def test_matrix_keypad_scans_and_debounces(mock_factory):
    rows, cols = (5, 6, 13, 19), (26, 16, 20, 21)
    wiring = KeyMatrix(mock_factory, rows, cols)
    got: list = []
    pad = MatrixKeypad(rows, cols, got.append, layout="4x4", pin_factory=mock_factory)
    try:
        for r, c in [(0, 0), (3, 2), (1, 3)]:  # '1', '#', 'B'
            wiring.down = {(r, c)}
            pad.poll()
            pad.poll()  # down for two scans: reported
            pad.poll()  # still held: not repeated
            wiring.down = set()
            pad.poll()
        wiring.down = {(2, 1)}
        pad.poll()  # a single-scan glitch is not a key
        wiring.down = set()
        pad.poll()
    finally:
        pad.close()
    assert got == [KeyPressed(k, "keypad") for k in (LAYOUTS["4x4"][0][0], "#", "B")]


def test_evdev_key_names():
    assert evdev_key("KEY_KP7") == "7"
    assert evdev_key(["KEY_KPENTER"]) == "#"
    assert evdev_key("KEY_BACKSPACE") == "*"
    assert evdev_key("KEY_Q") is None


def test_feedback_patterns_and_alarm_priority(mock_factory):
    fb = GateFeedback(24, 25, 18, 12, pin_factory=mock_factory, unlock_seconds=5)
    try:
        fb.show("granted")
        assert fb.green.is_lit and not fb.red.is_lit
        fb.alarm(True)
        fb.show("denied")  # an alarm keeps the alarm pattern
        assert fb.last == "denied"
        fb.alarm(False)
        assert not fb.red.is_lit
        fb.camera_active(True)
        assert fb.camera.is_lit
    finally:
        fb.close()


class PipeInputDevice:
    """Stands in for evdev.InputDevice where no /dev/uinput exists: a real fd
    for select() and real evdev InputEvent objects."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.fd = self.r
        self.pending: list = []
        self.grabbed = False

    def push(self, events):
        self.pending.extend(events)
        os.write(self.w, b"x")

    def read(self):
        os.read(self.r, 1)
        out, self.pending = self.pending, []
        return out

    def grab(self):
        self.grabbed = True

    def close(self):
        os.close(self.r)
        os.close(self.w)


def test_usb_keypad_reads_key_downs_only():
    import time

    from evdev import InputEvent, ecodes

    from doorpi.hardware.keypad import EvdevKeypad

    dev = PipeInputDevice()
    got: list = []
    pad = EvdevKeypad(dev, got.append)
    pad.start()
    try:
        events = []
        for code in (ecodes.KEY_KP1, ecodes.KEY_KP0, ecodes.KEY_KPENTER, ecodes.KEY_Q):
            events.append(InputEvent(0, 0, ecodes.EV_KEY, code, 1))  # down
            events.append(InputEvent(0, 0, ecodes.EV_KEY, code, 0))  # up
        dev.push(events)
        deadline = time.monotonic() + 2
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        pad.close()
    assert dev.grabbed
    assert [e.key for e in got] == ["1", "0", "#"]
