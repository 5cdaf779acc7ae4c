"""`doorpi admin card issue` on the laptop's reader (real pcscd + vpcd, the card emulator),
then the card's keys to a gate inside its sealed bundle, then the gate's reader lets it in.

Real `doorpi` processes for the laptop and the gate; the master key must never
leave the admin directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.cards.ev2 import DOORPI_AID
from doorpi.cards.keys import GATE_KEYS_FILE, SiteCardKeys, load_gate_keys
from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow
from doorpi.cards.register import MASTER_FILE, REGISTER_FILE
from doorpi.core.events import CardPresented, CardReadFailed
from doorpi.hardware.reader import PcscReader
from doorpi.sim.ev2_card import Ev2CardApp

try:
    from pcsc_fixtures import READER_0, EventRecorder, start_reader, wait_field_empty
except ImportError:  # pragma: no cover
    from tests.pcsc_fixtures import READER_0, EventRecorder, start_reader, wait_field_empty

from cards.test_secure_cards_pcsc import DESFIRE_ATR

UID = bytes.fromhex("04c0ffee000001")
LEGACY = "04a1b2c3d4e5f6"


class Laptop:
    def __init__(self, root: Path) -> None:
        self.root, self.admin, self.stick = root, root / "admin", root / "stick"
        self.stick.mkdir()
        self.cfg = root / "north.toml"
        self.data = root / "north"
        self.cfg.write_text(
            f'[site]\ndata_dir = "{self.data}"\n[door]\nname = "north"\n'
            "[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
        )

    def run(self, *args: str, gate: bool = False, code: int | None = 0) -> str:
        pre = ["--config", str(self.cfg)] if gate else []
        env = {**os.environ, "DOORPI_ADMIN_DIR": str(self.admin)}
        p = subprocess.run([sys.executable, "-m", "doorpi", *pre, *args], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        out = p.stdout + p.stderr
        if code is not None:
            assert p.returncode == code, f"exit {p.returncode}: {out}"
        assert "Traceback" not in out, out
        return out


@pytest.fixture
def laptop(tmp_path: Path) -> Laptop:
    lp = Laptop(tmp_path)
    lp.run("admin", "init", "--site-name", "Test Court")
    lp.run("admin", "stick", str(lp.stick))
    out = lp.run("keys", "init", gate=True)
    fp = out.split("gate fingerprint: ")[1].split()[0].replace("-", "")
    lp.run("keys", "trust-site", str(lp.stick), "--yes", gate=True)
    lp.run("sync", "import", str(lp.stick), gate=True, code=2)  # pairing visit
    lp.run("admin", "gate", "add", str(lp.stick / "doorpi" / "gates" / f"{fp}.pub"))
    return lp


def issue(laptop: Laptop, card, code: int = 0) -> str:
    return laptop.run("admin", "card", "issue", "--resident", "a-101-wang",
                      "--reader", READER_0, "--timeout", "3", code=code)  # fmt: skip


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

    roster = laptop.root / "roster.toml"
    roster.write_text(
        '[site]\nname = "Test Court"\n\n[[residents]]\nkey = "a-101-wang"\nname = "Alice"\n'
        f'keypad_id = "101"\ncards = ["{UID.hex()}"]\n\n[[residents]]\nkey = "b-102-li"\n'
        f'name = "Bo"\nkeypad_id = "102"\ncards = ["{LEGACY}"]\n'
    )
    roster.chmod(0o600)
    laptop.run("admin", "bundle", str(roster), str(laptop.stick))
    out = laptop.run("sync", "import", str(laptop.stick), gate=True)
    keys_file = laptop.data / GATE_KEYS_FILE
    assert keys_file.stat().st_mode & 0o777 == 0o600
    keys = load_gate_keys(laptop.data)
    assert keys is not None
    assert keys.uid_read == site.uid_read_key()
    assert keys.entry_keys == {UID.hex(): site.entry_key(UID)}  # the UID-only card has none
    # The master key reached neither the stick nor the gate, in any form.
    for folder in (laptop.stick, laptop.data):
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
