"""The running gate's storage health, for `doorpi status` in another process.

The gate keeps deferred audit records in memory, which another process cannot
see; so it writes a small JSON file to its runtime directory whenever that
health changes (`doorpi.runtimefile`: the folder, the writer's pid, atomic writes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doorpi.runtimefile import read_runtime, runtime_dir, write_runtime

FILE_NAME = "storage-health.json"


def health_path() -> Path:
    return runtime_dir() / FILE_NAME


def write_health(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` (plus our pid); raises OSError when the folder refuses."""
    write_runtime(path, info)


def read_health(path: Path | None = None) -> dict[str, Any] | None:
    """What the running gate last reported, or None (no gate running, no file)."""
    return read_runtime(path or health_path())
