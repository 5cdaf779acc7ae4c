"""Time at a whole gate: site zone, DST, restarts, implausible clocks, the repair path.

Real SQLite, the real Gate on MockFactory pins, and the `doorpi` CLI as a
subprocess on the same data folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite
from doorpi.sitetime import parse_local
from doorpi.store.db import get_state, set_state
from doorpi.sync.roster import parse_roster
from site_support import recorded_site

CARD, CLEANER, NIGHT = "04a1b2c3d4e5f6", "04c1c1c1c1c1c1", "04d1d1d1d1d1d1"


def local_epoch(text: str, tz: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def make_site(data: Path, tz: str, start: str) -> SimulatedSite:
    overrides = {"site": {"timezone": tz}, "schedules": {"night": ["daily 22:00-06:00"]}}
    clock = ManualClock(local_epoch(start, tz), tz)
    return recorded_site(data, config=overrides, clock=clock, settle=False)


def add_people(s: SimulatedSite, until: str | None = None) -> None:
    s.add_resident({"name": "Tenant", "cards": [CARD], "valid_until": until})
    s.add_resident({"name": "Cleaner", "cards": [CLEANER], "schedule": "workdays"})
    s.add_resident({"name": "Guard", "cards": [NIGHT], "schedule": "night"})


def tap(s: SimulatedSite, uid: str) -> tuple[bool, str]:
    s.card(uid)
    s.advance(6, step=1)  # let the strike relock
    last = [e for e in s.events if e["event"] == "access"][-1]
    return last["granted"], last["reason"]


def events(s: SimulatedSite, kind: str) -> list[dict]:
    return [e for e in s.events if e["event"] == kind]


def write_config(tmp_path: Path, data: Path, tz: str) -> Path:
    p = tmp_path / "doorpi.toml"
    p.write_text(f'[site]\ndata_dir = "{data}"\ntimezone = "{tz}"\n', encoding="utf-8")
    return p


def doorpi(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOORPI_CONFIG": str(cfg)}
    return subprocess.run([sys.executable, "-m", "doorpi", *args], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip


# ---------------------------------------------------------------- site zone


def test_utc_plus_8_workdays_schedule_runs_on_shanghai_time(tmp_path):
    """The issue's example: refused at 08:30 and let in at 23:00 when run in UTC."""
    s = make_site(tmp_path / "d", "Asia/Shanghai", "2026-03-02T08:30")  # Monday morning
    add_people(s)
    assert tap(s, CLEANER) == (True, "granted")
    s.close()
    s = make_site(tmp_path / "e", "Asia/Shanghai", "2026-03-02T23:00")
    add_people(s)
    assert tap(s, CLEANER) == (False, "outside_schedule")
    assert tap(s, NIGHT) == (True, "granted")  # the overnight window
    s.close()


def test_overnight_window_opens_at_22_and_closes_at_6_local(tmp_path):
    s = make_site(tmp_path / "d", "Asia/Shanghai", "2026-03-02T21:59:30")
    add_people(s)
    assert tap(s, NIGHT) == (False, "outside_schedule")
    s.advance(30, step=1)  # 22:00:06
    assert tap(s, NIGHT) == (True, "granted")
    s.clock.advance(8 * 3600 - 30)  # virtual night passes (both clocks): 05:59:42
    s.advance(1)
    assert tap(s, NIGHT) == (True, "granted")
    s.advance(60, step=1)
    assert tap(s, NIGHT) == (False, "outside_schedule")
    s.close()


@pytest.mark.parametrize(
    "tz,day,hours",
    [("Europe/Berlin", "2026-03-29", 23), ("Europe/Berlin", "2026-10-25", 25),
     ("America/New_York", "2026-03-08", 23), ("America/New_York", "2026-11-01", 25)],
)  # fmt: skip
def test_valid_until_runs_through_the_local_day_across_dst(tmp_path, tz, day, hours):
    s = make_site(tmp_path / "d", tz, f"{day}T23:59:30")
    add_people(s, until=day)
    r = s.storage.residents.by_card_hash
    assert tap(s, CARD) == (True, "granted")  # 23:59:36 local
    s.advance(30, step=1)
    assert tap(s, CARD) == (False, "expired")  # 00:00:12 the next day
    start = parse_local(day, ZoneInfo(tz))
    assert parse_local(day, ZoneInfo(tz), until=True) - start == hours * 3600
    assert r is not None
    s.close()


