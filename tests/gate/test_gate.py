"""The gate on a simulated site: real SQLite, real Gate, MockFactory pins."""

from __future__ import annotations

import itertools
import re

import pytest

from doorpi.clocks import ManualClock
from doorpi.core.events import FaceRejected
from doorpi.sim.site import SimulatedSite, sim_config
from doorpi.store.db import get_state
from site_support import MONDAY_9, recorded_site

ALICE = {"name": "Alice", "keypad_id": "101", "cards": ["04a1b2c3d4e5f6"], "pin": "2468"}


@pytest.fixture
def site(tmp_path):
    s = recorded_site(tmp_path / "data", [ALICE], settle=False)
    s.strike_pin.clear_states()
    yield s
    s.close()


def decisions(site):
    return [(e["granted"], e["reason"]) for e in site.events if e["event"] == "access"]


def test_strike_pin_idle_at_start_and_active_only_on_grant(site):
    assert site.strike_pin.state is False
    site.card("0400000000000a")
    assert site.strike_pin.state is False
    site.card("04a1b2c3d4e5f6")
    assert site.strike_pin.state is True
    site.advance(5.1)
    assert site.strike_pin.state is False
    assert [s.state for s in site.strike_pin.states] == [False, True, False]


def test_every_decision_is_in_the_audit_log_without_secrets(site):
    site.card("04a1b2c3d4e5f6")
    for k in "101#9999#":
        site.key(k)
    recs = list(site.storage.audit.records())
    access = [r for r in recs if r.kind == "access"]
    assert [(r.data["granted"], r.data["reason"]) for r in access] == [
        (True, "granted"),
        (False, "wrong_pin"),
    ]
    blob = repr([r.data for r in recs])
    assert "04a1b2c3d4e5f6" not in blob
    # Card references are random hex and may hold any digit run: blank them first.
    assert "9999" not in re.sub(r"[0-9a-f]{8,}", "<hex>", blob)
    assert site.storage.audit.verify().ok


def test_unknown_keypad_number_still_asks_for_a_pin(site):
    for k in "999#":
        site.key(k)
    assert site.events[-1] == {**site.events[-1], "event": "feedback", "pattern": "pin_needed"}
    for k in "2468#":
        site.key(k)
    assert decisions(site)[-1] == (False, "unknown_resident")


def test_attempt_times_out_if_the_pin_never_comes(site):
    for k in "101#":
        site.key(k)
    site.advance(site.cfg.keypad.entry_timeout_seconds + 0.5)
    assert decisions(site)[-1] == (False, "incomplete")


def test_resident_disabled_mid_attempt_is_refused(site):
    for k in "101#":
        site.key(k)
    site.storage.residents.update(1, MONDAY_9, active=False)
    for k in "2468#":
        site.key(k)
    assert decisions(site)[-1] == (False, "resident_inactive")


def test_unknown_cards_slow_the_reader_but_never_lock_out_residents(site):
    for i in range(20):  # neighbours of the resident's card (a batch walker)
        site.card(f"04a1b2c3d4{i:04x}")
        site.advance(1)
    assert decisions(site)[-1] == (False, "unknown_card")
    assert not any(e["event"] == "lockout_started" for e in site.events)
    site.card("04a1b2c3d4e5f6")  # inside the walk and the 5 s pause: not checked at all
    assert decisions(site)[-1] == (False, "rate_limited")
    site.advance(5)
    site.card("04a1b2c3d4e5f6")  # after the pause an enrolled card opens
    assert decisions(site)[-1] == (True, "granted")


def test_clock_floor_is_saved_every_ten_minutes_not_every_minute(site):
    """Six small SD-card writes an hour, each no more than ten minutes behind."""

    def saved() -> float:
        return float(get_state(site.storage.db, "clock_floor", "0") or 0)

    site.advance(1, step=1)
    writes = [saved()]
    assert MONDAY_9 <= writes[0] <= site.clock.wall()  # saved once at start
    for _ in range(360):  # an hour, looked at every 10 s
        site.advance(10, step=5)
        assert site.clock.wall() - saved() <= 600 + 5
        if saved() != writes[-1]:
            writes.append(saved())
    assert len(writes) == 1 + 6
    assert all(b - a >= 600 for a, b in itertools.pairwise(writes))


def test_clock_reset_keeps_unrestricted_residents_working(site):
    site.advance(61)  # the floor follows the trusted clock
    site.clock.set_wall(0.0)  # the Pi booted without RTC and NTP
    site.card("04a1b2c3d4e5f6")
    assert decisions(site)[-1] == (True, "granted")


def test_clock_reset_refuses_schedule_restricted_residents(site):
    site.add_resident({"name": "Bo", "cards": ["04b0b0b0b0b0b0"], "schedule": "workdays"})
    site.card("04b0b0b0b0b0b0")
    assert decisions(site)[-1] == (True, "granted")
    site.advance(6)
    site.clock.set_wall(0.0)
    site.card("04b0b0b0b0b0b0")
    assert decisions(site)[-1] == (False, "clock_untrusted")


def test_clock_set_back_cannot_revive_an_expired_resident(site):
    site.add_resident({"name": "Chen", "cards": ["04c0c0c0c0c0c0"],
                       "valid_until": "2026-03-01T00:00"})  # fmt: skip
    site.clock.set_wall(MONDAY_9 - 10 * 86400)  # before the expiry
    site.card("04c0c0c0c0c0c0")
    assert decisions(site)[-1] == (False, "expired")


