"""Who holds which credential changed: a counter the running gate polls.

The device CLI (`doorpi pin clear`, `doorpi card remove`, `doorpi resident
disable`, ...) runs in its own process while the gate runs. Every change to a
resident's PIN, cards, ``active`` or ``face_refused`` goes through
`doorpi.store.residents.ResidentStore`, which bumps ``state.credentials_generation``
in the same database; the gate reads it once a second and, when it moved,
re-runs the face-parity check it runs after a sync import
(`doorpi.privacy.parity.gate_dependents`), so a resident left with face as
their only way in shows in `doorpi status` within a second, not at the next
start or sync.
"""

from __future__ import annotations

from typing import Any

from doorpi.store.db import get_state

KEY = "credentials_generation"


def bump(db: Any) -> None:
    """Count one change to who holds which credential (same connection as the change)."""
    db.execute(
        "INSERT INTO state(key, value) VALUES (?, '1') "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [KEY],
    )


def generation(db: Any) -> str:
    """The counter's current value ("0" before the first change)."""
    return get_state(db, KEY, "0") or "0"


class CredentialsWatch:
    """Lets the running gate notice credential changes made by another process.

    ``poll()`` (once a second) is True once per batch of changes since the last
    poll; changes made before the watch was created are not reported (the gate
    checks at start anyway).
    """

    def __init__(self, db: Any) -> None:
        self.db = db
        self._seen = generation(db)

    def poll(self) -> bool:
        now = generation(self.db)
        if now == self._seen:
            return False
        self._seen = now
        return True


__all__ = ["KEY", "CredentialsWatch", "bump", "generation"]
