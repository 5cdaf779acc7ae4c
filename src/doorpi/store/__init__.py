"""Storage at the edge: the database, device secrets, residents and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from doorpi.store.audit import AuditLog
from doorpi.store.db import open_db
from doorpi.store.residents import ResidentStore
from doorpi.store.secrets import DeviceSecrets


@dataclass
class Storage:
    db: sqlite_utils.Database
    secrets: DeviceSecrets
    residents: ResidentStore
    audit: AuditLog

    @classmethod
    def open(cls, data_dir: Path) -> Storage:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secrets = DeviceSecrets.load_or_create(data_dir / "keys")
        db = open_db(data_dir / "doorpi.db")
        return cls(db, secrets, ResidentStore(db), AuditLog(db, secrets.audit_key))

    def close(self) -> None:
        self.db.conn.close()
