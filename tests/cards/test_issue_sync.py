"""`doorpi admin card issue` on the laptop's reader (real pcscd + vpcd, the card emulator),
then the card's keys to a gate inside its sealed bundle, then the gate's reader lets it in.

Real `doorpi` processes for the laptop and the gate; the master key must never
leave the admin directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from admin_site import AdminSite
from cards.test_secure_cards_pcsc import DESFIRE_ATR
from doorpi.cards.ev2 import DOORPI_AID
from doorpi.cards.keys import GATE_KEYS_FILE, SiteCardKeys, load_gate_keys
from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow
from doorpi.cards.register import MASTER_FILE, REGISTER_FILE, gate_keys
from doorpi.core.events import CardPresented, CardReadFailed
from doorpi.hardware.reader import PcscReader
from doorpi.sim.ev2_card import Ev2CardApp
from pcsc_fixtures import READER_0, READER_1, EventRecorder, start_reader, wait_field_empty

UID = bytes.fromhex("04c0ffee000001")
LEGACY = "04a1b2c3d4e5f6"


NORTH = "north"  # the one gate


@pytest.fixture
def laptop(tmp_path: Path) -> AdminSite:
    lp = AdminSite(tmp_path)
    lp.init_admin()
    lp.gate(NORTH)
    lp.pair(NORTH)
    return lp


ROSTER = f"""\
[site]
name = "Test Court"

[[residents]]
key = "a-101-wang"   # the admin's own comment
name = "Alice"
keypad_id = "101"

