"""Helpers shared by the fault tests (test_hardware_faults.py, test_faceworker.py):
a simulated site with two residents at a fixed time, `doorpi status` from a separate
process, the camera double and the camera thread on it, a corrupted copy of the face
models, waiting and timing helpers.

A module of its own, not conftest (see reliability_support.py), and apart from
reliability_support so that the folder's conftest does not import the gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from doorpi.clocks import ManualClock
from doorpi.hardware.camera import Frame, load_rgb
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.sim.site import SimulatedSite
from doorpi.store import Storage
from site_support import recorded_site

NOW = 1_772_442_000.0  # 2026-03-02 09:00 UTC, a Monday
ALICE = {"name": "Alice", "keypad_id": "101", "cards": ["04a1b2c3d4e5f6"], "pin": "2468"}
BOB = {"name": "Bob", "keypad_id": "102", "cards": ["04b0b0b0b0b0b0"], "pin": "1357"}


def shared_faces() -> Path:
    """The shared photos (``$DOORPI_SHARED_DIR`` or a ``shared`` folder above the clone)."""
    from doorpi.fsutil import find_shared_dir

    found = find_shared_dir(Path(__file__).resolve().parents[2], need="faces")
    assert found, "shared photos not found (set DOORPI_SHARED_DIR to the folder holding faces/)"
    return found / "faces"


PIA = dict(
    purpose="Open the gate for residents who choose face entry.",
    necessity="Convenience; card and PIN stay at every door.",
    impact="Leak or misuse of face templates; false accepts.",
    measures="Separate consent, encrypted templates, retention, audit log.",
)


# ------------------------------------------------------------------ helpers


def site_at(tmp_path: Path, overrides: dict[str, Any], clock: Any = None) -> SimulatedSite:
    data = tmp_path / "data"
    if overrides.get("face", {}).get("enabled"):
        s = Storage.open(data)
        AssessmentRegistry(s.db, s.audit).record(ImpactAssessment(**PIA, author="DPO", created=NOW))
        s.close()
    site = recorded_site(data, config=overrides, clock=clock or ManualClock(NOW), settle=False)
    site.rids = [site.add_resident(ALICE), site.add_resident(BOB)]  # type: ignore[attr-defined]
    return site


def status(site: SimulatedSite, tmp_path: Path) -> dict[str, Any]:
    """`doorpi status --json` from a separate process, as an installer runs it."""
    cfg = tmp_path / "status.toml"
    cfg.write_text(f'[site]\ndata_dir = "{site.cfg.site.data_dir}"\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    p = subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg), "status", "--json"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOORPI_RUNTIME_DIR": str(run_dir)},
    )  # fmt: skip
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return json.loads(p.stdout)


def access(site: SimulatedSite) -> list[tuple[bool, str, list[str]]]:
    return [(e["granted"], e["reason"], e.get("factors", [])) for e in site.events  # type: ignore[attr-defined]
            if e["event"] == "access"]  # fmt: skip


def wait_for(cond: Callable[[], Any], timeout: float, what: str, step: Callable[[], Any] = lambda: None) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step()
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def prompt(action: Callable[[], None], limit: float = 1.5) -> float:
    """Run a card/PIN action on another thread: it must finish within ``limit``
    seconds (a gate blocked on the camera would never finish). Returns seconds."""
    done, failed = threading.Event(), []
    t0 = time.monotonic()

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised below, in the test's thread
            failed.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True, name="prompt").start()
    assert done.wait(limit), f"card/PIN decision blocked for over {limit} s (hung camera?)"
    if failed:
        raise failed[0]
    return time.monotonic() - t0


def pin(site: SimulatedSite, digits: str) -> None:
    for k in digits:
        site.key(k)


def fault(info: dict[str, Any], name: str) -> str:
    faults = info["device_faults"]
    assert name in faults, f"no {name!r} fault in doorpi status: {faults}"
    assert any(w.startswith(f"device fault: {name}: ") for w in info["warnings"]), info["warnings"]
    return faults[name]


class FaultyCamera:
    """The camera interface's double (Picamera2Source's methods): replays a real
    photo, or blocks forever in ``hang_in`` until released, or raises."""

    def __init__(self, photo: np.ndarray, hang_in: str = "", fail: bool = False) -> None:
        self.photo = photo
        self.hang_in = hang_in
        self.fail = fail
        self.release = threading.Event()
        self.entered: set[str] = set()
        self.captures = 0

    def _maybe_hang(self, where: str) -> None:
        self.entered.add(where)
        if self.hang_in == where:
            self.release.wait()  # forever, until the test ends

    def start(self) -> None:
        self._maybe_hang("start")

    def stop(self) -> None:
        self._maybe_hang("stop")

    def capture(self) -> Frame:
        self._maybe_hang("capture")
        self.captures += 1
        if self.fail:
            raise OSError("camera not found (ribbon unplugged?)")
        return Frame(self.photo)

    def close(self) -> None:
        self.release.set()


def face_site(
    tmp_path: Path, access: tuple[str, ...] = ("card+face", "card+pin"), **face: Any
) -> SimulatedSite:
    """A site with face on (``face`` settings added) and every resident holding a
    consented random template (no real face needed to test faults)."""
    site = site_at(tmp_path, {
        "face": {"enabled": True, **face},
        "site": {"controller": "Sunny Garden PM Co.", "contact": "+86 10 5555 0100"},
        "door": {"access": list(access)},
    })  # fmt: skip
    priv = site.gate.face_privacy
    assert priv is not None and site.face_path is not None, site.gate.face_problem
    for seed, rid in enumerate(site.rids):  # type: ignore[attr-defined]
        ticket = priv.start_enrolment(rid, "admin_present", by="admin:test")
        priv.consent(ticket, confirmed_by="admin:test")
        v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
        priv.enrol(rid, v / np.linalg.norm(v))
    return site


def a_photo() -> np.ndarray:
    photos = sorted(shared_faces().glob("*/*.jpg"))
    assert photos, f"no photos under {shared_faces()} (shared faces)"
    return load_rgb(photos[0], max_side=640)


def status_text(site: SimulatedSite, tmp_path: Path) -> str:
    """`doorpi status` as text, from a separate process."""
    cfg = tmp_path / "status.toml"
    cfg.write_text(f'[site]\ndata_dir = "{site.cfg.site.data_dir}"\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    p = subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg), "status"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOORPI_RUNTIME_DIR": str(run_dir)},
    )  # fmt: skip
    assert "Traceback" not in p.stderr, p.stderr
    return p.stdout + p.stderr


def start_camera_loop(site: SimulatedSite, cam: Any, stall: float | None = None) -> tuple[Any, Any]:
    """Hand ``site``'s face path to a camera thread on ``cam`` (what `doorpi run`
    does), watched by a DeviceWatch as the gate's heartbeat watches it; the loop is
    started. ``stall``: CameraLoop's stall_seconds (None: its default).
    Returns (CameraLoop, DeviceWatch)."""
    from doorpi.clocks import SystemClock
    from doorpi.devicewatch import DeviceWatch
    from doorpi.facebuild import CameraLoop, watch_camera

    path = site.face_path
    assert path is not None
    site.face_path = None  # from here on only the camera thread drives the face path
    path.camera = cam
    extra = {} if stall is None else {"stall_seconds": stall}
    loop = CameraLoop(path, cam, SystemClock(), **extra)
    watch = DeviceWatch(site.gate.submit)
    watch_camera(watch, loop, site.gate.submit)
    loop.start()
    return loop, watch


def pumper(site: SimulatedSite, watch: Any) -> Callable[[], None]:
    """One pass of what the gate's loop does on every heartbeat: poll the device
    watch, handle the events it submitted."""

    def pump() -> None:
        watch.poll()
        site.gate.process_pending()

    return pump


def corrupted_models(tmp_path: Path) -> Path:
    """A copy of the built face models under ``tmp_path`` with 64 bytes in the
    middle of sface.tflite overwritten (a few flipped sectors); returns its folder."""
    import shutil

    from doorpi.vision.models import find_models_dir

    models = tmp_path / "models"
    shutil.copytree(find_models_dir(), models)
    bad = models / "sface.tflite"
    blob = bytearray(bad.read_bytes())
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\xff" * 64
    bad.write_bytes(bytes(blob))
    return models
