from __future__ import annotations

import json
import os
import stat
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from doorpi.sync.admin import AdminError, AdminSite
from doorpi.sync.bundle import open_bundle
from doorpi.sync.keys import GateIdentity
from doorpi.sync.roster import EXAMPLE, RosterError, load_roster, parse_roster, pin_tag
from sync.helpers import GateRig, MemorySink

TAG = b"t" * 32


def _roster(text: str):
    return parse_roster(tomllib.loads(text), TAG)


def test_example_roster_parses() -> None:
    roster = _roster(EXAMPLE)
    (alice,) = roster.residents
    e = alice.entry
    assert (e.key, e.name, e.keypad_id, e.pin) == ("a-3101-wang", "Alice Wang", "101", "2468")
    assert e.cards[0].uid == "04a1b2c3d4e5f6"
    assert e.pin_tag == pin_tag(TAG, "a-3101-wang", "2468")
    # valid_until = 2027-06-30 includes the whole day at the site (Asia/Shanghai).
    assert e.valid_until == datetime(2027, 7, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert roster.site_name == "Example Court" and alice.gates is None


def test_pin_tag_changes_only_with_the_pin() -> None:
    assert pin_tag(TAG, "k", "2468") == pin_tag(TAG, "k", "2468")
    assert pin_tag(TAG, "k", "2468") != pin_tag(TAG, "k", "2469")
    assert pin_tag(TAG, "k", "2468") != pin_tag(b"u" * 32, "k", "2468")


BAD = [
    ('name = "A"', "residents[0].key: must be a roster key"),
    ('key = "a-1"\nname = "A"\npin = 2468', 'residents[0] (a-1).pin: write the PIN in quotes, like pin = "0246"'),
    ('key = "a-1"\nname = "A"\nuinit = "3"', "residents[0] (a-1).uinit: unknown field (did you mean unit?)"),
    ('key = "a-1"\nname = "A"\ncards = ["zz"]', "residents[0] (a-1).cards[0].uid: must be a card UID of 4, 7 or 10 bytes"),
    ('key = "a-1"\nname = "A"\ncards = ["08a1b2c3"]', "residents[0] (a-1).cards[0].uid: 08a1b2c3 is a random ID (ISO/IEC 14443-3): a phone or bank card"),
    ('key = "a-1"\nname = "A"\nvalid_until = "soon"', "residents[0] (a-1).valid_until: must be a date like 2027-06-30"),
    ('key = "a-1"\nname = "A"\nshare_face_with_site_gates = "yes"', "residents[0] (a-1).share_face_with_site_gates: must be true or false"),
    ('key = "a-1"\nname = "A"\ngates = "main"', "residents[0] (a-1).gates: must be a list of gate names"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD)
def test_roster_mistakes_name_entry_and_field(body: str, message: str) -> None:
    with pytest.raises(RosterError) as info:
        _roster("[[residents]]\n" + body)
    assert str(info.value).startswith(message), str(info.value)


def test_every_residents_mistake_is_named_in_one_refusal() -> None:
    """A newcomer fixed a roster with four mistakes in four runs of `admin check`: all
    residents' problems now come at once, each on its line (the one-mistake message is
    unchanged), up to MAX_PROBLEMS_SHOWN of them."""
    bodies = [b for b, _ in BAD]
    with pytest.raises(RosterError) as info:
        _roster("".join("[[residents]]\n" + b + "\n" for b in bodies))
    lines = str(info.value).splitlines()
    assert lines[0] == f"{len(BAD)} residents have problems:"
    for line, (_, message) in zip(lines[1:], BAD, strict=True):
        assert line.startswith("  residents["), line
        assert message.split("]", 1)[1] in line, (line, message)  # its own index
    many = "".join(f'[[residents]]\nkey = "k-{i}"\nname = "N"\nuinit = "3"\n' for i in range(60))
    with pytest.raises(RosterError) as info:
        _roster(many)
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + 50 + 1 and lines[-1] == "  ... and 10 more", lines[-3:]


def test_roster_duplicates_and_file_errors(tmp_path: Path) -> None:
    two = '[[residents]]\nkey = "a-1"\nname = "A"\nkeypad_id = 5\n' * 1
    two += '[[residents]]\nkey = "b-2"\nname = "B"\nkeypad_id = "5"\n'
    with pytest.raises(RosterError, match=r"residents\[1\].keypad_id: 5 is also given to a-1"):
        _roster(two)
    p = tmp_path / "roster.toml"
    p.write_text("[[residents]\n")
    with pytest.raises(RosterError, match=rf"^{p}: not valid TOML"):
        load_roster(p, TAG)


@pytest.fixture
def admin(tmp_path: Path) -> AdminSite:
    return AdminSite.init(tmp_path / "admin", "Test Court")


def _gate(tmp_path: Path, name: str) -> GateIdentity:
    return GateIdentity.create(tmp_path / name, name)


ROSTER = """
[site]
name = "Test Court"
[[residents]]
key = "a-1"
name = "Alice"
keypad_id = "101"
pin = "2468"
[[residents]]
key = "b-2"
name = "Bob"
gates = ["car-park"]
"""


def test_admin_builds_one_bundle_per_gate_with_tombstones(admin: AdminSite, tmp_path: Path) -> None:
    main, car = _gate(tmp_path, "main-gate"), _gate(tmp_path, "car-park")
    admin.add_gate(main.public)
    admin.add_gate(car.public)
    built = admin.build(_roster(ROSTER))
    by = {b.gate.name: b for b in built}
    assert {b.bundle.sequence for b in built} == {1}
    m = open_bundle(by["main-gate"].data, main, admin.key.public)
    c = open_bundle(by["car-park"].data, car, admin.key.public)
    assert [r.key for r in m.residents] == ["a-1"] and [r.key for r in c.residents] == [
        "a-1",
        "b-2",
    ]
    # Bob leaves: the next bundle deletes him from the car park gate, and keeps doing so.
    text = ROSTER.split('[[residents]]\nkey = "b-2"')[0]
    for seq in (2, 3):
        built = admin.build(_roster(text))
        c = open_bundle({b.gate.name: b for b in built}["car-park"].data, car, admin.key.public)
        assert c.sequence == seq and c.tombstones == ("b-2",)
    state = admin.dir / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text())["sequence"] == 3
    assert AdminSite.load(admin.dir).sequence == 3


def test_sequence_is_saved_before_bundles_are_written(admin: AdminSite, tmp_path: Path) -> None:
    admin.add_gate(_gate(tmp_path, "main-gate").public)
    with pytest.raises(AdminError):
        admin.write_stick(tmp_path / "no-stick", admin.build(_roster(ROSTER.replace(
            'gates = ["car-park"]', ""))))  # fmt: skip
    assert AdminSite.load(admin.dir).sequence == 1  # the number is used up, never reused


def test_admin_refuses_unknown_gate_names_and_duplicates(admin: AdminSite, tmp_path: Path) -> None:
    g = _gate(tmp_path, "main-gate")
    admin.add_gate(g.public)
    with pytest.raises(AdminError, match="already registered"):
        admin.add_gate(g.public)
    with pytest.raises(AdminError, match="resident b-2: unknown gate 'car-park' in gates"):
        admin.build(_roster(ROSTER))


def test_admin_reads_reports_from_the_stick(admin: AdminSite, tmp_path: Path) -> None:
    rig = GateRig(tmp_path / "gate", admin.key, MemorySink())
    admin.add_gate(rig.identity.public)
    stick = tmp_path / "stick"
    stick.mkdir()
    admin.write_stick(stick, admin.build(_roster(ROSTER.replace('gates = ["car-park"]', ""))))
    rig.importer.import_stick(stick)
    ((path, rep),) = admin.read_reports(stick)
    assert not isinstance(rep, str) and rep.result == "applied"
    assert rep.changes["added"] == 2
    assert AdminSite.load(admin.dir).gates[rig.identity.fingerprint].last_sequence == 1
    path.write_bytes(path.read_bytes()[:-3])
    ((_, why),) = admin.read_reports(stick)
    assert why == "report length does not match its header"
    os.remove(path)
