"""Lockout back-off, the PIN pad buffer, schedules and the clock guard."""

from __future__ import annotations

from datetime import datetime

import pytest

from doorpi.core.clock import ClockGuard
from doorpi.core.lockout import Lockout, LockoutPolicy
from doorpi.core.pinpad import KEYS, PadAction, PinPad, keypad_key
from doorpi.core.schedule import Schedule, ScheduleError, parse_window

# ---------------------------------------------------------------- lockout


def test_lockout_starts_at_threshold_and_doubles_up_to_cap():
    lk = Lockout(LockoutPolicy(threshold=3, base=30, cap=100, window=900))
    assert [lk.failure("k", t) for t in (0, 1)] == [0.0, 0.0]
    assert lk.failure("k", 2) == 30
    assert lk.locked_for("k", 2) == 30 and lk.locked_for("k", 32) == 0
    assert lk.failure("k", 40) == 60
    assert lk.failure("k", 110) == 100  # capped
    assert lk.locked_for("other", 110) == 0


def test_lockout_forgets_old_failures_and_success_clears():
    lk = Lockout(LockoutPolicy(threshold=2, base=10, cap=10, window=60))
    lk.failure("k", 0)
    assert lk.failure("k", 61) == 0.0  # the first one fell out of the window
    lk.success("k")
    assert lk.failures("k") == 0


# ---------------------------------------------------------------- pin pad


def press_all(pad: PinPad, keys: str, t: float = 0.0):
    return [pad.press(k, t + i * 0.1) for i, k in enumerate(keys)]


def test_pinpad_submit_clear_cancel():
    pad = PinPad(timeout=10)
    res = press_all(pad, "12*34#")
    assert [r.action for r in res] == [PadAction.TYPING] * 2 + [PadAction.CLEAR] + [
        PadAction.TYPING
    ] * 2 + [PadAction.SUBMIT]
    assert res[-1].digits == "34"
    assert pad.press("*", 1).action is PadAction.CANCEL


def test_pinpad_timeout_forgets_digits():
    pad = PinPad(timeout=5)
    press_all(pad, "99")
    r = pad.press("1", 10)
    assert r.action is PadAction.TIMED_OUT
    assert pad.press("#", 10.5).digits == "1"


def test_pinpad_limits_length_and_ignores_unknown_keys():
    pad = PinPad(timeout=5, max_digits=3)
    assert [r.action for r in press_all(pad, "1234")][-1] is PadAction.IGNORED
    assert pad.press("B", 1).action is PadAction.IGNORED
    assert pad.press("A", 1).action is PadAction.FACE
    assert pad.press("#", 1).digits == "123"


def test_pinpad_takes_ascii_digits_only():
    """A keypad sends 0-9; a digit of another script is no key (never part of a PIN
    or keypad number that then fails as unknown and counts toward the lockout)."""
    pad = PinPad(timeout=5)
    for k in ("\u0661", "\u0967", "\uff11", "\u00b2", "\U0001d7cf"):  # ١ १ １ ² 𝟏
        assert pad.press(k, 0).action is PadAction.IGNORED, k
    assert pad.press("#", 0.1).digits == ""


@pytest.mark.parametrize(
    ("typed", "key"),
    [("1", "1"), ("\uff11", "1"), ("\u00b2", "2"), ("\U0001d7cf", "1"), ("\uff03", "#"),
     ("\uff0a", "*"), ("f", "F"), ("a", "A"), ("b", "B"), ("\u0661", None),
     ("\u0967", None), ("x", None), ("12", None), ("", None), (" ", None), ("\u200b", None)],
)  # fmt: skip
def test_keypad_key_reads_typed_text_as_a_keypad_sends_it(typed: str, key: str | None) -> None:
    assert keypad_key(typed) == key
    assert key is None or key in KEYS


# ---------------------------------------------------------------- schedules


def test_schedule_windows():
    s = Schedule.parse("x", ["mon-fri 07:00-19:00", "sat,sun 09:00-12:00"])
    assert s.allows(datetime(2026, 3, 2, 7, 0))  # Monday
    assert not s.allows(datetime(2026, 3, 2, 19, 0))  # end is exclusive
    assert s.allows(datetime(2026, 3, 7, 11, 59))  # Saturday
    assert not s.allows(datetime(2026, 3, 7, 12, 0))
    assert not s.is_always
    assert Schedule.parse("a", ["daily 00:00-24:00"]).is_always


@pytest.mark.parametrize(
    "text,msg",
    [
        ("mon-fri", "not 'DAYS HH:MM-HH:MM'"),
        ("fri-mon 07:00-08:00", "runs backwards"),
        ("mon 25:00-26:00", "out of range"),
        ("mon 19:00-19:00", "is empty"),
        ("mon 24:00-06:00", "starts at 24:00"),
        ("funday 07:00-08:00", "unknown day"),
        ("mon 7-8", "not HH:MM"),
    ],
)
def test_schedule_errors(text, msg):
    with pytest.raises(ScheduleError, match=msg):
        parse_window(text)


# ---------------------------------------------------------------- clock


def test_clock_guard_trusts_forward_time_and_raises_floor():
    g = ClockGuard(floor=1000)
    r = g.observe(2000, 0)
    assert r.trusted and r.effective == 2000 and g.floor == 2000


def test_clock_reset_to_1970_runs_on_floor_plus_monotonic():
    g = ClockGuard(floor=1_800_000_000)
    r = g.observe(0, 50)
    assert not r.trusted and r.effective == 1_800_000_000
    r = g.observe(10, 60)
    assert not r.trusted and r.effective == 1_800_000_010
    r = g.observe(1_800_000_100, 70)  # NTP or the admin set it right
    assert r.trusted and r.effective == 1_800_000_100


def test_small_backward_steps_within_slack_are_trusted():
    g = ClockGuard(floor=1000, slack=120)
    assert g.observe(900, 0).trusted


def test_jump_while_running_is_reported_once():
    g = ClockGuard(floor=0)
    g.observe(1000, 0)
    assert g.observe(1010, 10).jumped_by == 0
    assert g.observe(5000, 20).jumped_by == pytest.approx(3980)
    assert g.observe(5010, 30).jumped_by == 0


def test_signed_source_raises_floor():
    g = ClockGuard(floor=0)
    assert g.offer(5000, 0)
    assert not g.observe(100, 0).trusted
