"""systemd's notify protocol without a dependency: one AF_UNIX datagram.

READY=1 once the gate serves, WATCHDOG=1 at least every WATCHDOG_USEC/2
(only when WATCHDOG_PID is ours or unset), STATUS=... for `systemctl status`.
Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time


class SdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        self.address = addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and ours else None
        self._last_ping = 0.0

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), self.address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self, alive: bool = True) -> None:
        """Ping if due; the caller passes False when a part has hung, so systemd restarts us."""
        if self.watchdog_interval is None or not alive:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self.notify("WATCHDOG=1")
            self._last_ping = now
