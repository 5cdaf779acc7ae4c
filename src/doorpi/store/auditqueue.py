"""Audit records on their way to disk, so the gate never waits for SQLite.

The gate hands each event's records to `AuditQueue.put` after the strike and
feedback have acted. `put` tries one short write at once (its own connection,
a busy timeout of `WRITE_BUSY_MS`); when the database is busy (another process
holds the write lock), full or read-only, the records stay in memory in order
and a thread retries every `RETRY_SECONDS`, oldest first, so the hash chain
gets them in the order they happened. ``put(..., wait=False)`` leaves the write to
that thread at once (the gate's face rejections, several a second with face on:
their commit, an fsync, must not hold up the next card; docs/reliability.md, soak).
Nothing is dropped silently: past `LIMIT` records the oldest go to the journal
(logging) instead, counted in `spilled`, and whatever is still pending at exit is
logged the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from doorpi.store.audit import AuditLog

log = logging.getLogger("doorpi.audit")

Item = tuple[str, dict[str, Any], float]

# 50 ms: a healthy SD card commits a WAL frame in a few ms; anything longer is another
# writer, and the gate loop must not wait for it (strike timing, other inputs).
WRITE_BUSY_MS = 50
# Retry cadence while the database refuses writes: well under WatchdogSec=10s, and
# cheap (one failed BEGIN IMMEDIATE) on a full or read-only partition.
RETRY_SECONDS = 2.0
# About a week of a busy door (~1,400 records a day) in ~3 MB of memory on a 512 MB Pi.
LIMIT = 10_000


class AuditQueue:
    """Ordered, bounded, retried audit writes.

    ``open_log`` returns an `AuditLog` on a read-write connection of its own (it
    may raise: read-only or full partition; it is called again on the next retry).
    ``describe`` turns an exception into a one-line cause. ``on_change`` is called
    (with no arguments) whenever the health seen by `status()` changes.
    """

    def __init__(
        self,
        open_log: Callable[[], AuditLog],
        describe: Callable[[BaseException], str],
        on_change: Callable[[], None] | None = None,
        limit: int = LIMIT,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._open_log = open_log
        self._describe = describe
        self._on_change = on_change
        self._limit = limit
        self._retry = retry_seconds
        self._log: AuditLog | None = None
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._writing = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._now = False  # a put(wait=False) asks the writer thread to write at once
        self.cause = ""
        self.spilled = 0
        self.written_late = 0
        self._told = float("-inf")

    # -------------------------------------------------------------- public

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def status(self) -> dict[str, Any]:
        return {"cause": self.cause, "pending": self.pending, "spilled": self.spilled}

    def put(self, items: list[Item], wait: bool = True) -> None:
        """Queue records (in order) and write them; never raises. ``wait``: try the
        write at once in the caller's thread; False: the writer thread, woken now,
        writes them, so the caller never waits for the disk. Either way every record
        reaches the chain in the order it was put."""
        if not items:
            return
        with self._cond:
            self._items.extend(items)
            overflow = len(self._items) - self._limit
            for _ in range(max(0, overflow)):
                self._spill(self._items.popleft(), "audit queue full")
        tried = False
        if wait and self._writing.acquire(blocking=False):
            tried = True
            try:
                self._write_pending()
            finally:
                self._writing.release()
        if self.pending:  # refused (retry later), busy writer or not tried: the thread
            self._wake(now=not tried)

    def flush(self) -> bool:
        """Try to write everything now (tests, shutdown); True when nothing is left."""
        with self._writing:
            self._write_pending()
        return self.pending == 0

    def close(self, timeout: float = 2.0) -> None:
        """Write what can be written within ``timeout``; log the rest to the journal."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._writing.acquire(timeout=timeout):
            try:
                self._write_pending()
            finally:
                self._writing.release()
        with self._cond:
            while self._items:
                self._spill(self._items.popleft(), "gate stopping before the disk took it")
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log.db.conn.close()
            self._log = None

    # -------------------------------------------------------------- inside

    def _write_pending(self) -> None:
        """Write the queued records in one transaction (caller holds _writing)."""
        with self._cond:
            batch = list(self._items)
        if not batch:
            return
        try:
            if self._log is None:
                self._log = self._open_log()
            self._log.append_many(batch)
        except Exception as exc:
            cause = self._describe(exc)
            if cause == self.cause:
                # The waiting count changed: tell status, at most once a second.
                now = time.monotonic()
                if now - self._told >= 1.0:
                    self._told = now
                    self._changed()
            else:
                log.error(
                    "audit writes deferred: %s (%d record(s) kept in memory, retried every "
                    "%.0f s; SQLite said: %s)", cause, len(batch), self._retry, exc,
                )  # fmt: skip
                self.cause = cause
                self._changed()
            return
        with self._cond:
            for _ in batch:
                self._items.popleft()
        if self.cause:
            self.written_late += len(batch)
            log.warning("audit: %d deferred record(s) written (was: %s)", len(batch), self.cause)
            self.cause = ""
            self._changed()

    def _spill(self, item: Item, why: str) -> None:
        kind, data, ts = item
        self.spilled += 1
        self._told = float("-inf")  # the next failure reports the new count at once
        log.warning("audit record not stored (%s): %s", why,
                    json.dumps({"ts": ts, "kind": kind, **data}, default=str, sort_keys=True))  # fmt: skip

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception as exc:
                log.warning("audit health report: %s", exc)

    def _wake(self, now: bool = False) -> None:
        """Start the writer thread if needed; ``now``: have it write without waiting
        out the retry interval."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
            if now and not self.cause:  # while the disk refuses: every RETRY_SECONDS
                self._now = True
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._now:  # records the disk refused: retry every RETRY_SECONDS
                    self._cond.wait(self._retry)
                self._now = False
                if self._closed:
                    return
                if not self._items:
                    continue
            with self._writing:
                self._write_pending()
