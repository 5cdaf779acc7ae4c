"""A virtual contactless card for vsmartcard's ``vpcd`` PC/SC reader driver.

The vpcd driver (Debian package ``vsmartcard-vpcd``), loaded by a real
``pcscd``, exposes the readers ``Virtual PCD 00 00`` and ``Virtual PCD 00 01``
and listens on TCP ports 35963 and 35964 (Debian's
``/etc/reader.conf.d/vpcd``) for a *card* to connect; a private pcscd given
another reader.conf listens elsewhere, named by ``DOORPI_VPCD_PORTS`` (see
`vpcd_ports`). This module is that card: a TCP client speaking vpcd's framing

    2-byte big-endian length, then the payload

where a 1-byte payload is a control code from the reader (0 power off,
1 power on, 2 reset, 4 "send your ATR") and a longer payload is a command
APDU that must be answered with one response APDU. Closing the socket is the
card being lifted off the reader.

pcscd checks presence by asking the ATR roughly every 0.4 s, so a tap shorter
than about one second may be missed entirely; `VirtualCard.tap` therefore
holds the connection until a wall-clock deadline (default 1.2 s).

Stdlib only, so the test harness and the demo can both use it. Debian's own
emulator (``vsmartcard-vpicc``) does not run on Python 3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: ATR an ACR122U reports for a MIFARE Classic 1K (PC/SC part 3 storage-card ATR).
ACR122U_MIFARE_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

VPCD_HOST = "127.0.0.1"
#: Debian's vpcd ports (``DEVICENAME /dev/null:0x8C7B``: slot 0 on 0x8C7B, slot 1 one above).
VPCD_PORTS = {"Virtual PCD 00 00": 35963, "Virtual PCD 00 01": 35964}
DEFAULT_PORT = 35963
#: ``"PORT0,PORT1"``: the vpcd ports of the two readers when not Debian's (set by
#: the test fixtures for their private pcscd).
PORTS_ENV = "DOORPI_VPCD_PORTS"


def vpcd_ports() -> dict[str, int]:
    """Reader name -> vpcd TCP port: ``$DOORPI_VPCD_PORTS`` if set, else `VPCD_PORTS`.

    Raises ValueError naming the variable if it is not two ports 1-65535.
    """
    raw = os.environ.get(PORTS_ENV, "").strip()
    if not raw:
        return dict(VPCD_PORTS)
    try:
        ports = [int(part) for part in raw.split(",")]
    except ValueError:
        ports = []
    if len(ports) != len(VPCD_PORTS) or not all(0 < p < 65536 for p in ports):
        raise ValueError(f"{PORTS_ENV}={raw!r}: expected two TCP ports, e.g. 35963,35964")
    return dict(zip(VPCD_PORTS, ports, strict=True))


CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4

GET_UID = bytes.fromhex("FFCA000000")
SW_OK = b"\x90\x00"
SW_WRONG_P1P2_FUNC_NOT_SUPPORTED = b"\x6a\x81"
SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"

#: Broken-card modes: what the card answers to *every* APDU.
BROKEN_MODES = ("6f00", "short", "garbage", "bad_length", "empty")

ApduHandler = Callable[[bytes], bytes]


def uid_handler(uid: bytes) -> ApduHandler:
    """The default card: ``FF CA 00 00 00`` -> UID + 90 00, anything else 6A 81."""

    def handle(apdu: bytes) -> bytes:
        if apdu[:4] == GET_UID[:4]:
            return uid + SW_OK
        return SW_WRONG_P1P2_FUNC_NOT_SUPPORTED

    return handle


def broken_handler(mode: str, uid: bytes = b"\x04\x11\x22\x33") -> ApduHandler:
    """A card that answers badly, for bad-input tests.

    ``6f00``: status 6F 00 (no precise diagnosis); ``short``: a 1-byte
    response (no status word); ``garbage``: 3 junk bytes that end in 90 00
    only by accident of framing (a 1-byte "UID"); ``bad_length``: a 5-byte
    UID with 90 00 (not 4, 7 or 10); ``empty``: a zero-length response.
    """
    if mode not in BROKEN_MODES:
        raise ValueError(f"unknown broken mode {mode!r}; one of {BROKEN_MODES}")

    def handle(apdu: bytes) -> bytes:
        if mode == "6f00":
            return SW_NO_PRECISE_DIAGNOSIS
        if mode == "short":
            return b"\x90"
        if mode == "garbage":
            return b"\xa5\x90\x00"
        if mode == "bad_length":
            return uid[:4] + b"\x5a" + SW_OK
        return b""

    return handle


@dataclass
class CardLog:
    """What happened on the card side, with ``time.monotonic()`` stamps."""

    connected_at: float | None = None
    first_atr_at: float | None = None
    disconnected_at: float | None = None
    apdus: list[tuple[float, bytes, bytes]] = field(default_factory=list)
    controls: list[tuple[float, int]] = field(default_factory=list)


class VirtualCard:
    """One virtual card. Use `tap` for a normal tap, or `insert`/`remove`.

    ``port`` is the vpcd reader's TCP port; None means the first reader of
    `vpcd_ports` (35963 unless ``DOORPI_VPCD_PORTS`` says otherwise).
    ``handler`` maps a command APDU (bytes) to a response APDU (bytes);
    ``broken`` selects a `broken_handler` mode instead. The card runs in a
    daemon thread; every method is safe to call from the test thread.
    """

    def __init__(
        self,
        uid: bytes,
        atr: bytes = ACR122U_MIFARE_ATR,
        port: int | None = None,
        *,
        handler: ApduHandler | None = None,
        broken: str | None = None,
        host: str = VPCD_HOST,
        connect_timeout: float = 3.0,
    ) -> None:
        if handler is not None and broken is not None:
            raise ValueError("give either handler or broken, not both")
        self.uid = bytes(uid)
        self.atr = bytes(atr)
        self.port = port if port is not None else next(iter(vpcd_ports().values()))
        self.host = host
        self.connect_timeout = connect_timeout
        self.handler: ApduHandler = (
            broken_handler(broken, self.uid) if broken else handler or uid_handler(self.uid)
        )
        self.log = CardLog()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None
        self.error: BaseException | None = None

    # ------------------------------------------------------------ public API

    @property
    def inserted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def insert(self) -> None:
        """Put the card on the reader and leave it there until `remove`."""
        self._start(deadline=None)

    def remove(self, timeout: float = 2.0) -> None:
        """Lift the card: close the socket and join the thread."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def lift_now(self) -> None:
        """Lift the card at once, from any thread (also from inside a handler)."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def tap(self, hold_seconds: float = 1.2, *, wait: bool = True) -> CardLog:
        """Connect, answer the reader until ``hold_seconds`` of wall-clock
        time have passed, then close (the card is lifted).

        pcscd polls presence about every 0.4 s: hold for >= 1 s to be sure
        the tap is seen. With ``wait=False`` return at once (the tap goes on
        in the background; call `wait` or `remove` later).
        """
        self._start(deadline=hold_seconds)
        if wait:
            self.wait(hold_seconds + self.connect_timeout + 2.0)
        return self.log

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background tap to finish; re-raise its connect error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("virtual card thread did not finish")
            self._thread = None
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ------------------------------------------------------------ internals

    def _start(self, deadline: float | None) -> None:
        if self.inserted:
            raise RuntimeError("card is already on the reader")
        self.log = CardLog()
        self.error = None
        self._stop.clear()
        sock = self._connect()  # raise in the caller's thread when vpcd is not there
        self.log.connected_at = time.monotonic()
        self._sock = sock
        self._deadline = None if deadline is None else self.log.connected_at + deadline
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"vpcd-card-{self.port}", daemon=True
        )
        self._thread.start()

    def _connect(self) -> socket.socket:
        end = time.monotonic() + self.connect_timeout
        last: OSError | None = None
        while time.monotonic() < end:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError as exc:
                last = exc
                time.sleep(0.05)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise ConnectionError(
            f"no vpcd reader on {self.host}:{self.port} (is pcscd with vpcd running?): {last}"
        )

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return self._deadline - time.monotonic()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    break
                # Short timeouts keep the wall-clock deadline and remove() prompt.
                sock.settimeout(0.05 if remaining is None else max(0.001, min(0.05, remaining)))
                try:
                    header = _recv_exact(sock, 2, self._stop, idle_ok=True)
                except TimeoutError:
                    continue
                if header is None:
                    break
                (length,) = struct.unpack(">H", header)
                payload = _recv_exact(sock, length, self._stop, idle_ok=False) if length else b""
                if payload is None:
                    break
                self._on_frame(sock, payload)
        except OSError as exc:  # reader went away (pcscd killed): the card is "lifted"
            log.debug("virtual card on port %d: %s", self.port, exc)
        except BaseException as exc:  # surfaced by wait()
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            self._sock = None
            self.log.disconnected_at = time.monotonic()

    def _on_frame(self, sock: socket.socket, payload: bytes) -> None:
        now = time.monotonic()
        if len(payload) == 1:
            code = payload[0]
            self.log.controls.append((now, code))
            if code == CTRL_ATR:
                if self.log.first_atr_at is None:
                    self.log.first_atr_at = now
                _send(sock, self.atr)
            # power on / off / reset need no answer; a stateful card forgets its session
            if code in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                power_cycle = getattr(self.handler, "power_cycle", None)
                if power_cycle is not None:
                    power_cycle()
            return
        response = self.handler(payload)
        self.log.apdus.append((now, payload, response))
        _send(sock, response)


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack(">H", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int, stop: threading.Event, idle_ok: bool) -> bytes | None:
    """Read exactly n bytes; None on EOF or stop.

    A socket timeout before the first byte raises TimeoutError only if
    ``idle_ok`` (waiting for the next frame header, so the caller can check
    its deadline); inside a frame it keeps reading, so a frame is never split.
    """
    buf = b""
    while len(buf) < n:
        if stop.is_set():
            return None
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError:
            if idle_ok and not buf:
                raise
            continue
        if not chunk:
            return None
        buf += chunk
    return buf


__all__ = [
    "ACR122U_MIFARE_ATR",
    "BROKEN_MODES",
    "DEFAULT_PORT",
    "PORTS_ENV",
    "VPCD_PORTS",
    "CardLog",
    "VirtualCard",
    "broken_handler",
    "uid_handler",
    "vpcd_ports",
]
