"""Shared by the reliability tests: long or short form, and the summary they write.

``DOORPI_RELIABILITY=long`` (set by `make reliability`) runs the long forms,
``medium`` a fifth of them (about 5 minutes, for a busy machine); without it each
test runs its short form inside `make test`. With
``DOORPI_RELIABILITY_OUT=DIR`` each test writes DIR/<name>.json with what it did.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_support import FORM, LONG, flush_tallies, scale, tally  # noqa: F401


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    flush_tallies()  # the fuzzers' and fault tests' counts, for `make reliability`


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


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each fault injected (hardware faults, the watchdog with pcscd frozen, the
    strike-safe step), by test and outcome, for `make reliability`'s summary."""
    if report.when != "call":
        return
    parts = {"test_hardware_faults.py": "hardware_faults", "test_watchdog.py": "hardware_faults",
             "test_strike_safe.py": "strike_safe"}  # fmt: skip
    file, _, name = report.nodeid.partition("::")
    part = parts.get(Path(file).name)
    if part:
        tally(part, f"{name.removeprefix('test_')}: {report.outcome}")
