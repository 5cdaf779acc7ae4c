"""Retention: templates end when the consent ends or the resident leaves.

Why a sweeper as well as match-time checks (PIPL 19, 47; MFR): an expired
template must not merely stop matching, it must be *deleted*, physically,
and the deletion must be on record. The vault already refuses to match an
expired row; `RetentionSweeper.sweep` removes every template whose consented
retention has ended, whose resident's validity has ended, whose resident is
gone or disabled (moved out), or whose consent was withdrawn, then purges the database and WAL once.
The gate calls it at start and every hour; `doorpi consent sweep` runs it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from doorpi.privacy.vault import TemplateVault
from doorpi.store import Storage

SWEEP_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True)
class Expired:
    pseudonym: str
    resident_id: int | None
    reason: str  # retention_ended | resident_validity_ended | resident_removed |
    # resident_disabled | consent_withdrawn


class RetentionSweeper:
    def __init__(
        self, storage: Storage, vault: TemplateVault, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self.storage = storage
        self.vault = vault
        self.clock = clock or time.time

    def due(self) -> list[Expired]:
        """Templates that must go now, with the reason (no side effects)."""
        now = self.clock()
        rows = self.storage.db.execute(
            "SELECT t.pseudonym, r.id, t.expires, r.valid_until, c.withdrawn_at, "
            "c.retention_end, r.active FROM face_templates t "
            "LEFT JOIN residents r ON r.pseudonym = t.pseudonym "
            "LEFT JOIN face_consents c ON c.id = t.consent_id ORDER BY t.id"
        ).fetchall()
        out: list[Expired] = []
        for pseudonym, rid, expires, valid_until, withdrawn_at, retention_end, active in rows:
            if rid is None:
                reason = "resident_removed"
            elif not active:  # disabled (moved out, or `active = false` in the roster)
                reason = "resident_disabled"
            elif withdrawn_at is not None:
                reason = "consent_withdrawn"
            elif valid_until is not None and valid_until <= now:
                reason = "resident_validity_ended"
            elif expires <= now or retention_end is None or retention_end <= now:
                reason = "retention_ended"
            else:
                continue
            out.append(Expired(pseudonym, rid, reason))
        return out

    def sweep(self) -> list[Expired]:
        """Delete what is due, log each deletion, purge once; returns what went."""
        due = self.due()
        for item in due:
            self.vault.delete(item.pseudonym, reason=item.reason, by="retention", purge=False)
            self.storage.audit.append(
                "face_template_expired",
                {"resident_id": item.resident_id, "reason": item.reason},
                ts=self.clock(),
            )
        if due:
            self.vault.purge()
        return due


__all__ = ["SWEEP_INTERVAL_SECONDS", "Expired", "RetentionSweeper"]
