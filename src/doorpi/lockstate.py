"""Lockouts that survive a restart: the core `Lockout`, saved in the state table.

Five wrong PINs, a power cut, and the right PIN must still wait out the lock.
`StoredLockout` has the `Lockout` interface; every change is written at once
(one small row; wrong PINs are rare, so SD wear is negligible) as the state
relative to the wall clock at saving time. On start the time the gate was
down is taken from the wall clock: a clock that went backwards counts as no
time passed (the lock stays in full), and no lock grows past the policy's cap.

A stored state that cannot be read is reported (log and `problem`) and the
gate starts with no lockouts rather than refusing to open the door.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from doorpi.core.lockout import Lockout, LockoutPolicy
from doorpi.store.db import get_state, set_state

log = logging.getLogger("doorpi.lockout")

STATE_KEY = "lockouts"


class StoredLockout:
    """A `Lockout` whose state is kept in the database under ``key``.

    ``mono`` and ``wall`` are the gate's clock readers (seconds).
    """

    def __init__(
        self,
        policy: LockoutPolicy,
        db: Any,
        mono: Callable[[], float],
        wall: Callable[[], float],
        key: str = STATE_KEY,
    ) -> None:
        self.core = Lockout(policy)
        self.policy = policy
        self._db, self._mono, self._wall, self._key = db, mono, wall, key
        self.problem = ""
        self._load()

    def _load(self) -> None:
        raw = None
        try:
            raw = get_state(self._db, self._key)
            if raw is None:
                return
            doc = json.loads(raw)
            elapsed = self._wall() - float(doc["saved_at"])
            self.core.restore(doc["subjects"], self._mono(), elapsed)
        except Exception as exc:
            self.problem = (
                f"stored lockouts unreadable ({type(exc).__name__}: {exc}); started empty"
            )
            log.error("%s", self.problem)

    def _save(self) -> None:
        doc = {"saved_at": self._wall(), "subjects": self.core.snapshot(self._mono())}
        try:
            set_state(self._db, self._key, json.dumps(doc, separators=(",", ":")))
        except Exception as exc:  # the door keeps working if the disk does not
            log.error("cannot save lockout state: %s", exc)

    def locked_for(self, subject: str, now: float) -> float:
        return self.core.locked_for(subject, now)

    def failure(self, subject: str, now: float) -> float:
        started = self.core.failure(subject, now)
        self._save()
        return started

    def success(self, subject: str) -> None:
        if self.core.failures(subject) or self.core.locked_for(subject, self._mono()):
            self.core.success(subject)
            self._save()
        else:
            self.core.success(subject)

    def failures(self, subject: str) -> int:
        return self.core.failures(subject)