def test_face_failures_fall_back_and_pause_after_five(site):
    for _ in range(5):
        site.gate.submit(FaceRejected("no_match"))
        site.gate.process_pending()
    assert site.gate.face_paused()
    assert any(e["event"] == "face_paused" for e in site.events)
    site.card("04a1b2c3d4e5f6")  # card still works while face is paused
    assert decisions(site)[-1] == (True, "granted")
    site.advance(31)
    assert not site.gate.face_paused()


def test_corrupt_card_response_keeps_other_paths_working(site):
    site.card_fault("response too short")
    assert site.events[-2]["event"] in ("card_read_failed", "feedback")
    for k in "101#2468#":
        site.key(k)
    assert decisions(site)[-1] == (True, "granted")


def test_audit_failure_does_not_block_the_door(site, monkeypatch):
    def broken(*a, **k):
        raise OSError("disk full")

    from doorpi.store.audit import AuditLog

    monkeypatch.setattr(AuditLog, "append_many", broken)  # every connection's writes fail
    site.card("04a1b2c3d4e5f6")
    assert site.strike_pin.state is True
    assert site.storage.audit_queue.pending >= 1  # kept, not dropped
    monkeypatch.undo()
    assert site.storage.audit_queue.flush()
    assert any(r.kind == "access" for r in site.storage.audit.records())


def test_fail_safe_strike_is_energised_to_lock(tmp_path):
    cfg = sim_config({"door": {"strike": "fail-safe"}}, tmp_path / "d")
    s = SimulatedSite(cfg, ManualClock(MONDAY_9))
    try:
        s.add_resident({"name": "A", "cards": ["04a1b2c3d4e5f6"]})
        assert s.strike_pin.state is True  # energised = locked
        s.card("04a1b2c3d4e5f6")
        assert s.strike_pin.state is False and s.devices.strike.released
        s.advance(6)
        assert s.strike_pin.state is True
    finally:
        s.close()


def test_audit_retention_prunes_old_records_and_keeps_the_chain(site):
    site.card("04a1b2c3d4e5f6")
    before = [r.seq for r in site.storage.audit.records()]
    assert before
    site.clock.advance(31 * 86400)  # past the 30-day default retention
    site.advance(3601, step=600)
    kinds = [r.kind for r in site.storage.audit.records()]
    assert "access" not in kinds[: len(before)]
    assert "audit_pruned" in kinds
    assert site.storage.audit.verify().ok


def test_sweepers_run_hourly_with_the_effective_time(site):
    calls: list[float] = []
    site.gate.sweepers.append(calls.append)
    site.advance(1)
    n = len(calls)
    site.advance(3600, step=300)
    assert len(calls) == n + 1
    assert calls[-1] == pytest.approx(site.clock.wall(), abs=1)


def test_finished_usb_import_is_shown_and_raises_the_clock_floor(site):
    """The import runs in its own process and leaves a signal; the gate shows it."""
    import json

    from doorpi.store.db import set_state

    later = site.clock.wall() + 86400
    set_state(site.storage.db, "clock_floor", repr(later))
    set_state(site.storage.db, "sync_signal", json.dumps({"count": 1, "result": "applied"}))
    site.advance(1.5)
    assert [e["result"] for e in site.events if e["event"] == "sync_finished"] == ["done"]
    assert site.devices.feedback.last == "done"
    assert site.gate.clock_guard.floor >= later
    site.advance(2)  # shown once
    assert len([e for e in site.events if e["event"] == "sync_finished"]) == 1


def patterns(site):
    return [e["pattern"] for e in site.events if e["event"] == "feedback" and e["pattern"] != "key"]


def test_feedback_tells_try_again_from_see_the_office(site):
    """Wrong PIN, unknown card, unknown number: "denied" alike; a valid credential
    that is not valid now (expired, outside schedule): "see_office"."""
    site.add_resident({"name": "Gone", "keypad_id": "303", "cards": ["04c0c0c0c0c0c0"],
                       "pin": "1357", "valid_until": "2024-01-31"})  # fmt: skip
    site.add_resident({"name": "Night", "cards": ["04d0d0d0d0d0d0"], "schedule": "workdays"})
    site.card("0400000000000a")  # unknown card
    for k in "101#9999#":  # wrong PIN
        site.key(k)
    for k in "999#1357#":  # unknown resident number
        site.key(k)
    for k in "303#9999#":  # expired resident, wrong PIN: still only "denied"
        site.key(k)
    assert patterns(site) == ["denied", "pin_needed", "denied", "pin_needed", "denied",
                              "pin_needed", "denied"]  # fmt: skip
    site.events.clear()
    site.card("04c0c0c0c0c0c0")  # expired
    for k in "303#1357#":  # expired, right PIN
        site.key(k)
    site.clock.advance(12 * 3600)  # 21:00: outside workdays
    site.card("04d0d0d0d0d0d0")
    assert patterns(site) == ["see_office", "pin_needed", "see_office", "see_office"]
    assert [r for _, r in decisions(site)] == ["expired", "expired", "outside_schedule"]


def test_keypad_number_after_the_tap_is_not_a_wrong_pin(tmp_path):
    """`101#2468#` out of habit on a card+PIN door: no failure, no lockout count."""
    s = recorded_site(tmp_path / "d", [ALICE], {"door": {"access": ["card+pin"]}}, settle=False)
    try:
        for _ in range(6):  # more often than the lockout allows wrong PINs
            s.card("04a1b2c3d4e5f6")
            for k in "101#2468#":
                s.key(k)
            s.advance(6)
        access = [(e["granted"], e["reason"]) for e in s.events if e["event"] == "access"]
        assert access == [(True, "granted")] * 6
        assert not [e for e in s.events if e["event"] == "lockout_started"]
    finally:
        s.close()
