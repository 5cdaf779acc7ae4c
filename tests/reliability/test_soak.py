"""Load and soak (issue #18): 10,000 residents, a card tap or a PIN every 100 ms of
wall time; resident memory stays flat, no grant (card or final '#' to the strike
release) is slower than twice the p99 of the same grant in `doorpi bench core`'s
``grant_at_soak_site`` (doorpi.benchcore.grant_latency: the same code, a site of the
same 10,001 residents, the same 100 ms pace, no face path), measured first in this
process, and every decision is in the audit log.

The face path runs all along, as on a gate with face on: the real TFLite models on
photos from the shared faces set (found as the suite finds it: fsutil.find_shared_dir),
fed by a camera double at up to 30 frames/s through the device's camera thread
(`CameraLoop`), continuous trigger so every frame goes through the models, which run
in the face worker process as on the device (doorpi.faceworker; face.process =
"worker"). ``DOORPI_SOAK_FACE_PROCESS=inline`` runs them in the gate's process
instead, to measure the difference (the test then fails its gate-CPU bound, as it must).

Every grant over the issue's bar is listed in the report with its time. With
``DOORPI_SOAK_TRACE=1`` each is also described (soak_trace.GrantTrace: its own CPU,
run-queue wait and blocked time, collections, audit-writer transactions, the face
worker's CPU meanwhile), so a miss names its cause. The trace is off by default: its
collection callbacks, wrapped audit writes and /proc reads are work the gate does not
do, and alternating runs missed the bar more often with it on (docs/reliability.md).

Short form 8 s (about 80 decisions) after a short reference (40 card and 15 PIN grants,
about 6 s); `make reliability` runs 10 minutes after the full one (200 and 60).
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_support import FORM, LONG, report, scale
from soak_trace import GrantTrace

from doorpi.benchcore import (
    SOAK_OVERRIDES,
    SOAK_PERIOD,
    SOAK_PIN,
    SOAK_RESIDENTS,
    decide,
    grant_latency,
    idle,
    populate,
    soak_card,
    timed_releases,
)
from doorpi.clocks import ManualClock, SystemClock
from doorpi.facebuild import CameraLoop
from doorpi.hardware.camera import Frame, load_rgb
from doorpi.heap import freeze_startup_heap
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.sim.site import SimulatedSite, sim_config
from doorpi.store import Storage

RESIDENTS = SOAK_RESIDENTS
PIN_KEYS = f"{SOAK_PIN[0]}#{SOAK_PIN[1]}#"
# Short and medium forms, on the shared 2-core test machine where other engineers'
# tests run too (docs/reliability.md, soak): the p99 floor and the slowest grant
# allowed (a person notices about 0.1 s at a door). The long form asserts the issue's
# literal bar instead: no grant slower than 2x the bench p99 of the same run.
P99_FLOOR = 0.100
MAX_GRANT = 0.5
# Short form: RSS growth over the measured second half (~3 s) that counts as a leak.
# Arena and page-cache steps seen there are 1-2 MiB; a frame kept per face call
# (~1 GiB/min) would add ~60 MiB.
SHORT_GROWTH_KIB = 8192
# The gate's camera thread's own CPU time per face frame: the proxy's frame copy, the
# fusion and matching, the liveness rules. The models (20-60 ms of CPU per frame here)
# must not be in it: they run in the worker process.
GATE_CPU_PER_FRAME = 0.005
FACE_PROCESS = os.environ.get("DOORPI_SOAK_FACE_PROCESS", "worker")
TRACE = os.environ.get("DOORPI_SOAK_TRACE") == "1"
PERIOD = SOAK_PERIOD
# Cheap Argon2 (the soak measures the gate, not the KDF); unknown cards and wrong PINs
# are part of the stream, so the unknown-card pause (CardPacer) is off: with it on,
# known taps after a run of unknown ones go unchecked for 5 s, by design. Likewise the
# keypad lockout is set to 100 failures in 10 s (the config's limits): one wrong PIN
# every 2 s would otherwise lock the keypad for good in a long run, also by design
# (the lockout is tested in tests/core and tests/gate). Shared with the reference.
PIN_COST = SOAK_OVERRIDES


def _faces() -> Path:
    """The shared photos (``$DOORPI_SHARED_DIR`` or a ``shared`` folder above the clone)."""
    from doorpi.fsutil import find_shared_dir

    found = find_shared_dir(Path(__file__).resolve().parents[2], need="faces")
    assert found, "shared photos not found (set DOORPI_SHARED_DIR to the folder holding faces/)"
    return found / "faces"


FACE_ON = {
    "face": {"enabled": True, "trigger": "continuous", "allow_continuous": True,
             "num_threads": 1, "process": FACE_PROCESS},
    "site": {"controller": "Soak PM Co.", "contact": "+86 10 5555 0100"},
}  # fmt: skip


class PhotoCamera:
    """The camera interface's double: real photos in turn, at most 30 frames/s."""

    def __init__(self, photos: list[np.ndarray]) -> None:
        self.photos = photos
        self.captures = 0
        self.thread_cpu: list[float] = []  # the camera thread's CPU seconds at each capture

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def capture(self) -> Frame:
        self.thread_cpu.append(time.thread_time())
        time.sleep(1 / 30)
        self.captures += 1
        return Frame(self.photos[self.captures % len(self.photos)])

    def close(self) -> None:
        pass


