"""Face never the only way in, for the devices fitted and for each resident
(doorpi.core.parity; requirement 1 and 4 in shared/notes/law-and-standards.md).

The exhaustive tests walk every rule over the three factors (every set of
combinations, 127 non-empty sets of 7 combinations), every device set and every
set of credentials a resident can hold, and check the answers against what an
attempt at the gate can actually do, step by step.
"""

from __future__ import annotations

import itertools

import pytest

from doorpi.core.parity import (
    Devices,
    door_parity_problem,
    face_free_next,
    has_face_free_way,
    may_ask_face,
    missing_credential,
    no_way_in_problem,
    resident_parity_problem,
)
from doorpi.core.policy import completes, parse_rule

COMBOS = [
    frozenset(c) for n in (1, 2, 3) for c in itertools.combinations(("card", "pin", "face"), n)
]
RULES = [tuple(r) for n in range(1, 8) for r in itertools.combinations(COMBOS, n)]
DEVICES = [Devices(r, k, c) for r, k, c in itertools.product((False, True), repeat=3)]
HOLDS = [frozenset(h) for h in ([], ["card"], ["pin"], ["card", "pin"])]


@pytest.mark.parametrize(
    ("access", "devices"),
    [
        (["face", "pin"], Devices(reader=True, keypad=False, camera=True)),  # keypad.kind none
        (["face", "card"], Devices(reader=False, keypad=True, camera=True)),  # reader disabled
        (["card+face", "card+pin"], Devices(reader=True, keypad=False, camera=True)),
        (["face+pin", "card+pin"], Devices(reader=True, keypad=False, camera=True)),
        (["face"], Devices(True, True, True)),
    ],
)
def test_rules_the_issue_found_are_refused_on_those_devices(access, devices):
    assert door_parity_problem(parse_rule(access), devices) is not None


@pytest.mark.parametrize(
    ("access", "devices"),
    [
        (["face", "pin"], Devices(reader=False, keypad=True, camera=True)),
        (["face", "card"], Devices(reader=True, keypad=False, camera=True)),
        (["card+face", "card+pin"], Devices(True, True, True)),
        (["card+face", "card"], Devices(reader=True, keypad=False, camera=True)),
    ],
)
def test_the_same_rules_pass_when_the_face_free_device_is_fitted(access, devices):
    assert door_parity_problem(parse_rule(access), devices) is None


def test_the_message_names_the_device_to_fit():
    msg = door_parity_problem(parse_rule(["card+face", "card+pin"]), Devices(True, False, True))
    assert msg is not None and "card+pin needs a keypad" in msg and "keypad.kind" in msg
    msg = door_parity_problem(parse_rule(["face", "card"]), Devices(False, True, True))
    assert msg is not None and "reader.enabled = true" in msg


@pytest.mark.parametrize("devices", DEVICES, ids=str)
def test_door_parity_exhaustive(devices):
    """Accepted iff someone holding every credential gets in with face switched off."""
    for rule in RULES:
        everyone = frozenset({"card", "pin"}) & devices.factors
        gets_in_without_face = completes(rule, everyone)
        assert (door_parity_problem(rule, devices) is None) == gets_in_without_face, rule


def _walk_after_face_fails(rule, holds, devices) -> bool:
    """The gate's loop after a face failure: keep asking for `face_free_next`
    until the rule completes (True) or nothing is left to ask (False). The
    resident starts with the credential that identified them."""
    for first in sorted(holds & devices.factors):
        have = frozenset({first})
        for _ in range(3):
            if completes(rule, have - {"face"}):
                return True
            nxt = face_free_next(rule, have, holds, devices)
            if nxt is None:
                break
            assert nxt in holds and nxt in devices.factors, (rule, holds, nxt)
            assert nxt not in have
            have = have | {nxt}
    return False


@pytest.mark.parametrize("devices", DEVICES, ids=str)
def test_resident_parity_exhaustive(devices):
    """Nobody who passes the check can be left stuck after a face failure; and
    the check refuses exactly those who can be asked for face and would be."""
    for rule, holds in itertools.product(RULES, HOLDS):
        problem = resident_parity_problem([rule], holds, devices)
        finishes = _walk_after_face_fails(rule, holds, devices)
        if may_ask_face(rule, holds, devices):
            assert (problem is None) == finishes, (rule, holds, devices)
        else:
            assert problem is None
        assert has_face_free_way(rule, holds, devices) == finishes, (rule, holds, devices)


