"""The exit button (REX) at a door with mechanical egress
(``door.exit_button_unlocks = false``): the press only signals, and shunts the
forced-open alarm for one opening within ``door.unlock_seconds``
(`doorpi.core.door.DoorMachine.request_exit`). Real Gate, real SQLite audit log,
real gpiozero adapters on MockFactory pins."""

from __future__ import annotations

import pytest

from site_support import recorded_site


def make_site(data, **door):
    s = recorded_site(data, config={"door": door})
    s.strike_pin.clear_states()  # the tests read the strike's history from here on
    return s


@pytest.fixture
def signal_only(tmp_path):
    s = make_site(tmp_path / "data", exit_button_unlocks=False)
    yield s
    s.close()


def alarms(site):
    return [(e["alarm"], e["active"]) for e in site.events if e["event"] == "alarm"]


def test_rex_then_push_is_egress_no_alarm_strike_untouched(signal_only):
    s = signal_only
    s.press_exit()
    s.advance(1.5)
    s.door(True)
    s.advance(3)
    s.door(False)
    s.advance(1)
    opened = [e for e in s.events if e["event"] == "door_opened"]
    assert [e.get("egress") for e in opened] == [True]
    assert alarms(s) == []
    assert [e["event"] for e in s.events if e["event"] in ("access", "relay_on")] == []
    assert all(st.state is False for st in s.strike_pin.states)
    recs = [r for r in s.storage.audit.records() if r.kind == "door_opened"]
    assert [r.data.get("egress") for r in recs] == [True]  # the audit log says exit


def test_door_opened_after_the_shunt_is_forced(signal_only):
    s = signal_only
    s.press_exit()  # 0.2 s held: the shunt counts from the settled press
    s.advance(s.cfg.door.unlock_seconds + 0.5)
    s.door(True)
    s.advance(0.5)
    assert alarms(s) == [("forced", True)]


def test_door_opened_without_rex_or_grant_is_forced(signal_only):
    signal_only.door(True)
    signal_only.advance(0.5)
    assert alarms(signal_only) == [("forced", True)]


def test_egress_door_left_open_raises_the_held_open_alarm(signal_only):
    s = signal_only
    s.press_exit()
    s.door(True)
    s.advance(s.cfg.door.held_open_seconds + 1, step=0.5)
    assert alarms(s) == [("held", True)]
    s.door(False)
    s.advance(0.5)
    assert alarms(s) == [("held", True)]  # shut, not yet confirmed (close_confirm_seconds, 1 s)
    s.advance(1.0)
    assert alarms(s) == [("held", True), ("held", False)]


def test_exit_button_that_unlocks_is_unchanged(tmp_path):
    s = make_site(tmp_path / "data")  # exit_button_unlocks defaults to true
    try:
        s.press_exit()
        s.door(True)
        s.advance(1)
        s.door(False)
        s.advance(1)
        got = [(e["event"], e.get("reason"), e.get("egress")) for e in s.events
               if e["event"] in ("access", "relay_on", "relay_off", "door_opened", "alarm")]  # fmt: skip
        assert got == [("access", "exit_request", None), ("relay_on", None, None),
                       ("door_opened", None, None), ("relay_off", "door_opened", None)]  # fmt: skip
    finally:
        s.close()
