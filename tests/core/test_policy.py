"""The decision core: every combination of factors, validity, schedule and clock trust."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorpi.core.policy import (
    FACTORS,
    Moment,
    PolicyError,
    Reason,
    ResidentView,
    check_parity,
    completes,
    could_complete,
    decide,
    parse_rule,
)
from doorpi.core.schedule import Schedule

SCHEDULES = {
    "always": Schedule.parse("always", ["daily 00:00-24:00"]),
    "workdays": Schedule.parse("workdays", ["mon-fri 07:00-19:00"]),
}
MONDAY_NOON = datetime(2026, 3, 2, 12, 0)
SUNDAY_NOON = datetime(2026, 3, 8, 12, 0)
T = 1_772_000_000.0


def at(local: datetime = MONDAY_NOON, epoch: float = T, trusted: bool = True) -> Moment:
    return Moment(epoch, local, trusted)


ALL_SUBSETS = [
    frozenset(c) for n in range(len(FACTORS) + 1) for c in itertools.combinations(FACTORS, n)
]


def test_parse_rule_accepts_combinations():
    assert parse_rule(["card", "PIN", "face + card"]) == (
        frozenset({"card"}),
        frozenset({"pin"}),
        frozenset({"face", "card"}),
    )


@pytest.mark.parametrize(
    "entries,msg",
    [
        (["iris"], "unknown factor 'iris'"),
        (["card+card"], "repeated"),
        ([], "no way in"),
    ],
)
def test_parse_rule_rejects(entries, msg):
    with pytest.raises(PolicyError, match=msg):
        parse_rule(entries)


@pytest.mark.parametrize("entries", [["face"], ["face", "face+card"], ["face+pin", "face+card"]])
def test_face_may_never_be_the_only_way_in(entries):
    with pytest.raises(PolicyError, match="face is the only way in"):
        check_parity(parse_rule(entries))


@pytest.mark.parametrize("entries", [["card"], ["face", "pin"], ["face+card", "card+pin"]])
def test_rules_with_a_face_free_way_pass_parity(entries):
    check_parity(parse_rule(entries))


@pytest.mark.parametrize("rule_entries", [["card"], ["pin"], ["card+pin"], ["card", "pin"],
                                          ["face", "card"], ["face+card", "card+pin"]])  # fmt: skip
@pytest.mark.parametrize("factors", ALL_SUBSETS)
def test_decide_for_every_factor_subset(rule_entries, factors):
    """Exhaustive over rules x presented factors: grant iff some combination is covered,
    wait iff a combination could still be completed, otherwise factor_not_allowed."""
    rule = parse_rule(rule_entries)
    r = ResidentView(7)
    d = decide(rule, r, factors, at(), SCHEDULES)
    if any(c <= factors for c in rule):
        assert d is not None and d.granted and d.reason == Reason.GRANTED
        assert d.resident_id == 7
    elif any(factors < c for c in rule):
        assert d is None
    else:
        assert d is not None and not d.granted and d.reason == Reason.FACTOR_NOT_ALLOWED


@pytest.mark.parametrize(
    "resident,moment,reason",
    [
        (ResidentView(1, active=False), at(), Reason.INACTIVE),
        (ResidentView(1, valid_from=T + 1), at(), Reason.NOT_YET_VALID),
        (ResidentView(1, valid_until=T), at(), Reason.EXPIRED),
        (ResidentView(1, valid_until=T + 1), at(), None),
        (ResidentView(1, schedule="workdays"), at(SUNDAY_NOON), Reason.OUTSIDE_SCHEDULE),
        (ResidentView(1, schedule="workdays"), at(MONDAY_NOON), None),
        (ResidentView(1, schedule="workdays"), at(trusted=False), Reason.CLOCK_UNTRUSTED),
        (ResidentView(1, schedule="always"), at(trusted=False), None),
        (ResidentView(1, schedule=None), at(trusted=False), None),
        (ResidentView(1, schedule="gone"), at(), Reason.OUTSIDE_SCHEDULE),
    ],
)
def test_resident_checks(resident, moment, reason):
    d = decide(parse_rule(["card"]), resident, frozenset({"card"}), moment, SCHEDULES)
    assert d is not None
    assert d.granted == (reason is None)
    assert d.reason == (reason or Reason.GRANTED)


def test_missing_factor_is_checked_before_validity():
    """An expired resident with half the factors still waits (reveals nothing early)."""
    rule = parse_rule(["card+pin"])
    assert (
        decide(rule, ResidentView(1, valid_until=0), frozenset({"card"}), at(), SCHEDULES) is None
    )


@given(
    rule=st.lists(st.sets(st.sampled_from(FACTORS), min_size=1), min_size=1, max_size=4),
    have=st.sets(st.sampled_from(FACTORS)),
)
def test_completes_and_could_complete_agree(rule, have):
    r = tuple(frozenset(c) for c in rule)
    h = frozenset(have)
    if completes(r, h):
        assert any(c <= h for c in r)
    assert could_complete(r, h) == any(h < c for c in r)
