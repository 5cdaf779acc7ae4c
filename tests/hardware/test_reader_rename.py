"""A reader that comes back under another PC/SC index, on a real pcscd + vpcd.

pcsc-lite names a reader "<device> <index> <slot>"; the index is the lowest
free one among readers of the same name, so a replugged reader (or a second
one of the same model plugged first) comes back as "... 01 00". vpcd cannot be
unplugged, so the rename is staged by restarting pcscd with a reader.conf
that registers another "Virtual PCD" (no card on its port) before ours.
"""

from __future__ import annotations

import time

import pytest

from doorpi.cards import UidCard
from doorpi.core.events import CardPresented, CardRemoved, ReaderStatus
from doorpi.hardware.reader import PcscReader, reader_matches
from doorpi.selftest import PASS, check_reader
from pcsc_fixtures import READER_0, list_readers, vpcd_entry, wait_field_empty

UID = bytes.fromhex("04A1B2C3D4E5F6")


def _tap(card, rec, hold: float = 1.2) -> list:
    since = rec.mark()
    card.tap(hold)
    rec.wait_for(CardRemoved, timeout=3, since=since)
    time.sleep(0.3)
    return [e for e in rec.events[since:] if isinstance(e, CardPresented | CardRemoved)]


@pytest.mark.parametrize(
    ("wanted", "actual", "match"),
    [
        ("Virtual PCD 00 00", "Virtual PCD 01 00", True),  # same reader, new index
        ("Virtual PCD 00 00", "Virtual PCD 00 01", False),  # another slot
        ("Virtual PCD 00 00", "Other PCD 00 00", False),
        ("ACS ACR122U PICC Interface 00 00", "ACS ACR122U PICC Interface 0A 00", True),
        ("ACR122", "ACS ACR122U PICC Interface 01 00", True),  # a part of the name
        ("", "anything 00 00", True),
        ("Virtual PCD 00", "Virtual PCD 00 00", False),  # not a full name: a part of the base
    ],
)
def test_reader_matches(wanted, actual, match):
    assert reader_matches(wanted, actual) is match


class RenamingScard:
    """The real ``smartcard.scard`` talking to the real pcscd, with one reader's
    PC/SC index shown as another: what a replug does to the name (pcscd 1.9.9
    gives reader.conf readers of one name the same index, so a real "01" cannot
    be staged with vpcd). Names are translated both ways; everything else is
    the real call."""

    def __init__(self, old: str, new: str) -> None:
        from smartcard import scard

        self.real, self.old, self.new = scard, old, new

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def _out(self, n: str) -> str:
        return self.new if n == self.old else n

    def _in(self, n: str) -> str:
        return self.old if n == self.new else n

    def SCardListReaders(self, ctx, groups):
        hresult, names = self.real.SCardListReaders(ctx, groups)
        return hresult, [self._out(n) for n in names or []]

    def SCardGetStatusChange(self, ctx, timeout, states):
        hresult, out = self.real.SCardGetStatusChange(
            ctx, timeout, [(self._in(n), *rest) for n, *rest in states]
        )
        return hresult, [(self._out(n), *rest) for n, *rest in out]

    def SCardConnect(self, ctx, name, share, protocols):
        return self.real.SCardConnect(ctx, self._in(name), share, protocols)


def test_reader_renamed_after_replug_still_reads(pcsc, pcsc_events, vcard):
    """reader.name is the full name selftest printed before the replug ("... 00 00");
    after it the reader is "... 01 00" and taps must still be read."""
    renamed = "Virtual PCD 01 00"
    shim = RenamingScard(READER_0, renamed)
    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5, scard=shim)
    wait_field_empty(READER_0)  # the last test's card has left (pcscd polls every 0.4 s)
    reader.start(pcsc_events)
    try:
        pcsc_events.wait_for(
            lambda e: isinstance(e, ReaderStatus) and e.present and e.reader == renamed, 5
        )
        assert reader.readers == [renamed]  # "Virtual PCD 00 01" is another slot: not used
        assert _tap(vcard(UID), pcsc_events) == [CardPresented(UID, renamed), CardRemoved(renamed)]
        listed = [shim._out(n) for n in list_readers()]
        result = check_reader(True, READER_0, lambda: listed)
        assert result.status == PASS and renamed in result.detail, result.detail
    finally:
        reader.stop()


def test_only_the_configured_reader_is_used(pcsc, pcsc_events, vcard, tmp_path):
    conf = tmp_path / "reader.conf.d"
    conf.mkdir()
    other_port = pcsc.session.spare_port
    (conf / "readers").write_text(
        vpcd_entry("Other PCD", other_port) + vpcd_entry("Virtual PCD", pcsc.ports[READER_0])
    )
    pcsc.stop()
    pcsc.start(config_dir=conf, expect=("Other PCD 00 00", READER_0))
    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.5)
    reader.start(pcsc_events)
    try:
        pcsc_events.wait_for(lambda e: isinstance(e, ReaderStatus) and e.present, timeout=5)
        time.sleep(0.5)
        assert reader.readers == [READER_0]
        other = vcard(UID, port=other_port)  # tapped on the Other PCD: not ours
        since = pcsc_events.mark()
        other.tap(1.2)
        time.sleep(0.8)
        assert not [e for e in pcsc_events.events[since:] if isinstance(e, CardPresented)]
    finally:
        reader.stop()
        pcsc.stop()
