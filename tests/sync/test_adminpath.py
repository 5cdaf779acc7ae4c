"""The admin's path through real `doorpi` processes: two gates, one stick, one laptop.

What `admin check` accepts, the gates accept: each gate's limits (PIN length,
weak-PIN rule, schedule names) travel signed with its pairing and its reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from admin_site import AdminSite
from human_output import assert_human

GOOD = """
[site]
name = "Test Court"

[[residents]]
key = "a-101-wang"
name = "王小明"
keypad_id = "101"
pin = "2468"
cards = ["04a1b2c3d4e5f6"]

[[residents]]
key = "b-102-li"
name = "Bo Li"
keypad_id = "102"
schedule = "workdays"
gates = ["north"]

[[residents]]
key = "c-103-out"
name = "Moving Out"
keypad_id = "103"
"""


@pytest.fixture
def site(tmp_path: Path) -> AdminSite:
    s = AdminSite(tmp_path)
    s.init_admin()
    # north: 4-8 digit PINs and a workdays schedule; south: 4-6 digits, no schedules
    s.gate("north", '[schedules]\nworkdays = ["mon-fri 07:00-19:00"]\n')
    s.gate("south", "[keypad]\npin_max_length = 6\n")
    for name in ("north", "south"):
        # The first visit: the gate pairs and leaves its key and its limits.
        imported, added = s.pair(name)
        assert "paired, waiting for a bundle" in imported and "refused (" not in imported
        assert f"gate '{name}' registered" in added and "its limits: PINs of 4 to" in added
    out = s.run("admin", "report", "read", str(s.stick))  # pairing visits: nothing to fix
    assert "paired, waiting" in out and "refused (" not in out
    return s


def test_check_applies_each_gates_limits(site: AdminSite) -> None:
    bad = GOOD.replace('pin = "2468"', 'pin = "1234"')  # a straight run: weak
    bad += '\n[[residents]]\nkey = "d-104"\nname = "D"\nkeypad_id = "104"\npin = "1357924680"\n'
    bad += '\n[[residents]]\nkey = "e-105"\nname = "E"\nschedule = "weekdays"\ngates = ["nrth"]\n'
    site.write_roster(bad)
    out = site.run("admin", "check", str(site.roster), code=1)
    assert_human(out)
    assert "residents[0] (a-101-wang).pin: a PIN may not be one repeated digit" in out
    assert "gate 'south': residents[3] (d-104).pin: a PIN has 4 to 6 digits" in out
    assert "gate 'north': residents[3] (d-104).pin: a PIN has 4 to 8 digits" in out
    assert (
        "residents[4] (e-105).gates: 'nrth' is not a registered gate (did you mean 'north'?)" in out
    )
    assert ": ok" not in out
    out = site.run("admin", "bundle", str(site.roster), str(site.stick), code=2)
    assert "nothing written" in out and not list((site.stick / "doorpi").glob("*.bundle"))
    # b-102 asks for "workdays" at north only: south, which has no such schedule, never sees it
    site.write_roster(GOOD)
    out = site.run("admin", "check", str(site.roster))
    assert out.strip().endswith("3 residents, 1 cards, 1 PINs: ok")


def test_a_bad_entry_is_refused_alone_and_the_admin_hears_of_it(site: AdminSite) -> None:
    site.write_roster(GOOD)
    site.run("admin", "bundle", str(site.roster), str(site.stick))
    assert "applied bundle 1: 3 added" in site.run("sync", "import", str(site.stick), gate="north")
    # The gate's config changes after the laptop last heard from it: PINs now 6 to 8 digits.
    site.cfg["north"].write_text(site.cfg["north"].read_text() + "[keypad]\npin_min_length = 6\n")
    moved = GOOD[: GOOD.index('[[residents]]\nkey = "c-103-out"')]  # c-103 moves out
    moved = moved.replace('name = "Bo Li"', 'name = "Bo Li"\npin = "8642"')  # 4 digits
    site.write_roster(moved)
    site.run("admin", "check", str(site.roster))  # the laptop cannot know yet
    site.run("admin", "bundle", str(site.roster), str(site.stick))
    out = site.run("sync", "import", str(site.stick), gate="north")
    assert "applied bundle 2: 1 removed; 2 entries refused (see report)" in out, out
    assert "a-101-wang" not in out  # the journal line names no resident
    out = site.run("admin", "report", "read", str(site.stick), code=1)
    assert_human(out)
    assert "NEEDS ATTENTION" in out and "refused b-102-li.pin: a PIN has 6 to 8 digits" in out
    assert "refused a-101-wang.pin" in out  # 2468: four digits, also too short now
    # The report brought the gate's new limits: the laptop now says what the gate will say.
    out = site.run("admin", "check", str(site.roster), code=1)
    assert "gate 'north': residents[1] (b-102-li).pin: a PIN has 6 to 8 digits" in out


def test_another_gates_bundle_by_path_keeps_that_gates_report(site: AdminSite) -> None:
    site.write_roster(GOOD)
    site.run("admin", "bundle", str(site.roster), str(site.stick))
    site.run("sync", "import", str(site.stick), gate="north")
    north_report = site.report("north").read_bytes()
    south_bundle = site.stick / "doorpi" / f"{site.fp['south']}.bundle"
    out = site.run("sync", "import", str(south_bundle), gate="north", code=1)
    assert "refused" in out
    assert site.report("north").read_bytes() != north_report  # north's own report: its refusal
    assert not site.report("south").exists()  # south's slot untouched
    site.run("sync", "import", str(site.stick), gate="south")
    out = site.run("admin", "report", "read", str(site.stick), "--audit", code=1)
    assert_human(out)
    assert "north" in out and "south (" in out and "applied bundle 1" in out


def test_gate_add_with_a_taken_name_suggests_name(site: AdminSite) -> None:
    site.run("admin", "gate", "remove", "south")
    pub = site.stick / "doorpi" / "gates" / f"{site.fp['south']}.pub"
    out = site.run("admin", "gate", "add", str(pub), "--name", "north", "--yes", code=2)
    assert "a gate named 'north' is already registered" in out
    assert "give this one its own name with --name, e.g. --name north-2" in out


def test_sync_doc_states_the_stick_file_systems_the_gate_mounts() -> None:
    root = Path(__file__).parents[2]
    rule = (root / "systemd" / "99-doorpi-usb.rules").read_text()
    assert 'ENV{ID_FS_TYPE}=="vfat|exfat"' in rule
    assert "FAT32 or exFAT" in (root / "docs" / "sync.md").read_text()


FACE_NORTH = """
[site]
data_dir = "{data}"
controller = "Sunny Garden PM Co."
contact = "+86 10 5555 0100"
[door]
name = "north"
access = ["card+face", "card+pin"]
[face]
enabled = true
[schedules]
workdays = ["mon-fri 07:00-19:00"]
[pin]
opslimit = 1
memlimit_kib = 8192
"""


def _consent_at_gate(site: AdminSite, gate: str, key: str) -> None:
    """The resident gives face consent at the gate with the admin present (what
    `doorpi consent record` does there), in the gate's own store."""
    from doorpi.config import load_config
    from doorpi.privacy.enrolment import build_face_privacy
    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
    from doorpi.store import Storage

    cfg = load_config(site.cfg[gate])
    store = Storage.open(cfg.site.data_dir)
    try:
        AssessmentRegistry(store.db, store.audit).record(
            ImpactAssessment(
                purpose="Open the gate for residents who choose face entry.",
                necessity="Convenience; card and PIN stay at every door.",
                impact="Leak or misuse of face templates; false accepts.",
                measures="Separate consent, encrypted templates, retention.",
                author="DPO",
                created=1.0,
            )
        )
        rid = store.db.execute("SELECT resident_id FROM sync_residents WHERE key = ?",
                               [key]).fetchone()[0]  # fmt: skip
        privacy = build_face_privacy(cfg, store)
        privacy.consent(privacy.start_enrolment(rid, "admin_present", by="admin:test"),
                        confirmed_by="admin:test")  # fmt: skip
    finally:
        store.close()


