"""NFC card readers: the PC/SC adapter (pyscard) and its test double.

Both readers share one contract::

    reader.start(emit)   # emit(event) is called from the reader's thread
    reader.stop()        # returns promptly (well under 2 s)
    reader.last_alive    # time.monotonic() of the last healthy loop pass

`PcscReader` also tells apart why its thread went quiet (`PcscReader.thread_state`):
blocked inside a call into pcscd (an outside fault: `healthy` is False, so
`doorpi.devicewatch` shows it, but `watchdog_ok` stays True, because restarting
the gate cannot unfreeze pcscd) or dead / stuck in our own code (both False: the
systemd watchdog restarts the gate).

and emit only `doorpi.core.events` types: `CardPresented` (once per tap),
`CardRemoved`, `CardReadFailed` (bad card answer, one-line reason) and
`ReaderStatus` (reader appeared / went away, including pcscd restarts).

Why direct ``SCardGetStatusChange`` and not pyscard's ``CardMonitor`` or
``CardRequest``: see `PcscReader`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from doorpi.cards.uid import GET_UID_APDU, CardProtocol, CardProtocolError, Transmit, UidCard
from doorpi.core.events import CardPresented, CardReadFailed, CardRemoved, Event, ReaderStatus

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

_MASK = 0xFFFFFFFF
# PC/SC codes (pcsc-lite values), kept here so this module imports without pyscard.
SCARD_S_SUCCESS = 0x0
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_F_COMM_ERROR = 0x80100013
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069

SCARD_STATE_UNAWARE = 0x0
SCARD_STATE_IGNORE = 0x1
SCARD_STATE_CHANGED = 0x2
SCARD_STATE_UNKNOWN = 0x4
SCARD_STATE_UNAVAILABLE = 0x8
SCARD_STATE_EMPTY = 0x10
SCARD_STATE_PRESENT = 0x20
SCARD_STATE_MUTE = 0x200

# The daemon is gone (stopped, restarted, crashed): drop the context, back off.
# (pcsc-lite returns SCARD_F_COMM_ERROR when the daemon dies mid-call.)
_SERVICE_DOWN = frozenset(
    {SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, SCARD_E_INVALID_HANDLE, SCARD_F_COMM_ERROR}
)
_CARD_GONE = frozenset({SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD, SCARD_W_RESET_CARD})

_ERROR_TEXT = {
    SCARD_E_NO_SERVICE: "pcscd not running",
    SCARD_E_SERVICE_STOPPED: "pcscd stopped",
    SCARD_E_INVALID_HANDLE: "PC/SC context lost",
    SCARD_F_COMM_ERROR: "lost connection to pcscd",
    SCARD_E_PROTO_MISMATCH: "no common protocol (card lifted during power-up?)",
    SCARD_E_UNKNOWN_READER: "reader unknown",
    SCARD_E_READER_UNAVAILABLE: "reader unavailable",
    SCARD_E_NO_SMARTCARD: "card gone",
    SCARD_W_REMOVED_CARD: "card removed during read",
    SCARD_W_RESET_CARD: "card reset during read",
    SCARD_W_UNRESPONSIVE_CARD: "card unresponsive",
    SCARD_W_UNPOWERED_CARD: "card unpowered",
}


# pcsc-lite names a reader "<device name> <reader index> <slot>", e.g.
# "ACS ACR122U PICC Interface 00 00". The reader index is handed out in plug
# order: after a replug (or with another reader plugged first) the same reader
# comes back as "... 01 00". The slot stays the reader's own.
_PCSC_NAME = re.compile(r"^(?P<base>.*\S) (?P<index>[0-9A-Fa-f]{2}) (?P<slot>[0-9A-Fa-f]{2})$")


def reader_matches(wanted: str, actual: str) -> bool:
    """Does the PC/SC reader ``actual`` answer to the configured ``reader.name``?

    Empty ``wanted``: every reader. A full PC/SC name (ending in index and
    slot, the form selftest prints): the same device name and slot, at any
    reader index, so a replugged reader is still found. Anything else: a part
    of the device name (``"ACR122"``).
    """
    if not wanted:
        return True
    w, a = _PCSC_NAME.match(wanted), _PCSC_NAME.match(actual)
    if w is not None:
        return a is not None and (w["base"], w["slot"].upper()) == (a["base"], a["slot"].upper())
    return wanted in (a["base"] if a is not None else actual)


def pcsc_error_text(hresult: int) -> str:
    hresult &= _MASK
    return _ERROR_TEXT.get(hresult, f"PC/SC error 0x{hresult:08X}")


# How to look, for a person told that the reader or pcscd is not there.
PCSCD_CHECK = "`systemctl status pcscd` shows it; `sudo systemctl start pcscd` starts it"
READER_CHECK = "`doorpi selftest` (or pcsc_scan) lists the readers pcscd sees"


def service_down(hresult_or_reason: int | str) -> bool:
    """Is this PC/SC error (an hresult, or the text `pcsc_error_text` gave for one,
    as in `ReaderStatus.reason`) "pcscd is not there" rather than a reader or card?"""
    if isinstance(hresult_or_reason, str):
        return hresult_or_reason in {pcsc_error_text(h) for h in _SERVICE_DOWN}
    return hresult_or_reason & _MASK in _SERVICE_DOWN


def reader_absent_text(reason: str, name_filter: str = "") -> str:
    """One line saying which of pcscd or the reader is missing, and how to check."""
    if service_down(reason):
        return f"pcscd (the PC/SC service) is not answering ({reason}): {PCSCD_CHECK}"
    which = f" matching reader.name {name_filter!r}" if name_filter else ""
    return f"no card reader{which} is attached ({reason}): plug it in; {READER_CHECK}"


class CardReader(Protocol):
    """What the gate needs from any card reader (real or simulated)."""

    name: str

    @property
    def last_alive(self) -> float: ...

    def start(self, emit: Emit) -> None: ...

    def stop(self) -> None: ...


class _ServiceDown(Exception):
    """pcscd went away; the loop drops its context and backs off."""

    def __init__(self, hresult: int) -> None:
        super().__init__(pcsc_error_text(hresult))
        self.hresult = hresult & _MASK


class _PcscError(Exception):
    def __init__(self, call: str, hresult: int) -> None:
        super().__init__(f"{call}: {pcsc_error_text(hresult)}")
        self.hresult = hresult & _MASK


@dataclass(frozen=True, slots=True)
class ThreadState:
    """A snapshot of `PcscReader`'s thread, taken from any thread without blocking.

    ``running``: the thread exists and ``Thread.is_alive()``.
    ``pcsc_call``: the PC/SC function (pcsc-lite name, e.g.
    ``"SCardGetStatusChange"``) the thread is inside now, ``""`` when none.
    ``call_seconds``: how long it has been inside that call (0.0 when none).
    ``quiet_seconds``: seconds since the thread last made progress in our own
    code (a loop pass, a back-off tick, or a PC/SC call returning).
    """

    running: bool
    pcsc_call: str
    call_seconds: float
    quiet_seconds: float


@dataclass
class _ReaderState:
    name: str
    current: int = SCARD_STATE_UNAWARE  # what we tell SCardGetStatusChange we know
    card_present: bool = False  # a tap is in progress (CardPresented/Failed sent)
    counter: int | None = None  # pcsc-lite's per-reader card event counter
    announced: bool = False  # ReaderStatus(present=True) sent (after the first status query)


class PcscReader:
    """A PC/SC reader watched with direct ``SCardGetStatusChange`` calls.

    One daemon thread owns the PC/SC context. It lists the readers that
    `reader_matches` ``name_filter`` (empty = all; a full name at any reader
    index), waits at most ``poll_seconds``
    for a state change (readers plus pcsc-lite's PnP pseudo-reader, so USB
    hot-plug is seen at once), and on a new card connects, runs
    ``protocol.identify(transmit)`` and disconnects with SCARD_LEAVE_CARD.

    Survival rules:

    * pcscd down or restarted (``SCARD_E_NO_SERVICE`` / ``SERVICE_STOPPED``
      / ``INVALID_HANDLE`` from any call): release the context, emit
      ``ReaderStatus(present=False)`` once per reader, retry
      ``SCardEstablishContext`` with exponential back-off
      (``backoff_initial`` doubling to ``backoff_max``), then emit
      ``ReaderStatus(present=True)`` when the reader is back.
    * "reader ready" (``ReaderStatus(present=True)``) is sent only after
      the reader's first ``SCardGetStatusChange`` answer, at start and after
      every re-find: a card on the reader before that is "already present"
      and ignored (a fob left on the reader must not unlock after a pcscd
      restart), a card tapped after it is a tap.
    * any other exception (pyscard, the protocol, the emit callback) is
      logged as one line; the thread never dies.
    * ``last_alive`` is refreshed every loop pass and during back-off, at
      least every ``poll_seconds``: if it is older than a few polls, the
      thread is hanging (see `healthy`).
    * every PC/SC call goes through `_pcsc`, which records its name and
      start time: a thread that hangs inside one is waiting on pcscd (frozen
      by SIGSTOP, wedged in a driver) or on a card, an outside fault that a
      gate restart cannot cure (`watchdog_ok` stays True); a thread that
      hangs anywhere else, or has died, is ours to restart (`watchdog_ok`
      False). From a working pcscd every call returns within
      ``poll_seconds`` (``SCardGetStatusChange``'s timeout) or the card's
      own answer time (``SCardConnect``, ``SCardTransmit``), so a long call
      means pcscd or the card.
    * pcscd continued (SIGCONT) after a freeze: the blocked call returns and
      the loop goes on; pcscd killed while frozen: the call returns
      ``SCARD_F_COMM_ERROR`` and the service-down path above re-establishes
      the context when pcscd is back (socket activation on Debian starts it
      at the next connect). Either way the reader comes back by itself.

    Why not pyscard's helpers (measured with pyscard 2.3.1, pcsc-lite 1.9.9
    and vpcd, pcscd killed and restarted while watching): ``CardMonitor``'s
    process-wide singleton thread died with the daemon and never saw another
    tap; a ``CardRequest`` loop got ``SCARD_F_COMM_ERROR``, then
    ``SCARD_E_INVALID_HANDLE`` on every call forever (it re-establishes its
    context only on NO_SERVICE / SERVICE_STOPPED, and the stale handle gives
    INVALID_HANDLE), so it never recovered either. Both hide pcsc-lite's
    per-reader event counter. Direct calls give one thread we own, an
    ``SCardCancel`` stop, and explicit recovery (first tap works ~0.3 s after
    pcscd is back, bounded by ``backoff_max``).
    """

    def __init__(
        self,
        name_filter: str,
        protocol: CardProtocol | None = None,
        poll_seconds: float = 0.5,
        *,
        backoff_initial: float = 0.2,
        backoff_max: float = 2.0,
        relist_seconds: float = 5.0,
        scard: Any = None,
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be > 0")
        self.name_filter = name_filter
        self.name = name_filter or "pcsc"
        self.protocol: CardProtocol = protocol if protocol is not None else UidCard()
        self.poll_seconds = poll_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.relist_seconds = relist_seconds
        self._scard = scard  # the smartcard.scard module (injectable for tests)
        self._emit_cb: Emit | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ctx: int | None = None
        self._readers: dict[str, _ReaderState] = {}  # owned by the reader thread
        self._reader_names: tuple[str, ...] = ()
        self._pnp_state = SCARD_STATE_UNAWARE
        self._use_pnp = True
        self._relist_at = 0.0
        self._absent_reported: str | None = None  # reason last sent for "no reader"
        self._last_alive = time.monotonic()
        self._progress = self._last_alive  # last progress in our code (see ThreadState)
        self._in_call: tuple[str, float] | None = None  # (PC/SC call, monotonic start)
        self._last_error: str | None = None
        self.loops = 0  # loop passes, for tests and diagnostics
        self.errors = 0  # unexpected exceptions survived

    # ------------------------------------------------------------ contract

    @property
    def last_alive(self) -> float:
        """``time.monotonic()`` of the reader thread's last healthy pass."""
        return self._last_alive

    def healthy(self, now: float | None = None, max_age: float | None = None) -> bool:
        """True if the thread runs and has been alive within ``max_age``
        (default: 4 polls + 2 s, generous enough for a slow card read).

        False for any silence, inside pcscd or not: this is what
        `doorpi.devicewatch` shows as the ``card reader`` fault. For the
        systemd watchdog use `watchdog_ok`."""
        if self._thread is None or not self._thread.is_alive():
            return False
        now = time.monotonic() if now is None else now
        max_age = 4 * self.poll_seconds + 2.0 if max_age is None else max_age
        return now - self._last_alive <= max_age

    def thread_state(self, now: float | None = None) -> ThreadState:
        """Where the reader thread is now (see `ThreadState`); never blocks."""
        now = time.monotonic() if now is None else now
        thread = self._thread
        call = self._in_call  # read before _progress: `_pcsc` sets them in the other order
        progress = self._progress
        return ThreadState(
            running=thread is not None and thread.is_alive(),
            pcsc_call=call[0] if call else "",
            call_seconds=max(0.0, now - call[1]) if call else 0.0,
            quiet_seconds=0.0 if call else max(0.0, now - progress),
        )

    def watchdog_ok(self, max_age: float, now: float | None = None) -> bool:
        """May the gate keep pinging systemd's watchdog for this reader?

        True while the thread runs and either is inside a PC/SC call (however
        long: pcscd frozen or hung is an outside fault, shown through
        `healthy`; a gate restart would not cure it and would take card and
        PIN down meanwhile) or made progress in our own code within
        ``max_age`` seconds. False when the thread has died or is stuck
        outside any PC/SC call for longer than ``max_age`` (our bug: a restart
        helps)."""
        state = self.thread_state(now)
        if not state.running:
            return False
        return bool(state.pcsc_call) or state.quiet_seconds <= max_age

    @property
    def readers(self) -> list[str]:
        """Reader names currently present (a snapshot, safe from any thread)."""
        return list(self._reader_names)

    def start(self, emit: Emit) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("reader already started")
        if self._scard is None:
            from smartcard import scard  # lazy: the simulated reader needs no pyscard

            self._scard = scard
        self._emit_cb = emit
        self._stop.clear()
        self._last_alive = self._progress = time.monotonic()
        self._in_call = None
        self._thread = threading.Thread(target=self._run, name=f"pcsc-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.5) -> None:
        """Stop the thread: cancel a blocking SCardGetStatusChange and join.

        Returns within ``timeout`` even if pcscd hangs: SCardCancel itself
        blocks on a frozen daemon, so it runs on a throw-away daemon thread,
        repeated until the reader thread ends (one cancel sent just before
        the thread enters SCardGetStatusChange would be lost).
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        end = time.monotonic() + timeout

        def cancel_until_stopped() -> None:
            while thread.is_alive() and time.monotonic() < end:
                self._cancel()
                thread.join(0.1)

        threading.Thread(
            target=cancel_until_stopped, name=f"pcsc-cancel-{self.name}", daemon=True
        ).start()
        thread.join(max(0.0, end - time.monotonic()))
        if thread.is_alive():
            log.warning(
                "reader %s: thread did not stop within %.1f s (pcscd hung?)", self.name, timeout
            )
        else:
            self._thread = None

    def _cancel(self) -> None:
        ctx = self._ctx
        if ctx is not None and self._scard is not None:
            try:
                self._scard.SCardCancel(ctx)
            except Exception as exc:  # the context may be gone already
                log.debug("SCardCancel: %s", exc)

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        backoff = self.backoff_initial
        while not self._stop.is_set():
            self._alive()
            try:
                if self._ctx is None:
                    self._establish()
                    backoff = self.backoff_initial
                self._poll_once()
            except _ServiceDown as exc:
                self._lose_service(str(exc))
                self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
            except Exception as exc:
                # One line, never a traceback, never a dead thread.
                self.errors += 1
                self._log_error(f"{type(exc).__name__}: {exc}")
                self._release_context()
                self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        self._release_context()

    def _alive(self) -> None:
        self._last_alive = self._progress = time.monotonic()
        self.loops += 1

    def _pcsc(self, call: str, *args: Any) -> Any:
        """``smartcard.scard.<call>(*args)``, recorded for `thread_state`.

        Only the reader thread calls this (`stop`'s SCardCancel, from another
        thread, goes direct). ``_in_call`` is set before the call and cleared
        after ``_progress`` is stamped, so a reader of both never sees "no
        call" with a stale stamp."""
        fn = getattr(self._scard, call)
        self._in_call = (call, time.monotonic())
        try:
            return fn(*args)
        finally:
            self._progress = time.monotonic()
            self._in_call = None

    def _log_error(self, text: str) -> None:
        """WARNING once per distinct error; repeats (a persistent fault
        retried every back-off) go to DEBUG until a poll succeeds."""
        if text == self._last_error:
            log.debug("reader %s: again: %s", self.name, text)
        else:
            self._last_error = text
            log.warning("reader %s: %s", self.name, text)

    def _sleep(self, seconds: float) -> None:
        """Interruptible back-off that keeps ``last_alive`` fresh."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, self.poll_seconds))
            self._last_alive = self._progress = time.monotonic()

    def _establish(self) -> None:
        s = self._scard
        hresult, ctx = self._pcsc("SCardEstablishContext", s.SCARD_SCOPE_USER)
        hresult &= _MASK
        if hresult != SCARD_S_SUCCESS:
            if hresult in _SERVICE_DOWN:
                raise _ServiceDown(hresult)
            raise _PcscError("SCardEstablishContext", hresult)
        self._ctx = ctx
        self._pnp_state = SCARD_STATE_UNAWARE
        self._relist_at = 0.0

    def _release_context(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            try:
                self._pcsc("SCardReleaseContext", ctx)
            except Exception as exc:
                log.debug("SCardReleaseContext: %s", exc)

    def _lose_service(self, reason: str) -> None:
        self._release_context()
        if self._readers:
            for name in list(self._readers):
                self._reader_gone(name, reason)
        self._report_absent(reason)

    def _report_absent(self, reason: str) -> None:
        """One ReaderStatus(present=False) per outage when no reader is known."""
        if self._readers or self._absent_reported is not None:
            return
        self._absent_reported = reason
        self._emit(ReaderStatus(self.name, False, reason))

    def _list_readers(self) -> list[str]:
        hresult, names = self._pcsc("SCardListReaders", self._ctx, [])
        hresult &= _MASK
        if hresult == SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult in _SERVICE_DOWN:
            raise _ServiceDown(hresult)
        if hresult != SCARD_S_SUCCESS:
            raise _PcscError("SCardListReaders", hresult)
        return [n for n in names or [] if reader_matches(self.name_filter, n)]

    def _sync_readers(self) -> None:
        names = self._list_readers()
        for gone in [n for n in self._readers if n not in names]:
            self._reader_gone(gone, "reader removed")
        for name in names:
            if name not in self._readers:
                # "reader ready" waits for this reader's first status query
                # (`_on_reader_state`): announced now, a card tapped before
                # that query would count as "already on the reader" and be
                # ignored although the tap came after "ready".
                self._readers[name] = _ReaderState(name)
                self._reader_names = tuple(self._readers)
        if not names:
            self._report_absent(f"no reader matching {self.name_filter!r}")
        self._relist_at = time.monotonic() + self.relist_seconds

    def _reader_gone(self, name: str, reason: str) -> None:
        state = self._readers.pop(name, None)
        self._reader_names = tuple(self._readers)
        if state is None:
            return
        if not state.announced:
            return  # never said "ready": nothing to take back (`_report_absent` may speak)
        if state.card_present:
            self._emit(CardRemoved(name))
        self._emit(ReaderStatus(name, False, reason))
        if not self._readers:
            self._absent_reported = reason  # already said per reader

    def _poll_once(self) -> None:
        if time.monotonic() >= self._relist_at:
            self._sync_readers()
        query = [(name, st.current) for name, st in self._readers.items()]
        if self._use_pnp:
            query.append((PNP_NOTIFICATION, self._pnp_state))
        if not query:
            self._sleep(self.poll_seconds)
            self._relist_at = 0.0
            return
        timeout_ms = max(1, int(self.poll_seconds * 1000))
        hresult, states = self._pcsc("SCardGetStatusChange", self._ctx, timeout_ms, query)
        hresult &= _MASK
        if hresult in (SCARD_E_TIMEOUT, SCARD_E_CANCELLED):
            self._last_error = None
            return
        if hresult in _SERVICE_DOWN:
            raise _ServiceDown(hresult)
        if hresult in (SCARD_E_UNKNOWN_READER, SCARD_E_READER_UNAVAILABLE):
            self._relist_at = 0.0
            return
        if hresult != SCARD_S_SUCCESS:
            raise _PcscError("SCardGetStatusChange", hresult)
        self._last_error = None
        for name, event_state, atr in states:
            if self._stop.is_set():
                return
            if name == PNP_NOTIFICATION:
                self._on_pnp(event_state)
            elif name in self._readers:
                self._on_reader_state(self._readers[name], event_state, atr)

    def _on_pnp(self, event_state: int) -> None:
        if event_state & SCARD_STATE_UNKNOWN:
            # This pcsc implementation has no PnP pseudo-reader: poll instead.
            self._use_pnp = False
            return
        if event_state & SCARD_STATE_CHANGED:
            self._relist_at = 0.0
        self._pnp_state = event_state & ~SCARD_STATE_CHANGED

    def _on_reader_state(self, st: _ReaderState, event_state: int, atr: Any) -> None:
        st.current = event_state & ~SCARD_STATE_CHANGED
        if event_state & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_IGNORE):
            self._relist_at = 0.0
            return
        counter = (event_state >> 16) & 0xFFFF
        present = bool(event_state & SCARD_STATE_PRESENT)
        if not st.announced:
            # The first answer for this reader: from here on every change is
            # seen, so a tap after "ready" is a tap.
            st.announced = True
            self._absent_reported = None
            self._emit(ReaderStatus(st.name, True, "reader ready"))
        if present and st.counter is None:
            # A card already lying on a reader we just (re)found is not a tap: a
            # pcscd restart must not unlock for a fob left on the reader.
            st.card_present = True
            st.counter = counter
            log.info("%s: card already present when the reader appeared; ignored", st.name)
            return
        if present:
            if st.card_present and st.counter is not None and counter != st.counter:
                # Lifted and tapped again between two polls: that is a new tap.
                st.card_present = False
                self._emit(CardRemoved(st.name))
            if not st.card_present:
                st.card_present = True
                if event_state & SCARD_STATE_MUTE:
                    self._emit(CardReadFailed(st.name, "card mute: no answer to reset"))
                else:
                    self._read_card(st.name)
        elif st.card_present:
            st.card_present = False
            self._emit(CardRemoved(st.name))
        st.counter = counter

    # ------------------------------------------------------------ one card

    def _read_card(self, reader: str) -> None:
        try:
            event = self._identify(reader)
        except _ServiceDown:
            raise
        except Exception as exc:
            # pyscard itself failed: tell the core (feedback "try again")
            # rather than lose the tap silently; the loop goes on.
            self.errors += 1
            log.warning("reader %s: reading card: %s: %s", reader, type(exc).__name__, exc)
            event = CardReadFailed(reader, f"reader error: {type(exc).__name__}: {exc}")
        if event is not None:
            self._emit(event)

    def _identify(self, reader: str) -> Event | None:
        s = self._scard
        hresult, hcard, proto = self._pcsc(
            "SCardConnect",
            self._ctx,
            reader,
            s.SCARD_SHARE_SHARED,
            s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1,
        )
        hresult &= _MASK
        if hresult in _SERVICE_DOWN:
            raise _ServiceDown(hresult)
        if hresult != SCARD_S_SUCCESS:
            return CardReadFailed(reader, f"connect failed: {pcsc_error_text(hresult)}")
        try:
            card_id = self.protocol.identify(self._transmit_for(hcard, proto))
            return CardPresented(card_id, reader, self.protocol.method)
        except _ServiceDown:
            raise
        except CardProtocolError as exc:
            return CardReadFailed(reader, exc.reason)
        except Exception as exc:  # a protocol bug must not kill the reader
            log.warning(
                "reader %s: protocol %s raised %s: %s",
                reader,
                self.protocol.method,
                type(exc).__name__,
                exc,
            )
            return CardReadFailed(reader, f"protocol error: {type(exc).__name__}: {exc}")
        finally:
            try:
                self._pcsc("SCardDisconnect", hcard, s.SCARD_LEAVE_CARD)
            except Exception as exc:
                log.debug("SCardDisconnect: %s", exc)

    def _transmit_for(self, hcard: int, proto: int) -> Transmit:

        def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
            hresult, response = self._pcsc("SCardTransmit", hcard, proto, list(apdu))
            hresult &= _MASK
            if hresult in _SERVICE_DOWN:
                raise _ServiceDown(hresult)
            if hresult != SCARD_S_SUCCESS:
                raise CardProtocolError(f"transmit failed: {pcsc_error_text(hresult)}")
            if len(response) < 2:
                raise CardProtocolError(
                    f"response too short: {len(response)} byte(s), no status word"
                )
            return list(response[:-2]), response[-2], response[-1]

        return transmit

    def _emit(self, event: Event) -> None:
        cb = self._emit_cb
        if cb is None:
            return
        try:
            cb(event)
        except Exception as exc:
            self.errors += 1
            log.warning(
                "reader %s: emit(%s) raised %s: %s", self.name, event.kind, type(exc).__name__, exc
            )


class SimulatedReader:
    """The test double used by the demo and by gate tests.

    Same contract as `PcscReader`; events are emitted synchronously from the
    caller's thread. `present` runs the real ``protocol.identify`` against a
    fake card answering ``FF CA 00 00 00``, so the protocol's validation
    (status word, UID length) is exercised exactly as on hardware.
    """

    def __init__(
        self, name: str = "Simulated Reader", protocol: CardProtocol | None = None
    ) -> None:
        self.name = name
        self.protocol: CardProtocol = protocol if protocol is not None else UidCard()
        self._emit_cb: Emit | None = None
        self._last_alive = time.monotonic()
        self._lock = threading.Lock()
        self.plugged = True

    @property
    def last_alive(self) -> float:
        return self._last_alive

    def healthy(self, now: float | None = None, max_age: float | None = None) -> bool:
        return self._emit_cb is not None

    def start(self, emit: Emit) -> None:
        if self._emit_cb is not None:
            raise RuntimeError("reader already started")
        self._emit_cb = emit
        self._touch()
        emit(ReaderStatus(self.name, self.plugged, "simulated" if self.plugged else "unplugged"))

    def stop(self) -> None:
        self._emit_cb = None

    def present(
        self, card_id: bytes | str, *, status: bytes = b"\x90\x00", remove: bool = True
    ) -> None:
        """A tap: ``card_id`` (bytes or hex) answers the UID APDU with
        ``status``. Emits CardPresented (or CardReadFailed if the protocol
        rejects the answer), then CardRemoved unless ``remove`` is False."""
        uid = bytes.fromhex(card_id) if isinstance(card_id, str) else bytes(card_id)

        def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
            if tuple(apdu[:4]) == GET_UID_APDU[:4]:
                return list(uid), status[0], status[1]
            return [], 0x6A, 0x81

        if not self.plugged:
            raise RuntimeError(f"{self.name} is unplugged")
        try:
            event: Event = CardPresented(
                self.protocol.identify(transmit), self.name, self.protocol.method
            )
        except CardProtocolError as exc:
            event = CardReadFailed(self.name, exc.reason)
        self._send(event)
        if remove:
            self._send(CardRemoved(self.name))

    def fail(self, reason: str) -> None:
        """A card that answered badly."""
        self._send(CardReadFailed(self.name, reason))

    def unplug(self, reason: str = "reader removed") -> None:
        self.plugged = False
        self._send(ReaderStatus(self.name, False, reason))

    def replug(self) -> None:
        self.plugged = True
        self._send(ReaderStatus(self.name, True, "reader ready"))

    def _touch(self) -> None:
        self._last_alive = time.monotonic()

    def _send(self, event: Event) -> None:
        with self._lock:
            self._touch()
            cb = self._emit_cb
            if cb is None:
                raise RuntimeError(f"{self.name} is not started")
            cb(event)


__all__ = [
    "CardReader",
    "PcscReader",
    "SimulatedReader",
    "ThreadState",
    "pcsc_error_text",
    "reader_matches",
]
