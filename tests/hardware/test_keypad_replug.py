"""A USB keypad pulled out and plugged back: the reading thread survives, says so,
reopens the same path and reads keys again; the watchdog sees a dead thread."""

from __future__ import annotations

import errno
import os
import threading
import time

from evdev import InputEvent, ecodes

from doorpi.core.events import DeviceStatus, KeyPressed
from doorpi.hardware.keypad import EvdevKeypad

PATH = "/dev/input/by-id/usb-Keypad-event-kbd"


class PipeKeypad:
    """An evdev.InputDevice stand-in on a real pipe (select() works on it);
    ``unplug()`` makes the next read fail with ENODEV, as the kernel does."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.fd = self.r
        self.pending: list = []
        self.gone = False
        self.grabbed = False
        self.closed = False

    def press(self, *codes: int) -> None:
        for code in codes:
            self.pending += [InputEvent(0, 0, ecodes.EV_KEY, code, 1),
                             InputEvent(0, 0, ecodes.EV_KEY, code, 0)]  # fmt: skip
        os.write(self.w, b"k")

    def unplug(self) -> None:
        self.gone = True
        os.write(self.w, b"u")

    def read(self):
        os.read(self.r, 1)
        if self.gone:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        out, self.pending = self.pending, []
        return out

    def grab(self) -> None:
        self.grabbed = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.r)
            os.close(self.w)


class ByIdPath:
    """The /dev/input/by-id link: present or not; each open gives a new device."""

    def __init__(self) -> None:
        self.present = True
        self.opened: list[PipeKeypad] = []
        self.lock = threading.Lock()

    def open(self, path: str) -> PipeKeypad:
        assert path == PATH
        with self.lock:
            if not self.present:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            dev = PipeKeypad()
            self.opened.append(dev)
            return dev


def wait_until(cond, timeout=3.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_keypad_replugged_is_reopened_and_reads_again(caplog):
    link = ByIdPath()
    got: list = []
    pad = EvdevKeypad(PATH, got.append, opener=link.open, retry_seconds=0.05)
    pad.start()
    try:
        link.opened[0].press(ecodes.KEY_KP1)
        wait_until(lambda: KeyPressed("1", "usb-keypad") in got)
        link.present = False
        link.opened[0].unplug()
        wait_until(lambda: any(isinstance(e, DeviceStatus) and not e.present for e in got))
        assert pad.healthy() and not pad.present  # thread alive, waiting for the keypad
        assert link.opened[0].closed
        assert any("usb-keypad" in r.message and "No such device" in r.message
                   for r in caplog.records)  # fmt: skip
        time.sleep(0.2)  # several reopen attempts while it is away
        link.present = True
        wait_until(lambda: len(link.opened) == 2)
        wait_until(lambda: any(isinstance(e, DeviceStatus) and e.present for e in got))
        assert link.opened[1].grabbed
        link.opened[1].press(ecodes.KEY_KP2, ecodes.KEY_KPENTER)
        wait_until(lambda: KeyPressed("#", "usb-keypad") in got)
    finally:
        pad.close()
    statuses = [(e.present, e.reason) for e in got if isinstance(e, DeviceStatus)]
    assert statuses == [(False, "read failed: No such device (unplugged?)"), (True, "keypad ready")]
    assert [e.key for e in got if isinstance(e, KeyPressed)] == ["1", "2", "#"]


def test_keypad_missing_at_start_is_reported_and_picked_up_later():
    link = ByIdPath()
    link.present = False
    got: list = []
    pad = EvdevKeypad(PATH, got.append, opener=link.open, retry_seconds=0.05)
    pad.start()
    try:
        assert got and isinstance(got[0], DeviceStatus) and not got[0].present
        assert PATH in got[0].reason
        link.present = True
        wait_until(lambda: link.opened)
        link.opened[0].press(ecodes.KEY_KP7)
        wait_until(lambda: KeyPressed("7", "usb-keypad") in got)
    finally:
        pad.close()


def test_watchdog_sees_a_dead_keypad_thread():
    from doorpi.cli.run import _alive

    link = ByIdPath()
    pad = EvdevKeypad(PATH, lambda e: None, opener=link.open, retry_seconds=0.05)
    pad.start()
    assert _alive(pad)
    pad.close()  # the thread ends: as if it had died
    assert not _alive(pad)
    assert not pad.healthy()
