"""Where the audit write sits in the gate's path: after the strike (a grant's latency
never includes the disk), and off the gate thread for face rejections (several a second
with face on: the next card must not wait for their commit). Real SQLite, real Gate."""

from __future__ import annotations

import threading
import time

import pytest

from doorpi.clocks import ManualClock
from doorpi.core.events import FaceRejected
from doorpi.sim.site import SimulatedSite, sim_config
from doorpi.store import Storage
from doorpi.store.auditqueue import AuditQueue
from doorpi.store.db import open_db

MONDAY_9 = 1_772_442_000.0  # 2026-03-02 09:00 UTC
CARD = "04a1b2c3d4e5f6"


@pytest.fixture
def site(tmp_path):
    s = SimulatedSite(sim_config({}, tmp_path / "data"), ManualClock(MONDAY_9))
    s.add_resident({"name": "Alice", "keypad_id": "101", "cards": [CARD]})
    yield s
    s.close()


def _spy_writes(q: AuditQueue, steps: list[tuple[str, ...]]) -> None:
    """Append ("write", thread name, record kinds...) each time ``q`` writes."""
    orig = q._write_pending

    def write() -> None:
        with q._cond:
            kinds = tuple(kind for kind, _, _ in q._items)
        steps.append(("write", threading.current_thread().name, *kinds))
        orig()

    q._write_pending = write  # type: ignore[method-assign]


def _wait_written(site: SimulatedSite, kind: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kinds = [r.kind for r in site.storage.audit.records()]
        if kind in kinds:
            return kinds
        time.sleep(0.01)
    raise AssertionError(f"no {kind} record in the audit log within {timeout} s")


def test_grant_releases_the_strike_before_its_audit_record_is_written(site):
    steps: list[tuple[str, ...]] = []
    strike = site.devices.strike
    orig = strike.release

    def release() -> None:
        steps.append(("release",))
        orig()

    strike.release = release  # type: ignore[method-assign]
    _spy_writes(site.storage.audit_queue, steps)
    site.card(CARD)
    main = threading.current_thread().name
    # The strike first, then one write in the gate's own thread holding the decision:
    # durable when the event is done (the power-cut tests count on it).
    assert steps and steps[0] == ("release",), steps
    assert [s[:2] for s in steps[1:]] == [("write", main)], steps
    assert "access" in steps[1]
    assert site.storage.audit_queue.pending == 0
    assert "access" in [r.kind for r in site.storage.audit.records()]


def test_face_rejection_is_written_by_the_audit_writer_not_the_gate_thread(site):
    steps: list[tuple[str, ...]] = []
    _spy_writes(site.storage.audit_queue, steps)
    site.gate.submit(FaceRejected("no_match"))
    site.gate.process_pending()
    main = threading.current_thread().name
    assert not [s for s in steps if s[1] == main], f"the gate thread wrote: {steps}"
    kinds = _wait_written(site, "face_rejected")  # the writer thread, at once
    assert [s[1] for s in steps] and {s[1] for s in steps} == {"audit-writer"}, steps
    # A card after it: its grant is written in order after the rejection.
    site.card(CARD)
    kinds = [r.kind for r in site.storage.audit.records()]
    assert kinds.index("face_rejected") < kinds.index("access"), kinds
    assert site.storage.audit.verify().ok


def test_put_without_wait_is_written_at_once_by_the_thread(data_dir):
    store = Storage.open(data_dir)
    db = store.data_dir / "doorpi.db"
    q = AuditQueue(lambda: type(store.audit)(open_db(db, migrate=False), store.secrets.audit_key),
                   str, retry_seconds=3600)  # fmt: skip
    try:
        q.put([("notice", {"n": 1}, 1.0)], wait=False)
        deadline = time.monotonic() + 5
        while q.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert q.pending == 0, "the writer thread waited out its retry interval"
        # A put that finds the writer busy (its lock held) is written right after it.
        with q._writing:
            q.put([("notice", {"n": 2}, 2.0)])
            assert q.pending == 1
        deadline = time.monotonic() + 5
        while q.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert q.pending == 0, "a put that found the writer busy waited for the retry"
        assert [r.data["n"] for r in store.audit.records()] == [1, 2]
    finally:
        q.close()
        store.close()


def test_right_pin_after_a_wrong_one_releases_before_the_lockout_is_saved(tmp_path):
    """The resident's failure count is cleared (a write to the store) after the strike
    is released, not in the grant's time."""
    site = SimulatedSite(sim_config({}, tmp_path / "data"), ManualClock(MONDAY_9))
    try:
        rid = site.add_resident({"name": "Bob", "keypad_id": "102", "pin": "2468"})
        steps: list[str] = []
        strike, lockout = site.devices.strike, site.gate.lockout
        release, save = strike.release, lockout._save
        strike.release = lambda: (steps.append("release"), release())[1]  # type: ignore[method-assign]
        lockout._save = lambda: (steps.append("save"), save())[1]  # type: ignore[method-assign]
        for k in "102#1357#":
            site.key(k)
        assert steps == ["save", "save"], steps  # the keypad's and Bob's failure counts
        assert lockout.failures(f"resident:{rid}") == 1
        for k in "102#2468#":
            site.key(k)
        assert steps[2:] == ["release", "save"], steps
        assert lockout.failures(f"resident:{rid}") == 0
    finally:
        site.close()


def test_put_without_wait_keeps_the_retry_cadence_while_the_disk_refuses(data_dir):
    """A refused write (busy, full, read-only) is retried every RETRY_SECONDS, not at
    every face rejection."""
    import sqlite3

    store = Storage.open(data_dir)
    attempts: list[float] = []

    def refuse():
        attempts.append(time.monotonic())
        raise sqlite3.OperationalError("database or disk is full")

    q = AuditQueue(refuse, lambda e: f"full ({e})", retry_seconds=3600)
    try:
        q.put([("notice", {"n": 1}, 1.0)])  # tried at once in this thread: refused
        assert len(attempts) == 1 and q.cause
        for n in range(2, 5):
            q.put([("notice", {"n": n}, float(n))], wait=False)
        time.sleep(0.3)
        assert len(attempts) == 1, f"{len(attempts)} attempts: retried at every put"
        assert q.pending == 4
    finally:
        q.close(timeout=0.1)
        store.close()
