"""Keypads: a 3x4/4x4 matrix on GPIO, or a USB keypad through evdev.

Both emit `KeyPressed` with one of '0'-'9', '*', '#', 'A'-'D'. On a 4x4 pad
'A' is the face key. The matrix is scanned: rows are outputs held high, one
row at a time is pulled low, and a column that reads low shows the pressed
key. A key is reported once per press (debounced over two scans).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from doorpi.core.events import DeviceStatus, Event, KeyPressed

log = logging.getLogger("doorpi.keypad")

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
        self.last_alive = time.monotonic()

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

    def healthy(self, now: float | None = None, max_age: float = 5.0) -> bool:
        """The scanning thread runs and scanned within ``max_age`` seconds."""
        now = time.monotonic() if now is None else now
        return self._thread.is_alive() and now - self.last_alive <= max_age

    def _run(self) -> None:
        while not self._stop.wait(self._scan):
            try:
                self.poll()
            except Exception as exc:  # a GPIO error must not end the scanning for good
                log.warning("keypad %s: scan failed: %s", self.name, exc)
                self._stop.wait(1.0)
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
    """A USB keypad read through evdev; grabbed so its keys reach nobody else.

    Survives unplugging: a read error (ENODEV when the keypad is pulled) is
    logged as one line and reported as ``DeviceStatus(present=False)``; the
    thread then tries to reopen the same path every ``retry_seconds`` (the
    /dev/input/by-id name returns when the keypad is plugged back) and
    reports ``DeviceStatus(present=True)`` when it has it again. The thread
    never ends on a device error; `healthy` feeds the systemd watchdog.
    """

    def __init__(
        self,
        device: Any,
        emit: Emit,
        name: str = "usb-keypad",
        *,
        opener: Callable[[Any], Any] | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        """``device`` is an evdev path, or an object with fd/read/grab/close (tests).
        ``opener(path)`` opens it (default ``evdev.InputDevice``)."""
        import evdev

        self._evdev = evdev
        self.path = device if isinstance(device, str) else ""
        self._open = opener if opener is not None else evdev.InputDevice
        self.name = name
        self._emit = emit
        self.retry_seconds = retry_seconds
        self.device: Any = None
        self.present = False
        self.problem = ""
        if isinstance(device, str):
            self._try_open(report=False)
        else:
            self.device, self.present = device, True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usb-keypad", daemon=True)
        self.last_alive = time.monotonic()

    def _try_open(self, report: bool = True) -> bool:
        try:
            self.device = self._open(self.path)
        except Exception as exc:
            self.device = None
            why = f"{self.path}: {exc.strerror if isinstance(exc, OSError) else exc}"
            if why != self.problem:
                self.problem = why
                log.warning("keypad %s: cannot open %s; retrying", self.name, why)
            return False
        with contextlib.suppress(OSError):  # another reader has it: events still come
            self.device.grab()
        self.present, self.problem = True, ""
        if report:
            log.info("keypad %s: %s is back", self.name, self.path)
            self._emit(DeviceStatus(self.name, True, "keypad ready"))
        return True

    def start(self) -> None:
        if self.device is not None:
            with contextlib.suppress(OSError):
                self.device.grab()
        else:
            self._emit(DeviceStatus(self.name, False, self.problem or "keypad missing"))
        self._thread.start()

    def healthy(self, now: float | None = None, max_age: float = 5.0) -> bool:
        """The reading thread runs and looped within ``max_age`` seconds
        (it loops at least every 0.5 s, unplugged or not)."""
        now = time.monotonic() if now is None else now
        return self._thread.is_alive() and now - self.last_alive <= max_age

    def _lost(self, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = f"read failed: {reason or type(exc).__name__} (unplugged?)"
        log.warning("keypad %s: %s; waiting for it to return", self.name, reason)
        with contextlib.suppress(Exception):
            self.device.close()
        self.device, self.present, self.problem = None, False, reason
        self._emit(DeviceStatus(self.name, False, reason))

    def _run(self) -> None:
        import select

        ev = self._evdev
        while not self._stop.is_set():
            self.last_alive = time.monotonic()
            if self.device is None:
                if not self.path or not self._try_open():
                    self._stop.wait(self.retry_seconds)
                continue
            try:
                r, _, _ = select.select([self.device.fd], [], [], 0.5)
                if not r:
                    continue
                events = list(self.device.read())
            except Exception as exc:  # ENODEV when unplugged; a closed fd
                if self._stop.is_set():
                    return
                self._lost(exc)
                continue
            for event in events:
                if event.type == ev.ecodes.EV_KEY and event.value == 1:
                    key = evdev_key(ev.ecodes.KEY.get(event.code, ""))
                    if key is not None:
                        self._emit(KeyPressed(key, self.name))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        if self.device is not None:
            with contextlib.suppress(OSError):
                self.device.close()
