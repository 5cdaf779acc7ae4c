"""pytest fixtures for a REAL PC/SC stack: pcscd + vsmartcard's vpcd driver.

Load from ``tests/conftest.py`` with ``pytest_plugins = ["pcsc_fixtures"]``
(``tests/`` is on ``sys.path`` under pytest's default rootdir/prepend import
mode, since ``tests/`` has no ``__init__.py``).

Each pytest session has its OWN pcscd, so several sessions (engineers, CI
beside a developer) run PC/SC tests at the same time without a lock:

* pcscd 1.9.9 always serves ``/run/pcscd/pcscd.comm`` and writes
  ``/run/pcscd/pcscd.pid`` (compiled in; only libpcsclite, the client side,
  honours ``PCSCLITE_CSOCK_NAME``). So the daemon runs in a private mount
  namespace (``unshare --mount``, root) where a session temp dir is
  bind-mounted on ``/run/pcscd``; the host's ``/run/pcscd`` and any pcscd
  using it are untouched. At start-up (`pytest_configure`, before anything
  loads libpcsclite, which reads the variable once) ``PCSCLITE_CSOCK_NAME``
  is set in ``os.environ`` to ``<temp dir>/pcscd.comm``: pyscard in this
  process and every subprocess (``doorpi`` CLI runs) talk to this daemon.
* Its readers come from a generated reader.conf (``pcscd -c DIR``, so
  ``/etc/reader.conf.d`` is not read): one vpcd entry on two free TCP ports
  (picked per session in 20000-31999, below Linux's ephemeral range), named
  in ``os.environ["DOORPI_VPCD_PORTS"]`` so `VirtualCard()` finds them. Two
  more free ports (`PcscSession.spare_port`) are for a second vpcd entry.
  USB readers plugged into the machine are still seen by every pcscd
  (pcscd's libudev hotplug cannot be switched off at run time).
* Without the privilege to mount (a container without CAP_SYS_ADMIN), or with
  ``DOORPI_PCSCD_SHARED=1``, the daemon falls back to the system-wide
  ``/run/pcscd/pcscd.comm`` (still on the session's ports): then only one
  pcscd per machine, and a live one we did not start is a failure.

Fixtures:

* ``pcscd`` (session): starts ``pcscd -f -a -c <conf>`` as a child process,
  waits until ``smartcard.System.readers()`` lists the two ``Virtual PCD``
  readers, and kills it by PID at the end of the session. If pcscd cannot
  start, the fixture FAILS (never skips) with the reason and the tail of
  pcscd's log. A leftover socket nobody listens on is removed. We never
  kill a daemon we did not start.
* ``pcsc`` (function): the same daemon, restarted first if an earlier test
  left it stopped.
* ``vcard``: a factory for `VirtualCard`s (on the session's first reader
  unless ``port=`` says otherwise) that lifts every card at teardown.
* ``pcsc_events``: an `EventRecorder` (thread-safe list with ``wait_for``).
* ``pcsc_reader``: a started `PcscReader` on ``Virtual PCD 00 00`` feeding
  ``pcsc_events`` (started with `start_reader`: empty field, then its "reader
  ready", sent after its first status query), stopped at teardown.

Environment: ``DOORPI_PCSCD_DEBUG=1`` adds ``-d`` (very verbose log).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from doorpi.core.events import Event
from doorpi.sim.vpcd_card import PORTS_ENV, VirtualCard

#: pcscd's compiled-in IPC dir (``pcscd --version``: ipcdir=/run/pcscd).
RUN_DIR = Path("/run/pcscd")
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
SHARED_ENV = "DOORPI_PCSCD_SHARED"
VPCD_DRIVER_CANDIDATES = (
    Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/lib64/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so"),
)
READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"
EXPECTED_READERS = (READER_0, READER_1)
#: Session ports come from here: below Linux's default ephemeral range
#: (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999), so no outgoing
#: connection takes them between the pick and pcscd's bind.
PORT_RANGE = (20000, 32000)
#: sockaddr_un.sun_path holds 108 bytes including the NUL (unix(7)).
MAX_SOCKET_PATH = 107


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


def _ports_free(first: int, count: int) -> bool:
    """True if TCP ports first..first+count-1 can be bound on 0.0.0.0 (as vpcd does)."""
    for port in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def pick_ports(count: int = 4, tries: int = 200) -> int:
    """A random first port of ``count`` consecutive free ones in `PORT_RANGE`."""
    low, high = PORT_RANGE
    for _ in range(tries):
        first = random.randrange(low, high - count, count)
        if _ports_free(first, count):
            return first
    raise PcscdError(f"no {count} consecutive free TCP ports in {low}-{high - 1}")


def _can_mount_privately(scratch: Path) -> bool:
    """True if we may bind-mount in a private mount namespace (root + CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    cmd = ["unshare", "--mount", "--propagation", "private", "--"]
    cmd += ["mount", "--bind", str(scratch), str(scratch)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def vpcd_driver() -> Path | None:
    return next((p for p in VPCD_DRIVER_CANDIDATES if p.exists()), None)


def vpcd_entry(name: str, port: int) -> str:
    """One reader.conf entry: a vpcd reader ``name`` whose slots 0 and 1 wait
    for a card on TCP ``port`` and ``port + 1`` (vpcd's ``/dev/null:PORT``)."""
    driver = vpcd_driver() or VPCD_DRIVER_CANDIDATES[0]
    return (
        f'FRIENDLYNAME "{name}"\nDEVICENAME /dev/null:0x{port:04X}\n'
        f"LIBPATH {driver}\nCHANNELID 0x{port:04X}\n\n"
    )


@dataclass(frozen=True)
class PcscSession:
    """Where this pytest session's pcscd lives and which ports its readers use.

    ``run_dir`` is what the daemon sees as /run/pcscd (a temp dir when
    ``private``); ``first_port`` .. ``first_port + 3`` were free when picked.
    """

    run_dir: Path
    private: bool
    first_port: int

    @property
    def comm_socket(self) -> Path:
        return self.run_dir / "pcscd.comm"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pcscd.pid"

    @property
    def ports(self) -> dict[str, int]:
        return {READER_0: self.first_port, READER_1: self.first_port + 1}

    @property
    def spare_port(self) -> int:
        """First of two more free ports, for a second vpcd entry in a test's reader.conf."""
        return self.first_port + 2

    @classmethod
    def create(cls) -> PcscSession:
        first = pick_ports()
        if os.environ.get(SHARED_ENV) == "1":
            return cls(RUN_DIR, private=False, first_port=first)
        run_dir = Path(tempfile.mkdtemp(prefix="doorpi-pcscd-"))
        if _can_mount_privately(run_dir):
            return cls(run_dir, private=True, first_port=first)
        run_dir.rmdir()
        return cls(RUN_DIR, private=False, first_port=first)


SESSION: PcscSession | None = None
_SAVED_ENV: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Pick this session's socket and ports and export them before any test
    (libpcsclite reads PCSCLITE_CSOCK_NAME once, at its first connection)."""
    global SESSION
    SESSION = PcscSession.create()
    for key, value in (
        (SOCKET_ENV, str(SESSION.comm_socket)),
        (PORTS_ENV, ",".join(str(p) for p in SESSION.ports.values())),
    ):
        _SAVED_ENV[key] = os.environ.get(key)
        os.environ[key] = value


def pytest_unconfigure(config: pytest.Config) -> None:
    for key, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if SESSION is not None and SESSION.private:
        shutil.rmtree(SESSION.run_dir, ignore_errors=True)


def current_session() -> PcscSession:
    if SESSION is None:  # loaded without pytest_configure (imported, not a plugin)
        raise PcscdError("pcsc_fixtures was not loaded as a pytest plugin")
    return SESSION


def list_readers() -> list[str]:
    """``smartcard.System.readers()`` as names; [] while pcscd is down."""
    from smartcard.System import readers

    try:
        return [str(r) for r in readers()]
    except Exception:
        return []


class PcscDaemon:
    """One ``pcscd -f -a`` child process we own (by PID), for ``session``."""

    def __init__(
        self, log_dir: Path, session: PcscSession | None = None, start_timeout: float = 10.0
    ) -> None:
        self.session = session or current_session()
        self.log_dir = log_dir
        self.log_path = log_dir / "pcscd.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def ports(self) -> dict[str, int]:
        return self.session.ports

    @property
    def comm_socket(self) -> Path:
        return self.session.comm_socket

    # ------------------------------------------------------------ checks

    def preflight(self) -> None:
        problems = []
        if shutil.which("pcscd") is None:
            problems.append("pcscd not found (apt-get install pcscd)")
        if vpcd_driver() is None:
            problems.append("vpcd driver libifdvpcd.so not found (apt-get install vsmartcard-vpcd)")
        if os.geteuid() != 0:
            problems.append(f"pcscd must run as root for these tests (euid {os.geteuid()})")
        if len(str(self.comm_socket).encode()) > MAX_SOCKET_PATH:
            problems.append(f"socket path {self.comm_socket} is too long: set a shorter TMPDIR")
        try:
            import smartcard.System  # noqa: F401
        except ImportError as exc:
            problems.append(f"pyscard not importable: {exc}")
        if problems:
            raise PcscdError("; ".join(problems))

    def clear_leftovers(self) -> None:
        """Remove a stale socket/pid file; refuse if a live pcscd owns them."""
        sock, pid_file = self.comm_socket, self.session.pid_file
        if sock.exists() or sock.is_socket():
            if _socket_listening(sock):
                owner = ""
                with contextlib.suppress(OSError, ValueError):  # pcscd ends it with a NUL
                    pid = int(pid_file.read_text().strip(" \n\0"))
                    owner = f" (pid file says {pid})"
                raise PcscdError(
                    f"another pcscd is already listening on {sock}{owner}; without a private "
                    "mount namespace only one pcscd can run per machine. Stop it first (e.g. "
                    "`systemctl stop pcscd.socket pcscd.service`) - these tests never kill a "
                    "daemon they did not start."
                )
            sock.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)
        busy = [port for port in self.ports.values() if _port_in_use(port)]
        if busy:
            raise PcscdError(f"vpcd ports {busy} are already in use by another process")

    def default_config(self) -> Path:
        """A reader.conf dir with one vpcd entry on the session's ports."""
        conf = self.log_dir / "reader.conf.d"
        conf.mkdir(exist_ok=True)
        (conf / "vpcd").write_text(vpcd_entry("Virtual PCD", self.ports[READER_0]))
        return conf

    def command(self, config_dir: Path) -> list[str]:
        args = ["pcscd", "--foreground", "--apdu", "--config", str(config_dir)]
        if os.environ.get("DOORPI_PCSCD_DEBUG"):
            args.append("--debug")
        if not self.session.private:
            return args
        # sh and unshare exec, so the child's PID is pcscd's. mkdir -p as
        # pcscd itself would; the mount lives only in the new namespace.
        script = 'mkdir -p "$1" && mount --bind "$0" "$1" && shift && exec "$@"'
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", script, str(self.session.run_dir), str(RUN_DIR), *args,
        ]  # fmt: skip

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
        readers) are listed. ``config_dir`` replaces the session's reader.conf
        dir (an empty dir gives a running pcscd with no reader: "reader
        unplugged")."""
        if self.running:
            return
        self.preflight()
        self.clear_leftovers()
        expect = EXPECTED_READERS if expect is None else expect
        args = self.command(config_dir if config_dir is not None else self.default_config())
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
            if self.comm_socket.exists() and _socket_listening(self.comm_socket):
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
        if self.comm_socket.exists() and not _socket_listening(self.comm_socket):
            self.comm_socket.unlink(missing_ok=True)
            self.session.pid_file.unlink(missing_ok=True)

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


def wait_field_empty(reader_name: str = READER_0, timeout: float = 5.0) -> None:
    """Wait until pcscd reports no card on ``reader_name`` (an earlier test's
    card gone): a card still there when a reader starts is "already present"."""
    from smartcard import scard

    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS, f"SCardEstablishContext: {hresult:#x}"
    try:
        end = time.monotonic() + timeout
        while True:
            hresult, states = scard.SCardGetStatusChange(
                ctx, 0, [(reader_name, scard.SCARD_STATE_UNAWARE)]
            )
            if hresult == scard.SCARD_S_SUCCESS and not states[0][1] & scard.SCARD_STATE_PRESENT:
                return
            assert time.monotonic() < end, f"{reader_name}: a card is still on the reader"
            time.sleep(0.1)
    finally:
        scard.SCardReleaseContext(ctx)


def start_reader(
    reader: object,
    events: EventRecorder,
    reader_name: str = READER_0,
    timeout: float = 5.0,
    forward: Callable[[Event], None] | None = None,
) -> None:
    """Start a `PcscReader` on an empty field and wait for its "reader ready"
    for ``reader_name``, which it sends only after its first status query:
    from then on a tap is a tap (not a card "already on the reader").
    Events go to ``events`` and then, if given, to ``forward`` (a gate's
    ``submit``)."""
    from doorpi.core.events import ReaderStatus

    def emit(event: Event) -> None:
        events(event)
        if forward is not None:
            forward(event)

    wait_field_empty(reader_name)
    since = events.mark()
    reader.start(emit)  # type: ignore[attr-defined]
    events.wait_for(
        lambda e: isinstance(e, ReaderStatus) and e.present and e.reader == reader_name,
        timeout=timeout,
        since=since,
    )


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
    port = current_session().ports[READER_0]

    def make(uid: bytes | str = "04A1B2C3", **kwargs: object) -> VirtualCard:
        raw = bytes.fromhex(uid) if isinstance(uid, str) else uid
        kwargs.setdefault("port", port)
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
    from doorpi.hardware.reader import PcscReader

    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5, backoff_max=1.0)
    start_reader(reader, pcsc_events)
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
    "PcscSession",
    "PcscdError",
    "current_session",
    "list_readers",
    "pick_ports",
    "start_reader",
    "vpcd_entry",
    "wait_field_empty",
]