def _photos(n: int = 24) -> list[np.ndarray]:
    paths = sorted(_faces().glob("*/*.jpg"))[::7][:n]
    assert len(paths) == n, f"need {n} photos under {_faces()}"
    return [load_rgb(p, max_side=640) for p in paths]


def _rss_kib(pid: int | None = None) -> int:
    status = Path(f"/proc/{pid or os.getpid()}/status")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in {status}")


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared with another process (the frame slot, the
    libraries) counted by share, so gate + worker add up to what both really use."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise AssertionError(f"no Pss in /proc/{pid}/smaps_rollup")


def _p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.99 * len(xs)) - 1)]


def test_soak_10k_residents(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="doorpi")
    # Reference: `doorpi bench core`'s grant_at_soak_site, the same decisions by the same
    # code on a site of the same size at the same pace, without the face path.
    samples = {"cards": 200, "pins": 60} if FORM != "short" else {"cards": 40, "pins": 15}
    ref = grant_latency(data_dir=tmp_path / "ref", **samples)
    bench = {k: ref[k]["p99_ms"] / 1000 for k in ("card", "pin")}
    store = Storage.open(tmp_path / "data")  # face needs an impact assessment on file
    AssessmentRegistry(store.db, store.audit).record(ImpactAssessment(
        purpose="Soak test of the gate with the face path running.",
        necessity="Measures memory and latency; no real residents at all.",
        impact="None: simulated residents and public photos only.",
        measures="Simulated site in a temporary folder, deleted afterwards.",
        author="soak", created=1_772_442_000.0))  # fmt: skip
    store.close()
    site = SimulatedSite(sim_config({**PIN_COST, **FACE_ON}, tmp_path / "data"),
                         ManualClock(1_772_442_000.0))  # fmt: skip
    path = site.face_path
    assert path is not None, site.gate.face_problem
    site.face_path = None  # the camera thread alone drives it, on its own clock
    worker = site.gate.face_engine.worker
    assert (worker is not None) == (FACE_PROCESS == "worker"), FACE_PROCESS
    if worker is not None:  # measured from here on: the models loaded (the gate does not wait)
        assert worker.wait_ready(60), worker.problem()
    camera = PhotoCamera(_photos())
    loop = CameraLoop(path, camera, SystemClock())
    db = site.storage.db
    populate(site, RESIDENTS)
    freeze_startup_heap()  # as `doorpi run` does once it has started (doorpi.heap)
    before = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    released = timed_releases(site)
    # slow grants' causes, on request only (it is measurement, not the gate's own work)
    trace = GrantTrace(site, worker.pid if worker is not None else None) if TRACE else None

    rnd = random.Random(10_000)
    duration = scale(8, 600)
    loop.start()
    # Warm-up, untimed: the face path's first results start the audit writer thread
    # (face rejections are written there, doorpi.store.auditqueue), whose malloc arena
    # and SQLite page cache then fill once (1-2 MiB); in the 8 s short form that step
    # could land in the half the RSS slope is taken from.
    idle(site, time.monotonic() + 2.0)
    times: dict[str, list[float]] = {"card": [], "pin": []}
    rss, decisions = [], 0
    worker_samples: list[tuple[float, int]] = []  # the face worker's RSS, sampled alike
    t0 = time.monotonic()
    next_at = t0
    while (now := time.monotonic()) - t0 < duration:
        if now < next_at:
            idle(site, next_at)
        next_at += PERIOD
        roll = rnd.random()
        if roll < 0.8:  # a resident's card (grant), sometimes an unknown one (deny)
            uid = rnd.randrange(RESIDENTS) if roll < 0.7 else RESIDENTS + rnd.randrange(10**6)
            action = ("card", soak_card(uid))
        else:
            action = ("pin", PIN_KEYS if roll < 0.95 else "7#11111#")
        dt = decide(site, released, action, PERIOD, mark=trace.before if trace else None)
        if trace is not None:
            trace.after(action[0], dt, dt is not None and dt > 2 * bench[action[0]])
        if dt is not None:
            times[action[0]].append(dt)
        decisions += 1
        if decisions % 10 == 0:
            # MockFactory keeps every pin change (~270 KiB/min here, seen with tracemalloc);
            # a Pi's pins keep none: that test-only history is not the gate's memory.
            for mock_pin in list(site.factory.pins.values()):
                mock_pin.clear_states()
            rss.append((time.monotonic() - t0, _rss_kib()))
            if worker is not None and (pid := worker.pid) is not None:
                worker_samples.append((time.monotonic() - t0, _rss_kib(pid)))
    worker_rss = _rss_kib(worker.pid) if worker is not None else 0
    gate_pss = _pss_kib(os.getpid())
    worker_info = {"worker_rss_kib": worker_rss, "worker_pss_kib": _pss_kib(worker.pid), "worker_starts": worker.starts,
                   "worker_load_s": [round(x, 3) for x in worker.load_times],
                   "face_call_ms_mean": round(worker.call_seconds / max(worker.calls, 1) * 1e3, 1),
                   "face_call_ms_max": round(worker.call_max * 1e3, 1),
                   } if worker is not None else {}  # fmt: skip
    cpu = camera.thread_cpu
    loop.stop()
    if trace is not None:
        trace.close()
    face = path.stats
    gate_cpu = (cpu[-1] - cpu[0]) / max(len(cpu) - 1, 1)  # camera thread, per frame
    site.storage.audit_queue.flush()
    after = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    site.close()

    xs, ys = [t for t, _ in rss], [r for _, r in rss]
    half = len(rss) // 2  # the slope of the second half: warm-up (caches, imports) excluded
    slope = statistics.linear_regression(xs[half:], ys[half:]).slope * 60  # KiB per minute
    worker_slope = 0.0
    if len(worker_samples) >= 4:
        wx, wy = zip(*worker_samples[len(worker_samples) // 2 :], strict=True)
        worker_slope = statistics.linear_regression(wx, wy).slope * 60
    every = times["card"] + times["pin"]
    slow = {k: [round(t * 1000, 1) for t in v if t > 2 * bench[k]] for k, v in times.items()}
    report("soak", {
        "face_process": FACE_PROCESS, "load_average": os.getloadavg(),
        "residents": RESIDENTS + 1, "seconds": duration, "decisions": decisions,
        **{f"{k}_{q}_ms": round(f(v) * 1000, 2) for k, v in times.items()
           for q, f in (("p50", statistics.median), ("p99", _p99), ("max", max))},
        **{f"{k}_bench_p99_ms": round(v * 1000, 2) for k, v in bench.items()},
        "slower_than_2x_bench_p99": {k: len(v) for k, v in slow.items()},
        "slower_than_2x_bench_p99_ms": slow,
        "all_p99_ms": round(_p99(every) * 1000, 2),
        **(trace.report() if trace is not None else {"slow_grant_causes": "not traced (DOORPI_SOAK_TRACE=1)"}),
        "rss_start_kib": ys[0], "rss_end_kib": ys[-1],
        "rss_slope_kib_per_min": round(slope, 1), "worker_rss_slope_kib_per_min": round(worker_slope, 1), "gate_pss_kib": gate_pss,
        "audit_records_added": after - before,
        "grants": {k: len(v) for k, v in times.items()},
        "face_frames_processed": face.frames_processed,
        "face_frames_per_s": round(face.frames_processed / duration, 1),
        "face_outcomes": dict(face.by_reason),
        "gate_cpu_ms_per_frame": round(gate_cpu * 1e3, 2),
        **worker_info,
    })  # fmt: skip
    assert face.frames_processed >= duration, f"face path idle: {face}"  # >= 1 frame/s
    assert not loop.problem(), loop.problem()
    grants = {k: len(v) for k, v in times.items()}
    assert grants["card"] > decisions / 2 and grants["pin"] > decisions / 20, (grants, decisions)
    assert decisions >= duration / PERIOD * 0.9, f"only {decisions} decisions in {duration} s"
    assert after - before >= decisions, f"{decisions} decisions, {after - before} audit records"
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("error while")]
    assert not failed, f"the gate failed to handle {len(failed)} events: {failed[:3]}"
    # The models never run on the gate's side: its camera thread's CPU per frame is the
    # proxy's and the engines' share only (load-independent, unlike latency).
    assert gate_cpu <= GATE_CPU_PER_FRAME, (
        f"the gate's camera thread spent {gate_cpu * 1e3:.1f} ms CPU per face frame "
        f"(limit {GATE_CPU_PER_FRAME * 1e3:.0f}): the models run in the gate's process?"
    )
    if LONG:  # the literal bar: no grant slower than 2x the bench p99
        assert not any(slow.values()), f"grants slower than 2x bench p99 (ms): {slow}"
    # Short and medium forms (a shared machine's scheduling noise, docs/reliability.md):
    # the p99 of each kind within max(2x bench p99, P99_FLOOR), none over MAX_GRANT.
    for k, v in times.items():
        bar = max(2 * bench[k], P99_FLOOR)
        assert _p99(v) <= bar, f"{k} grant p99 {_p99(v) * 1000:.1f} ms > {bar * 1000:.1f} ms"
    worst = max(every)
    assert worst <= MAX_GRANT, f"a grant took {worst * 1000:.0f} ms (limit {MAX_GRANT * 1000:.0f})"
    if FORM in ("long", "medium"):  # minutes of samples: the slope is the measurement
        limit = scale(8192, 100)
        assert slope < limit, f"RSS grows {slope:.0f} KiB/min (limit {limit})"
        assert worker_slope < limit, f"the worker's RSS grows {worker_slope:.0f} KiB/min ({limit})"
    else:  # seconds of samples: one 1-2 MiB arena step reads as +30 MiB/min, so a gross
        # leak only, as growth over the measured half (a frame a call: ~60 MiB there)
        grown = ys[-1] - ys[half]
        w_grown = (
            worker_samples[-1][1] - worker_samples[len(worker_samples) // 2][1]
            if worker_samples
            else 0
        )
        assert grown < SHORT_GROWTH_KIB, f"RSS grew {grown} KiB in {xs[-1] - xs[half]:.1f} s"
        assert w_grown < SHORT_GROWTH_KIB, f"the worker's RSS grew {w_grown} KiB in the last half"
