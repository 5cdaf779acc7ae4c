"""The variants of the shared field cases (tests/field_variants, see its README),
each run as a person runs a case: ``doorpi demo --scenario FILE --check`` in a
real subprocess. Each file's expect list is what a careful user expects (its
description); a file whose input must be refused fails with one line naming
the field, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.sim.scenario import Scenario

VARIANTS = sorted((Path(__file__).parents[1] / "field_variants").glob("*.toml"))
# Inputs that cannot be typed at the keypad or read from a card: refused in one line.
REFUSED = {
    "v05a-arabic-indic-keypad": "residents[0]: keypad number: must be 1 to 8 digits 0-9",
    "v05c-zero-width-card-and-name": r"residents[0]: Bob\u200bSmith: cards[0]: must be a card UID",
    "v05e-devanagari-pin": "residents[0]: pin: a PIN has digits 0-9 only",
    "v05f-arabic-indic-card": "residents[0]: Omar: cards[0]: must be a card UID",
    "v05k-fullwidth-valid-until": "residents[0]: valid_until: '２０２７-06-30T23:59' is not a date",
    "v05l-arabic-indic-duress-pin": "residents[0]: duress_pin: a PIN has digits 0-9 only",
    "v05o-duress-pin-equal-to-the-pin-fullwidth": "residents[0]: R: duress_pin: must differ",
    # A UID that is no card's: a read of nothing, or an ID several cards share (s10).
    "v04m-all-ff-uid-enrolled": "residents[0]: R: cards[0]: must be a card UID of 4, 7 or 10 "
    "bytes in hex, like 04a1b2c3d4e5f6; an all-FF UID is not a real card",
    "v05n-arabic-indic-keys-typed": "steps[0]: key '\u0661': not a keypad key",
    "v01l-exit-false": "steps[0]: exit takes true (one press of the exit button), got False",
    # A schedule rule in which face is the only way in (requirement 1).
    "v06c-night-rule-card-face-only": "door.schedule_access[0]: face is the only way in",
}


def test_the_variants_are_all_here():
    stems = {p.stem for p in VARIANTS}
    assert len(stems) >= 48 and set(REFUSED) <= stems


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
def test_variant_checks_through_the_cli(path, tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "doorpi", "demo", "--scenario", str(path), "--check"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in p.stderr, p.stderr
    if path.stem in REFUSED:
        assert p.returncode != 0
        assert p.stderr.count("\n") == 1 and REFUSED[path.stem] in p.stderr, p.stderr
        return
    assert Scenario.load(path).expect is not None, f"{path.name} has no expect list"
    assert p.returncode == 0, p.stderr
