"""One rule for names, keypad numbers, PINs and card UIDs on every entry path
(device CLI, admin roster and bundle, scenarios, the store), and text files
saved by Windows editors. See doorpi/validation.py for the rules and why."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from doorpi import validation as v
from doorpi.sim.scenario import Scenario, ScenarioError, run
from doorpi.store import Storage
from doorpi.store.residents import ResidentError
from doorpi.sync.roster import RosterError, load_roster, parse_roster

TAG = b"t" * 32
CASE_05 = Path(__file__).parents[1] / "examples" / "scenarios" / "fullwidth-digits-keypad-id.toml"

GOOD_NAMES = [
    "王小明",
    "مهر\u200cناز",  # Persian half-space (ZWNJ)
    "Ana \U0001f469\u200d\U0001f469\u200d\U0001f467",  # family emoji, ZWJ sequence
    "Rhys \U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",  # Wales flag
    "Zoë O'Brien-Núñez",
    "x" * v.NAME_MAX,
]
BAD_NAMES = {
    "line feed": "Alice\nBob",
    "carriage return": "Alice\rBob",
    "NUL": "Alice\x00",
    "escape": "Alice\x1b[2J",
    "DEL": "Alice\x7f",
    "C1 control": "Ali\x85ce",
    "RLO": "Alice \u202etxt.exe",
    "LRE": "\u202aAlice",
    "RLI": "Alice\u2067",
    "PDI": "Alice\u2069",
    "RLM": "Alice\u200f",
    "line separator": "Alice\u2028Bob",
    "zero-width space": "Al\u200bice",
    "BOM": "\ufeffAlice",
    "lone tag": "Alice\U000e0067",
    "too long": "x" * (v.NAME_MAX + 1),
    "5000 characters": "y" * 5000,
    "empty": "   ",
}


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_names_with_joiners_and_scripts_are_accepted(name: str) -> None:
    assert v.check_name(name) == name


def test_names_are_stored_nfc_and_trimmed() -> None:
    assert v.check_name("  Jose\u0301 ") == "Jos\u00e9"


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_control_direction_and_invisible_characters_are_refused(name: str) -> None:
    with pytest.raises(v.InputError) as exc:
        v.check_name(name)
    assert "\n" not in str(exc.value)


def test_refusal_names_the_character_and_position() -> None:
    with pytest.raises(v.InputError, match=r"U\+202E RIGHT-TO-LEFT OVERRIDE at character 7"):
        v.check_name("Alice \u202etxt")


@pytest.mark.parametrize(
    "typed,stored",
    [("101", "101"), ("１０１", "101"), (" 12 ", "12"), ("\u00b9\u2070\u00b9", "101"),
     ("\u2460", "1"), (7, "7")],
)  # fmt: skip
def test_keypad_numbers_are_the_digits_a_keypad_sends(typed: object, stored: str) -> None:
    assert v.keypad_id(typed) == stored


@pytest.mark.parametrize("typed", ["١٠١", "१०१", "1 01", "", "123456789", "10a", "-1", True, 1.5])
def test_keypad_numbers_a_keypad_cannot_type_are_refused(typed: object) -> None:
    with pytest.raises(v.InputError, match="digits 0-9"):
        v.keypad_id(typed)


def test_pins_normalise_like_keypad_numbers_and_never_echo() -> None:
    assert v.pin_digits("２４６８") == "2468"
    assert v.pin_digits("\u00b2468") == "2468"
    for bad in ("٢٤٦٨", "24 68", "24a8", "2" * 13):
        with pytest.raises(v.InputError) as exc:
            v.pin_digits(bad)
        assert bad not in str(exc.value)


@pytest.mark.parametrize(
    "typed,uid",
    [("04a1b2c3d4e5f6", "04a1b2c3d4e5f6"), ("04:A1:B2:C3", "04a1b2c3"),
     ("04-a1-b2-c3", "04a1b2c3"), ("04 a1 b2 c3", "04a1b2c3"), ("０４ａ１ｂ２ｃ３", "04a1b2c3")],
)  # fmt: skip
def test_card_uids_in_the_usual_spellings(typed: str, uid: str) -> None:
    assert v.card_uid_hex(typed) == uid


@pytest.mark.parametrize(
    "typed",
    [
        "zz",
        "04a1b",
        "04a1b2c3d4",
        "00000000",
        "",
        "04a1\nb2c3",
        "ffffffff",
        "FF:FF:FF:FF:FF:FF:FF",
        "ｆｆ" * 10,
    ],
)
def test_bad_card_uids_get_the_same_message(typed: str) -> None:
    with pytest.raises(v.InputError, match=r"^must be a card UID of 4, 7 or 10 bytes in hex"):
        v.card_uid(typed)


@pytest.mark.parametrize("typed", ["00000000", "ffffffff", "FF-FF-FF-FF-FF-FF-FF", "00" * 10])
def test_blank_uids_are_no_card(typed: str) -> None:
    """All 00 or all FF: a read of nothing, or an ID several cards share (doorpi.core.uid)."""
    blank = "all-zero" if typed.startswith("0") else "all-FF"
    with pytest.raises(v.InputError, match=rf"; an {blank} UID is not a real card$"):
        v.card_uid(typed)
    assert v.card_uid_hex("ffffff00") == "ffffff00" and v.card_uid_hex("04ffffff") == "04ffffff"


def test_safe_text_escapes_what_names_may_not_hold_and_nothing_else() -> None:
    for name in BAD_NAMES.values():
        shown = v.safe_text(name)
        assert all(not v._refused(shown, i) for i in range(len(shown))), repr(shown)
        assert "\n" not in shown and "\r" not in shown
    assert v.safe_text("Alice\nBob") == "Alice\\nBob"
    assert v.safe_text("Alice\u202e") == "Alice\\u202e"
    for name in GOOD_NAMES:
        assert v.safe_text(name) == name


def test_text_files_bom_utf16_and_other_encodings() -> None:
    assert v.decode_text_file(b"\xef\xbb\xbfa = 1\n") == "a = 1\n"
    with pytest.raises(v.InputError, match=r"UTF-16.*save it as UTF-8"):
        v.decode_text_file("a = 1".encode("utf-16"))
    gbk = 'a = 1\nname = "王小明"\n'.encode("gbk")
    with pytest.raises(
        v.InputError, match=r"not UTF-8 text \(byte 0x.. at line 2, column 9;.*save it as UTF-8"
    ):
        v.decode_text_file(gbk)


# ------------------------------------------------------------ the same on every path


def _store_add(tmp_path: Path, name: str, keypad: str | None = None) -> str:
    store = Storage.open(tmp_path / "store")
    try:
        r = store.residents.add(name, 0.0, keypad_id=keypad)
        store.residents.remove(r.id)
        return r.keypad_id or r.name
    finally:
        store.close()


def _roster_add(name: str, keypad: str | None = None) -> str:
    doc: dict = {"residents": [{"key": "a-1", "name": name}]}  # as tomllib gives it
    if keypad is not None:
        doc["residents"][0]["keypad_id"] = keypad
    e = parse_roster(doc, TAG).residents[0].entry
    return e.keypad_id or e.name


def _scenario_add(tmp_path: Path, name: str, keypad: str | None = None) -> str:
    p = tmp_path / "s.toml"
    spec = {"name": name} | ({"keypad_id": keypad} if keypad else {})
    import json

    body = ", ".join(f"{k} = {json.dumps(val, ensure_ascii=False)}" for k, val in spec.items())
    p.write_text(f"residents = [{{ {body} }}]\nsteps = []\n", encoding="utf-8")
    result = run(Scenario.load(p), tmp_path / "sim", keep=True)
    assert result.site is not None
    try:
        (r,) = result.site.storage.residents.all()
        return r.keypad_id or r.name
    finally:
        result.site.close()


PATH_ERRORS = (ResidentError, RosterError, ScenarioError)


@pytest.mark.parametrize(
    "name",
    ["مهر\u200cناز", "Alice\nBob", "Alice \u202etxt", "z" * 5000, "\U0001f469\u200d\U0001f467"],
)
def test_every_entry_path_agrees_on_names(tmp_path: Path, name: str) -> None:
    outcomes = []
    for add in (lambda: _store_add(tmp_path, name), lambda: _roster_add(name),
                lambda: _scenario_add(tmp_path, name)):  # fmt: skip
        try:
            outcomes.append(add())
        except PATH_ERRORS:
            outcomes.append("refused")
    assert len(set(outcomes)) == 1, outcomes
    assert (outcomes[0] == "refused") == (name not in GOOD_NAMES and "\u200d" not in name
                                          and "\u200c" not in name)  # fmt: skip


@pytest.mark.parametrize("keypad,expected", [("１０２", "102"), ("٢٠٢", "refused"), ("²⁰²", "202")])
def test_every_entry_path_agrees_on_keypad_numbers(
    tmp_path: Path, keypad: str, expected: str
) -> None:
    outcomes = []
    for add in (lambda: _store_add(tmp_path, "A", keypad), lambda: _roster_add("A", keypad),
                lambda: _scenario_add(tmp_path, "A", keypad)):  # fmt: skip
        try:
            outcomes.append(add())
        except PATH_ERRORS:
            outcomes.append("refused")
    assert outcomes == [expected] * 3


def test_roster_pin_and_card_follow_the_rules_too() -> None:
    doc = tomllib.loads(
        '[[residents]]\nkey = "a-1"\nname = "A"\npin = "２４６８"\ncards = ["04:A1:B2:C3"]\n'
    )
    e = parse_roster(doc, TAG).residents[0].entry
    assert (e.pin, e.cards[0].uid) == ("2468", "04a1b2c3")
    doc["residents"][0]["pin"] = "٢٤٦٨"
    with pytest.raises(
        RosterError, match=r"residents\[0\] \(a-1\)\.pin: a PIN has digits 0-9 only"
    ):
        parse_roster(doc, TAG)


def test_roster_files_with_bom_or_in_gbk(tmp_path: Path) -> None:
    text = '[[residents]]\nkey = "a-1"\nname = "王小明"\nkeypad_id = "１０１"\n'
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_roster(bom, TAG).residents[0].entry.keypad_id == "101"
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes(text.encode("gbk"))
    with pytest.raises(RosterError, match=rf"^{gbk}: is not UTF-8 text .* save it as UTF-8"):
        load_roster(gbk, TAG)


# ------------------------------------------------------------ the device CLI, real processes


@pytest.fixture
def cli(tmp_path: Path):
    cfg = tmp_path / "doorpi.toml"
    cfg.write_bytes(
        b"\xef\xbb\xbf"  # saved by Notepad: the BOM is accepted
        + f'[site]\ndata_dir = "{tmp_path / "data"}"\n[pin]\nopslimit = 1\nmemlimit_kib = 8192\n'.encode()
    )

    def run_(*args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
                           input=stdin, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert "Traceback" not in p.stderr + p.stdout
        if ok:
            assert p.returncode == 0, p.stderr
        return p

    run_.cfg = cfg  # type: ignore[attr-defined]
    run_.data = tmp_path / "data"  # type: ignore[attr-defined]
    return run_


def test_case_05_full_width_digits_through_the_cli_open_at_the_keypad(cli) -> None:
    """`resident add ... --keypad-id １０１` and `pin set --stdin` with ２４６８, then
    101#2468# typed on the (simulated) keypad of a gate on that database opens."""
    out = cli("resident", "add", "王小明", "--keypad-id", "１０１").stdout
    assert "keypad number 101" in out
    cli("pin", "set", "1", "--stdin", stdin="２４６８\n")
    from doorpi.clocks import ManualClock
    from site_support import recorded_site

    site = recorded_site(cli.data, clock=ManualClock(1.8e9), settle=False)
    try:
        for k in "101#2468#":
            site.key(k)
            site.advance(0.2)
    finally:
        site.close()
    access = [e for e in site.events if e["event"] == "access"]
    assert [(a["granted"], a["resident_id"]) for a in access] == [(True, 1)]


