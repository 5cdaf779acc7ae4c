"""The helpers behind every human-facing command, and the scanner the CLI tests use."""

from __future__ import annotations

from datetime import datetime

from doorpi.cli import human
from human_output import repr_problems


def test_the_scanner_finds_what_it_looks_for() -> None:
    assert repr_problems("last event: {'seq': 3}")
    assert repr_problems("access: ['card']")
    assert repr_problems("schedule: None")
    assert repr_problems("clock floor: 1767225600.0")
    assert repr_problems("clock floor: 1767225600")
    assert repr_problems('{"event": "granted"}')
    assert repr_problems("Traceback (most recent call last):")
    assert not repr_problems("clock floor: 2026-01-01 08:00, 12 residents, PIN set, 王小明")


def test_wide_characters_line_up_in_tables() -> None:
    out = human.table(("name", "unit"), [("王小明", "3-101"), ("Alice Wang", "5-202")])
    lines = out.splitlines()
    # the unit column starts at the same terminal cell in every line
    starts = [
        human.width(line[: line.index(u)])
        for line, u in zip(lines, ("unit", "3-", "5-"), strict=True)
    ]
    assert len(set(starts)) == 1, out
    assert human.width("王小明") == 6 and human.fit("王小明", 5) == "王小 "


def test_values_for_people() -> None:
    assert human.value(None) == "-" and human.value(True) == "yes" and human.value(False) == "no"
    t = datetime(2026, 1, 1, 8, 0).timestamp()
    assert human.value(t, "clock_floor") == "2026-01-01 08:00"
    assert human.value({"seq": 3, "ts": t}) == "seq 3, ts 2026-01-01 08:00"
    assert human.value(["card", "card+pin"]) == "card, card+pin"
    assert human.value([]) == "-"
