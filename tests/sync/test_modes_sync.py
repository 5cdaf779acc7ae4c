"""The bundle's signed `modes` field (lockdown, holidays, responders): roster to
bundle body, parsing with named errors, and the importer storing it for the gate."""

from __future__ import annotations

from datetime import date

import pytest

from doorpi.doormodes import DoorModes, read_holidays, read_lockdown, write_lockdown
from doorpi.store.roles import RoleStore
from doorpi.sync.bundle import BundleError, parse_body
from doorpi.sync.keys import SiteKey
from doorpi.sync.modes import ModesEntry
from doorpi.sync.roster import RosterError, parse_roster
from sync.helpers import GateRig, resident

MODES = ModesEntry(lockdown=True, holidays=("2026-12-25",), responders=("a-1",))


def test_modes_round_trip_and_are_absent_when_not_given(rig: GateRig) -> None:
    b = rig.bundle(1, modes=MODES)
    assert parse_body(b.to_body()).modes == MODES
    plain = rig.bundle(1)
    assert b'"modes"' not in plain.to_body()  # bodies without modes are as before
    assert parse_body(plain.to_body()).modes is None


@pytest.mark.parametrize(
    "bad,where",
    [
        ({"lockdown": "yes"}, "modes.lockdown"),
        ({"holidays": ["25.12.2026"]}, "modes.holidays[0]"),
        ({"responders": [3]}, "modes.responders"),
        ({"curfew": True}, "modes"),
    ],
)
def test_bad_modes_field_is_refused_naming_it(rig: GateRig, bad, where) -> None:
    import json

    doc = json.loads(rig.bundle(1).to_body())
    doc["modes"] = bad
    with pytest.raises(BundleError) as exc:
        parse_body(json.dumps(doc).encode())
    assert where in str(exc.value)


def test_import_stores_lockdown_holidays_and_responders(rig: GateRig, site: SiteKey) -> None:
    a, b = resident("a-1", 1, site), resident("b-2", 2, site)
    rep = rig.apply(rig.bundle(1, [a, b], modes=MODES))
    assert rep.result == "applied", rep.reason
    db = rig.storage.db
    doc = read_lockdown(db)
    assert doc["active"] and doc["source"] == "bundle"
    assert read_holidays(db) == frozenset({date(2026, 12, 25)})
    alice = rig.storage.residents.by_keypad_id("101").id
    assert RoleStore(db).responders() == [alice]
    # The gate reads them: lockdown at start, the roster's holiday next to the config's.
    from doorpi.config import parse_config

    modes = DoorModes(parse_config({"site": {"data_dir": str(rig.data_dir)}}), rig.storage)
    assert modes.core.mode.value == "lockdown" and date(2026, 12, 25) in modes.holidays
    # Next bundle: responders replaced, lockdown off, holidays gone.
    rep = rig.apply(rig.bundle(2, [a, b], modes=ModesEntry(False, (), ("b-2",))))
    assert rep.result == "applied", rep.reason
    assert not read_lockdown(db)["active"] and read_holidays(db) == frozenset()
    assert RoleStore(db).responders() == [rig.storage.residents.by_keypad_id("102").id]


def test_a_bundle_without_lockdown_leaves_the_devices_lockdown(rig: GateRig, site: SiteKey) -> None:
    write_lockdown(rig.storage.db, True, "admin", "root", 1.0)
    rig.apply(rig.bundle(1, [resident("a-1", 1, site)], modes=ModesEntry(None, (), ())))
    doc = read_lockdown(rig.storage.db)
    assert doc["active"] and doc["source"] == "admin"


def test_roster_modes_table(site: SiteKey) -> None:
    doc = {"residents": [{"key": "a-1", "name": "Alice"}],
           "modes": {"lockdown": False, "holidays": [date(2026, 12, 25)],
                     "responders": ["a-1"]}}  # fmt: skip
    roster = parse_roster(doc, site.pin_tag_key)
    assert roster.modes == ModesEntry(False, ("2026-12-25",), ("a-1",))
    doc["modes"]["responders"] = ["z-9"]
    with pytest.raises(RosterError, match=r"modes\.responders: no resident with key 'z-9'"):
        parse_roster(doc, site.pin_tag_key)
    with pytest.raises(RosterError, match=r"modes.holidays\[0\]"):
        parse_roster({"modes": {"holidays": ["soon"]}}, site.pin_tag_key)


def test_admin_settings_with_toml_dates_travel_as_iso_text(rig: GateRig) -> None:
    """`doorpi admin gate settings --set modes.holidays=[2026-12-25]` gives TOML dates:
    the signed JSON body carries them as ISO text, which the gate's validator accepts."""
    from doorpi.settings import parse_assignment
    from doorpi.sync.admin import check_gate_settings

    section, key, value = parse_assignment("modes.holidays=[2026-12-25]")
    assert value == [date(2026, 12, 25)]
    settings = {section: {key: value}}
    check_gate_settings(settings, "admin settings")
    got = parse_body(rig.bundle(1, settings=settings).to_body()).settings
    assert got == {"modes": {"holidays": ["2026-12-25"]}}
    check_gate_settings(got, "bundle settings")  # the gate reads the text back as a date
