"""The resident sign is generated from the gate's own feedback table and door policy."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from doorpi.entrysign import describe, entry_sign
from doorpi.hardware import feedback
from doorpi.hardware.feedback import PATTERNS, Blink, door_factors, more_needed
from human_output import assert_human

CARD_OR_PIN = [frozenset({"card"}), frozenset({"pin"})]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_pattern_on_the_sign_and_each_looks_different(lang: str) -> None:
    text = entry_sign(lang, "Test Court", CARD_OR_PIN, "office 3-001", face=True).text
    shown = {id(p): p for p in PATTERNS.values() if p.on_sign}
    looks = [describe(p, lang) for p in shown.values()]
    assert len(set(looks)) == len(looks)  # a person can tell every pattern apart
    for p in shown.values():
        meaning = more_needed({"card", "pin"}) if p is PATTERNS["pin_needed"] else p
        assert f"**{describe(p, lang)}**" in text and meaning.meaning[lang] in text
    assert describe(PATTERNS["denied"], lang) != describe(PATTERNS["see_office"], lang)
    assert "101#2468#" in text and "office 3-001" in text


def test_the_sign_follows_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change how the gate plays "denied" and the sign changes with it."""
    before = entry_sign("en", "T", CARD_OR_PIN, "x").text
    assert "red light 1 s, 2 beeps" in before
    table = dict(PATTERNS)
    table["denied"] = replace(PATTERNS["denied"], buzzer=Blink(0.1, 0.1, 4))
    monkeypatch.setattr(feedback, "PATTERNS", table)
    monkeypatch.setattr("doorpi.entrysign.PATTERNS", table)
    assert "red light 1 s, 4 beeps" in entry_sign("en", "T", CARD_OR_PIN, "x").text


def test_gate_plays_the_table(mock_factory) -> None:
    fb = feedback.GateFeedback(24, 25, 18, pin_factory=mock_factory)
    try:
        seen: list[tuple[object, float, float, int | None]] = []
        fb._blink = lambda dev, on, off, n: seen.append((dev, on, off, n))  # type: ignore[method-assign]
        fb.show("see_office")
        p = PATTERNS["see_office"]
        assert seen == [(fb.red, p.red.on, p.red.off, p.red.n), (fb.buzzer, p.buzzer.on, p.buzzer.off,
                                                             p.buzzer.n)]  # fmt: skip
    finally:
        fb.close()


@pytest.mark.parametrize("lang,html_lang,step", [("en", 'lang="en"', "Tap your card, then type"),
                                                 ("zh", 'lang="zh-CN"', "先刷卡，再输入密码")])  # fmt: skip
def test_cli_prints_the_sign_for_this_door(tmp_path: Path, lang: str, html_lang: str,
                                           step: str) -> None:  # fmt: skip
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\n[door]\naccess = ["card+pin"]\n')
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "notice",
                        "--sign", "entry", "--lang", lang], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert html_lang in p.stdout and step in p.stdout
    assert "Type your resident number, then #" not in p.stdout  # not a PIN-alone door
    assert not (tmp_path / "d").exists()  # printing a sign touches no data
    assert_human(p.stdout.replace('{"', ""))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_face_menu_steps_and_patterns_only_where_face_is_on(lang: str) -> None:
    """The face menu's keys and its own patterns (menu open, your answer, face not
    captured) are on the sign of a face door, and nowhere else."""
    face = [p for p in PATTERNS.values() if p.face]
    assert {"face_menu", "face_question", "face_not_captured"} <= {
        k for k, p in PATTERNS.items() if p.face
    }
    off = entry_sign(lang, "T", CARD_OR_PIN, "x").text
    on = entry_sign(lang, "T", CARD_OR_PIN, "x", face=True).text
    for p in face:
        assert p.meaning[lang] not in off and f"**{describe(p, lang)}**" in on
    assert "{#face_menu}" in on and "{#face_menu}" not in off
    steps = {"en": "Press #, then tap your card: the door stays locked.",
             "zh": "先按 #，再刷卡：门不会打开。"}  # fmt: skip
    assert steps[lang] in on
    # "not captured" is not "more needed": a person can tell them apart.
    assert describe(PATTERNS["face_not_captured"], lang) != describe(PATTERNS["card_needed"], lang)


def test_cli_sign_of_a_face_door_has_the_menu(tmp_path: Path) -> None:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\n[face]\nenabled = true\n')
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "notice",
                        "--sign", "entry", "--lang", "en", "--format", "md"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Press #, then tap your card: the door stays locked." in p.stdout
    assert "Face not captured" in p.stdout


# ------------------------------------------------- "more is needed": only what this door takes


@pytest.mark.parametrize(
    "factors,en,zh",
    [
        ({"card", "pin"}, "More is needed (PIN or card)", "还需要下一步（密码或卡）"),
        ({"pin"}, "More is needed (PIN)", "还需要下一步（密码）"),
        (
            {"card", "pin", "face"},
            "More is needed (PIN, card or face)",
            "还需要下一步（密码、卡或人脸）",
        ),
    ],
)
def test_more_needed_names_only_the_factors_given(factors: set[str], en: str, zh: str) -> None:
    p = more_needed(factors)
    assert p.meaning == {"en": en, "zh": zh}
    assert (p.green, p.red, p.buzzer) == (PATTERNS["pin_needed"].green, None, None)  # same lights
    assert ("camera" in p.action["en"]) == ("face" in factors)
    assert ("card" in p.action["en"]) == ("card" in factors)


def test_door_factors_are_the_rules_factors_the_devices_can_read() -> None:
    rules = [(frozenset({"card", "face"}), frozenset({"card", "pin"})), (frozenset({"pin"}),)]
    assert door_factors(rules, {"card", "pin"}) == {"card", "pin"}  # face off
    assert door_factors(rules, {"card", "face"}) == {"card", "face"}  # no keypad
    assert door_factors(rules[1:], {"card", "pin", "face"}) == {"pin"}


def _sign_line(tmp_path: Path, body: str) -> str:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\n' + body)
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), "notice",
                        "--sign", "entry", "--lang", "en", "--format", "md"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "More is needed" in ln]
    assert len(lines) == 1, p.stdout
    return lines[0]


@pytest.mark.parametrize(
    "body,shown,action",
    [
        ("", "(PIN or card)", "Type your PIN and #, or tap your card."),
        ('[door]\naccess = ["card", "pin"]\n[keypad]\nkind = "none"\n', "(card)", "Tap your"),
        ('[door]\naccess = ["card"]\n', "(card)", "Tap your card."),
        (
            '[face]\nenabled = true\n[door]\naccess = ["card+face", "card+pin"]\n',
            "(PIN, card or face)",
            "or look at the camera.",
        ),
    ],
)
def test_cli_sign_names_only_the_factors_this_door_takes(tmp_path: Path, body: str, shown: str,
                                                         action: str) -> None:  # fmt: skip
    line = _sign_line(tmp_path, body)
    assert f"More is needed {shown}" in line and action in line
    if "face" not in shown:
        assert "face" not in line and "camera" not in line


def test_demo_prompt_names_only_card_and_pin_with_face_off() -> None:
    p = subprocess.run([sys.executable, "-m", "doorpi", "--config", "/nonexistent/doorpi.toml",
                        "demo"], input="keys 101#\nquit\n", capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "pin_needed" in ln]
    assert len(lines) == 1 and "(More is needed (PIN or card))" in lines[0], p.stdout
    assert "face" not in lines[0]