def test_the_case_card_only_resident_at_a_card_face_door():
    rule = parse_rule(["card+face", "card+pin"])
    devices = Devices(True, True, True)
    problem = resident_parity_problem([rule], frozenset({"card"}), devices)
    assert problem is not None and "give them a PIN" in problem
    assert resident_parity_problem([rule], frozenset({"card", "pin"}), devices) is None
    # Face switched off at this gate: nobody is asked for face, no parity problem.
    assert resident_parity_problem([rule], frozenset({"card"}), Devices(True, True, False)) is None


def test_a_scheduled_rule_counts_as_much_as_the_default():
    day = parse_rule(["card", "pin"])
    night = parse_rule(["card+face", "card+pin"])
    devices = Devices(True, True, True)
    assert resident_parity_problem([day], frozenset({"card"}), devices) is None
    assert resident_parity_problem([day, night], frozenset({"card"}), devices) is not None


def test_fallback_asks_for_the_card_when_the_pin_is_already_in():
    rule = parse_rule(["pin+face", "card+pin"])
    devices = Devices(True, True, True)
    nxt = face_free_next(rule, frozenset({"pin"}), frozenset({"card", "pin"}), devices)
    assert nxt == "card"
    assert face_free_next(rule, frozenset({"pin"}), frozenset({"pin"}), devices) is None


@pytest.mark.parametrize("rule", RULES)
def test_the_fix_named_is_the_credential_that_gives_a_face_free_way(rule):
    """Exhaustive: the problem names the one credential (PIN first, then card) whose
    addition gives a face-free finish, and only when a single one does; else it says
    to change the door rule. (A PIN-only resident is never told to get a PIN.)"""
    for devices in DEVICES:
        for holds in HOLDS:
            problem = resident_parity_problem([rule], holds, devices)
            if problem is None:
                continue
            missing = missing_credential(rule, holds, devices)
            fixes = [f for f in ("pin", "card") if has_face_free_way(rule, holds | {f}, devices)]
            assert missing == (fixes[0] if fixes else None), (rule, holds, devices)
            assert missing not in holds
            if missing is not None:
                assert resident_parity_problem([rule], holds | {missing}, devices) is None
            said = {"pin": "give them a PIN or ", "card": "give them a card or "}.get(missing, "")
            assert problem.endswith(f"): {said}change the door rule"), problem


def test_a_pin_only_resident_is_told_to_get_a_card():
    rule = parse_rule(["pin+face", "card+pin"])
    problem = resident_parity_problem([rule], frozenset({"pin"}), Devices(True, True, True))
    assert problem is not None and problem.endswith("(holds: pin): give them a card or "
                                                    "change the door rule"), problem  # fmt: skip


def test_a_pin_without_a_keypad_number_or_a_card_is_no_face_free_way():
    """A PIN names nobody: with no keypad number to type before it and no card to tap
    first, it can only follow a face match (face+pin), so at ["face", "pin"] face is
    that resident's only way in; a keypad number or a card gives the PIN back."""
    rule, dev = parse_rule(["face", "pin"]), Devices(True, True, True)
    pin = frozenset({"pin"})
    problem = resident_parity_problem([rule], pin, dev, keypad_number=False)
    assert problem is not None and problem.endswith(
        "(holds: a PIN but no keypad number to type it after, and no card): give them a "
        "keypad number or a card or change the door rule"), problem  # fmt: skip
    assert resident_parity_problem([rule], pin, dev) is None  # keypad number 301
    assert resident_parity_problem([rule], pin | {"card"}, dev, keypad_number=False) is None
    # face+pin can ask them (face names them, then the PIN): still no face-free way
    both = parse_rule(["face+pin", "card"])
    assert resident_parity_problem([both], pin, dev, keypad_number=False) is not None
    way = no_way_in_problem([parse_rule(["pin"])], pin, dev, keypad_number=False)
    assert way is not None and way.endswith(
        "no way in at this door (pin): give them a keypad number or a card or change the door "
        "rule"), way  # fmt: skip
    assert no_way_in_problem([parse_rule(["pin"])], pin, dev) is None
