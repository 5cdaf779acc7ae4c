"""The door state machine: every transition, timers, alarms."""

from __future__ import annotations

from doorpi.core.door import DoorMachine, DoorState, DoorTiming
from doorpi.core.events import Alarm, Lock, Notice, Unlock


def kinds(out):
    return [o.kind if not isinstance(o, Notice) else o.what for o in out]


def machine(**kw):
    return DoorMachine(DoorTiming(unlock_seconds=5, held_open_seconds=30, **kw))


def test_grant_unlocks_and_relocks_after_the_pulse():
    d = machine()
    assert d.grant(0) == [Unlock(5)]
    assert d.state is DoorState.UNLOCKED and d.strike_released
    assert d.tick(4.9) == []
    assert d.tick(5.0) == [Lock("timeout")]
    assert d.state is DoorState.LOCKED and not d.strike_released


def test_second_grant_extends_without_a_second_unlock_command():
    d = machine()
    d.grant(0)
    assert d.grant(3) == []
    assert d.tick(5.0) == []
    assert d.tick(8.0) == [Lock("timeout")]


def test_opening_relocks_immediately_then_close_returns_to_locked():
    d = machine()
    d.grant(0)
    assert kinds(d.contact(True, 1)) == ["door_opened", "relay_off"]
    assert d.state is DoorState.OPEN
    assert d.contact(False, 2) == []  # closed, confirmed after close_confirm_seconds (1 s)
    assert d.tick(2.9) == []
    assert d.tick(3) == [Notice("door_closed", {"confirmed_after": 1.0})]
    assert d.state is DoorState.LOCKED


def test_without_relock_on_open_the_strike_stays_released_until_timeout():
    d = machine(relock_on_open=False)
    d.grant(0)
    assert kinds(d.contact(True, 1)) == ["door_opened"]
    assert d.strike_released
    assert d.tick(5) == [Lock("timeout")]
    assert d.state is DoorState.OPEN


def test_held_open_alarm_and_clear():
    d = machine()
    d.grant(0)
    d.contact(True, 1)
    assert d.tick(30.9) == []
    assert d.tick(31) == [Alarm("held", True)]
    assert d.state is DoorState.HELD
    assert d.tick(40) == []  # raised once
    assert d.contact(False, 50) == []
    assert kinds(d.tick(51)) == ["door_closed", "alarm"]
    assert d.state is DoorState.LOCKED


def test_forced_open_alarm_and_clear():
    d = machine()
    out = d.contact(True, 0)
    assert kinds(out) == ["door_opened", "alarm"] and out[1] == Alarm("forced", True)
    assert d.state is DoorState.FORCED
    assert d.contact(True, 1) == []  # bounce
    assert d.contact(False, 2) == []
    out = d.tick(3)
    assert out[1] == Alarm("forced", False)
    assert d.state is DoorState.LOCKED


def test_forced_door_never_releases_the_strike():
    d = machine()
    d.contact(True, 0)
    assert not d.strike_released
    assert d.tick(100) == []


def test_an_exit_press_while_its_release_runs_is_a_repeat():
    """A REX pressed twice, or bouncing longer than the settle time: one request. The
    release runs from the last press; after a relock, or a resident's grant, the
    next press is a new request."""
    d = machine()
    assert d.exit(0) == (False, [Unlock(5)])
    assert d.exit(0.3) == (True, [])  # the same request: no second Unlock, no new grant
    assert d.tick(5.2) == [] and d.tick(5.3) == [Lock("timeout")]  # from the last press
    assert d.exit(6)[0] is False  # relocked: a new request
    d.grant(7)  # a card at the same time
    assert d.exit(7.5)[0] is False