def test_case_05_as_a_scenario() -> None:
    scenario = Scenario.load(CASE_05)
    assert scenario.expect is not None
    result = run(scenario)
    assert result.mismatch(scenario.expect) is None


@pytest.mark.parametrize("keypad", ["١٠١", "1 01", "123456789"])
def test_cli_refuses_keypad_numbers_no_keypad_can_type(cli, keypad: str) -> None:
    p = cli("resident", "add", "A", "--keypad-id", keypad, ok=False)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert "keypad number: must be 1 to 8 digits 0-9" in p.stderr


def test_cli_refuses_pins_no_keypad_can_type(cli) -> None:
    cli("resident", "add", "A")
    p = cli("pin", "set", "1", "--stdin", stdin="٢٤٦٨\n", ok=False)
    assert p.returncode == 2 and p.stderr.strip() == (
        "doorpi: PIN for A (resident 1): only the digits 0-9 a keypad has; nothing changed"
    )
    assert "٢٤٦٨" not in p.stderr


@pytest.mark.parametrize("name", ["Alice\nBob", "Alice\u202eBob", "Alice\x1b[2J", "w" * 5000])
def test_cli_refuses_names_that_break_listings(cli, name: str) -> None:
    p = cli("resident", "add", name, ok=False)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith("doorpi: name: ")
    assert cli("resident", "list").stdout.count("\n") == 1  # the header only


