"""Every shipped scenario runs on the simulated site and yields its full expected
event sequence; the strike pin's history agrees with the relay commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.sim.scenario import Scenario, ScenarioError, run

SCENARIOS = sorted((Path(__file__).parents[2] / "examples" / "scenarios").glob("*.toml"))
REQUIRED = {
    "card-granted", "unknown-card", "pin-right-and-wrong", "pin-brute-force", "card-and-pin",
    "outside-schedule", "expired-resident", "exit-button", "door-forced", "door-held-open",
    "fire-release", "fire-wire-break", "lockdown-responders", "lockdown-key-switch",
    "unlock-window-first-in", "unlock-window-holiday-and-clock", "duress-pin",
}  # fmt: skip


def test_all_required_scenarios_are_shipped():
    assert {p.stem for p in SCENARIOS} >= REQUIRED


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_matches_expected_sequence(path, tmp_path):
    scenario = Scenario.load(path)
    assert scenario.expect, f"{path.name} has no expect list"
    result = run(scenario, tmp_path / "data")
    assert result.mismatch(scenario.expect) is None, result.mismatch(scenario.expect)
    assert result.safety_problem() is None, result.safety_problem()
    assert result.relay_states[-1] is False


def test_mismatch_reports_the_first_difference(tmp_path):
    scenario = Scenario.load(next(p for p in SCENARIOS if p.stem == "unknown-card"))
    result = run(scenario, tmp_path / "d")
    wrong = [dict(e) for e in scenario.expect or []]
    wrong[-1]["reason"] = "granted"
    assert "event 1: expected" in (result.mismatch(wrong) or "")
    assert "got nothing more" in (result.mismatch([*scenario.expect, {"event": "x"}]) or "")


def test_cli_prints_json_lines_and_checks(tmp_path):
    path = next(p for p in SCENARIOS if p.stem == "card-granted")
    out = subprocess.run(
        [sys.executable, "-m", "doorpi", "demo", "--scenario", str(path), "--check"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    records = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [r["event"] for r in records]
    assert "credential_presented" in kinds and "relay_on" in kinds and "door_opened" in kinds
    assert all("t" in r for r in records)


def test_bad_scenario_step_is_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[[steps]]\nat = 1\ncard = "04"\ndoor = "open"\n')
    with pytest.raises(ScenarioError, match=r"bad.toml: steps\[0\] needs exactly one of"):
        Scenario.load(p)


def test_crowd_in_on_request_mode_computes_nothing(tmp_path):
    """Issue 6: frames full of faces while nobody asked: every one dropped, no
    detector or embedding run (stage counters), door never released for them."""
    scenario = Scenario.load(next(p for p in SCENARIOS if p.stem == "face-crowd-on-request"))
    result = run(scenario, tmp_path / "d", keep=True)
    site = result.site
    try:
        stats = site.face_path.stats
        assert stats.frames_seen >= 10
        assert stats.frames_processed == 0 and stats.frames_dropped == stats.frames_seen
        assert stats.windows == 0
        assert not [e for e in result.events if e["event"].startswith("face")]
    finally:
        site.close()


def test_face_scenario_audit_holds_no_biometrics(tmp_path):
    scenario = Scenario.load(next(p for p in SCENARIOS if p.stem == "face-failure-falls-back"))
    result = run(scenario, tmp_path / "d", keep=True)
    site = result.site
    try:
        records = list(site.storage.audit.records())
        kinds = {r.kind for r in records}
        assert "face_rejected" in kinds
        for r in records:
            for value in r.data.values():
                assert not (isinstance(value, list) and len(value) >= 64)  # no vectors
    finally:
        site.close()


def test_hands_free_is_refused_above_the_configured_bound(tmp_path):
    """Issue 5, 1:N honesty: above face.max_hands_free templates face alone is refused
    (the same live turn that opens the door below the bound)."""
    scenario = Scenario.load(next(p for p in SCENARIOS if p.stem == "face-only-live-granted"))
    scenario.config["face"] = {**scenario.config["face"], "max_hands_free": 1}
    result = run(scenario, tmp_path / "d")
    rejected = [e["reason"] for e in result.events if e["event"] == "face_rejected"]
    assert rejected == ["hands_free_disabled"]
    assert not [e for e in result.events if e["event"] == "access" and e["granted"]]


def test_every_field_case_passes_check_through_the_cli(faces_dir, tmp_path):
    """The cases from the field (../shared/cases) as a person runs them; one without an
    expect list is held to the strike's safety rules."""
    cases = sorted((faces_dir.parent / "cases").glob("*.toml"))
    assert len(cases) >= 5
    for case in cases:
        p = subprocess.run(
            [sys.executable, "-m", "doorpi", "demo", "--scenario", str(case), "--check"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert p.returncode == 0 and "Traceback" not in p.stderr, (case.name, p.stderr)


def test_safety_problem_sees_a_strike_left_released_or_without_a_grant():
    from doorpi.sim.scenario import ScenarioRun

    on = {"event": "relay_on"}
    off = {"event": "relay_off"}
    granted = {"event": "access", "granted": True}
    assert ScenarioRun([granted, on, off], [False, True, False]).safety_problem() is None
    assert "still released" in ScenarioRun([granted, on, off], [False, True]).safety_problem()
    assert (
        "released 1 times for 0 grants"
        in ScenarioRun([on, off], [False, True, False]).safety_problem()
    )
    assert "relay_off" in ScenarioRun([granted, on], [False, True, False]).safety_problem()
    # A door mode that holds the strike released counts as a grant; no other hold does.
    hold = {"event": "relay_on", "seconds": 0.0}
    fire = {"event": "door_mode", "mode": "fire_release"}
    lockdown = {"event": "door_mode", "mode": "lockdown"}
    assert ScenarioRun([fire, hold, off], [False, True, False]).safety_problem() is None
    # Released at the end is right only while a door mode still holds it (the run ended
    # inside an unlock window or a fire release; the shutdown relocks it).
    assert ScenarioRun([fire, hold, off], [False, True], held_at_end=True).safety_problem() is None
    assert "still released" in ScenarioRun([fire, hold, off], [False, True]).safety_problem()
    assert "without a mode" in ScenarioRun([hold, off], [False, True, False]).safety_problem()
    assert (
        "without a mode"
        in ScenarioRun([lockdown, hold, off], [False, True, False]).safety_problem()
    )


def test_a_fail_safe_maglock_is_judged_through_its_polarity(tmp_path):
    """A maglock (fail-safe) is locked while energised: the run reads its pin that way,
    so a grant's release and relock pass, and the pin ends high (locked)."""
    path = tmp_path / "maglock.toml"
    path.write_text(
        'name = "maglock"\nstart = "2026-03-02T08:00"\n'
        '[config.door]\nstrike = "fail-safe"\n'
        '[[residents]]\nname = "Ann"\ncards = ["04aa11bb22cc77"]\n'
        '[[steps]]\nat = 1\ncard = "04aa11bb22cc77"\n',
        encoding="utf-8",
    )
    result = run(Scenario.load(path), tmp_path / "data", keep=True)
    try:
        pin = [bool(s.state) for s in result.site.strike_pin.states]
    finally:
        result.site.close()
    assert result.safety_problem() is None, result.safety_problem()
    assert pin[-1] is True and result.relay_states[-1] is False  # energised = locked
    assert result.relay_states.count(True) >= 1  # the grant released it (pin low)
