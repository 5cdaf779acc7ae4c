"""Settle time for contact inputs, persisted lockouts and the unknown-card pacer (pure core)."""

from __future__ import annotations

import random

import pytest

from doorpi.core.door import DoorMachine, DoorState, DoorTiming
from doorpi.core.events import Alarm, Notice
from doorpi.core.inputs import InputFilter, Settled
from doorpi.core.lockout import CardPacer, Lockout, LockoutPolicy, PacePolicy

SETTLE = 0.05


def run(filt: InputFilter, edges: list[tuple[float, bool]], until: float, name="door_contact"):
    """Feed raw edges, polling every 5 ms as the gate loop would; return what settled."""
    out: list[Settled] = []
    t, i = 0.0, 0
    while t <= until + 1e-9:
        while i < len(edges) and edges[i][0] <= t + 1e-9:
            out += filt.feed(name, edges[i][1], edges[i][0])
            i += 1
        out += filt.poll(t)
        t = round(t + 0.005, 6)
    return out


def test_reed_bounce_on_opening_is_one_change():
    f = InputFilter(SETTLE)
    f.feed("door_contact", False, 0.0)
    f.poll(1.0)
    got = run(f, [(2.0, True), (2.01, False), (2.02, True)], 3.0)
    assert [(s.active, round(s.at, 3)) for s in got] == [(True, 2.07)]


def test_bounce_on_closing_is_one_change():
    f = InputFilter(SETTLE)
    f.feed("door_contact", True, 0.0)
    f.poll(1.0)
    edges = [(5.0, False), (5.008, True), (5.02, False), (5.031, True), (5.04, False)]
    assert [s.active for s in run(f, edges, 6.0)] == [False]


def test_glitch_back_to_the_old_level_is_dropped():
    f = InputFilter(SETTLE)
    f.feed("tamper", False, 0.0)
    f.poll(1.0)
    assert run(f, [(2.0, True), (2.03, False)], 3.0, name="tamper") == []
    assert f.level("tamper") is False


@pytest.mark.parametrize("seed", range(40))
def test_random_chatter_gives_at_most_one_change_to_the_final_level(seed):
    rng = random.Random(seed)
    start = rng.random() < 0.5
    f = InputFilter(SETTLE)
    f.feed("door_contact", start, 0.0)
    f.poll(1.0)
    t, level, edges = 2.0, start, []
    for _ in range(rng.randint(1, 12)):  # several transitions, each gap under the settle time
        level = not level
        edges.append((round(t, 4), level))
        t += rng.uniform(0.001, SETTLE * 0.95)
    got = run(f, edges, t + 1.0)
    assert [s.active for s in got] == ([level] if level != start else [])


def test_a_change_that_holds_is_reported_and_timed_from_the_edge():
    f = InputFilter(SETTLE)
    assert f.feed("x", True, 1.0) == []
    assert f.next_deadline == pytest.approx(1.05)
    assert f.poll(1.049) == []
    assert f.poll(1.05) == [Settled("x", True, 1.05)]


def test_zero_settle_passes_every_edge():
    f = InputFilter(0.0)
    assert f.feed("x", True, 1.0) == [Settled("x", True, 1.0)]
    assert f.feed("x", False, 1.001) == [Settled("x", False, 1.001)]


def test_stuck_exit_reported_once_then_release_clears():
    f = InputFilter(SETTLE, {"exit_button": 60.0})
    f.feed("exit_button", False, 0.0)
    f.poll(0.1)
    f.feed("exit_button", True, 10.0)
    assert f.poll(10.1) == [Settled("exit_button", True, 10.05)]
    assert f.next_deadline == pytest.approx(70.0)
    assert f.poll(69.9) == []
    assert f.poll(70.0) == [Settled("exit_button", True, 70.0, stuck=True)]
    assert f.stuck("exit_button")
    assert f.poll(500.0) == []  # once per activation
    f.feed("exit_button", False, 501.0)
    assert f.poll(501.1) == [Settled("exit_button", False, 501.05)]
    assert not f.stuck("exit_button")
    f.feed("exit_button", True, 600.0)  # a later short press is a press again
    assert f.poll(600.2) == [Settled("exit_button", True, 600.05)]


