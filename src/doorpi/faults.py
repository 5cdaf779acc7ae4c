"""Device faults the running gate knows about, shared with `doorpi status`.

The gate raises a fault when an input device goes away (USB keypad, card
reader) or misbehaves (exit button stuck pressed) and clears it when the
device is back. The set of active faults is written to the state table on
every change (rare: a replug, a jammed button), so `doorpi status`, a separate
process, can show them; the gate clears the set when it starts. Each change is
also an audit record (``fault`` notice), written by the gate.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from doorpi.store.db import get_state, set_state

log = logging.getLogger("doorpi.faults")

STATE_KEY = "device_faults"


class FaultBoard:
    """Active faults by device name -> {"detail": one line, "since": epoch seconds}."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.active: dict[str, dict[str, Any]] = {}
        self._save()

    def set(self, device: str, detail: str, since: float) -> bool:
        """Raise (or update) a fault; True if it is new or its detail changed."""
        old = self.active.get(device)
        if old is not None and old["detail"] == detail:
            return False
        self.active[device] = {"detail": detail, "since": round(since, 3)}
        self._save()
        return True

    def clear(self, device: str) -> bool:
        """Clear a fault; True if it was active."""
        if self.active.pop(device, None) is None:
            return False
        self._save()
        return True

    def _save(self) -> None:
        try:
            set_state(self._db, STATE_KEY, json.dumps(self.active, sort_keys=True))
        except Exception as exc:
            log.error("cannot save device faults: %s", exc)


def stored_faults(db: Any) -> dict[str, dict[str, Any]]:
    """The faults the gate last reported ({} when none or never written)."""
    try:
        value = json.loads(get_state(db, STATE_KEY) or "{}")
    except ValueError:
        return {"device_faults": {"detail": "stored fault list unreadable", "since": 0}}
    return value if isinstance(value, dict) else {}
