"""The running gate's storage health, for `doorpi status` in another process.

The gate keeps deferred audit records in memory, which another process cannot
see; so it writes a small JSON file to its runtime directory (``/run/doorpi``,
a tmpfs that takes writes when the data partition does not) whenever that
health changes. ``$DOORPI_RUNTIME_DIR`` overrides the folder (tests), then
``$RUNTIME_DIRECTORY`` (set by systemd's ``RuntimeDirectory=``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from doorpi.fsutil import write_atomic

FILE_NAME = "storage-health.json"


def health_path() -> Path:
    folder = os.environ.get("DOORPI_RUNTIME_DIR") or os.environ.get("RUNTIME_DIRECTORY")
    return Path(folder or "/run/doorpi") / FILE_NAME


def write_health(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` (plus our pid); raises OSError when the folder refuses."""
    write_atomic(path, json.dumps({"pid": os.getpid(), **info}).encode(), 0o644)


def read_health(path: Path | None = None) -> dict[str, Any] | None:
    """What the running gate last reported, or None (no gate running, no file)."""
    p = path or health_path()
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left behind by a gate that has stopped
    except PermissionError:
        pass  # running as another user: alive
    return info if isinstance(info, dict) else None
