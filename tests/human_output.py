"""A check for what a person reads: no Python reprs, no None, no epoch floats, no tracebacks."""

from __future__ import annotations

import re

REPR_PATTERNS = {
    "a Python dict": re.compile(r"\{'"),
    "a Python list": re.compile(r"\['"),
    "None": re.compile(r"\bNone\b"),
    "True/False": re.compile(r"\b(True|False)\b"),
    "an epoch time": re.compile(r"\b1[5-9]\d{8}(\.\d+)?\b"),
    "a traceback": re.compile(r"Traceback \(most recent call last\)"),
    "a JSON object": re.compile(r'\{"'),
}


def repr_problems(text: str) -> list[str]:
    """Each line of ``text`` that shows raw data, with what it shows."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        for what, pattern in REPR_PATTERNS.items():
            if pattern.search(line):
                out.append(f"line {n} shows {what}: {line.strip()}")
    return out


def assert_human(text: str) -> None:
    problems = repr_problems(text)
    assert not problems, "\n".join(problems) + "\n--- output ---\n" + text
