"""Variants of the field case ../shared/cases/card-only-resident-needs-face.toml
(requirements 1 and 4: face is never the only way in): scenario files in
tests/privacy/cases/ run as a person runs them, `doorpi demo --scenario FILE
--check` in a real subprocess, each held to its own expect list and to the rule
that nothing opens without a second factor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"
RUNS = sorted(p for p in CASES.glob("*.toml") if p.stem != "card-face-only-door")


def _demo(case: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doorpi", "demo", "--scenario", str(case),
                           "--check"], capture_output=True, text=True, timeout=300)  # fmt: skip


def _events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_the_variants_are_there() -> None:
    assert [p.stem for p in RUNS] == [
        "card-only-resident-at-card-face-or-pin-door",
        "pin-cleared-after-face-enrolment",
        "pin-only-resident-at-pin-face-door",
    ]


@pytest.mark.parametrize("case", RUNS, ids=lambda p: p.stem)
def test_variant_matches_its_expect_list_and_never_opens(case: Path) -> None:
    r = _demo(case)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    events = _events(r.stdout)
    access = [e for e in events if e["event"] == "access"]
    assert access and not any(e["granted"] for e in access), access
    assert not any(e["event"] == "relay_on" for e in events)


def test_a_pin_only_resident_is_told_to_get_a_card_not_a_pin() -> None:
    events = _events(_demo(CASES / "pin-only-resident-at-pin-face-door.toml").stdout)
    (refused,) = [e for e in events if e["event"] == "face_enrolment_refused"]
    assert refused["reason"].endswith("(holds: pin): give them a card or change the door rule")
    assert not any(e["event"] in ("face_requested", "face_rejected") for e in events)


def test_no_camera_is_turned_on_a_resident_without_a_template() -> None:
    """Card-only Barack at ["card+face", "pin"]: his enrolment was refused, so his card
    leaves only his face; the gate refuses at once and the face step's frames (his
    real photo) are never looked at."""
    events = _events(_demo(CASES / "card-only-resident-at-card-face-or-pin-door.toml").stdout)
    kinds = [e["event"] for e in events]
    assert "face_unavailable" in kinds
    assert not {"face_hint", "face_rejected", "face_matched"} & set(kinds), kinds
    (denied,) = [e for e in events if e["event"] == "access"]
    assert denied["reason"] == "no_face_free_way" and denied["t"] == 1.0  # at the tap
    said = [e["pattern"] for e in events if e["event"] == "feedback"]
    assert "pin_needed" not in said and said[-1] == "denied", said


def test_pin_cleared_after_enrolment_is_flagged_when_cleared() -> None:
    events = _events(_demo(CASES / "pin-cleared-after-face-enrolment.toml").stdout)
    (cleared,) = [e for e in events if e["event"] == "pin_cleared"]
    (warning,) = cleared["warnings"]
    assert "no face-free way to finish (holds: card): give them a PIN" in warning, warning
    # The running gate flags it too, within its one-second poll (not at the next start).
    (raised,) = [e for e in events if e["event"] == "fault" and e["device"] == "face_parity"]
    assert raised["active"] and 0 < raised["t"] - cleared["t"] <= 1.0, (cleared, raised)
    said = [e["pattern"] for e in events if e["event"] == "feedback"]
    assert "pin_needed" not in said and said[-1] == "denied", said  # no PIN to wait for


def test_a_card_face_only_door_is_refused_at_the_config() -> None:
    r = _demo(CASES / "card-face-only-door.toml")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "XNNPACK" not in ln]
    assert lines == [f"doorpi: {CASES / 'card-face-only-door.toml'}: config: door.access: "
                     "face is the only way in; add a card or PIN combination"], lines  # fmt: skip
    assert r.stdout == ""


def test_a_pin_without_a_keypad_number_is_not_a_face_free_way() -> None:
    """tests/field_variants/v06f: a PIN and no keypad number or card at ["face", "pin"]:
    the PIN could only follow a face match, so the enrolment is refused naming the fix."""
    variant = (
        CASES.parents[1] / "field_variants" / "v06f-pin-but-no-keypad-number-face-or-pin-door.toml"
    )
    events = _events(_demo(variant).stdout)
    (refused,) = [e for e in events if e["event"] == "face_enrolment_refused"]
    assert refused["reason"].endswith(
        "(holds: a PIN but no keypad number to type it after, and no card): give them a "
        "keypad number or a card or change the door rule"), refused  # fmt: skip
