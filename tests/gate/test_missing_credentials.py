"""A resident who can never finish the door's rule is told so at once, not after
the entry timeout; `config check` and the device CLI name such residents when the
credentials are given (real gate on a simulated site, real SQLite, the real CLI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from site_support import recorded_site

CARD = "04a1b2c3d4e5f6"


@pytest.fixture
def site(tmp_path):
    s = recorded_site(tmp_path / "data", [
        {"name": "PinOnly", "keypad_id": "101", "pin": "2468"},
        {"name": "Both", "keypad_id": "102", "pin": "1357", "cards": [CARD]},
        {"name": "CardOnly", "cards": ["04a1b2c3d4e5f7"]},
    ], {"door": {"access": ["card+pin"]}})  # fmt: skip
    yield s
    s.close()


def access(site):
    return [(e["granted"], e["reason"], e.get("detail")) for e in site.events
            if e["event"] == "access"]  # fmt: skip


def test_pin_without_a_card_at_a_card_and_pin_door_is_refused_at_once(site):
    for k in "101#2468#":
        site.key(k)
    site.advance(0.1)
    assert access(site) == [(False, "no_card_enrolled", "holds no card")]
    assert not [e for e in site.events if e["event"] == "factor_needed"]
    site.advance(site.cfg.keypad.entry_timeout_seconds + 1)
    assert len(access(site)) == 1  # no late "incomplete" after the timeout


def test_a_wrong_pin_says_nothing_about_cards(site):
    for k in "101#1111#":
        site.key(k)
    assert access(site) == [(False, "wrong_pin", None)]


def test_a_resident_with_both_is_asked_for_the_card_and_gets_in(site):
    for k in "102#1357#":
        site.key(k)
    assert [e["factor"] for e in site.events if e["event"] == "factor_needed"] == ["card"]
    site.card(CARD)
    assert access(site)[-1][:2] == (True, "granted")


def test_a_card_without_a_pin_is_refused_at_once(site):
    site.card("04a1b2c3d4e5f7")
    assert access(site) == [(False, "no_pin_set", "holds no pin")]


def cli_for(tmp_path, access_rule: str):
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "data"}"\n'
                   f"[pin]\nopslimit = 1\nmemlimit_kib = 8192\n[door]\naccess = {access_rule}\n")  # fmt: skip

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
                           input=stdin, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        return p

    return run


def test_the_cli_names_a_resident_left_with_no_way_in(tmp_path):
    cli = cli_for(tmp_path, '["card+pin"]')
    assert "door 'door' takes card+pin" in cli("resident", "add", "Ann Lee").stdout
    assert "no resident" not in cli("config", "check").stdout  # nobody stored: quiet
    out = cli("pin", "set", "1", "--stdin", stdin="2468\n").stdout
    assert ("WARNING: resident 1 (Ann Lee) at door 'door' holds pin: no way in at this door "
            "(card+pin): give them a card or change the door rule") in out  # fmt: skip
    check = cli("config", "check").stdout
    assert "WARNING: resident 1 (Ann Lee) at door 'door' holds pin: no way in" in check
    out = cli("card", "enroll", "1", "--uid", "04a1b2c3d4e5f6").stdout
    assert "no way in" not in out
    assert "no way in" not in cli("config", "check").stdout
    cli("resident", "disable", "1")
    cli("pin", "clear", "1")
    assert "no way in" not in cli("config", "check").stdout  # a disabled resident: no warning


def test_a_door_that_takes_a_pin_alone_warns_no_one_with_a_pin(tmp_path):
    cli = cli_for(tmp_path, '["card", "pin"]')
    cli("resident", "add", "Ann Lee", "--keypad-id", "101")  # 101#2468# at the keypad
    assert "WARNING" not in cli("pin", "set", "1", "--stdin", stdin="2468\n").stdout
    assert "WARNING" not in cli("config", "check").stdout


def test_a_pin_without_a_keypad_number_or_a_card_is_no_way_in(tmp_path):
    """A PIN names nobody: Ann has no keypad number to type before it and no card to
    tap first, so 2468# is read as keypad number 2468 and her PIN never opens."""
    cli = cli_for(tmp_path, '["card", "pin"]')
    cli("resident", "add", "Ann Lee")
    said = ("WARNING: resident 1 (Ann Lee) at door 'door' holds a PIN but no keypad number "
            "to type it after, and no card: no way in at this door (card | pin): give them a "
            "keypad number or a card or change the door rule")  # fmt: skip
    assert said in cli("pin", "set", "1", "--stdin", stdin="2468\n").stdout
    assert said in cli("config", "check").stdout