def test_cli_accepts_joiners(cli) -> None:
    cli("resident", "add", "مهر\u200cناز")
    cli("resident", "add", "\U0001f469\u200d\U0001f469\u200d\U0001f467 Family")
    listing = cli("resident", "list").stdout
    assert "مهر\u200cناز" in listing and "\U0001f469\u200d\U0001f469" in listing


def test_listing_escapes_names_stored_before_the_rules(cli) -> None:
    cli("resident", "add", "Alice")
    cli("resident", "add", "Bo")
    with sqlite3.connect(cli.data / "doorpi.db") as db:  # an old database, or a forged row
        db.execute("UPDATE residents SET name = ? WHERE id = 1",
                   ["Alice\n   9  Mallory  1-1  -  active\u202e"])  # fmt: skip
    listing = cli("resident", "list").stdout.splitlines()
    assert len(listing) == 3 and "\\n" in listing[1] and "\u202e" not in "".join(listing)
    shown = cli("resident", "show", "1").stdout
    assert "\u202e" not in shown and "Mallory" in shown.splitlines()[1]


def test_card_uid_messages_agree_between_cli_and_roster(cli, tmp_path: Path) -> None:
    cli("resident", "add", "A")
    p = cli("card", "enroll", "1", "--uid", "04a1b2", ok=False)
    roster = tmp_path / "r.toml"
    roster.write_text('[[residents]]\nkey = "a-1"\nname = "A"\ncards = ["04a1b2"]\n')
    with pytest.raises(RosterError) as exc:
        load_roster(roster, TAG)
    rule = (
        "must be a card UID of 4, 7 or 10 bytes in hex, like 04a1b2c3d4e5f6; this one has 3 bytes"
    )
    assert p.stderr.strip() == f"doorpi: resident 1 (A): --uid: {rule}"  # names whose card
    assert str(exc.value).endswith(f"cards[0].uid: {rule}")


