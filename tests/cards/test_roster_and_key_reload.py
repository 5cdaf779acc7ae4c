"""The roster edit of `doorpi admin card issue` (doorpi.sync.roster_edit) and the running
gate's card-key reload (doorpi.cards.keys.GateKeysFile), on real files."""

from __future__ import annotations

import codecs
import logging
import os
from pathlib import Path

import pytest

from doorpi.cards.keys import (
    GATE_KEYS_FILE,
    GateCardKeys,
    GateKeysFile,
    SiteCardKeys,
    write_gate_keys,
)
from doorpi.sync.roster import EXAMPLE, RosterError, load_roster
from doorpi.sync.roster_edit import add_card, check_resident

TAG = bytes(32)
NEW = bytes.fromhex("04c0ffee000001")
SITE = SiteCardKeys(bytes(range(16)))

ROSTER = EXAMPLE + '\n[[residents]]\nkey = "b-2-li"\nname = "Bo Li"\nkeypad_id = "102"\n'


@pytest.fixture
def roster(tmp_path: Path) -> Path:
    p = tmp_path / "roster.toml"
    p.write_text(ROSTER)
    p.chmod(0o600)
    return p


def cards_of(path: Path, key: str) -> list[tuple[str, str]]:
    r = load_roster(path, TAG)
    return [(c.uid, c.label) for x in r.residents if x.entry.key == key for c in x.entry.cards]


def test_add_card_keeps_the_admins_file_and_changes_only_the_entry(roster: Path) -> None:
    assert add_card(roster, "b-2-li", NEW, "blue fob", TAG) == "added"
    assert cards_of(roster, "b-2-li") == [(NEW.hex(), "blue fob")]
    assert cards_of(roster, "a-3101-wang") == [("04a1b2c3d4e5f6", "")]
    text = roster.read_text()
    # Every line of the admin's file is still there, comments included; one line more.
    assert set(ROSTER.splitlines()) <= set(text.splitlines())
    assert len(text.splitlines()) == len(ROSTER.splitlines()) + 1
    assert roster.stat().st_mode & 0o777 == 0o600
    assert add_card(roster, "b-2-li", NEW, "", TAG) == "unchanged"
    assert roster.read_text() == text


def test_a_uid_only_card_upgraded_in_place_gets_its_label(roster: Path) -> None:
    uid = bytes.fromhex("04a1b2c3d4e5f6")
    assert add_card(roster, "a-3101-wang", uid, "secure now", TAG) == "labelled"
    assert cards_of(roster, "a-3101-wang") == [(uid.hex(), "secure now")]


@pytest.mark.parametrize(
    ("key", "uid", "message"),
    [
        ("z-1-nobody", NEW, "no resident with key = 'z-1-nobody'"),
        (
            "b-2-li",
            bytes.fromhex("04a1b2c3d4e5f6"),
            "card 04a1b2c3d4e5f6 is already the card of residents[0] (a-3101-wang)",
        ),
    ],
    ids=["unknown-resident", "another-residents-card"],
)
def test_refusals_write_nothing(roster: Path, key: str, uid: bytes, message: str) -> None:
    before = roster.read_bytes()
    with pytest.raises(RosterError) as exc:
        add_card(roster, key, uid, "", TAG)
    assert str(exc.value) == f"{roster}: {message}"
    assert roster.read_bytes() == before


def test_a_roster_that_does_not_validate_is_never_touched(roster: Path) -> None:
    bad = roster.read_text().replace('name = "Bo Li"', 'name = "Bo Li"\ncolour = "red"')
    roster.write_text(bad)
    with pytest.raises(RosterError, match=r"colour: unknown field"):
        check_resident(roster, "b-2-li", TAG)
    with pytest.raises(RosterError, match=r"not changed, the edit would not validate.*colour"):
        add_card(roster, "b-2-li", NEW, "", TAG)
    assert roster.read_text() == bad