def test_dst_change_while_running_is_not_a_clock_jump(tmp_path):
    """At the spring-forward the local clock skips an hour; epoch time does not."""
    s = make_site(tmp_path / "d", "Europe/Berlin", "2026-03-29T01:59:00")
    add_people(s)
    s.advance(120, step=1)  # through 02:00 CET -> 03:00 CEST
    assert events(s, "clock_jumped") == []
    assert s.gate.moment.local.hour == 3 and s.gate.moment.trusted
    s.close()


def test_one_date_means_the_same_in_cli_roster_and_scenarios(tmp_path):
    tz = "Asia/Shanghai"
    data = tmp_path / "data"
    cfg = write_config(tmp_path, data, tz)
    done = doorpi(cfg, "resident", "add", "Wang", "--valid-until", "2027-06-30")
    assert done.returncode == 0, done.stderr
    listed = doorpi(cfg, "resident", "list")
    assert "2027-06-30 24:00" in listed.stdout
    shown = json.loads(doorpi(cfg, "resident", "show", "1", "--json").stdout)
    roster = parse_roster(tomllib.loads(
        f'[site]\ntimezone = "{tz}"\n[[residents]]\nkey = "w"\nname = "Wang"\n'
        'valid_until = 2027-06-30\n'), b"t" * 32)  # fmt: skip
    s = make_site(tmp_path / "sim", tz, "2026-03-02T08:00")
    s.add_resident({"name": "Wang", "valid_until": "2027-06-30"})
    sim = s.storage.residents.all()[0].valid_until
    s.close()
    expected = datetime(2027, 7, 1, tzinfo=ZoneInfo(tz)).timestamp()
    assert shown["valid_until"] == roster.residents[0].entry.valid_until == sim == expected


# ---------------------------------------------------------------- restarts and jumps


def test_floor_and_zone_hold_across_a_restart(tmp_path):
    data = tmp_path / "d"
    s = make_site(data, "Asia/Shanghai", "2026-03-02T08:30")
    add_people(s)
    s.advance(2)
    s.close()  # persists the floor
    floor = float(get_state_from(data, "clock_floor"))
    assert floor == pytest.approx(local_epoch("2026-03-02T08:30", "Asia/Shanghai") + 2, abs=1)
    # Power cut for two days; the RTC keeps time: trusted at start.
    s = make_site(data, "Asia/Shanghai", "2026-03-04T08:30")
    assert s.gate.moment.trusted and tap(s, CLEANER) == (True, "granted")
    s.close()


def get_state_from(data: Path, key: str) -> str:
    from doorpi.store import Storage

    st = Storage.open(data)
    try:
        return get_state(st.db, key) or ""
    finally:
        st.close()


def test_boot_with_rtc_garbage_is_not_trusted_and_status_says_what_to_do(tmp_path):
    data = tmp_path / "d"
    s = make_site(data, "Asia/Shanghai", "2026-03-02T08:30")
    add_people(s, until="2027-06-30")
    s.close()
    s = make_site(data, "Asia/Shanghai", "2040-01-02T08:00")  # RTC read back as 2040
    assert [e["clock"] for e in events(s, "clock_jumped")] == ["ahead"]
    assert not s.gate.moment.trusted
    assert tap(s, CARD) == (True, "granted")  # not "expired"
    assert tap(s, CLEANER) == (False, "clock_untrusted")
    s.gate.time.persist(force=True)
    assert float(get_state(s.storage.db, "clock_floor")) < local_epoch("2026-03-03", "UTC")
    cfg = write_config(tmp_path, data, "Asia/Shanghai")
    status = json.loads(doorpi(cfg, "status", "--json").stdout)
    assert status["clock"] == "ahead" and status["clock_trusted"] is False
    advice = " ".join(status["warnings"])
    assert "doorpi clock trust" in advice and "2040-01-02 08:00" in advice
    s.close()