def test_tamper_alarm_edges_only():
    d = machine()
    assert d.tamper(True, 0) == [Alarm("tamper", True)]
    assert d.tamper(True, 0.5) == []
    assert d.tamper(False, 1) == []  # the lid is on: confirmed after close_confirm_seconds
    assert d.next_deadline == 2
    assert d.tick(1.99) == [] and d.tick(2) == [Alarm("tamper", False)]
    assert machine(close_confirm_seconds=0).tamper(True, 0)[0] == Alarm("tamper", True)
    d = machine(close_confirm_seconds=0)
    d.tamper(True, 0)
    assert d.tamper(False, 1) == [Alarm("tamper", False)]  # 0: cleared on the settled edge


def test_shutdown_secures_a_released_strike():
    d = machine()
    d.grant(0)
    assert d.shutdown() == [Lock("shutdown")]
    assert d.shutdown() == []


def test_next_deadline_tracks_timers():
    d = machine()
    assert d.next_deadline is None
    d.grant(10)
    assert d.next_deadline == 15
    d.contact(True, 11)
    assert d.next_deadline == 41


# ---- REX shunt (door.exit_button_unlocks = false: the exit button only signals)


def test_rex_then_opening_within_the_shunt_is_egress_not_forced():
    d = machine()
    assert d.request_exit(0) is None
    out = d.contact(True, 4.9)  # unlock_seconds = 5: the shunt window
    assert out == [Notice("door_opened", {"egress": True})]
    assert d.state is DoorState.OPEN and not d.strike_released
    assert d.contact(False, 6) == []
    assert d.tick(7) == [Notice("door_closed", {"confirmed_after": 1.0})]
    assert d.state is DoorState.LOCKED


def test_rex_shunt_ends_after_the_window_then_opening_is_forced():
    d = machine()
    d.request_exit(0)
    assert d.tick(5) == []  # the shunt never moves the strike
    out = d.contact(True, 5.0)
    assert out == [Notice("door_opened"), Alarm("forced", True)]
    assert d.state is DoorState.FORCED


def test_rex_shunt_covers_one_opening_only():
    d = machine()
    d.request_exit(0)
    d.contact(True, 1)
    d.contact(False, 2)
    d.tick(3)  # the close is confirmed
    out = d.contact(True, 3.5)  # still inside 5 s, but a second opening: someone outside
    assert Alarm("forced", True) in out and d.state is DoorState.FORCED


def test_rex_egress_door_left_open_raises_held_open_alarm():
    d = machine()
    d.request_exit(0)
    d.contact(True, 2)
    assert d.next_deadline == 32  # held_open_seconds = 30 from the opening
    assert d.tick(31.9) == []
    assert d.tick(32) == [Alarm("held", True)]
    assert d.state is DoorState.HELD
    assert d.contact(False, 40) == []
    assert d.tick(41) == [Notice("door_closed", {"confirmed_after": 1.0}), Alarm("held", False)]
    assert d.state is DoorState.LOCKED


def test_rex_bounce_does_not_extend_the_shunt():
    d = machine()
    for t in (0, 0.06, 0.12, 1, 2, 3, 4, 4.9):  # bounce, then presses every second
        d.request_exit(t)
    out = d.contact(True, 5.5)  # within 5 s of the last press, not of the first
    assert Alarm("forced", True) in out


def test_rex_press_after_the_shunt_ended_starts_a_new_one():
    d = machine()
    d.request_exit(0)
    d.request_exit(6)
    assert d.contact(True, 10.9) == [Notice("door_opened", {"egress": True})]


def test_rex_does_not_clear_a_forced_alarm_already_raised():
    d = machine()
    d.contact(True, 0)
    d.request_exit(1)
    assert d.contact(True, 1.5) == []
    assert d.state is DoorState.FORCED
    assert d.contact(False, 2) == []
    assert d.tick(3) == [Notice("door_closed", {"confirmed_after": 1.0}), Alarm("forced", False)]


def test_grant_opening_unchanged_and_uses_up_a_rex_shunt():
    d = machine()
    d.request_exit(0)
    d.grant(0.5)
    assert d.contact(True, 1) == [Notice("door_opened"), Lock("door_opened")]
    d.contact(False, 2)
    d.tick(3)
    assert Alarm("forced", True) in d.contact(True, 3.5)
