"""When `PcscReader` says "reader ready", on a real pcscd + vpcd.

"ready" means the reader thread has its first ``SCardGetStatusChange``
answer for that reader: a card tapped after "ready" is a tap, a card lying on
the reader before it is "already present" and ignored (a fob left on the
reader must not unlock after a restart).
"""

from __future__ import annotations

import threading
import time

from doorpi.cards import UidCard
from doorpi.core.events import CardPresented, CardRemoved, ReaderStatus
from doorpi.hardware.reader import PcscReader
from pcsc_fixtures import READER_0, EventRecorder, start_reader, wait_field_empty

UID = bytes.fromhex("04A1B2C3D4E5F6")


class SlowFirstQueryScard:
    """The real ``smartcard.scard`` on the real pcscd, except that the first
    ``SCardGetStatusChange`` waits ``delay`` seconds before it is made: the
    reader thread descheduled on a busy machine (or a slow Pi at boot) right
    after it found the reader."""

    def __init__(self, delay: float) -> None:
        from smartcard import scard

        self.real, self.delay = scard, delay
        self.queries = 0
        self.first_answered = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def SCardGetStatusChange(self, ctx, timeout, states):
        self.queries += 1
        if self.queries == 1:
            time.sleep(self.delay)
        out = self.real.SCardGetStatusChange(ctx, timeout, states)
        self.first_answered.set()
        return out


def test_a_tap_right_after_ready_is_read_even_if_the_first_query_is_late(pcsc, vcard):
    """A card tapped the moment "reader ready" arrives is a tap, however long
    the reader thread takes to make its first status query."""
    shim = SlowFirstQueryScard(delay=1.5)
    events = EventRecorder()
    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5, scard=shim)
    wait_field_empty()
    reader.start(events)
    try:
        _, ready = events.wait_for(lambda e: isinstance(e, ReaderStatus) and e.present, 5)
        assert ready == ReaderStatus(READER_0, True, "reader ready")
        assert shim.first_answered.is_set(), '"reader ready" before the first status query'
        since = events.mark()
        vcard(UID).tap(1.2)
        events.wait_for(CardRemoved, timeout=4, since=since)
        got = [e for e in events.events[since:] if isinstance(e, CardPresented | CardRemoved)]
    finally:
        reader.stop()
    assert got == [CardPresented(UID, READER_0, "uid"), CardRemoved(READER_0)]


def test_a_card_already_on_the_reader_at_start_is_not_a_tap(pcsc, vcard):
    """The other side of "ready": a card lying there before the first query is
    ignored (one log line), lifting it is seen, and the next tap is read."""
    events = EventRecorder()
    card = vcard(UID)
    card.insert()
    time.sleep(1.0)  # pcscd (0.4 s presence polls) has powered it
    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5)
    reader.start(events)
    try:
        _, ready = events.wait_for(lambda e: isinstance(e, ReaderStatus) and e.present, 5)
        assert ready == ReaderStatus(READER_0, True, "reader ready")
        time.sleep(0.8)
        assert not events.of(CardPresented), "a card left on the reader opened the door"
        card.remove()
        events.wait_for(CardRemoved, timeout=3)
        since = events.mark()
        vcard(UID).tap(1.2)
        events.wait_for(CardRemoved, timeout=4, since=since)
        got = [e for e in events.events[since:] if isinstance(e, CardPresented | CardRemoved)]
    finally:
        reader.stop()
    assert got == [CardPresented(UID, READER_0, "uid"), CardRemoved(READER_0)]


def test_start_reader_helper_returns_after_ready(pcsc, vcard):
    """The shared fixtures' helper: after it returns, an immediate tap is read."""
    events = EventRecorder()
    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5)
    start_reader(reader, events)
    try:
        assert events.of(ReaderStatus) == [ReaderStatus(READER_0, True, "reader ready")]
        since = events.mark()
        vcard(UID).tap(1.2)
        _, presented = events.wait_for(CardPresented, timeout=4, since=since)
    finally:
        reader.stop()
    assert presented == CardPresented(UID, READER_0, "uid")