def test_case_03_leaves_no_fault_behind(tmp_path):
    """After the jump is corrected, status reports no clock fault (nothing to set)."""
    data = tmp_path / "d"
    s = make_site(data, "Etc/UTC", "2026-03-02T08:00")
    add_people(s, until="2027-06-30")
    s.advance(1)
    s.clock.set_wall(local_epoch("2040-01-02T08:00", "UTC"))
    s.advance(19)
    s.clock.set_wall(local_epoch("2026-03-02T08:01", "UTC"))
    s.advance(1)
    assert tap(s, CARD) == (True, "granted") and tap(s, CLEANER) == (True, "granted")
    s.gate.time.persist(force=True)
    status = json.loads(doorpi(write_config(tmp_path, data, "Etc/UTC"), "status", "--json").stdout)
    assert status["clock"] == "ok" and not [w for w in status["warnings"] if "clock" in w]
    assert status["clock_floor"] < local_epoch("2026-03-03T00:00", "UTC")
    s.close()


def test_admin_repair_trusts_the_clock_and_is_audited(tmp_path, monkeypatch):
    """A gate off for three months with a correct RTC: the admin confirms the time."""
    data = tmp_path / "d"
    s = make_site(data, "Europe/Berlin", "2026-03-02T08:30")
    add_people(s)
    s.close()
    s = make_site(data, "Europe/Berlin", "2026-06-02T08:30")
    assert tap(s, CLEANER) == (False, "clock_untrusted")
    cfg = write_config(tmp_path, data, "Europe/Berlin")
    refused = doorpi(cfg, "clock", "trust")  # no terminal, no --yes: nothing changes
    assert refused.returncode == 2 and "not confirmed" in refused.stderr
    # `doorpi clock set` would set this machine's real clock (never in a test):
    # run its command in-process with the system call replaced by a recorder.
    wall = s.clock.wall()
    calls: list[float] = []
    from doorpi.cli import clock as clock_cli

    def fake_settime(_clk: int, t: float) -> None:
        calls.append(t)

    monkeypatch.setattr(clock_cli.time, "clock_settime", fake_settime)
    monkeypatch.setattr(clock_cli.time, "time", lambda: wall)  # the simulated wall clock
    monkeypatch.setattr(clock_cli.shutil, "which", lambda _name: None)  # and no hwclock
    from doorpi.cli import main

    typed = f"{datetime.fromtimestamp(wall, ZoneInfo('Europe/Berlin')):%Y-%m-%d %H:%M:%S}"
    assert main(["--config", str(cfg), "clock", "set", typed, "--yes"]) == 0
    assert calls == [wall]  # the local time typed, in the site's zone
    s.advance(1.5)
    repaired = events(s, "clock_repaired")
    assert len(repaired) == 1 and repaired[0]["floor"] == pytest.approx(wall, abs=1)
    assert tap(s, CLEANER) == (True, "granted")
    s.close()


def test_clock_trust_cli_records_who_and_may_lower_the_floor(tmp_path):
    data = tmp_path / "d"
    cfg = write_config(tmp_path, data, "Asia/Shanghai")
    from doorpi.store import Storage

    st = Storage.open(data)
    set_state(st.db, "clock_floor", repr(local_epoch("2040-01-02T08:00", "UTC")))  # poisoned
    st.close()
    before = json.loads(doorpi(cfg, "status", "--json").stdout)
    assert before["clock"] == "behind" and "doorpi clock set" in " ".join(before["warnings"])
    done = doorpi(cfg, "clock", "trust", "--yes")
    assert done.returncode == 0, done.stderr
    after = json.loads(doorpi(cfg, "status", "--json").stdout)
    assert after["clock"] == "ok" and after["clock_floor"] < local_epoch("2039-01-01", "UTC")
    log = doorpi(cfg, "log", "--kind", "admin", "--json").stdout.splitlines()
    rec = json.loads(log[-1])
    assert rec["action"] == "clock_trust" and rec["by"] and rec["old_floor"] > rec["floor"]
    shown = doorpi(cfg, "clock")
    assert "Asia/Shanghai" in shown.stdout and "state: ok" in shown.stdout


