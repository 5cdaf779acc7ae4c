"""The reliability tests' form (short, medium, long) and the summary they write.

A module of its own, not conftest: several test folders have a conftest, so
`from conftest import` would pick whichever was imported first.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

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


# What the fuzzers and fault tests tried, by part and outcome: written once at the
# end of the session (conftest's pytest_sessionfinish) as DIR/<part>.json.
_TALLY: defaultdict[str, Counter[str]] = defaultdict(Counter)


def tally(part: str, outcome: str, n: int = 1) -> None:
    """Count one input tried (or fault injected and checked) under ``part``."""
    _TALLY[part][outcome] += n


def flush_tallies() -> None:
    """Report every part that counted something (for the summary; only when
    ``DOORPI_RELIABILITY_OUT`` asks for one, so `make test` prints nothing)."""
    if not os.environ.get("DOORPI_RELIABILITY_OUT"):
        _TALLY.clear()
        return
    for part, counts in sorted(_TALLY.items()):
        report(part, {"total": sum(counts.values()), **dict(sorted(counts.items()))})
    _TALLY.clear()