def test_check_and_report_name_residents_with_no_face_free_way_in(site: AdminSite) -> None:
    """Issue #14 on the laptop: north asks for card+face or card+PIN; Wang holds a
    face consent there. A roster taking his PIN away passes the gates' limits, but
    face failing would leave him outside: `admin check` says so in words, before the
    walk; the gate's report says so after it (needs attention, exit 1)."""
    site.cfg["north"].write_text(FACE_NORTH.format(data=site.root / "north"))
    site.write_roster(GOOD)
    site.run("admin", "bundle", str(site.roster), str(site.stick))
    site.run("sync", "import", str(site.stick), gate="north")
    out = site.run("admin", "report", "read", str(site.stick))  # north's door rules now known
    no_pin = GOOD.replace('pin = "2468"\n', "")
    # Zhao: a card and no PIN, but never asked for face (no consent, no template).
    no_pin += '\n[[residents]]\nkey = "d-104-zhao"\nname = "Zhao"\ncards = ["04a1b2c3d4e5f7"]\n'
    site.write_roster(no_pin)  # nobody holds face at north yet: nobody can be asked for it
    assert "warning" not in site.run("admin", "check", str(site.roster))
    site.write_roster(GOOD)
    _consent_at_gate(site, "north", "a-101-wang")
    site.run("admin", "bundle", str(site.roster), str(site.stick))
    site.run("sync", "import", str(site.stick), gate="north")
    out = site.run("admin", "report", "read", str(site.stick))  # Wang holds face at north
    assert "face-free" not in out
    assert "warning" not in site.run("admin", "check", str(site.roster))

    site.write_roster(no_pin)  # the PIN taken away
    out = site.run("admin", "check", str(site.roster))  # the gates take it: a warning
    assert_human(out)
    assert (
        "warning: 王小明 (a-101-wang) can be asked for face at gate 'north' "
        "(card+face | card+pin) but has no PIN: give them a PIN or change the door rule"
    ) in out
    assert "'south'" not in out  # no face at south: nobody is asked for it there
    assert "d-104-zhao" not in out  # never asked for face: a card alone is not a face gap
    assert ": ok (1 warnings above)" in out
    out = site.run("admin", "bundle", str(site.roster), str(site.stick))
    assert "warning: 王小明 (a-101-wang)" in out
    site.run("sync", "import", str(site.stick), gate="north")
    out = site.run("admin", "report", "read", str(site.stick), code=1)
    assert_human(out)
    assert (
        "north" in out and "NEEDS ATTENTION" in out and "1 resident with no face-free way in" in out
    )
    assert "a-101-wang can be asked for face (card+face | card+pin) but has no face-free way" in out


def test_the_laptop_names_a_pin_without_a_keypad_number_as_no_face_free_way() -> None:
    """A PIN names nobody: without a keypad number (and no card to tap first) it can
    only follow a face match, so at ["face", "pin"] face is the only way in."""
    from doorpi.core.parity import Devices
    from doorpi.core.policy import parse_rule
    from doorpi.sync.admin import face_free_gap
    from doorpi.sync.bundle import ResidentEntry

    rules, devices = [parse_rule(["face", "pin"])], Devices(True, True, True)
    wang = ResidentEntry("a-101-wang", "Wang", pin="135790")
    assert face_free_gap(wang, "north", rules, devices) == (
        "Wang (a-101-wang) can be asked for face at gate 'north' (face | pin) but has a PIN "
        "and no keypad number to type it after, nor a card: give them a keypad number or a "
        "card or change the door rule"
    )
    numbered = ResidentEntry("a-101-wang", "Wang", keypad_id="101", pin="135790")
    assert face_free_gap(numbered, "north", rules, devices) == ""
