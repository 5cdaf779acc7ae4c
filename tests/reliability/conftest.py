"""Shared by the reliability tests: long or short form, and the summary they write.

``DOORPI_RELIABILITY=long`` (set by `make reliability`) runs the long forms,
``medium`` a fifth of them (about 5 minutes, for a busy machine); without it each
test runs its short form inside `make test`. With
``DOORPI_RELIABILITY_OUT=DIR`` each test writes DIR/<name>.json with what it did.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

FORM = os.environ.get("DOORPI_RELIABILITY", "short")
LONG = FORM == "long"


def scale(short: int, long: int) -> int:
    """The count for this form: ``medium`` (about 5 minutes in all) runs a fifth of long."""
    if FORM == "medium":
        return max(short, long // 5)
    return long if LONG else short


def report(name: str, data: dict[str, Any]) -> None:
    """Write the measurement for `make reliability`'s summary (when asked)."""
    out = os.environ.get("DOORPI_RELIABILITY_OUT")
    data = {"form": FORM if FORM in ("long", "medium") else "short", **data}
    print(f"\n{name}: {json.dumps(data)}")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(data, indent=1))


@pytest.fixture
def powercut_rig(tmp_path: Path):
    from harness import PowerCutRig, missing_precondition

    problem = missing_precondition()
    if problem:
        pytest.fail(problem)
    rig = PowerCutRig(tmp_path)
    try:
        yield rig
    finally:
        rig.close()
