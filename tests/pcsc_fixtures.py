"""pytest fixtures for a REAL PC/SC stack: pcscd + vsmartcard's vpcd driver.

Load from ``tests/conftest.py`` with ``pytest_plugins = ["pcsc_fixtures"]``
(``tests/`` is on ``sys.path`` under pytest's default rootdir/prepend import
mode, since ``tests/`` has no ``__init__.py``).

* ``pcscd`` (session): starts ``pcscd -f -a`` as a child process with the
  vpcd driver, waits until ``smartcard.System.readers()`` lists the two
  ``Virtual PCD`` readers, and kills it by PID at the end of the session.
  If pcscd cannot start, the fixture FAILS (never skips) with the reason and
  the tail of pcscd's log. A leftover ``/run/pcscd/pcscd.comm`` nobody
  listens on is removed; a live one (another pcscd, or systemd's
  pcscd.socket) is a failure: only one pcscd may run per machine and we do
  not kill processes we did not start.
* ``pcsc`` (function): the same daemon, restarted first if an earlier test
  left it stopped.
* ``vcard``: a factory for `VirtualCard`s that lifts every card at teardown.
* ``pcsc_events``: an `EventRecorder` (thread-safe list with ``wait_for``).
* ``pcsc_reader``: a started `PcscReader` on ``Virtual PCD 00 00`` feeding
  ``pcsc_events``, stopped at teardown.

Environment: ``DOORPI_PCSCD_DEBUG=1`` adds ``-d`` (very verbose log).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from doorpi.core.events import Event
from doorpi.sim.vpcd_card import VPCD_PORTS, VirtualCard

RUN_DIR = Path("/run/pcscd")
COMM_SOCKET = RUN_DIR / "pcscd.comm"
PID_FILE = RUN_DIR / "pcscd.pid"
VPCD_DRIVER_CANDIDATES = (
    Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/lib64/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so"),
)
READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"
EXPECTED_READERS = (READER_0, READER_1)


class PcscdError(RuntimeError):
    pass


def _socket_listening(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(path))
    except OSError:
        return False
    finally:
        s.close()
    return True


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def list_readers() -> list[str]:
    """``smartcard.System.readers()`` as names; [] while pcscd is down."""
    from smartcard.System import readers

    try:
        return [str(r) for r in readers()]
    except Exception:
        return []


class PcscDaemon:
    """One ``pcscd -f -a`` child process we own (by PID)."""

    def __init__(self, log_dir: Path, start_timeout: float = 10.0) -> None:
        self.log_path = log_dir / "pcscd.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # ------------------------------------------------------------ checks

    def preflight(self) -> None:
        problems = []
        if shutil.which("pcscd") is None:
            problems.append("pcscd not found (apt-get install pcscd)")
        if not any(p.exists() for p in VPCD_DRIVER_CANDIDATES):
            problems.append("vpcd driver libifdvpcd.so not found (apt-get install vsmartcard-vpcd)")
        if os.geteuid() != 0:
            problems.append(f"pcscd must run as root for these tests (euid {os.geteuid()})")
        try:
            import smartcard.System  # noqa: F401
        except ImportError as exc:
            problems.append(f"pyscard not importable: {exc}")
        if problems:
            raise PcscdError("; ".join(problems))

    def clear_leftovers(self) -> None:
        """Remove a stale socket/pid file; refuse if a live pcscd owns them."""
        if COMM_SOCKET.exists() or COMM_SOCKET.is_socket():
            if _socket_listening(COMM_SOCKET):
                owner = ""
                with contextlib.suppress(OSError, ValueError):
                    owner = f" (pid file says {int(PID_FILE.read_text().strip())})"
                raise PcscdError(
                    f"another pcscd is already listening on {COMM_SOCKET}{owner}; only one "
                    "pcscd can run per machine. Stop it first (e.g. `systemctl stop "
                    "pcscd.socket pcscd.service`) - these tests never kill a daemon "
                    "they did not start."
                )
            COMM_SOCKET.unlink(missing_ok=True)
            PID_FILE.unlink(missing_ok=True)
        busy = [port for port in VPCD_PORTS.values() if _port_in_use(port)]
        if busy:
            raise PcscdError(f"vpcd ports {busy} are already in use (another pcscd with vpcd?)")

    # ------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no pcscd log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, config_dir: Path | None = None, expect: tuple[str, ...] | None = None) -> None:
        """Start and wait until ``expect`` readers (default: both Virtual PCD
        readers) are listed. ``config_dir`` replaces /etc/reader.conf.d (an
        empty dir gives a running pcscd with no reader: "reader unplugged")."""
        if self.running:
            return
        self.preflight()
        self.clear_leftovers()
        expect = EXPECTED_READERS if expect is None else expect
        args = ["pcscd", "--foreground", "--apdu"]
        if config_dir is not None:
            args += ["--config", str(config_dir)]
        if os.environ.get("DOORPI_PCSCD_DEBUG"):
            args.append("--debug")
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts + 1}: {' '.join(args)}\n".encode())
        log.flush()
        try:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise PcscdError(f"cannot execute pcscd: {exc}") from exc
        finally:
            log.close()
        self.starts += 1
        end = time.monotonic() + self.start_timeout
        found: list[str] = []
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise PcscdError(
                    f"pcscd exited with status {self.proc.returncode} during start-up; "
                    f"log tail:\n{self.log_tail()}"
                )
            if COMM_SOCKET.exists() and _socket_listening(COMM_SOCKET):
                found = list_readers()
                if all(r in found for r in expect):
                    return
            time.sleep(0.05)
        pid = self.pid
        self.stop()
        raise PcscdError(
            f"pcscd (pid {pid}) did not list {list(expect)} within "
            f"{self.start_timeout:.0f} s (saw {found}); log tail:\n{self.log_tail()}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """Stop our pcscd by PID (SIGTERM, then SIGKILL after ``timeout``)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # in case a test froze it
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.proc = None
        # After SIGKILL the socket file stays behind; nobody listens on it now.
        if COMM_SOCKET.exists() and not _socket_listening(COMM_SOCKET):
            COMM_SOCKET.unlink(missing_ok=True)
            PID_FILE.unlink(missing_ok=True)

    def kill(self) -> None:
        """Crash it: SIGKILL, as an OOM kill or a segfault would."""
        self.stop(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP: pcscd hangs (clients block), like a wedged daemon."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, down_seconds: float = 1.0, sig: int = signal.SIGTERM) -> None:
        """Stop, stay down ``down_seconds``, start again (readers listed)."""
        self.stop(sig)
        time.sleep(down_seconds)
        self.start()


class EventRecorder:
    """Collects emitted events with monotonic timestamps; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.items.append((time.monotonic(), event))
            self._cond.notify_all()

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return [e for _, e in self.items]

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def mark(self) -> int:
        """An index to pass as ``since`` to look only at later events."""
        with self._cond:
            return len(self.items)

    def wait_for(
        self,
        match: type[Event] | Callable[[Event], bool],
        timeout: float = 5.0,
        since: int = 0,
    ) -> tuple[float, Event]:
        """Wait for the first event (at index >= ``since``) that matches;
        return ``(monotonic time it was emitted, event)``."""
        pred = (lambda e: isinstance(e, match)) if isinstance(match, type) else match
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for ts, event in self.items[since:]:
                    if pred(event):
                        return ts, event
                left = end - time.monotonic()
                if left <= 0:
                    seen = [e for _, e in self.items[since:]]
                    raise AssertionError(f"no matching event within {timeout} s; saw {seen}")
                self._cond.wait(left)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscDaemon]:
    daemon = PcscDaemon(tmp_path_factory.mktemp("pcscd"))
    problem = None
    try:
        daemon.start()
    except PcscdError as exc:
        problem = str(exc)
    if problem is not None:  # fail outside the except: no chained traceback noise
        pytest.fail(f"cannot start a real pcscd for the reader tests: {problem}", pytrace=False)
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def pcsc(pcscd: PcscDaemon) -> PcscDaemon:
    """The session daemon, (re)started if a previous test left it down."""
    if not pcscd.running:
        problem = None
        try:
            pcscd.start()
        except PcscdError as exc:
            problem = str(exc)
        if problem is not None:
            pytest.fail(f"cannot restart pcscd: {problem}", pytrace=False)
    return pcscd


@pytest.fixture
def vcard() -> Iterator[Callable[..., VirtualCard]]:
    made: list[VirtualCard] = []

    def make(uid: bytes | str = "04A1B2C3", **kwargs: object) -> VirtualCard:
        raw = bytes.fromhex(uid) if isinstance(uid, str) else uid
        card = VirtualCard(raw, **kwargs)  # type: ignore[arg-type]
        made.append(card)
        return card

    yield make
    for card in made:
        card.remove()


@pytest.fixture
def pcsc_events() -> EventRecorder:
    return EventRecorder()


@pytest.fixture
def pcsc_reader(pcsc: PcscDaemon, pcsc_events: EventRecorder) -> Iterator[object]:
    from doorpi.cards import UidCard
    from doorpi.core.events import ReaderStatus
    from doorpi.hardware.reader import PcscReader

    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5, backoff_max=1.0)
    reader.start(pcsc_events)
    pcsc_events.wait_for(lambda e: isinstance(e, ReaderStatus) and e.present, timeout=5)
    try:
        yield reader
    finally:
        reader.stop()


__all__ = [
    "EXPECTED_READERS",
    "READER_0",
    "READER_1",
    "EventRecorder",
    "PcscDaemon",
    "PcscdError",
    "list_readers",
]
