"""Face capture with the admin present: the CLI asks, the running gate captures.

Why: consent given with the admin present (`doorpi consent record`) still
needs the face captured, and only the gate process may use the camera (and,
in card mode, the reader the card lies on). `doorpi consent capture ID`
writes a request into the database; the gate polls it once a second, starts
the same three-frame enrolment capture the keypad menu starts, and writes
the outcome back, which the CLI is waiting for. Nothing biometric passes
through here: only the resident id, who asked, and what happened.

A request is one JSON value in ``state.face_capture``::

    {"id": random, "resident_id": 3, "by": "admin:li", "at": wall time,
     "status": "requested" | "capturing" | "enrolled" | "failed", "reason": ""}

A gate answers a request only within `MAX_AGE` seconds of ``at``, so an old
request left behind by a CLI that was interrupted never starts the camera
later.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from doorpi.store.db import get_state, set_state

KEY = "face_capture"
MAX_AGE = 120.0
DONE = ("enrolled", "failed")


@dataclass(frozen=True)
class CaptureRequest:
    id: str
    resident_id: int
    by: str
    at: float
    status: str = "requested"
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.status in DONE


def read(db: Any) -> CaptureRequest | None:
    raw = get_state(db, KEY)
    if not raw:
        return None
    try:
        return CaptureRequest(**json.loads(raw))
    except (ValueError, TypeError):
        return None  # a damaged value is no request


def write(db: Any, req: CaptureRequest) -> None:
    set_state(db, KEY, json.dumps(asdict(req)))


def request(db: Any, resident_id: int, by: str, now: float) -> CaptureRequest:
    """The CLI's side: ask the gate to capture this resident's face now."""
    req = CaptureRequest(secrets.token_hex(8), resident_id, by, now)
    write(db, req)
    return req


class CaptureWatcher:
    """The gate's side: poll() once a second returns a fresh request to start."""

    def __init__(self, db: Any) -> None:
        self.db = db
        seen = read(db)
        self._seen = seen.id if seen else None
        self.current: CaptureRequest | None = None

    def poll(self, now: float) -> CaptureRequest | None:
        req = read(self.db)
        if req is None or req.id == self._seen:
            return None
        self._seen = req.id
        if req.status != "requested" or not 0 <= now - req.at <= MAX_AGE:
            return None
        return req

    def answer(self, req: CaptureRequest, status: str, reason: str = "") -> None:
        """Write the outcome back, unless the CLI has since made a newer request."""
        latest = read(self.db)
        if latest is not None and latest.id != req.id:
            return
        done = CaptureRequest(req.id, req.resident_id, req.by, req.at, status, reason)
        write(self.db, done)
        self.current = None if done.done else done


__all__ = ["MAX_AGE", "CaptureRequest", "CaptureWatcher", "read", "request"]
