"""The reliability tests' form (short, medium, long) and the summary they write.

A module of its own, not conftest: several test folders have a conftest, so
`from conftest import` would pick whichever was imported first.
"""

from __future__ import annotations

import json
import os
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
