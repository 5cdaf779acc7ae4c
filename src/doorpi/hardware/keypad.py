"""Keypads: a 3x4/4x4 matrix on GPIO, or a USB keypad through evdev.

Both emit `KeyPressed` with one of '0'-'9', '*', '#', 'A'-'D'. On a 4x4 pad
'A' is the face key. The matrix is scanned: rows are outputs held high, one
row at a time is pulled low, and a column that reads low shows the pressed
key. A key is reported once per press (debounced over two scans).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from doorpi.core.events import Event, KeyPressed

Emit = Callable[[Event], None]

LAYOUTS = {
    "4x4": ("123A", "456B", "789C", "*0#D"),
    "3x4": ("123", "456", "789", "*0#"),
}


class MatrixKeypad:
    def __init__(
        self,
        rows: tuple[int, ...],
        cols: tuple[int, ...],
        emit: Emit,
        layout: str = "4x4",
        scan_seconds: float = 0.01,
        pin_factory: Any = None,
        name: str = "keypad",
    ) -> None:
        self.keys = LAYOUTS[layout]
        self.name = name
        self._emit = emit
        self._rows = [
            DigitalOutputDevice(p, active_high=False, initial_value=False, pin_factory=pin_factory)
            for p in rows
        ]
        self._cols = [DigitalInputDevice(p, pull_up=True, pin_factory=pin_factory) for p in cols]
        self._scan = scan_seconds
        self._stop = threading.Event()
        self._held: set[str] = set()
        self._seen_once: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="keypad", daemon=True)
        self.last_alive = 0.0

    def start(self) -> None:
        self._thread.start()

    def scan_once(self) -> set[str]:
        """Keys down right now (rows driven low one at a time)."""
        down: set[str] = set()
        for r, row in enumerate(self._rows):
            row.on()  # active_high=False: on() drives the line low
            for c, col in enumerate(self._cols):
                if col.is_active:  # pull-up: active = low = connected to the low row
                    down.add(self.keys[r][c])
            row.off()
        return down

    def poll(self) -> None:
        """One debounced scan: emit keys that are down for the second scan in a row."""
        down = self.scan_once()
        for key in down & self._seen_once - self._held:
            self._held.add(key)
            self._emit(KeyPressed(key, self.name))
        self._held &= down
        self._seen_once = down

    def _run(self) -> None:
        import time

        while not self._stop.wait(self._scan):
            self.poll()
            self.last_alive = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        for dev in (*self._rows, *self._cols):
            dev.close()


# evdev key names -> keypad keys (USB numeric keypads and plain keyboards)
EVDEV_KEYS = {
    **{f"KEY_{d}": str(d) for d in range(10)},
    **{f"KEY_KP{d}": str(d) for d in range(10)},
    "KEY_KPASTERISK": "*",
    "KEY_KPENTER": "#",
    "KEY_ENTER": "#",
    "KEY_BACKSPACE": "*",
    "KEY_ESC": "*",
    "KEY_KPPLUS": "A",
    "KEY_F": "A",
}


def evdev_key(name: str | list[str] | tuple[str, ...]) -> str | None:
    """Map an evdev key name (evdev may give several aliases) to a keypad key."""
    names = [name] if isinstance(name, str) else list(name)
    for n in names:
        if n in EVDEV_KEYS:
            return EVDEV_KEYS[n]
    return None


class EvdevKeypad:
    """A USB keypad read through evdev; grabbed so its keys reach nobody else."""

    def __init__(self, device: Any, emit: Emit, name: str = "usb-keypad") -> None:
        """``device`` is an evdev path, or an object with fd/read/grab/close (tests)."""
        import evdev

        self._evdev = evdev
        self.device = evdev.InputDevice(device) if isinstance(device, str) else device
        self.name = name
        self._emit = emit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usb-keypad", daemon=True)

    def start(self) -> None:
        with contextlib.suppress(OSError):  # another reader has it: events still come
            self.device.grab()
        self._thread.start()

    def _run(self) -> None:
        import select

        ev = self._evdev
        while not self._stop.is_set():
            r, _, _ = select.select([self.device.fd], [], [], 0.5)
            if not r:
                continue
            try:
                events = list(self.device.read())
            except OSError:
                return  # unplugged; selftest and status report it
            for event in events:
                if event.type == ev.ecodes.EV_KEY and event.value == 1:
                    key = evdev_key(ev.ecodes.KEY.get(event.code, ""))
                    if key is not None:
                        self._emit(KeyPressed(key, self.name))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        with contextlib.suppress(OSError):
            self.device.close()
