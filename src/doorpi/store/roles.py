"""Per-resident door-mode roles: the responder flag and the duress PIN.

Kept in their own table (``resident_roles``, one row per resident who has
either) so the identity table stays as it is; the row goes with the resident.
A responder may enter during lockdown. The duress PIN is a second PIN the
admin sets: typed instead of the resident's PIN it opens the door exactly as
the PIN does and raises a silent alarm (output and audit log, nothing at the
gate). It is hashed like the PIN (`doorpi.store.credentials`).
"""

from __future__ import annotations

from typing import Any


class RoleStore:
    def __init__(self, db: Any) -> None:
        self.db = db

    def _set(self, resident_id: int, column: str, value: Any) -> None:
        self.db.execute(
            f"INSERT INTO resident_roles(resident_id, {column}) VALUES (?, ?) "
            f"ON CONFLICT(resident_id) DO UPDATE SET {column} = excluded.{column}",
            [resident_id, value],
        )

    def responder(self, resident_id: int) -> bool:
        r = self.db.execute(
            "SELECT responder FROM resident_roles WHERE resident_id = ?", [resident_id]
        ).fetchone()
        return bool(r and r[0])

    def set_responder(self, resident_id: int, on: bool) -> None:
        self._set(resident_id, "responder", int(on))

    def responders(self) -> list[int]:
        rows = self.db.execute(
            "SELECT resident_id FROM resident_roles WHERE responder = 1 ORDER BY resident_id"
        )
        return [r[0] for r in rows]

    def duress_hash(self, resident_id: int) -> str | None:
        r = self.db.execute(
            "SELECT duress_pin_hash FROM resident_roles WHERE resident_id = ?", [resident_id]
        ).fetchone()
        return r[0] if r else None

    def set_duress_hash(self, resident_id: int, pin_hash: str | None) -> None:
        self._set(resident_id, "duress_pin_hash", pin_hash)
