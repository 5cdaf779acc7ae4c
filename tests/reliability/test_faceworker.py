"""The face models in their own process (doorpi.faceworker, issue #18 "Load and soak").

A real worker process with the real TFLite models on real photos from the shared
faces set: its results equal the in-process pipeline's; it runs at lower priority and
imports nothing of the hardware; a hung worker is killed and restarted (the face window
ends FaceRejected, card and PIN stay fast); a killed one is the ``camera`` fault until
a new one has loaded, with back-off when it keeps dying; models that fail to load are
the ``face models`` fault, as inline; no face data on disk or in /dev/shm. The latency and gate-CPU side is
tests/reliability/test_soak.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_support import (
    ALICE,
    BOB,
    FaultyCamera,
    access,
    corrupted_models,
    face_site,
    fault,
    pin,
    prompt,
    pumper,
    shared_faces,
    start_camera_loop,
    status,
    status_text,
    wait_for,
)
from reliability_support import report

from doorpi.config import ConfigError
from doorpi.devicewatch import DeviceWatch
from doorpi.facebuild import CameraLoop
from doorpi.faceworker import (
    FaceWorker,
    FaceWorkerTimeout,
    RemoteObject,
    WorkerSpec,
    remote_liveness_meter,
    restart_delay,
)
from doorpi.hardware.camera import load_rgb
from doorpi.sim.site import SimulatedSite, sim_config
from doorpi.vision.liveness import LivenessMeter
from doorpi.vision.pipeline import FacePipeline

# Card/PIN actions while the face worker hangs or restarts: well under the worker's
# 2.5 s deadline, generous for a shared 2-core machine.
PROMPT_LIMIT = 0.5
HARDWARE_MODULES = ("gpiozero", "smartcard", "doorpi.hardware", "doorpi.gate", "doorpi.store")


def _photos(n: int) -> list[np.ndarray]:
    paths = sorted(shared_faces().glob("*/*.jpg"))[::5][:n]
    assert len(paths) == n, f"need {n} photos under {shared_faces()}"
    return [load_rgb(p, max_side=640) for p in paths]


def _thread_priorities(pid: int) -> dict[int, tuple[int, int]]:
    """Thread id -> (nice, scheduling policy), from /proc/PID/task/*/stat (proc(5):
    fields 19 and 41, counted after the command name's closing parenthesis)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out[int(task.name)] = (int(fields[16]), int(fields[38]))
    return out


def _shm() -> set[str]:
    """Names in /dev/shm now (machine-wide: other processes add theirs too)."""
    return set(os.listdir("/dev/shm"))


def _shared_maps(pid: int) -> list[str]:
    """The shared-memory mappings of ``pid``: named (/dev/shm) and anonymous (memfd)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return [line.split(None, 5)[-1] for line in lines if "/dev/shm/" in line or "memfd:" in line]


def _scan_for(needles: list[bytes], roots: list[Path]) -> list[str]:
    """Files under ``roots`` holding any of ``needles`` (bytes of an embedding)."""
    hits = []
    for root in roots:
        for p in [root] if root.is_file() else root.rglob("*"):
            if p.is_file():
                try:
                    data = p.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    hits.append(str(p))
    return hits


@pytest.fixture
def worker():
    w = FaceWorker(WorkerSpec(None, 1))
    try:
        yield w
    finally:
        w.close()


def test_worker_matches_inline_on_real_photos_at_low_priority(worker, tmp_path) -> None:
    shm_before = _shm()
    t0 = time.monotonic()
    worker.start()
    started = time.monotonic() - t0
    assert started < 0.1, f"start() waited {started:.2f} s (the gate must not wait for models)"
    assert worker.wait_ready(60), worker.problem()
    info = worker.info_now()
    pid = worker.pid
    assert pid is not None and pid != os.getpid() and info["pid"] == pid
    # Priority of every thread (numpy's, the models'), read from the kernel.
    threads = _thread_priorities(pid)
    assert len(threads) >= 2 and set(threads.values()) == {(10, os.SCHED_BATCH)}, threads
    hardware = [m for m in info["modules"] if m.startswith(HARDWARE_MODULES)]
    assert hardware == [], f"the face worker imported {hardware}"
    assert "ai_edge_litert" in " ".join(info["modules"]) or "tflite_runtime" in " ".join(
        info["modules"]
    ), "no TFLite runtime in the worker: are the models running elsewhere?"

    remote = RemoteObject(worker, "pipeline")
    inline = FacePipeline.load(None, 1)
    ok = 0
    needles = []
    for frame in _photos(12):
        a, b = remote.process(frame), inline.process(frame)
        assert (a.reason, a.faces) == (b.reason, b.faces)
        assert (a.detection is None) == (b.detection is None)
        if b.detection is not None:
            assert np.allclose(a.detection.box, b.detection.box, atol=1e-3)
            assert np.allclose(a.mesh.points, b.mesh.points, atol=1e-3)
        if b.ok:
            ok += 1
            cos = float(a.embedding @ b.embedding) / float(
                np.linalg.norm(a.embedding) * np.linalg.norm(b.embedding)
            )
            assert cos >= 0.9999, f"worker and inline embeddings differ: cosine {cos}"
            needles.append(b.embedding.astype(np.float32).tobytes()[:32])
        # The frame does not linger in the shared slot after the call.
        assert worker._mm[: frame.nbytes] == bytes(frame.nbytes)
    assert ok >= 6, f"only {ok} of 12 photos passed the gates: too few to compare"
    # The liveness meter: its detector and mesh run in the worker when no mesh is given.
    frame = _photos(1)[0]
    here = LivenessMeter(inline.detector, inline.models.mesh).measure(frame, 1.0)
    there = remote_liveness_meter(worker).measure(frame, 1.0)
    assert here is not None and there is not None
    assert abs(here.yaw - there.yaw) < 1e-3 and np.allclose(here.points, there.points, atol=1e-3)
    # Errors cross as the same exception, and the worker keeps serving.
    with pytest.raises(AttributeError):
        remote.no_such_method()
    assert remote.process(frame).reason == inline.process(frame).reason
    assert worker.starts == 1 and worker.deaths == 0
    # The frame slot is the anonymous memfd in both processes; nothing under /dev/shm.
    for who in (pid, os.getpid()):
        maps = _shared_maps(who)
        assert any("memfd:doorpi-face-slot" in m for m in maps), (who, maps)
        assert not any("/dev/shm/" in m for m in maps), (who, maps)
    print(
        f"\nworker: start() {started * 1e3:.1f} ms, models loaded in {worker.load_times[0]:.2f} s, "
        f"mean call {worker.call_seconds / worker.calls * 1e3:.1f} ms, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    worker.close()
    assert worker.pid is None
    # /dev/shm is machine-wide (other test runs add files): no face data in what is new.
    new_shm = [Path("/dev/shm") / n for n in _shm() - shm_before]
    assert _scan_for(needles, [tmp_path, *new_shm]) == []


def test_face_process_setting_is_validated(tmp_path) -> None:
    assert sim_config({"face": {"process": "worker"}}, tmp_path).face.process == "worker"
    assert sim_config(None, tmp_path).face.process == "inline"  # simulations
    with pytest.raises(ConfigError, match=r"face.*process.*worker, inline"):
        sim_config({"face": {"process": "gpu"}}, tmp_path)
    from doorpi.config import FaceConfig

    assert FaceConfig().process == "worker"  # the device's default


# ------------------------------------------------------------------ a gate with the worker


def _worker_site(tmp_path: Path, **face: Any) -> SimulatedSite:
    return face_site(tmp_path, ("card", "pin", "face"), process="worker", **face)


def _loop(site: SimulatedSite) -> tuple[CameraLoop, DeviceWatch, FaceWorker]:
    worker = site.gate.face_engine.worker
    assert isinstance(worker, FaceWorker)
    loop, watch = start_camera_loop(site, FaultyCamera(_photos(1)[0]))
    return loop, watch, worker


def _rejections(site: SimulatedSite) -> list[str]:
    return [e["reason"] for e in site.events if e["event"] == "face_rejected"]  # type: ignore[attr-defined]


def test_hung_worker_is_killed_and_restarted_card_pin_stay_fast(tmp_path) -> None:
    site = _worker_site(tmp_path)
    loop, watch, worker = _loop(site)

    pump = pumper(site, watch)

    try:
        assert worker.wait_ready(60), worker.problem()
        first_pid = worker.pid
        worker.hang_next_call(60)  # the model stuck on the next frame
        face_key = site.gate.on_face_request  # the face key: a hands-free window
        assert face_key is not None
        t0 = time.monotonic()
        face_key(None)
        wait_for(lambda: loop.path.active, 2, "face window open")
        # While the call hangs (2.5 s deadline): Bob's card, Alice's PIN, at once.
        times = [prompt(lambda: site.card(BOB["cards"][0]), PROMPT_LIMIT)]
        times.append(prompt(lambda: pin(site, "101#2468#"), PROMPT_LIMIT))
        assert access(site) == [(True, "granted", ["card"]), (True, "granted", ["pin"])]
        wait_for(lambda: worker.kills == 1, 10, "hung worker killed", pump)
        killed_after = time.monotonic() - t0
        wait_for(lambda: _rejections(site), 5, "face window ended", pump)
        assert _rejections(site) == [f"face_error: {FaceWorkerTimeout.__name__}"]
        times.append(prompt(lambda: site.card(BOB["cards"][0]), PROMPT_LIMIT))
        assert access(site)[-1] == (True, "granted", ["card"]), access(site)
        # A new worker, and frames go through it again.
        wait_for(lambda: worker.ready, 15, "worker restarted", pump)
        ready_after = time.monotonic() - t0
        assert worker.starts == 2 and worker.pid not in (None, first_pid)
        calls = worker.calls
        face_key(None)
        wait_for(lambda: worker.calls > calls, 10, "a frame through the new worker", pump)
        assert worker.deaths == 0  # an answered call ends the run of deaths
        report("faceworker_hung", {
            "deadline_s": worker.deadline, "killed_after_s": round(killed_after, 2),
            "new_worker_ready_after_s": round(ready_after, 2),
            "card_pin_actions_max_ms": round(max(times) * 1e3, 1),
            "load_average": os.getloadavg()[0],
        })  # fmt: skip
    finally:
        loop.stop()
        site.close()
    assert worker.pid is None


def test_killed_worker_is_a_camera_fault_and_recovers_with_backoff(tmp_path) -> None:
    shm_before = _shm()
    site = _worker_site(tmp_path, trigger="continuous", allow_continuous=True)
    loop, watch, worker = _loop(site)

    pump = pumper(site, watch)

    try:
        assert worker.wait_ready(60), worker.problem()
        wait_for(lambda: worker.calls >= 3, 10, "frames through the worker", pump)
        pump()
        assert "camera" not in site.gate.faults.active
        old = worker.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        # The supervisor sees the death at once; the gate's next heartbeat shows it (the
        # fault stands only until a new worker is ready: ~0.7 s here, so poll right away).
        wait_for(lambda: worker.problem(), 5, "worker death seen by the supervisor")
        pump()
        assert "camera" in site.gate.faults.active, site.gate.faults.active
        shown_after = time.monotonic() - t0
        detail = site.gate.faults.active["camera"]["detail"]
        assert "face worker killed by SIGKILL (1 in a row)" in detail, detail
        assert "face worker" in fault(status(site, tmp_path), "camera")
        prompt(lambda: site.card(BOB["cards"][0]), PROMPT_LIMIT)
        prompt(lambda: pin(site, "101#2468#"), PROMPT_LIMIT)
        assert access(site)[-2:] == [(True, "granted", ["card"]), (True, "granted", ["pin"])]
        wait_for(lambda: worker.ready, 20, "worker back", pump)
        back_after = time.monotonic() - t0
        assert worker.pid not in (None, old)
        wait_for(lambda: "camera" not in site.gate.faults.active, 10, "fault cleared", pump)
        calls = worker.calls
        wait_for(lambda: worker.calls > calls, 10, "frames through the new worker", pump)
        assert worker.deaths == 0
        # The embedding of the photo the camera showed: nowhere on disk, nothing in /dev/shm.
        inline = FacePipeline.load(None, 1).process(_photos(1)[0])
        assert inline.ok, inline.reason
        needle = inline.embedding.astype(np.float32).tobytes()[:32]
        report("faceworker_killed", {
            "fault_shown_after_s": round(shown_after, 2), "worker_back_after_s": round(back_after, 2),
            "load_average": os.getloadavg()[0],
        })  # fmt: skip
    finally:
        loop.stop()
        site.close()
    # /dev/shm is machine-wide (other test runs add files): no face data in what is new.
    new_shm = [Path("/dev/shm") / n for n in _shm() - shm_before]
    assert _scan_for([needle], [tmp_path, *new_shm]) == []


def test_repeated_deaths_back_off(worker) -> None:
    assert [restart_delay(n) for n in range(4)] == [0.0, 0.5, 1.0, 2.0]
    assert restart_delay(50) == 60.0
    worker.start()
    assert worker.wait_ready(60), worker.problem()
    for n in (1, 2, 3):  # no answered call between: each restart waits longer
        old = worker.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        wait_for(lambda: worker.problem(), 5, "death seen")
        assert f"killed by SIGKILL ({n} in a row)" in worker.problem(), worker.problem()
        wait_for(lambda: worker.ready, 20, "worker back")
        took = time.monotonic() - t0
        assert took >= restart_delay(n), f"restart {n} after {took:.2f} s: no back-off"
        assert worker.pid not in (None, old)
    assert worker.starts == 4 and worker.deaths == 3
    RemoteObject(worker, "pipeline").detect(_photos(1)[0])
    assert worker.deaths == 0 and worker.problem() == ""


def test_models_failing_to_load_in_the_worker_are_the_face_models_fault(tmp_path, caplog) -> None:
    """A corrupted model file (a real copy of the models, a few sectors flipped) in
    worker mode is the ``face models`` fault, as inline (test_hardware_faults): in
    `doorpi status` JSON and text, the log and the gate's fault record, never the
    ``camera`` fault; no one is asked for a face meanwhile and card and PIN open."""
    import logging

    caplog.set_level(logging.INFO, logger="doorpi")
    models = corrupted_models(tmp_path)
    t0 = time.monotonic()
    site = face_site(tmp_path, ("card+face", "card+pin", "pin"), process="worker",
                     models_dir=str(models))  # fmt: skip
    built = time.monotonic() - t0
    loop, watch, worker = _loop(site)
    pump = pumper(site, watch)

    def faults_seen(device: str) -> list[tuple[bool, str]]:
        return [(e["active"], e["detail"]) for e in site.events  # type: ignore[attr-defined]
                if e["event"] == "fault" and e["device"] == device]  # fmt: skip

    try:
        wait_for(lambda: "face models" in site.gate.faults.active, 10, "model failure", pump)
        detail = site.gate.faults.active["face models"]["detail"]
        assert detail.startswith("face stays off: ") and "sface.tflite" in detail, detail
        assert not worker.ready and worker.problem() == ""
        assert fault(status(site, tmp_path), "face models") == detail
        assert f"device fault: face models: {detail}" in status_text(site, tmp_path)
        assert "fault face models raised" in caplog.text
        assert faults_seen("face models") == [(True, detail)]  # recorded once
        # Alice at the card+face door: asked for her PIN at once, no face window.
        prompt(lambda: site.card(ALICE["cards"][0]), PROMPT_LIMIT)
        feedback = [e["pattern"] for e in site.events if e["event"] == "feedback"]  # type: ignore[attr-defined]
        assert feedback[-1] == "pin_needed", feedback
        prompt(lambda: pin(site, "2468#"), PROMPT_LIMIT)
        assert access(site)[-1] == (True, "granted", ["card", "pin"]), access(site)
        assert site.gate.on_face_request is not None  # the worker's face path is there
        prompt(lambda: site.key("F"), PROMPT_LIMIT)  # the face key: unavailable, and why
        why = [e["reason"] for e in site.events if e["event"] == "face_unavailable"]  # type: ignore[attr-defined]
        assert why == ["face_models_fault"], why
        prompt(lambda: pin(site, "102#1357#"), PROMPT_LIMIT)
        assert access(site)[-1] == (True, "granted", ["pin"]), access(site)
        pump()
        assert faults_seen("camera") == [] and "camera" not in site.gate.faults.active
    finally:
        loop.stop()
        site.close()
    print(f"\nsite with a failing face worker built in {built:.2f} s")


# ------------------------------------------------------------------ under the unit's seccomp filter

SECCOMP_CHILD = r"""
import ctypes, errno, json, os, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ctx = lib.seccomp_init(0x7FFF0000)  # SCMP_ACT_ALLOW: only the named calls are refused
for name in sys.argv[2:]:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    assert nr >= 0 and lib.seccomp_rule_add(ctx, 0x00050000 | errno.EPERM, nr, 0) == 0, name
assert lib.seccomp_load(ctx) == 0
try:
    os.setpriority(os.PRIO_PROCESS, 0, 5)
    sys.exit("the filter is not active")
except PermissionError:
    pass
from doorpi.faceworker import FaceWorker, RemoteObject, WorkerSpec
from doorpi.hardware.camera import load_rgb
w = FaceWorker(WorkerSpec(None, 1))
w.start()
ready = w.wait_ready(60)
reason = RemoteObject(w, "pipeline").process(load_rgb(sys.argv[1], max_side=640)).reason
info = w.info_now()
w.close()
print(json.dumps({"ready": ready, "reason": reason, "nice": info["nice"],
                  "policy": info["policy"], "starts": w.starts}))
"""


def test_worker_serves_when_seccomp_refuses_the_priority_calls() -> None:
    """As under a unit whose SystemCallFilter denies @resources (EPERM): the worker warns,
    keeps the gate's priority and serves; it must not die and restart for ever."""
    import json
    import subprocess
    import sys

    photo = sorted(shared_faces().glob("*/*.jpg"))[0]
    proc = subprocess.run(
        [sys.executable, "-c", SECCOMP_CHILD, str(photo), "setpriority", "sched_setscheduler"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # The photo went through the models; priority unchanged; one worker, never restarted.
    assert out == {"ready": True, "reason": "ok", "nice": 0, "policy": 0, "starts": 1}
    assert "SCHED_BATCH refused" in proc.stderr and "nice 10 refused" in proc.stderr


def test_gate_unit_lets_the_worker_lower_its_priority() -> None:
    """systemd/doorpi.service denies @resources, then allows the two calls again (a later
    allow line adds to the allow list: systemd.exec(5), SystemCallFilter=)."""
    unit = Path(__file__).resolve().parents[2] / "systemd" / "doorpi.service"
    filters = [
        line.split("=", 1)[1].split()
        for line in unit.read_text().splitlines()
        if line.startswith("SystemCallFilter=")
    ]
    deny = next(i for i, f in enumerate(filters) if f[0].startswith("~"))
    assert "@resources" in [filters[deny][0][1:], *filters[deny][1:]]
    allowed_after = {name for f in filters[deny + 1 :] if not f[0].startswith("~") for name in f}
    assert {"setpriority", "sched_setscheduler"} <= allowed_after
    assert "RestrictRealtime=yes" in unit.read_text().splitlines()  # no raising to RT
