"""What the soak's slow grants were doing (docs/reliability.md, soak): per grant, from
the card (or final '#') to the strike release, the decision thread's CPU time and its
time runnable but waiting for a CPU (``/proc/thread-self/schedstat``: run and run-queue
nanoseconds, Documentation/scheduler/sched-stats.rst), garbage collections in any thread
(`gc.callbacks`), the audit writer's transactions (commits, fsyncs, WAL checkpoints)
and the face worker's CPU time in the same window. Cost: two reads of a 30-byte /proc
file per decision, outside the timed part. Measurement only: nothing here
changes what the soak counts or asserts.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

Interval = tuple[float, float, Any]


def _schedstat(path: str) -> tuple[int, int]:
    run, wait, _ = Path(path).read_text().split()
    return int(run), int(wait)


class GrantTrace:
    """Install on a soak site after `timed_releases`; pass `before` as `decide`'s
    ``mark`` (called just before its timed part), `after()` right after it; `report()`
    for the soak's JSON; `close()`."""

    KEEP = 20  # slow grants described one by one (the rest are counted)

    def __init__(self, site: Any, worker_pid: int | None) -> None:
        self.worker_pid = worker_pid
        self.gcs: deque[Interval] = deque(maxlen=64)
        self.writes: deque[Interval] = deque(maxlen=64)
        self.slow: list[dict[str, Any]] = []
        self.causes = {"waiting_for_cpu": 0, "off_cpu": 0, "own_cpu": 0}
        self._gc_start: dict[int, float] = {}
        self._self = "/proc/thread-self/schedstat"
        self._at_release: tuple[tuple[int, int], int] | None = None
        self._start: tuple[float, tuple[int, int], int] | None = None
        gc.callbacks.append(self._on_gc)
        queue = site.storage.audit_queue
        self._queue = queue
        write = queue._write_pending

        def traced_write() -> None:
            t = time.perf_counter()
            try:
                write()
            finally:
                self.writes.append((t, time.perf_counter(), threading.current_thread().name))

        queue._write_pending = traced_write
        strike = site.devices.strike
        self._strike = strike
        release = strike.release

        def traced_release() -> None:
            release()  # timed_releases' stamp is taken in there, before these reads
            self._at_release = (_schedstat(self._self), self._worker_ns())

        strike.release = traced_release

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        tid = threading.get_native_id()
        if phase == "start":
            self._gc_start[tid] = time.perf_counter()
        else:
            t0 = self._gc_start.pop(tid, time.perf_counter())
            self.gcs.append((t0, time.perf_counter(), info["generation"]))

    def _worker_ns(self) -> int:
        """The face worker's main thread's CPU time (the models run there: one TFLite
        thread, face.num_threads = 1); one small file, so the trace stays light."""
        if self.worker_pid is None:
            return 0
        try:
            return _schedstat(f"/proc/{self.worker_pid}/schedstat")[0]
        except (OSError, ValueError):
            return 0  # the worker restarting

    def before(self) -> None:
        self._at_release = None
        self._start = (time.perf_counter(), _schedstat(self._self), self._worker_ns())

    def after(self, kind: str, dt: float | None, slow: bool) -> None:
        """``dt``: `decide`'s result; ``slow``: over the issue's bar (2x bench p99)."""
        if dt is None or not slow or self._start is None or self._at_release is None:
            return
        t0, (run0, wait0), w0 = self._start
        (run1, wait1), w1 = self._at_release
        cpu, rq = (run1 - run0) / 1e6, (wait1 - wait0) / 1e6
        ms = dt * 1000
        # The window starts a few µs before decide's own stamp (its mark, then its t).
        a, b = t0, t0 + dt

        def over(events: deque[Interval]) -> list[Interval]:
            return [e for e in list(events) if e[0] < b and e[1] > a]

        off = max(0.0, ms - cpu - rq)
        # The largest of the three: its own work, queued for a CPU, or blocked (the GIL,
        # a lock, the disk).
        shares = {"own_cpu": cpu, "waiting_for_cpu": rq, "off_cpu": off}
        cause = max(shares, key=lambda k: shares[k])
        self.causes[cause] += 1
        if len(self.slow) < self.KEEP:
            self.slow.append({
                "kind": kind, "ms": round(ms, 2), "cpu_ms": round(cpu, 2),
                "runqueue_ms": round(rq, 2), "off_cpu_ms": round(off, 2), "cause": cause,
                "gc": [(g, round((e - s) * 1e3, 2)) for s, e, g in over(self.gcs)],
                "audit_writes_ms": [round((e - s) * 1e3, 2) for s, e, _ in over(self.writes)],
                "worker_cpu_ms": round((w1 - w0) / 1e6, 2),
            })  # fmt: skip

    def report(self) -> dict[str, Any]:
        return {"slow_grant_causes": dict(self.causes), "slow_grants": self.slow}

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        vars(self._queue).pop("_write_pending", None)
