"""The appliance's units under a real systemd (PID 1, systemd 252): keys made on first
boot, the gate serving inside its sandbox with its watchdog pings reaching PID 1, the
strike driven safe after a stop, the self-test at boot, the face worker inside the
gate's sandbox, and the pcscd watch restarting pcscd from inside its own (issue #18).

The container and what it is not: tests/appliance/nspawn.py. Needs root (make test runs
as root) and systemd-container (scripts/system-deps.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.nspawn import CACHE, REPO, Container, gate_models, gate_venv, install_units
from doorpi.fsutil import find_shared_dir

# What a container cannot be: no GPIO chip (simulated pins, for the gate and for the
# strike-safe step after it), and a 2 s watchdog so that
# "still running after several periods" takes seconds (10 s shipped).
WATCHDOG_SECONDS = 2
GATE_DROP_IN = (
    "ExecStart=\n"
    "ExecStart=/opt/doorpi/venv/bin/doorpi --config /etc/doorpi/doorpi.toml run --sim\n"
    "ExecStopPost=\n"
    "ExecStopPost=/opt/doorpi/venv/bin/doorpi --config /etc/doorpi/doorpi.toml strike-safe --sim\n"
    f"WatchdogSec={WATCHDOG_SECONDS}s"
)
# The face worker as the gate starts it (doorpi.facebuild), real photos through the
# real models, run as a unit with doorpi.service's [Service] sandbox (face_unit()).
FACE_SCRIPT = """\
import glob, json, sys
from doorpi.faceworker import FaceWorker, RemoteObject, WorkerSpec
from doorpi.hardware.camera import load_rgb
w = FaceWorker(WorkerSpec("/opt/doorpi/models", 1, None))
w.start()
ready = w.wait_ready(120)
out = {"ready": ready, "problem": w.problem(), "info": w.info, "results": []}
if ready:
    pipeline = RemoteObject(w, "pipeline")
    for path in sorted(glob.glob(sys.argv[1] + "/*/*.jpg"))[:3]:
        res = pipeline.process(load_rgb(path, max_side=640))
        out["results"].append([res.ok, res.embedding is not None])