def test_config_in_gbk_or_utf16_is_named(cli, tmp_path: Path) -> None:
    assert cli("config", "check").returncode == 0  # the BOM config of the fixture
    text = cli.cfg.read_bytes()[3:].decode().replace("[site]\n", '[site]\nname = "东门"\n')
    for enc, fragment in (("gbk", "is not UTF-8 text"), ("utf-16", "is saved as UTF-16")):
        cli.cfg.write_bytes(text.encode(enc))
        p = cli("config", "check", ok=False)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
        assert fragment in p.stderr and "save it as UTF-8" in p.stderr


def test_status_does_not_create_the_data_directory(cli) -> None:
    p = cli("status", ok=False)
    out = p.stdout + p.stderr  # status shows the fault as its database line
    assert p.returncode == 2 and "site.data_dir" in out and "no such folder" in out
    assert not cli.data.exists()


@pytest.mark.parametrize("cmd", [("status",), ("log",), ("resident", "list")])
def test_looking_into_an_empty_data_directory_creates_no_store(cli, cmd) -> None:
    """Found by a newcomer: `status` on an empty folder made doorpi.db and a device key;
    a store lost from a gate would then look like a new one."""
    cli.data.mkdir()
    p = cli(*cmd, ok=False)
    out = p.stdout + p.stderr
    assert p.returncode == 2 and "site.data_dir" in out and "no gate store here yet" in out
    assert list(cli.data.iterdir()) == []


def test_version() -> None:
    p = subprocess.run([sys.executable, "-m", "doorpi", "--version"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0 and p.stdout.startswith("doorpi ") and p.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("argv", [["config", "default"], ["resident", "list"], ["--help"]])
def test_output_into_a_closed_pipe_is_quiet(cli, argv: list[str]) -> None:
    """`doorpi ... | head` when head has already gone: no BrokenPipeError traceback."""
    cli("resident", "add", "Alice")
    r, w = os.pipe()
    os.close(r)
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cli.cfg), *argv],
                       stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
    os.close(w)
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    assert p.stderr == ""


def test_confirm_accepts_y_and_yes_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from doorpi.cli import common

    for answer, expected in (("y", True), ("Y", True), ("yes", True), (" YES ", True),
                             ("ｙｅｓ", True), ("", False), ("n", False), ("no", False),
                             ("yep", False)):  # fmt: skip
        monkeypatch.setattr("builtins.input", lambda _q, a=answer: a)
        assert common.confirm("ok?") is expected, answer

    def eof(_q: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    assert common.confirm("ok?") is False


def test_demo_scenario_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = {
        "unknown key": "[config.door]\nunlock_secs = 5\n",
        "wrong type": '[config.door]\nunlock_seconds = "five"\n',
        "section not a table": "[config]\ndoor = 5\n",
        "resident with a bidi name": 'residents = [{ name = "A\\u202eB" }]\n',
        "resident with a bad card": 'residents = [{ name = "A", cards = ["zz"] }]\n',
        "bom + garbage": "\ufeff[[[",
    }
    for what, text in bad.items():
        p = tmp_path / "s.toml"
        p.write_text(text if "[[[" in text else "steps = []\n" + text, encoding="utf-8")
        out = subprocess.run([sys.executable, "-m", "doorpi", "demo", "--scenario", str(p)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 2, (what, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1, what
        assert out.stderr.startswith(f"doorpi: {p}: "), (what, out.stderr)


def test_run_off_a_pi_says_so(cli) -> None:
    # CI and development machines have no GPIO; on a Pi `doorpi run` would really start.
    assert not Path("/proc/device-tree/model").exists(), "this test needs a machine without GPIO"
    p = cli("run", ok=False)
    assert p.returncode == 2 and "no GPIO on this machine" in p.stderr and "--sim" in p.stderr
