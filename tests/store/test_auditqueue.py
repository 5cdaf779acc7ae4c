"""AuditQueue on a real SQLite file: order kept across failures, a bound that
spills to the journal (counted), nothing left unsaid at close."""

from __future__ import annotations

import logging
import sqlite3

from doorpi.store import Storage
from doorpi.store.auditqueue import AuditQueue
from doorpi.store.db import open_db


class Flaky:
    """Opens the real audit log, but fails (as SQLite would) while ``down`` is set."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.down = True

    def open_log(self):
        if self.down:
            raise sqlite3.OperationalError("database is locked")
        return type(self.store.audit)(
            open_db(self.store.data_dir / "doorpi.db", migrate=False), self.store.secrets.audit_key
        )


def test_records_wait_in_order_and_reach_the_chain(data_dir):
    store = Storage.open(data_dir)
    flaky = Flaky(store)
    q = AuditQueue(flaky.open_log, lambda e: f"busy ({e})", retry_seconds=3600)
    q.put([("access", {"n": 1}, 1.0)])
    q.put([("access", {"n": 2}, 2.0), ("access", {"n": 3}, 3.0)])
    assert q.pending == 3 and q.cause == "busy (database is locked)"
    assert list(store.audit.records()) == []
    flaky.down = False
    q.put([("access", {"n": 4}, 4.0)])  # the next put writes the backlog first
    assert q.pending == 0 and q.cause == ""
    assert [r.data["n"] for r in store.audit.records()] == [1, 2, 3, 4]
    assert [r.ts for r in store.audit.records()] == [1.0, 2.0, 3.0, 4.0]
    assert store.audit.verify().ok
    q.close()
    store.close()


def test_bound_spills_oldest_to_the_journal_and_counts_them(data_dir, caplog):
    store = Storage.open(data_dir)
    flaky = Flaky(store)
    changes: list[int] = []
    q = AuditQueue(flaky.open_log, str, on_change=lambda: changes.append(1), limit=3,
                   retry_seconds=3600)  # fmt: skip
    caplog.set_level(logging.INFO)
    for n in range(5):
        q.put([("access", {"n": n}, float(n))])
    assert q.pending == 3 and q.spilled == 2
    assert caplog.text.count("audit record not stored (audit queue full)") == 2
    assert '"n": 0' in caplog.text and '"n": 1' in caplog.text
    assert changes  # the health file is told
    q.close(timeout=0.1)  # still down: the rest goes to the journal too
    assert q.spilled == 5 and '"n": 4' in caplog.text
    store.close()


def test_status_reports_pending_and_cause(data_dir):
    store = Storage.open(data_dir)
    flaky = Flaky(store)
    q = AuditQueue(flaky.open_log, lambda e: "database busy", retry_seconds=3600)
    q.put([("access", {}, 1.0)])
    assert q.status() == {"cause": "database busy", "pending": 1, "spilled": 0}
    flaky.down = False
    assert q.flush() and q.status() == {"cause": "", "pending": 0, "spilled": 0}
    q.close()
    store.close()
