"""Door modes in the core: the priority table, fire input, lockdown, unlock
windows with first-person-in and holidays, and the door's hold, exhaustively."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doorpi.core.door import DoorMachine, DoorState, DoorTiming
from doorpi.core.events import Alarm, Decision, Lock, Notice, Unlock
from doorpi.core.modes import (
    PRIORITY,
    RULES,
    Mode,
    ModeInputs,
    Modes,
    UnlockPlan,
    admit,
    mode_of,
)
from doorpi.core.policy import Moment, Reason, ResidentView, decide
from doorpi.core.schedule import Schedule

TZ = ZoneInfo("Europe/Berlin")
MARKET = Schedule.parse("market", ["sat 08:00-12:00"])
SAT_9 = datetime(2026, 3, 7, 9, 0, tzinfo=TZ)  # a Saturday
SAT_13 = datetime(2026, 3, 7, 13, 0, tzinfo=TZ)


def at(local: datetime, trusted: bool = True) -> Moment:
    return Moment(local.timestamp(), local, trusted)


def whats(out):
    return [n.what if isinstance(n, Notice) else n.kind for n in out]


# The one table: (fire, lockdown, window open and released) -> mode, strike held,
# responders only. Exit is free in every row (RULES[...].exit_free).
TABLE = [
    # fire   lockdown window  -> mode                 held   responders only
    (True, True, True, Mode.FIRE, True, False),
    (True, True, False, Mode.FIRE, True, False),
    (True, False, True, Mode.FIRE, True, False),
    (True, False, False, Mode.FIRE, True, False),
    (False, True, True, Mode.LOCKDOWN, False, True),
    (False, True, False, Mode.LOCKDOWN, False, True),
    (False, False, True, Mode.UNLOCK_WINDOW, True, False),
    (False, False, False, Mode.NORMAL, False, False),
]


@pytest.mark.parametrize("fire,lockdown,window,mode,held,responders", TABLE)
def test_priority_table(fire, lockdown, window, mode, held, responders):
    assert mode_of(ModeInputs(fire, lockdown, window)) is mode
    assert RULES[mode].strike_held is held
    assert RULES[mode].responders_only is responders
    assert RULES[mode].exit_free


def test_priority_order_is_fire_lockdown_window_normal():
    assert PRIORITY == (Mode.FIRE, Mode.LOCKDOWN, Mode.UNLOCK_WINDOW, Mode.NORMAL)
    assert set(RULES) == set(Mode)


@pytest.mark.parametrize(
    "fire,lockdown,window,needed,done,responder,granted,exit_",
    list(itertools.product([False, True], repeat=8)),
)
def test_every_combination(fire, lockdown, window, needed, done, responder, granted, exit_):
    """Every input combination: the strike and the decision follow the table."""
    inp = ModeInputs(fire, lockdown, window, needed, done)
    mode = mode_of(inp)
    row = next(r for r in TABLE if r[:3] == (fire, lockdown, window and (not needed or done)))
    assert mode is row[3]
    # Exit requests (no resident) pass in every mode, whatever else holds.
    rid = None if exit_ else 7
    dec = Decision(granted, Reason.EXIT if exit_ else Reason.GRANTED, rid)
    out = admit(mode, dec, responder)
    if exit_ or not granted:
        assert out == dec
    elif mode is Mode.LOCKDOWN and not responder:
        assert not out.granted and out.reason == Reason.LOCKDOWN
    else:
        assert out == dec
    # The door machine under this mode: a hold means released whatever the grants.
    d = DoorMachine(DoorTiming(5, 30))
    d.hold(RULES[mode].strike_held, 0.0, "m", RULES[mode].relock_at_once)
    assert d.strike_released is RULES[mode].strike_held
    if exit_ or (granted and out.granted):
        d.grant(1.0)
        assert d.strike_released


# ------------------------------------------------------------------ fire input


def test_fire_alarm_acts_on_the_first_edge_and_clears_after_the_settle_time():
    m = Modes(clear_seconds=0.05)
    out = m.fire_input(True, True, 10.0)
    assert whats(out) == ["fire_alarm", "door_mode"] and m.held and m.mode is Mode.FIRE
    assert out[0].detail == {"active": True, "cause": "alarm"}
    assert m.fire_input(False, True, 11.0) == []  # back to normal: not yet cleared
    assert m.next_deadline == pytest.approx(11.05)
    assert m.poll(11.04) == [] and m.fire
    out = m.poll(11.05)
    assert whats(out) == ["fire_alarm", "door_mode"] and not m.fire and not m.held
    assert out[0].detail == {"active": False, "cause": "alarm"}


def test_a_glitch_back_to_normal_does_not_clear_and_a_new_alarm_restarts_the_wait():
    m = Modes(clear_seconds=0.05)
    m.fire_input(True, True, 0.0)
    m.fire_input(False, True, 1.0)
    assert m.fire_input(True, True, 1.03) == []  # alarm again: still active, no new record
    m.fire_input(False, True, 1.04)
    assert m.poll(1.08) == [] and m.fire
    assert whats(m.poll(1.09)) == ["fire_alarm", "door_mode"]


def test_a_wire_break_counts_as_alarm_and_clears_only_when_mended():
    m = Modes(clear_seconds=0.05)
    out = m.fire_input(False, False, 0.0)
    assert out[0].detail == {"active": True, "cause": "wire_break"} and m.held
    assert m.poll(10.0) == [] and m.fire  # the contact reads normal, the loop is still cut
    m.fire_input(False, True, 10.0)
    assert whats(m.poll(10.05)) == ["fire_alarm", "door_mode"] and not m.fire


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.floats(0, 0.2)), max_size=40))
def test_fire_release_holds_for_every_alarm_reading(readings):
    """Whatever the sequence of readings: while the last one is alarm or a cut
    wire, fire release holds; it never ends sooner than clear_seconds after
    the first normal reading."""
    m = Modes(clear_seconds=0.05)
    d = DoorMachine(DoorTiming(5, 30))
    now, normal_since = 0.0, None
    for alarm, wiring, dt in readings:
        now += dt
        was = m.mode
        out = m.fire_input(alarm, wiring, now) + m.poll(now)
        if m.mode is not was:
            d.hold(m.held, now, "m", m.rule.relock_at_once)
        assert any(o.what == "door_mode" for o in out) == (m.mode is not was)
        if alarm or not wiring:
            normal_since = None
            assert m.fire and d.strike_released
        elif m.fire:
            normal_since = now if normal_since is None else normal_since
        if not m.fire and normal_since is not None:
            assert now - normal_since >= 0.05


# ------------------------------------------------------------------ lockdown


def test_lockdown_sources_and_fire_override():
    m = Modes()
    assert whats(m.set_lockdown(True, "admin", "root")) == ["lockdown", "door_mode"]
    assert m.mode is Mode.LOCKDOWN and not m.held and m.rule.relock_at_once
    assert m.set_lockdown(True, "bundle") == []  # already on
    assert whats(m.set_lockdown(True, "key_switch")) == ["lockdown"]  # still lockdown
    m.fire_input(True, True, 0.0)
    assert m.mode is Mode.FIRE and m.held
    m.fire_input(False, True, 1.0)
    m.poll(2.0)
    assert m.mode is Mode.LOCKDOWN  # fire over, lockdown still stored and switched
    m.set_lockdown(False, "admin")
    assert m.mode is Mode.LOCKDOWN  # the key switch still says lockdown
    assert whats(m.set_lockdown(False, "key_switch")) == ["lockdown", "door_mode"]
    assert m.mode is Mode.NORMAL


def test_lockdown_refuses_non_responders_only():
    granted = Decision(True, Reason.GRANTED, 3, ("card",))
    assert admit(Mode.LOCKDOWN, granted, responder=True) == granted
    refused = admit(Mode.LOCKDOWN, granted, responder=False)
    assert (refused.granted, refused.reason, refused.resident_id) == (False, "lockdown", 3)
    expired = Decision(False, Reason.EXPIRED, 3)
    assert admit(Mode.LOCKDOWN, expired, responder=True) == expired
    exit_ = Decision(True, Reason.EXIT)
    assert all(admit(m, exit_, False) == exit_ for m in Mode)


# ------------------------------------------------------------------ unlock windows


def plan(**kw):
    return UnlockPlan((MARKET,), **kw)


def test_window_opens_and_closes_with_the_schedule():
    m = Modes(plan())
    out = m.clock(at(SAT_9))
    assert whats(out) == ["unlock_window", "door_mode"] and m.held
    assert m.clock(at(SAT_9)) == []
    out = m.clock(at(SAT_13))
    assert whats(out) == ["unlock_window", "door_mode"] and not m.held
    assert out[0].detail["why"] == "ended"


def test_an_untrusted_clock_never_starts_or_keeps_a_window():
    m = Modes(plan())
    assert m.clock(at(SAT_9, trusted=False)) == [] and not m.held
    m.clock(at(SAT_9))
    out = m.clock(at(SAT_9, trusted=False))
    assert out[0].detail["why"] == "clock_untrusted" and not m.held


def test_holidays_close_windows_from_config_and_roster():
    m = Modes(plan(holidays=frozenset({date(2026, 3, 7)})))
    assert m.clock(at(SAT_9)) == [] and not m.held
    m2 = Modes(plan(), holidays=frozenset({date(2026, 3, 7)}))  # the roster's
    assert m2.clock(at(SAT_9)) == [] and not m2.held
    m3 = Modes(plan())
    m3.clock(at(SAT_9))
    m3.extra_holidays = frozenset({date(2026, 3, 7)})  # a bundle arrives mid-window
    assert m3.clock(at(SAT_9))[0].detail["why"] == "holiday" and not m3.held


def test_first_person_in_releases_only_after_an_authorised_entry():
    m = Modes(plan(first_person_in=True))
    out = m.clock(at(SAT_9))
    assert whats(out) == ["unlock_window"] and out[0].detail["waiting_first_in"]
    assert not m.held
    assert m.entered(Decision(False, Reason.WRONG_PIN, 1)) == []
    assert m.entered(Decision(True, Reason.EXIT)) == []  # leaving is not arriving
    out = m.entered(Decision(True, Reason.GRANTED, 1))
    assert whats(out) == ["first_in", "door_mode"] and m.held
    assert m.entered(Decision(True, Reason.GRANTED, 2)) == []
    m.clock(at(SAT_13))
    m.clock(at(SAT_9.replace(day=14)))  # next Saturday: waits again
    assert not m.held


def test_a_responder_in_lockdown_does_not_open_a_first_in_window():
    m = Modes(plan(first_person_in=True))
    m.clock(at(SAT_9))
    m.set_lockdown(True, "admin")
    assert m.entered(Decision(True, Reason.GRANTED, 1)) == []
    m.set_lockdown(False, "admin")
    assert not m.held


def test_holidays_refuse_restricted_schedules_in_the_policy():
    r = ResidentView(1, schedule="market")
    rule = (frozenset({"card"}),)
    sched = {"market": MARKET}
    assert decide(rule, r, frozenset({"card"}), at(SAT_9), sched).granted
    d = decide(rule, r, frozenset({"card"}), at(SAT_9), sched, frozenset({date(2026, 3, 7)}))
    assert d is not None and d.reason == Reason.HOLIDAY
    free = ResidentView(2)  # no schedule: holidays change nothing
    assert decide(rule, free, frozenset({"card"}), at(SAT_9), sched, frozenset({SAT_9.date()}))


# ------------------------------------------------------------------ the door's hold


def door():
    return DoorMachine(DoorTiming(unlock_seconds=5, held_open_seconds=30))


def test_hold_releases_and_survives_open_close_and_time():
    d = door()
    assert d.hold(True, 0, "m") == [Unlock(0.0)]
    assert d.hold(True, 1, "m") == []
    assert whats(d.contact(True, 2)) == ["door_opened"]  # no relock, no forced alarm
    assert d.tick(500) == [] and d.state is DoorState.OPEN  # no held-open alarm
    assert d.contact(False, 501) == []
    assert whats(d.tick(502)) == ["door_closed"]
    assert d.strike_released and d.next_deadline is None


def test_ending_the_hold_relocks_unless_a_grant_is_running():
    d = door()
    d.hold(True, 0, "m")
    assert d.hold(False, 1, "mode_normal") == [Lock("mode_normal")]
    assert d.state is DoorState.LOCKED
    d.hold(True, 2, "m")
    d.grant(3)  # someone badged in during the hold: relock at 8
    assert d.hold(False, 4, "mode_normal") == []
    assert d.tick(8) == [Lock("timeout")]


def test_lockdown_cuts_a_running_grant():
    d = door()
    d.grant(0)
    assert d.hold(False, 1, "mode_lockdown", relock_at_once=True) == [Lock("mode_lockdown")]


def test_door_open_when_the_hold_ends_relocks_and_starts_held_open_time():
    d = door()
    d.hold(True, 0, "m")
    d.contact(True, 1)
    assert d.hold(False, 100, "mode_normal") == [Lock("mode_normal")]
    assert d.tick(129) == []
    assert d.tick(130) == [Alarm("held", True)]


def test_a_forced_door_then_fire_release_clears_on_close():
    d = door()
    d.contact(True, 0)  # forced
    assert d.state is DoorState.FORCED
    d.hold(True, 1, "m")
    assert d.contact(False, 2) == []
    assert whats(d.tick(3)) == ["door_closed", "alarm"]
    assert d.state is DoorState.UNLOCKED and d.strike_released


def test_shutdown_secures_even_while_held():
    d = door()
    d.hold(True, 0, "m")
    assert d.shutdown() == [Lock("shutdown")]