def test_door_machine_behind_the_filter_sees_no_forced_open_after_a_grant():
    f = InputFilter(SETTLE)
    door = DoorMachine(DoorTiming(unlock_seconds=5))
    f.feed("door_contact", False, 0.0)
    f.poll(0.1)
    door.grant(1.0)
    outputs = []
    for s in run(f, [(2.0, True), (2.01, False), (2.02, True), (6.0, False), (6.01, True),
                     (6.02, False)], 7.0):  # fmt: skip
        outputs += door.contact(s.active, s.at)
    outputs += door.tick(8.0)  # the close is confirmed (close_confirm_seconds)
    assert Alarm("forced", True) not in outputs
    assert [o.what for o in outputs if isinstance(o, Notice)] == ["door_opened", "door_closed"]
    assert door.state is DoorState.LOCKED


# ---------------------------------------------------------------- persisted lockouts


def test_lockout_snapshot_restores_after_downtime():
    pol = LockoutPolicy(threshold=3, base=30, cap=100, window=900)
    a = Lockout(pol)
    for t in (10.0, 11.0, 12.0):
        a.failure("keypad:keypad", t)
    assert a.locked_for("keypad:keypad", 12.0) == 30
    snap = a.snapshot(20.0)  # 22 s of lock left
    b = Lockout(pol)
    b.restore(snap, now=5000.0, elapsed=2.0)  # a new process, a new monotonic origin
    assert b.locked_for("keypad:keypad", 5000.0) == pytest.approx(20.0)
    assert b.failures("keypad:keypad") == 3
    assert b.failure("keypad:keypad", 5001.0) == 60  # the doubling continues
    c = Lockout(pol)
    c.restore(snap, now=0.0, elapsed=-3600)  # clock went back: no time passed
    assert c.locked_for("keypad:keypad", 0.0) == pytest.approx(22.0)
    d = Lockout(pol)
    d.restore({"x": {"ages": [], "locked_left": 10_000}}, now=0.0, elapsed=0)
    assert d.locked_for("x", 0.0) == 100  # never longer than the cap
    e = Lockout(pol)
    e.restore(snap, now=0.0, elapsed=1000.0)
    assert e.locked_for("keypad:keypad", 0.0) == 0 and e.failures("keypad:keypad") == 0


# ---------------------------------------------------------------- unknown-card pacer


def test_pacer_lets_unknown_cards_through_below_threshold_then_pauses():
    p = CardPacer(PacePolicy(after=5, window=900, pause=5))
    for t in (1, 12, 25, 38):
        assert p.wait(t) == 0 and not p.unknown(t)
    assert p.unknown(51)  # the fifth starts a pause
    assert p.wait(52) == 4 and p.wait(56) == 0
    assert p.slowed(56)
    assert not p.slowed(51 + 900 - 1 + 13)  # the oldest left the window


def test_pacer_never_exceeds_one_checked_guess_per_pause():
    p = CardPacer(PacePolicy(after=5, window=900, pause=5))
    checked = 0
    t = 0.0
    while t < 3600:  # an attacker trying a new UID every 0.3 s for an hour
        if p.wait(t) == 0:
            checked += 1
            p.unknown(t)
        t += 0.3
    assert checked <= 5 + 3600 / 5 + 1


def test_a_repeated_edge_of_the_same_level_does_not_postpone_the_change():
    f = InputFilter(SETTLE)
    f.feed("x", True, 1.0)
    assert f.feed("x", True, 1.03) == []  # gpiozero repeats nothing, but a queue might
    assert f.poll(1.05) == [Settled("x", True, 1.05)]


def test_lockout_survives_thousands_of_failures_in_one_window() -> None:
    """A face the camera keeps refusing (continuous trigger, an hour's window): past
    ~1,030 failures 2**excess no longer fits a float; the lock stays at the cap."""
    lock = Lockout(LockoutPolicy(threshold=5, base=30.0, cap=30.0, window=3600.0))
    durations = [lock.failure("face", float(i)) for i in range(3000)]
    assert durations[:4] == [0.0] * 4 and set(durations[4:]) == {30.0}
    assert lock.locked_for("face", 2999.0) == 30.0
