"""Device faults the running gate knows about, shared with `doorpi status`.

The gate raises a fault when an input device goes away (USB keypad, card
reader) or misbehaves (exit button stuck pressed) and clears it when the
device is back. The set of active faults is written on every change (rare: a
replug, a jammed button) to two places:

* the runtime file ``faults.json`` (`doorpi.runtimefile`: the gate's tmpfs
  runtime directory, with its pid), which takes writes when the data partition
  does not. `doorpi status` shows it while the gate runs; `doorpi pcscd-watch`
  reads only it. Each fault there also has ``raised_monotonic``: the
  CLOCK_MONOTONIC time this gate process first raised it (kept while only its
  detail changes), the same clock in every process of this boot;
* the state table, so `doorpi status` still shows them after the gate stopped.

The gate clears the set when it starts. Each change is also an audit record
(``fault`` notice), written by the gate. Imports of the store stay inside the
functions that need it: the pcscd watch imports this module without a database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doorpi.runtimefile import RuntimeFileError, load_runtime, runtime_dir, write_runtime

log = logging.getLogger("doorpi.faults")

STATE_KEY = "device_faults"
#: The runtime file's name, in the gate's runtime directory (`faults_path`).
FILE_NAME = "faults.json"


def faults_path() -> Path:
    return runtime_dir() / FILE_NAME


class FaultBoard:
    """Active faults by device name -> {"detail": one line, "since": epoch seconds}."""

    def __init__(self, db: Any, mono: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._mono = mono
        self.active: dict[str, dict[str, Any]] = {}
        self.raised: dict[str, float] = {}  # device -> CLOCK_MONOTONIC, first raised
        self._file: Path | None = None
        self._file_failing = False
        self._save()

    def set(self, device: str, detail: str, since: float) -> bool:
        """Raise (or update) a fault; True if it is new or its detail changed."""
        old = self.active.get(device)
        if old is not None and old["detail"] == detail:
            return False
        if old is None:
            self.raised[device] = round(self._mono(), 3)
        self.active[device] = {"detail": detail, "since": round(since, 3)}
        self._save()
        return True

    def clear(self, device: str) -> bool:
        """Clear a fault; True if it was active."""
        if self.active.pop(device, None) is None:
            return False
        self.raised.pop(device, None)
        self._save()
        return True

    def publish(self, path: Path) -> None:
        """Keep ``path`` (the runtime dir's faults file) up to date from now on."""
        self._file = path
        self._write_file()

    def unpublish(self) -> None:
        """The gate stops: remove the runtime file (status then shows the stored faults)."""
        if self._file is not None:
            try:
                self._file.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", self._file, exc)
            self._file = None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The active faults as the runtime file holds them."""
        return {k: {**v, "raised_monotonic": self.raised.get(k, 0.0)}
                for k, v in sorted(self.active.items())}  # fmt: skip

    def _save(self) -> None:
        self._write_file()  # first: the tmpfs takes it when the data partition does not
        try:
            from doorpi.store.db import set_state

            set_state(self._db, STATE_KEY, json.dumps(self.active, sort_keys=True))
        except Exception as exc:
            log.error("cannot save device faults: %s", exc)

    def _write_file(self) -> None:
        """Write the runtime file; a failure is logged once (until a write works again)
        and the stale file removed, so that no reader takes it as the gate's word."""
        if self._file is None:
            return
        try:
            write_runtime(self._file, {"updated": round(time.time(), 3),
                                       "faults": self.snapshot()})  # fmt: skip
        except Exception as exc:  # never breaks the gate
            if not self._file_failing:
                log.error("cannot write %s (device faults shown from the database "
                          "only): %s", self._file, exc)  # fmt: skip
            self._file_failing = True
            with contextlib.suppress(OSError):
                self._file.unlink(missing_ok=True)
            return
        if self._file_failing:
            log.info("%s written again", self._file)
            self._file_failing = False


def stored_faults(db: Any) -> dict[str, dict[str, Any]]:
    """The faults the gate last stored ({} when none or never written)."""
    from doorpi.store.db import get_state

    try:
        value = json.loads(get_state(db, STATE_KEY) or "{}")
    except ValueError:
        return {"device_faults": {"detail": "stored fault list unreadable", "since": 0}}
    return value if isinstance(value, dict) else {}


def running_faults(path: Path | None = None) -> dict[str, dict[str, Any]] | None:
    """The running gate's active faults from its runtime file (each with "detail",
    "since" and "raised_monotonic"): None when no gate is running (no file, or the
    pid in it has ended); raises RuntimeFileError (one line naming the file) when the
    file cannot be read or is garbled."""
    p = path or faults_path()
    info = load_runtime(p)
    if info is None:
        return None
    faults = info.get("faults")
    if not isinstance(faults, dict):
        raise RuntimeFileError(f"{p}: garbled (no faults object)")
    for name, entry in faults.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("detail"), str)
        if not ok or not all(_number(entry.get(k)) for k in ("since", "raised_monotonic")):
            raise RuntimeFileError(f"{p}: garbled (fault {name!r})")
    return faults


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
