"""`doorpi.core.policy.lacking` and `doorpi.core.parity.no_way_in_problem`,
checked over every rule of card/pin/face combinations."""

from __future__ import annotations

from itertools import chain, combinations

import pytest

from doorpi.core.parity import Devices, no_way_in_problem
from doorpi.core.policy import lacking, parse_rule

FACTORS = ("card", "pin", "face")


def subsets(items):
    return [frozenset(c) for c in chain.from_iterable(combinations(items, n)
                                                      for n in range(len(items) + 1))]  # fmt: skip


COMBOS = [c for c in subsets(FACTORS) if c]
RULES = [tuple(r) for r in subsets(COMBOS) if r]  # 127 rules
SETS = subsets(FACTORS)


def test_lacking_is_none_exactly_when_some_growing_combination_can_be_finished():
    checked = 0
    for rule in RULES:
        for have in SETS:
            for holds in SETS:
                got = lacking(rule, have, holds)
                grows = [c for c in rule if have < c]
                finishable = any(c <= have | holds for c in grows)
                if not grows or finishable:
                    assert got is None, (rule, have, holds)
                else:
                    assert got is not None and got not in holds | have, (rule, have, holds, got)
                    assert any(got in c for c in grows)
                checked += 1
    assert checked == 127 * 8 * 8


@pytest.mark.parametrize(
    ("rule", "have", "holds", "want"),
    [
        (["card+pin"], {"pin"}, {"pin"}, "card"),  # PIN typed, no card: refuse now
        (["card+pin"], {"card"}, {"card"}, "pin"),
        (["card+pin"], {"pin"}, {"pin", "card"}, None),  # the card will come
        (["card+pin", "pin+face"], {"pin"}, {"pin"}, "card"),  # card before face
        (["card+pin", "pin+face"], {"pin"}, {"pin", "face"}, None),
        (["card+face"], {"card"}, {"card"}, "face"),
        (["card", "pin"], {"pin"}, {"pin"}, None),  # complete already: nothing to grow
    ],
)  # fmt: skip
def test_lacking_names_the_missing_factor(rule, have, holds, want):
    assert lacking(parse_rule(rule), frozenset(have), frozenset(holds)) == want


def test_no_way_in_names_the_credential_to_give():
    devices = Devices(reader=True, keypad=True, camera=False)
    card_pin = parse_rule(["card+pin"])
    line = no_way_in_problem([card_pin], frozenset({"pin"}), devices)
    assert (
        line
        == "holds pin: no way in at this door (card+pin): give them a card or change the door rule"
    )
    assert no_way_in_problem([card_pin], frozenset({"pin", "card"}), devices) is None
    assert "holds no card and no PIN" in (no_way_in_problem([card_pin], frozenset(), devices) or "")
    # a scheduled rule that takes the PIN alone is a way in
    assert no_way_in_problem([card_pin, parse_rule(["pin"])], frozenset({"pin"}), devices) is None
    # face never counts: face may not be the only way in
    face_on = Devices(camera=True)
    assert no_way_in_problem([parse_rule(["pin+face", "card+pin"])], frozenset({"pin"}), face_on)
    # a PIN without a keypad fitted is no way in
    no_keypad = Devices(keypad=False)
    assert "give them a card" in (no_way_in_problem([parse_rule(["card", "pin"])],
                                                     frozenset({"pin"}), no_keypad) or "")  # fmt: skip
