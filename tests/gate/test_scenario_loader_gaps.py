"""The scenario loader refuses what it does not understand, in one line naming
the key and where it belongs; nothing is ignored silently (seen writing v05d)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from doorpi.sim.scenario import Scenario, ScenarioError, run

STEP = '[[steps]]\nat = 1\ncard = "04aa11bb22cc33"\n'


def write(tmp_path, text: str):
    p = tmp_path / "s.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[schedules]\nearly = ["mon-fri 07:00-09:00"]\n' + STEP,
         "schedules: not a scenario key; the gate's settings belong under [config.schedules]"),
        ("[door]\nunlock_seconds = 3\n" + STEP,
         "door: not a scenario key; the gate's settings belong under [config.door]"),
        ("setle = 3\n" + STEP, "setle: unknown key (did you mean settle?); a scenario has"),
        ("[[step]]\nat = 1\n", "step: unknown key (did you mean steps?)"),
        ('[[residents]]\nname = "R"\ncard = "04aa11bb22cc33"\n' + STEP,
         "residents[0].card: unknown field (known: active, cards,"),
    ],
)  # fmt: skip
def test_unknown_keys_are_refused_naming_where_they_belong(tmp_path, text, fragment):
    with pytest.raises(ScenarioError) as info:
        Scenario.load(write(tmp_path, text))
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_resident_with_an_unconfigured_schedule_is_refused_like_the_cli_does(tmp_path):
    text = ('[config.schedules]\nearly = ["mon-fri 07:00-09:00"]\n'
            '[[residents]]\nname = "R"\ncards = ["04aa11bb22cc33"]\nschedule = "erly"\n' + STEP)  # fmt: skip
    with pytest.raises(ScenarioError) as info:
        run(Scenario.load(write(tmp_path, text)), tmp_path / "d")
    msg = str(info.value)
    assert "residents[0]: R: schedule: unknown schedule 'erly' (known: " in msg and "early" in msg
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "d2"}"\n[schedules]\nearly = ["mon 07:00-08:00"]\n'
    )
    p = subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg), "resident", "add", "R",
         "--schedule", "erly"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode != 0 and "--schedule: unknown schedule 'erly' (known: early)" in p.stderr


def test_a_configured_schedule_is_taken(tmp_path):
    text = ('[config.schedules]\nearly = ["mon-fri 07:00-09:00"]\n'
            '[[residents]]\nname = "R"\ncards = ["04aa11bb22cc33"]\nschedule = "early"\n'
            'start = "2026-03-02T08:00"\n' + STEP)  # fmt: skip
    text = 'start = "2026-03-02T08:00"\n' + text.replace('start = "2026-03-02T08:00"\n', "")
    result = run(Scenario.load(write(tmp_path, text)), tmp_path / "d")
    assert [e["reason"] for e in result.events if e["event"] == "access"] == ["granted"]


def test_a_scenario_resident_with_a_phones_random_uid_is_refused(tmp_path):
    text = '[[residents]]\nname = "R"\ncards = ["08a1b2c3"]\n' + STEP
    with pytest.raises(ScenarioError) as info:
        run(Scenario.load(write(tmp_path, text)), tmp_path / "d")
    assert "residents[0]: R: cards[0]: 08a1b2c3 is a random ID (ISO/IEC 14443-3)" in str(info.value)


def test_the_cli_refuses_a_misplaced_table_in_one_line(tmp_path):
    p = write(tmp_path, '[schedules]\nearly = ["mon-fri 07:00-09:00"]\n' + STEP)
    out = subprocess.run(
        [sys.executable, "-m", "doorpi", "demo", "--scenario", str(p), "--check"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "[config.schedules]" in out.stderr


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ('tamper = "false"', "steps[0]: tamper takes true or false, got 'false'"),
        ("fire = 1", "steps[0]: fire takes true or false, got 1"),
        ("exit = false", "steps[0]: exit takes true (one press of the exit button), got False"),
        ('lockdown_switch = "on"', "steps[0]: lockdown_switch takes true or false, got 'on'"),
    ],
)
def test_on_off_steps_take_toml_booleans_only(tmp_path, step, fragment):
    """``tamper = "false"`` read as bool() would raise the tamper alarm: refused instead."""
    path = write(tmp_path, f'start = "2026-03-02T08:00"\n[[steps]]\nat = 1\n{step}\n')
    with pytest.raises(ScenarioError) as info:
        run(Scenario.load(path), tmp_path / "d")
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[[steps]]\nat = "abc"\nwait = 1\n', "steps[0].at: 'abc' is not a number of seconds"),
        ("[[steps]]\nat = -1\nwait = 1\n", "steps[0].at: -1 is not a number of seconds"),
        ("[[steps]]\nat = nan\nwait = 1\n", "steps[0].at: nan is not a number of seconds"),
        ("[[steps]]\nat = true\nwait = 1\n", "steps[0].at: True is not a number of seconds"),
        ("[[steps]]\nat = 1e12\nwait = 1\n", "steps[0].at: 1000000000000.0 is not a number of"),
        ("[[steps]]\nat = 1\nwait = -5\n", "steps[0].wait: -5 is not a number of seconds"),
        ("settle = 1e7\n" + STEP, "settle: 10000000.0 is not a number of seconds from 0 to 604800"),
        ('[[steps]]\nat = 1\nclock = "tomorrow"\n',
         "steps[0].clock: 'tomorrow' is not a date and time (like 2026-03-02T08:00)"),
        ('[[steps]]\nat = 1\nclock = "2026-13-01T00:00"\n',
         "steps[0].clock: '2026-13-01T00:00' is not a date and time"),
        ('start = "2026-02-30T08:00"\n' + STEP, "start: '2026-02-30T08:00' is not a date and time"),
        ("[[steps]\nat = 1\n", "s.toml: not valid TOML: "),
    ],
)  # fmt: skip
def test_times_that_are_not_times_are_refused_naming_the_step(tmp_path, text, fragment):
    """Seen in a newcomer's trial: `at = "abc"` was an unexpected ValueError naming no
    step, `clock = "tomorrow"` Python's own message, `at = -1` taken silently and
    `settle = 1e7` ticked for minutes."""
    with pytest.raises(ScenarioError) as info:
        Scenario.load(write(tmp_path, text))
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_week_of_simulated_time_is_still_a_scenario(tmp_path):
    scenario = Scenario.load(write(tmp_path, "settle = 604800\n[[steps]]\nat = 0\nwait = 0.5\n"))
    assert scenario.extra["settle"] == 604800


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ("pin_clear = true", "steps[0]: pin_clear takes a resident's number (1, 2, ...), got True"),
        ("pin_clear = 1.9", "steps[0]: pin_clear takes a resident's number (1, 2, ...), got 1.9"),
        ('pin_clear = "\u0661"', "steps[0]: pin_clear takes a resident's number"),
        ("keys = 1234", 'steps[0]: keys takes the keys as text, like keys = "101#2468#", got 1234'),
    ],
)  # fmt: skip
def test_step_values_of_the_wrong_kind_are_refused_not_coerced(tmp_path, step, fragment):
    """A second newcomer trial: pin_clear = true (or 1.9, or an Arabic-Indic one) cleared
    resident 1's PIN, and keys = 1234 was typed."""
    text = '[[residents]]\nname = "R"\nkeypad_id = "101"\npin = "2468"\n'
    with pytest.raises(ScenarioError) as info:
        run(Scenario.load(write(tmp_path, text + f"[[steps]]\nat = 1\n{step}\n")), tmp_path / "d")
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