[[residents]]
key = "b-102-li"
name = "Bo"
keypad_id = "102"
cards = ["{LEGACY}"]
"""


def write_roster(laptop: AdminSite, text: str = ROSTER) -> Path:
    return laptop.write_roster(text)


def issue(
    laptop: AdminSite,
    card,
    code: int = 0,
    resident: str = "a-101-wang",
    reader: str = READER_0,
    *extra: str,
) -> str:
    roster = laptop.roster
    if not roster.exists():
        write_roster(laptop)
    return laptop.run("admin", "card", "issue", "--resident", resident, "--roster", str(roster),
                      "--reader", reader, "--timeout", "3", *extra, code=code)  # fmt: skip


def test_issue_then_bundle_then_the_gate_reader_grants(laptop, pcsc, vcard) -> None:
    wait_field_empty(READER_0)
    app = Ev2CardApp.blank(UID, random_uid=True)
    card = vcard(UID, atr=DESFIRE_ATR, handler=app)
    card.insert()
    out = issue(laptop, card)
    card.remove()
    assert f"issued secure card {UID.hex()} for a-101-wang" in out
    master_file = laptop.admin / MASTER_FILE
    master = master_file.read_bytes()
    assert len(master) == 16 and master_file.stat().st_mode & 0o777 == 0o600
    site = SiteCardKeys(master)
    assert app.apps[DOORPI_AID] == [site.app_master_key(UID), site.uid_read_key(),
                                    site.entry_key(UID)]  # fmt: skip
    assert app.picc_key == site.picc_master_key(UID)  # no default key left on the card
    register = json.loads((laptop.admin / REGISTER_FILE).read_text())
    assert register[UID.hex()]["resident"] == "a-101-wang"

    roster = laptop.roster  # issue recorded the card there
    assert f'cards = ["{UID.hex()}"]' in roster.read_text()
    laptop.run("admin", "bundle", str(roster), str(laptop.stick))
    out = laptop.run("sync", "import", str(laptop.stick), gate=NORTH)
    keys_file = laptop.data[NORTH] / GATE_KEYS_FILE
    assert keys_file.stat().st_mode & 0o777 == 0o600
    keys = load_gate_keys(laptop.data[NORTH])
    assert keys is not None
    assert keys.uid_read == site.uid_read_key()
    assert keys.entry_keys == {UID.hex(): site.entry_key(UID)}  # the UID-only card has none
    # The master key reached neither the stick nor the gate, in any form.
    for folder in (laptop.stick, laptop.data[NORTH]):
        for f in folder.rglob("*"):
            if f.is_file():
                blob = f.read_bytes()
                assert master not in blob and master.hex().encode() not in blob, f

    # The gate's reader, with the keys the bundle brought, identifies the card.
    events = EventRecorder()
    reader = PcscReader(READER_0, CardPolicyProtocol(keys, LegacyWindow()), poll_seconds=0.5)
    start_reader(reader, events)
    try:
        mark = events.mark()
        vcard(UID, atr=DESFIRE_ATR, handler=app).tap(1.2)
        _, ev = events.wait_for(lambda e: isinstance(e, CardPresented | CardReadFailed), 6, mark)
    finally:
        reader.stop()
    assert isinstance(ev, CardPresented) and ev.card_id == UID, ev


def test_issue_refusals_are_one_line_and_record_nothing(laptop, pcsc, vcard) -> None:
    wait_field_empty(READER_0)
    out = issue(laptop, None, code=2)  # no card on the reader
    assert "card not issued: Virtual PCD 00 00: no card on the reader" in out
    site = SiteCardKeys(bytes(range(16)))
    card = vcard(UID, atr=DESFIRE_ATR, handler=Ev2CardApp.issued(site, UID))
    card.insert()
    out = issue(laptop, card, code=2)
    card.remove()
    assert "card not issued: not a blank card" in out and len(out.strip().splitlines()) == 1
    assert not (laptop.admin / REGISTER_FILE).exists()
    # An unknown resident is refused before the card is touched: still blank.
    blank = Ev2CardApp.blank(UID, random_uid=True)
    card = vcard(UID, atr=DESFIRE_ATR, handler=blank)
    card.insert()
    roster = laptop.roster
    before = roster.read_bytes()
    out = issue(laptop, card, 2, "z-999-nobody")
    assert out.strip() == f"doorpi: {roster}: no resident with key = 'z-999-nobody'", out
    out = issue(laptop, card, 2, "a-101-wang", READER_0, "--label", "bad\nlabel")
    assert len(out.strip().splitlines()) == 1 and out.startswith("doorpi: --label"), out
    card.remove()
    assert not blank.apps and roster.read_bytes() == before
    assert not (laptop.admin / REGISTER_FILE).exists()


def test_issue_with_no_pcscd_says_so_in_one_line(laptop, monkeypatch, tmp_path) -> None:
    """PC/SC pointed at a pcscd that is not running: no pyscard exception text."""
    monkeypatch.setenv("PCSCLITE_CSOCK_NAME", str(tmp_path / "no-pcscd.comm"))
    out = issue(laptop, None, code=2)
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("doorpi: card not issued: pcscd (the PC/SC service) is not "
                               "answering (pcscd not running)"), out  # fmt: skip
    assert "systemctl status pcscd" in lines[0] and "plug in the reader" in lines[0]
    assert "Exception" not in out and "0x8010" not in out
    assert not (laptop.admin / REGISTER_FILE).exists()


class RunningGate:
    """`doorpi run` (the real gate process) on the vpcd reader, GPIO from gpiozero's
    MockFactory (GPIOZERO_PIN_FACTORY=mock), its records read from --json-events."""

    def __init__(self, laptop: AdminSite) -> None:
        cfg = (
            laptop.cfg[NORTH].read_text()
            + f'[reader]\nname = "{READER_0}"\n[keypad]\nkind = "none"\n'
        )
        self.cfg = laptop.root / "north-run.toml"
        self.cfg.write_text(cfg)
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "DOORPI_ADMIN_DIR": "/nonexistent"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "doorpi", "--config", str(self.cfg), "run", "--json-events"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.records: list[dict] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.records.append(rec)
                self._cond.notify_all()

    def wait_for(self, pred, timeout: float = 10.0, since: int = 0) -> dict:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for rec in self.records[since:]:
                    if pred(rec):
                        return rec
                left = end - time.monotonic()
                assert left > 0 and self.proc.poll() is None, (
                    f"no matching record within {timeout} s; saw {self.records[since:]}"
                )
                self._cond.wait(min(left, 0.5))

    def mark(self) -> int:
        with self._cond:
            return len(self.records)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
        return err


def tap_at_gate(gate: RunningGate, vcard, app) -> dict:
    """Tap the card on the gate's reader; the gate's access or card_read_failed record."""
    wait_field_empty(READER_0)
    mark = gate.mark()
    vcard(UID, atr=DESFIRE_ATR, handler=app).tap(1.2)
    return gate.wait_for(lambda r: r.get("event") in ("access", "card_read_failed"), 10, mark)


def test_issue_records_the_card_in_the_roster_and_a_running_gate_takes_the_new_keys(
    laptop, pcsc, vcard
) -> None:
    """Roster -> issue (laptop's reader) -> the roster holds the card -> bundle -> import
    while the gate runs -> the next tap at the gate is granted, without a restart."""
    roster = write_roster(laptop)
    laptop.run("admin", "bundle", str(roster), str(laptop.stick))
    laptop.run("sync", "import", str(laptop.stick), gate=NORTH)  # Alice, no card yet
    assert not (laptop.data[NORTH] / GATE_KEYS_FILE).exists()

    gate = RunningGate(laptop)
    try:
        gate.wait_for(lambda r: r.get("event") == "reader_status" and r.get("present"), 20)
        # Issued at the laptop's own reader (the second vpcd slot), not the gate's.
        wait_field_empty(READER_1)
        app = Ev2CardApp.blank(UID, random_uid=True)
        desk = vcard(UID, atr=DESFIRE_ATR, handler=app, port=pcsc.ports[READER_1])
        desk.insert()
        out = issue(laptop, desk, 0, "a-101-wang", READER_1, "--label", "blue fob")
        desk.remove()
        assert f"recorded in {roster} (key = a-101-wang)" in out, out
        text = roster.read_text()
        assert f'cards = [{{uid = "{UID.hex()}", label = "blue fob"}}]' in text, text
        assert "# the admin's own comment" in text and roster.stat().st_mode & 0o777 == 0o600
        laptop.run("admin", "check", str(roster))

        # The gate has no key for it yet: refused.
        before = tap_at_gate(gate, vcard, app)
        assert before["event"] == "card_read_failed" and "no card keys" in before["reason"]

        laptop.run("admin", "bundle", str(roster), str(laptop.stick))
        laptop.run("sync", "import", str(laptop.stick), gate=NORTH)
        assert UID.hex() in load_gate_keys(laptop.data[NORTH]).entry_keys

        after = tap_at_gate(gate, vcard, app)
        assert after["event"] == "access" and after["granted"] is True, after
        assert after["factors"] == ["card"], after
        assert not after.get("weak_card"), after
    finally:
        err = gate.stop()
    assert "Traceback" not in err, err
    assert "card keys reloaded" in err, err


def test_issue_a_factory_ntag424_through_pcscd(laptop, pcsc, vcard) -> None:
    """`doorpi admin card issue` on an NTAG 424 DNA as delivered (five zero keys): the
    roster gets it, and a gate reader with the keys a bundle would carry reads it as one."""
    write_roster(laptop)
    wait_field_empty(READER_0)
    tag = Ev2CardApp.ntag424_factory(UID)
    card = vcard(UID, atr=DESFIRE_ATR, handler=tag)
    card.insert()
    out = issue(laptop, card, 0, "a-101-wang", READER_0, "--label", "sticker")
    card.remove()
    assert f"issued secure card {UID.hex()} for a-101-wang" in out, out
    master = SiteCardKeys((laptop.admin / MASTER_FILE).read_bytes())
    assert bytes(16) not in tag.apps[DOORPI_AID]
    assert tag.apps[DOORPI_AID][:3] == [master.app_master_key(UID), master.uid_read_key(),
                                        master.entry_key(UID)]  # fmt: skip
    assert f'{{uid = "{UID.hex()}", label = "sticker"}}' in (laptop.roster).read_text()

    keys = gate_keys(laptop.admin, [UID.hex(), LEGACY])  # what `admin bundle` seals to a gate
    assert keys is not None and set(keys.entry_keys) == {UID.hex()}
    events = EventRecorder()
    reader = PcscReader(READER_0, CardPolicyProtocol(keys, LegacyWindow()), poll_seconds=0.5)
    start_reader(reader, events)
    try:
        mark = events.mark()
        vcard(UID, atr=DESFIRE_ATR, handler=tag).tap(1.2)
        _, ev = events.wait_for(lambda e: isinstance(e, CardPresented | CardReadFailed), 6, mark)
    finally:
        reader.stop()
    assert ev == CardPresented(UID, READER_0, "ntag424"), ev