def test_bundle_floor_that_is_implausible_is_refused_and_reported(tmp_path):
    data = tmp_path / "d"
    s = make_site(data, "Etc/UTC", "2026-03-02T08:00")
    add_people(s)
    floor = s.gate.clock_guard.floor
    set_state(s.storage.db, "clock_floor", repr(local_epoch("2040-01-02T08:00", "UTC")))
    set_state(s.storage.db, "sync_signal", json.dumps({"count": 1, "result": "applied"}))
    s.advance(1.5)
    refused = events(s, "clock_floor_refused")
    assert len(refused) == 1 and refused[0]["source"] == "bundle"
    assert s.gate.clock_guard.floor < floor + 10
    assert tap(s, CLEANER) == (True, "granted")
    s.close()


def test_rtc_garbage_at_start_does_not_shred_face_templates(tmp_path):
    """Face retention runs on vouched time: a clock at 2040 deletes nothing."""
    from privacy.privacy_support import FACE_ON, face_site, unit_vector

    s = face_site(tmp_path, FACE_ON)
    privacy = s.gate.face_privacy
    assert privacy is not None, s.gate.face_problem
    ticket = privacy.start_enrolment(s.rid, "admin_present", by="admin:test")
    privacy.consent(ticket, confirmed_by="admin:test")
    privacy.enrol(s.rid, unit_vector(1))
    s.close()

    def templates() -> int:
        return int(s.storage.db.execute("SELECT count(*) FROM face_templates").fetchone()[0])

    cfg = s.cfg
    s = SimulatedSite(cfg, ManualClock(local_epoch("2040-01-02T08:00", "UTC")))
    s.advance(2)  # the first tick runs the retention sweep
    assert not s.gate.moment.trusted and templates() == 1
    s.close()


# ---------------------------------------------------------------- retention under a wrong clock


def test_taps_while_the_rtc_reads_1970_never_prune_the_month_before_them(tmp_path):
    """Case 03's kind at the hourly retention sweep: the RTC reads 1970 for a while,
    the gate's records of those taps carry 1970. The next sweep must not cut the
    entry log up to them: every record before them is inside the 30-day retention."""
    s = make_site(tmp_path / "d", "Etc/UTC", "2026-03-02T08:00")
    add_people(s)
    assert tap(s, CARD) == (True, "granted")  # stamped 2026-03-02
    good = s.clock.wall()
    s.clock.set_wall(60.0)  # flat RTC battery: 1970
    assert tap(s, CARD) == (True, "granted")  # stamped 1970
    s.clock.set_wall(good + 20)  # set right again
    s.advance(3601, step=600)  # the hourly retention sweep
    access = [r for r in s.storage.audit.records() if r.kind == "access"]
    assert [r.ts > 1e9 for r in access] == [True, False]  # both taps are still on record
    assert s.storage.audit.verify().ok
    s.close()


def test_audit_prune_with_the_clock_at_2040_keeps_the_entry_log(tmp_path, monkeypatch):
    """`doorpi audit prune` run while the RTC reads 2040 cuts by the time the gate
    vouched for (its floor), not by 2040: the month of entries stays."""
    from doorpi.cli import log as log_cli
    from doorpi.cli import main
    from doorpi.store import Storage

    data = tmp_path / "d"
    cfg = write_config(tmp_path, data, "Etc/UTC")
    now = local_epoch("2026-03-02T08:00", "UTC")
    st = Storage.open(data)
    for i in range(3):
        st.audit.append("access", {"granted": True, "i": i}, ts=now - 86400 * (2 - i))
    set_state(st.db, "clock_floor", repr(now))
    st.close()
    monkeypatch.setattr(log_cli.time, "time", lambda: local_epoch("2040-01-02T08:00", "UTC"))
    assert main(["--config", str(cfg), "audit", "prune"]) == 0
    st = Storage.open(data)
    assert [r.data["i"] for r in st.audit.records() if r.kind == "access"] == [0, 1, 2]
    st.close()