def test_a_notepad_bom_stays(roster: Path) -> None:
    roster.write_bytes(codecs.BOM_UTF8 + roster.read_bytes())
    add_card(roster, "b-2-li", NEW, "", TAG)
    assert roster.read_bytes().startswith(codecs.BOM_UTF8)
    assert cards_of(roster, "b-2-li") == [(NEW.hex(), "")]


# ------------------------------------------------------------------ GateKeysFile


def test_gate_keys_file_reloads_a_replaced_file(tmp_path: Path, caplog) -> None:
    source = GateKeysFile(tmp_path)
    assert source.current() is None  # no secure card synced yet
    write_gate_keys(tmp_path, GateCardKeys.for_cards(SITE, [NEW]))
    keys = source.current()
    assert keys is not None and keys.entry_key(NEW) == SITE.entry_key(NEW)
    assert source.current() is keys and source.reloads == 1  # unchanged: not re-read
    other = bytes.fromhex("04c0ffee000002")
    write_gate_keys(tmp_path, GateCardKeys.for_cards(SITE, [NEW, other]))
    assert source.current().entry_key(other) == SITE.entry_key(other)
    assert source.reloads == 2


@pytest.mark.parametrize("fault", ["malformed", "removed"])
def test_a_broken_or_missing_key_file_later_keeps_the_keys_and_says_so(
    tmp_path: Path, caplog, fault: str
) -> None:
    write_gate_keys(tmp_path, GateCardKeys.for_cards(SITE, [NEW]))
    source = GateKeysFile(tmp_path)
    good = source.current()
    path = tmp_path / GATE_KEYS_FILE
    if fault == "malformed":
        path.write_text('{"uid_read": "zz"}')
    else:
        path.unlink()
    with caplog.at_level(logging.ERROR, logger="doorpi.cards.keys"):
        assert source.current() is good
        assert source.current() is good
    assert source.problem is not None and str(path) in source.problem
    assert "keeping the card keys loaded before" in source.problem
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "one line per fault, not one per tap"
    write_gate_keys(tmp_path, GateCardKeys.for_cards(SITE, [NEW]))
    assert source.current() is not good and source.problem is None


def test_a_broken_key_file_at_start_is_a_fault(tmp_path: Path) -> None:
    (tmp_path / GATE_KEYS_FILE).write_text("not json")
    with pytest.raises(ValueError, match=r"card-keys.json: cannot read card keys"):
        GateKeysFile(tmp_path)


def test_an_unchanged_file_costs_one_stat(tmp_path: Path, monkeypatch) -> None:
    write_gate_keys(tmp_path, GateCardKeys.for_cards(SITE, [NEW]))
    source = GateKeysFile(tmp_path)
    first = source.current()
    reads = []
    real = Path.read_text
    monkeypatch.setattr(
        Path, "read_text", lambda self, *a, **k: reads.append(self) or real(self, *a, **k)
    )
    for _ in range(100):
        assert source.current() is first
    assert reads == [] and os.path.exists(tmp_path / GATE_KEYS_FILE)


def test_doorpi_status_names_a_broken_key_file(tmp_path: Path) -> None:
    """The fault a running gate logs is also in `doorpi status` (the real CLI)."""
    import subprocess
    import sys

    cfg = tmp_path / "doorpi.toml"
    data = tmp_path / "data"
    cfg.write_text(f'[site]\ndata_dir = "{data}"\n[keypad]\nkind = "none"\n')
    run = [sys.executable, "-m", "doorpi", "--config", str(cfg)]
    subprocess.run([*run, "resident", "add", "Zed"], check=True, capture_output=True)
    write_gate_keys(data, GateCardKeys.for_cards(SITE, [NEW]))
    out = subprocess.run([*run, "status"], capture_output=True, text=True).stdout
    assert "secure card keys: 1 card\n" in out and "card-keys.json" not in out, out
    (data / GATE_KEYS_FILE).write_text('{"uid_read": "zz"}')
    done = subprocess.run([*run, "status"], capture_output=True, text=True)
    assert "secure card keys: fault" in done.stdout, done.stdout
    assert f"WARNING: {data / GATE_KEYS_FILE}: malformed card keys" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