out["calls"] = w.calls
w.close()
print("FACECHECK " + json.dumps(out), flush=True)
"""


def face_unit(script: Path, faces: Path) -> str:
    """doorpi.service with its ExecStart (and what only a long-running notify service
    has) replaced by the face check: the same user, groups and sandbox lines."""
    skip = {"Type", "NotifyAccess", "ExecStart", "ExecStopPost", "WatchdogSec", "Restart",
            "RestartPreventExitStatus", "RestartSec", "StartLimitAction", "WantedBy"}  # fmt: skip
    out = []
    for line in (REPO / "systemd" / "doorpi.service").read_text().splitlines():
        if line.split("=", 1)[0].strip() in skip:
            continue
        out.append(line)
        if line.strip() == "[Service]":
            out += ["Type=oneshot", f"ExecStart=/opt/doorpi/venv/bin/python {script} {faces}"]
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def box() -> Iterator[Container]:
    assert os.geteuid() == 0, "booting a container needs root (make test runs as root)"
    shared = find_shared_dir(REPO, need="faces")
    assert shared, "shared photos not found (set DOORPI_SHARED_DIR)"
    venv = gate_venv()
    run = CACHE / f"run-{os.getpid()}"  # this run's files, where the units can see them
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    models = gate_models(run / "models")
    faces = run / "faces"
    for photo in sorted((shared / "faces").glob("*/*.jpg"))[:3]:
        (faces / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo, faces / photo.parent.name / photo.name)
    (run / "face_check.py").write_text(FACE_SCRIPT)
    (run / "doorpi-facecheck.service").write_text(face_unit(run / "face_check.py", faces))
    for path in [run, *run.rglob("*")]:  # readable by the gate's user
        path.chmod(0o755 if path.is_dir() else 0o644)
    c = Container([REPO, CACHE], log=run / "nspawn.log")
    try:
        c.boot()
        install_units(c, venv, models, {"doorpi.service": GATE_DROP_IN})
        c.run("install", "-m", "0644", str(run / "doorpi-facecheck.service"),
              "/etc/systemd/system/doorpi-facecheck.service")  # fmt: skip
        c.run("systemctl", "daemon-reload")
        yield c
    finally:
        c.stop()
        shutil.rmtree(run, ignore_errors=True)


def test_first_boot_makes_the_gate_keys_private(box: Container) -> None:
    box.run("systemctl", "start", "doorpi-firstboot.service")
    assert "gate fingerprint:" in box.journal("doorpi-firstboot.service")
    listing = box.run("stat", "-c", "%a %U %n", "/var/lib/doorpi/keys",
                      *_key_files(box)).stdout.splitlines()  # fmt: skip
    assert listing[0].startswith("700 doorpi ")
    private = [row for row in listing[1:] if not row.endswith(".pub")]
    assert private and all(row.startswith("600 doorpi ") for row in private), listing


def _key_files(box: Container) -> list[str]:
    out = box.run("find", "/var/lib/doorpi/keys", "-type", "f").stdout.split()
    assert out, "no key files"
    return out


def test_the_gate_serves_in_its_sandbox_and_pings_the_watchdog(box: Container) -> None:
    box.run("systemctl", "start", "doorpi.service")  # Type=notify: returns once READY=1
    first = box.show("doorpi.service", "MainPID", "StatusText")
    assert first["StatusText"].startswith("serving "), first
    box.run("sleep", str(4 * WATCHDOG_SECONDS))  # four watchdog periods
    later = box.show("doorpi.service", "ActiveState", "MainPID", "NRestarts",
                     "WatchdogTimestampMonotonic")  # fmt: skip
    assert later["ActiveState"] == "active" and later["NRestarts"] == "0", later
    assert later["MainPID"] == first["MainPID"], "the gate was restarted: no watchdog pings?"
    assert int(later["WatchdogTimestampMonotonic"]) > 0
    status = box.run("/opt/doorpi/venv/bin/doorpi", "--config", "/etc/doorpi/doorpi.toml",
                     "status").stdout  # fmt: skip
    assert re.search(r"database: ok", status), status
    assert "Traceback" not in box.journal("doorpi.service")


def test_a_stopped_gate_leaves_the_strike_driven_safe(box: Container) -> None:
    box.run("systemctl", "start", "doorpi.service")
    box.run("systemctl", "stop", "doorpi.service")
    shown = box.show("doorpi.service", "ActiveState", "Result", "ExecMainStatus")
    assert shown["ActiveState"] == "inactive" and shown["Result"] == "success", shown
    journal = box.journal("doorpi.service")
    assert "de-energised after the gate stopped" in journal.split("Stopping doorpi")[-1], journal[
        -800:
    ]
    assert "Traceback" not in journal


def test_the_boot_selftest_does_not_fail_its_own_sandbox(box: Container) -> None:
    """doorpi-selftest.service sees the data folder read-only (ReadOnlyPaths=): once
    that failed `data_dir` at every boot. Here GPIO and the reader fail (a container)."""
    box.run("systemctl", "start", "doorpi-selftest.service")
    lines = box.journal("doorpi-selftest.service").splitlines()
    checks = {m.group(2): m.group(1) for line in lines
              if (m := re.match(r"(PASS|WARN|FAIL)\s+(\w+)\s", line))}  # fmt: skip
    for name in ("config", "data_dir", "keys", "database"):
        assert checks.get(name) == "PASS", (name, [line for line in lines if name in line])
    assert checks.get("gpio") == "FAIL"  # no /dev/gpiochip* in a container: it says so
    assert not any("Traceback" in line for line in lines)


def test_the_face_worker_runs_in_the_gates_sandbox(box: Container) -> None:
    """MemoryDenyWriteExecute=, the system-call filter, no capabilities: the worker still
    lowers its priority, loads TFLite (XNNPACK) and answers on real photos."""
    started = box.run("systemctl", "start", "doorpi-facecheck.service", timeout=240, check=False)
    journal = box.journal("doorpi-facecheck.service")
    assert started.returncode == 0, journal[-1500:]
    found = [line for line in journal.splitlines() if line.startswith("FACECHECK ")]
    assert found, journal[-1500:]
    out = json.loads(found[-1].split(" ", 1)[1])
    assert out["ready"] and not out["problem"], out
    assert out["info"]["policy"] == os.SCHED_BATCH and out["info"]["nice"] == 10, out
    assert out["calls"] == 3 and all(ok and emb for ok, emb in out["results"]), out


def test_the_pcscd_watch_restarts_pcscd_from_its_sandbox(box: Container) -> None:
    """The watch unit as shipped: root with CAP_DAC_READ_SEARCH only, ProtectSystem=
    strict, no network but AF_UNIX. While the gate reports nothing its ExecCondition=
    skips Python; on a PC/SC wait it reads the gate's /run/doorpi (0700, doorpi) and
    reaches PID 1 to restart pcscd, once."""
    box.run("systemctl", "start", "doorpi.service", "pcscd.service")
    before = box.show("pcscd.service", "MainPID")["MainPID"]
    box.run("systemctl", "start", "doorpi-pcscd-watch.service")  # healthy: skipped
    assert "exec-condition" in box.journal("doorpi-pcscd-watch.service")
    assert box.show("doorpi-pcscd-watch.service", "ExecMainPID")["ExecMainPID"] == "0"
    _report_frozen_pcscd(box)
    box.run("systemctl", "start", "doorpi-pcscd-watch.service")
    after = box.show("pcscd.service", "MainPID", "ActiveState")
    assert after["ActiveState"] == "active" and after["MainPID"] not in (before, "0"), (
        before,
        after,
    )
    assert "restarting pcscd" in box.journal("doorpi-pcscd-watch.service")
    box.run("systemctl", "start", "doorpi-pcscd-watch.service")  # within 10 min: not again
    assert box.show("pcscd.service", "MainPID")["MainPID"] == after["MainPID"]
    # Never acts while the gate is stopped (Requisite=): the start fails at once.
    box.run("systemctl", "stop", "doorpi.service")
    refused = box.run("systemctl", "start", "doorpi-pcscd-watch.service", check=False)
    assert refused.returncode != 0
    assert box.show("pcscd.service", "MainPID")["MainPID"] == after["MainPID"]


def _report_frozen_pcscd(box: Container) -> None:
    """The running gate's runtime file as its FaultBoard writes it when the reader has
    waited on pcscd (devicewatch) since 100 s ago (the shipped RESTART_AFTER is 60 s)."""
    script = """
import json, time
from doorpi.devicewatch import READER_FAULT, READER_WAITS_ON
from doorpi.runtimefile import write_runtime
from pathlib import Path
path = Path("/run/doorpi/faults.json")
gate = json.loads(path.read_text())["pid"]
detail = READER_WAITS_ON + "SCardGetStatusChange (pcscd frozen or hung?)"
fault = {"detail": detail, "since": time.time() - 100, "raised_monotonic": time.monotonic() - 100}
write_runtime(path, {"updated": time.time(), "faults": {READER_FAULT: fault}})
info = json.loads(path.read_text()); info["pid"] = gate  # the gate's file: its pid
path.write_text(json.dumps(info))
"""
    box.run("/opt/doorpi/venv/bin/python", "-c", script)
