"""Hardware faults (issue #18): each detected, shown by `doorpi status` (a real CLI
process) and the log, card and PIN working wherever the fault allows.

Covered here: pcscd killed and back, the reader gone and back (pcscd up without
it), pcscd frozen (SIGSTOP on the test's private pcscd), the camera hung in
start/capture/the face model (a double that blocks forever), the camera gone
(every capture fails) and back, a corrupted model file, the clock jumped.
Disk full and a read-only data partition are in tests/store/test_partition.py
(`test_disk_full_while_running`, `test_gate_process_on_read_only_partition_serves_and_status_names_it`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest
from fault_support import (
    ALICE,
    BOB,
    NOW,
    FaultyCamera,
    a_photo,
    access,
    corrupted_models,
    face_site,
    fault,
    pin,
    prompt,
    pumper,
    shared_faces,
    site_at,
    start_camera_loop,
    status,
    status_text,
    wait_for,
)

from doorpi.cards import UidCard
from doorpi.clocks import ManualClock
from doorpi.devicewatch import DeviceWatch, reader_probe
from doorpi.facepath import FaceOutcome
from doorpi.hardware.camera import Frame, load_rgb
from doorpi.hardware.reader import PcscReader
from doorpi.sim.site import SimulatedSite
from pcsc_fixtures import READER_0

# ------------------------------------------------------------------ reader, pcscd


def _reader_on(site: SimulatedSite) -> PcscReader:
    site.devices.reader.stop()  # the simulated one: this site uses the real PC/SC stack
    reader = PcscReader(READER_0, UidCard(), poll_seconds=0.3, backoff_max=0.5)
    reader.start(site.gate.submit)
    return reader


def _reader_faults(site: SimulatedSite) -> dict[str, Any]:
    return {k: v for k, v in site.gate.faults.active.items() if k.startswith("reader ")}


def test_pcscd_killed_and_reader_gone_then_back(pcsc, vcard, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="doorpi")
    site = site_at(tmp_path, {"door": {"access": ["card", "pin"]}})
    reader = _reader_on(site)
    try:
        pump = site.gate.process_pending
        wait_for(lambda: any(site.gate.readers.values()), 5, "reader ready", pump)
        pcsc.kill()
        wait_for(lambda: _reader_faults(site), 5, "reader fault after pcscd died", pump)
        info = status(site, tmp_path)
        (name,) = [k for k in info["device_faults"] if k.startswith("reader ")]
        assert "pcscd" in fault(info, name) or "service" in fault(info, name)
        assert f"fault {name} raised" in caplog.text  # the journal line
        pin(site, "101#2468#")  # PIN works while the reader is down
        assert access(site)[-1][:2] == (True, "granted")
        # pcscd back without the reader (unplugged): still a fault.
        empty = tmp_path / "reader.conf.d"
        empty.mkdir()
        pcsc.start(config_dir=empty, expect=())
        time.sleep(1.0)
        pump()
        assert _reader_faults(site), "reader absent, yet no fault"
        pcsc.restart(down_seconds=0.2)  # plugged in again
        wait_for(lambda: not _reader_faults(site), 6, "reader fault cleared", pump)
        assert status(site, tmp_path)["device_faults"] == {}
        vcard(ALICE["cards"][0]).tap(0.8)
        wait_for(lambda: len(access(site)) == 2, 5, "card decision after replug", pump)
        assert access(site)[-1] == (True, "granted", ["card"])
    finally:
        reader.stop()
        if not pcsc.running:
            pcsc.start()
        site.close()


def test_pcscd_frozen_is_shown_and_pin_still_opens(pcsc, vcard, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="doorpi")
    site = site_at(tmp_path, {"door": {"access": ["card", "pin"]}})
    reader = _reader_on(site)
    watch = DeviceWatch(site.gate.submit)
    watch.add("card reader", reader_probe(reader))
    pump = pumper(site, watch)  # what `doorpi run` does on every heartbeat
    try:
        wait_for(lambda: any(site.gate.readers.values()), 5, "reader ready", pump)
        pump()
        assert "card reader" not in site.gate.faults.active
        pcsc.freeze()
        try:
            t0 = time.monotonic()
            wait_for(lambda: "card reader" in site.gate.faults.active, 10, "frozen pcscd", pump)
            detected = time.monotonic() - t0
            assert "pcscd frozen" in fault(status(site, tmp_path), "card reader")
            assert "fault card reader raised" in caplog.text
            prompt(lambda: pin(site, "101#2468#"))
            assert access(site)[-1][:2] == (True, "granted")
        finally:
            pcsc.thaw()
        wait_for(lambda: "card reader" not in site.gate.faults.active, 6, "thawed", pump)
        print(f"\nfrozen pcscd shown after {detected:.1f} s")
        vcard(ALICE["cards"][0]).tap(0.8)
        wait_for(lambda: len(access(site)) == 2, 5, "card decision after thaw", pump)
        assert access(site)[-1] == (True, "granted", ["card"])
    finally:
        pcsc.thaw()
        reader.stop()
        site.close()


# ------------------------------------------------------------------ camera


@pytest.mark.parametrize("hang_in", ["start", "capture", "model"])
def test_hung_camera_never_delays_card_or_pin(tmp_path, hang_in, caplog) -> None:
    caplog.set_level(logging.INFO, logger="doorpi")
    site = face_site(tmp_path)
    cam = FaultyCamera(a_photo(), hang_in=hang_in if hang_in != "model" else "")
    if hang_in == "model":  # the face models stuck on a frame (the path's lock held)
        engine = site.face_path.engine  # type: ignore[union-attr]

        def stuck(frame: Any, now: float) -> Any:
            cam.release.wait()
            return FaceOutcome("rejected", reason="test_over")

        engine.process = stuck  # type: ignore[method-assign]
    loop, watch = start_camera_loop(site, cam, stall=1.0)
    times = []
    try:
        # Alice: the gate asks for her face; the camera path hangs on it.
        times.append(prompt(lambda: site.card(ALICE["cards"][0])))
        feedback = [e["pattern"] for e in site.events if e["event"] == "feedback"]  # type: ignore[attr-defined]
        assert feedback[-1] == "face_needed", feedback
        wait_for(lambda: loop.problem(), 5, "camera path seen hung")
        # Bob taps while it hangs and before the watch has said so: still no wait.
        times.append(prompt(lambda: site.card(BOB["cards"][0])))
        watch.poll()  # the fault: Bob, waiting for his face, is asked for his PIN
        times.append(prompt(site.gate.process_pending))
        feedback = [e["pattern"] for e in site.events if e["event"] == "feedback"]  # type: ignore[attr-defined]
        assert feedback[-1] == "pin_needed", feedback
        times.append(prompt(lambda: pin(site, "1357#")))
        assert "hung" in site.gate.faults.active["camera"]["detail"]
        if hang_in == "capture":  # once is enough for the status process (~1 s each)
            assert "hung" in fault(status(site, tmp_path), "camera")
        assert "fault camera raised" in caplog.text
        # Alice again: no face asked of a hung camera, the PIN at once.
        times.append(prompt(lambda: site.card(ALICE["cards"][0])))
        times.append(prompt(lambda: pin(site, "2468#")))
        assert access(site)[-2:] == [(True, "granted", ["card", "pin"])] * 2, access(site)
        assert max(times) < 1.5
        print(f"\ncamera hung in {hang_in}: card/PIN actions took max {max(times) * 1000:.0f} ms")
    finally:
        cam.release.set()
        loop.stop()
        site.close()


def test_camera_gone_is_shown_face_falls_back_to_pin_and_recovers(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="doorpi")
    site = face_site(tmp_path)
    cam = FaultyCamera(a_photo(), fail=True)
    loop, watch = start_camera_loop(site, cam, stall=1.0)
    try:
        prompt(lambda: site.card(ALICE["cards"][0]))
        pump = pumper(site, watch)
        wait_for(lambda: "camera" in site.gate.faults.active, 8, "camera gone", pump)
        assert "camera not found" in fault(status(site, tmp_path), "camera")
        feedback = [e["pattern"] for e in site.events if e["event"] == "feedback"]  # type: ignore[attr-defined]
        assert feedback[-1] == "pin_needed", feedback  # the face-free way, without waiting
        prompt(lambda: pin(site, "2468#"))
        assert access(site)[-1] == (True, "granted", ["card", "pin"])
        cam.fail = False  # plugged back: the idle retry sees it
        wait_for(lambda: "camera" not in site.gate.faults.active, 15, "camera back", pump)
    finally:
        cam.release.set()
        loop.stop()
        site.close()


# ------------------------------------------------------------------ model, clock


def test_corrupted_model_file_is_shown_and_card_pin_work(tmp_path, caplog) -> None:
    models = corrupted_models(tmp_path)
    caplog.set_level(logging.INFO, logger="doorpi")
    site = site_at(tmp_path, {
        "face": {"enabled": True, "models_dir": str(models)},
        "site": {"controller": "Sunny Garden PM Co.", "contact": "+86 10 5555 0100"},
        "door": {"access": ["card+face", "card+pin"]},
    })  # fmt: skip
    try:
        assert site.face_path is None
        detail = fault(status(site, tmp_path), "face models")
        assert "sface.tflite" in detail, detail
        assert "fault face models raised" in caplog.text
        site.card(ALICE["cards"][0])
        pin(site, "2468#")
        assert access(site)[-1] == (True, "granted", ["card", "pin"])
    finally:
        site.close()


def test_clock_jumped_is_shown_and_card_pin_work(tmp_path) -> None:
    clock = ManualClock(NOW)
    site = site_at(tmp_path, {"door": {"access": ["card", "pin"]}}, clock)
    try:
        site.advance(1.0)
        clock.set_wall(NOW + 3 * 365 * 86400)  # a bad RTC read: three years ahead
        site.advance(1.0)
        jumps = [e for e in site.events if e["event"] == "clock_jumped"]  # type: ignore[attr-defined]
        assert len(jumps) == 1 and jumps[0]["by_seconds"] > 9e7
        site.card(ALICE["cards"][0])
        pin(site, "102#1357#")
        assert [a[:2] for a in access(site)] == [(True, "granted")] * 2
        info = status(site, tmp_path)
        assert info["clock_trusted"] is False and "jumped ahead" in " ".join(info["warnings"])
    finally:
        site.close()


# ------------------------------------------------------------------ camera format


def test_camera_with_red_and_blue_swapped_is_a_device_fault_until_faces_look_right(
    tmp_path, caplog
) -> None:
    """Real photos, red and blue swapped as a misconfigured camera delivers them,
    through the gate's real face engine (real models): the `camera format` fault is
    raised by the watch `doorpi run` polls, logged, audited and shown by a separate
    `doorpi status` process (JSON and text); card+PIN still opens; right-coloured
    faces clear it again."""
    from doorpi.devicewatch import CAMERA_FORMAT_FAULT, device_watch
    from doorpi.vision import degrade

    caplog.set_level(logging.INFO, logger="doorpi")
    site = face_site(tmp_path)
    engine = site.gate.face_engine
    assert engine is not None
    watch = device_watch(site.gate, site.devices)
    photos = [load_rgb(p, 640) for p in sorted(shared_faces().glob("*/1.jpg"))[:16]]
    assert len(photos) == 16, "need 16 shared photos"

    def show(frames: list[np.ndarray]) -> None:
        engine.begin(site.rids[0])  # type: ignore[attr-defined]
        for k, rgb in enumerate(frames):
            engine.process(Frame(rgb), 0.1 * k)
        engine.end()
        watch.poll()
        site.gate.process_pending()

    def faults_seen() -> list[tuple[bool, str]]:
        return [(e["active"], e["detail"]) for e in site.events  # type: ignore[attr-defined]
                if e["event"] == "fault" and e["device"] == CAMERA_FORMAT_FAULT]  # fmt: skip

    try:
        show(photos[:8])  # right colours: nothing to say
        assert CAMERA_FORMAT_FAULT not in site.gate.faults.active
        show([degrade.swap_rb(rgb) for rgb in photos])
        assert CAMERA_FORMAT_FAULT in site.gate.faults.active, site.gate.faults.active
        detail = fault(status(site, tmp_path), CAMERA_FORMAT_FAULT)
        assert "red and blue look swapped" in detail, detail
        assert f"{CAMERA_FORMAT_FAULT}: red and blue look swapped" in status_text(site, tmp_path)
        assert f"fault {CAMERA_FORMAT_FAULT} raised" in caplog.text
        assert faults_seen() == [(True, detail)]  # audited once
        watch.poll()  # still swapped: no second record
        site.gate.process_pending()
        assert len(faults_seen()) == 1
        # Alice at the door meanwhile, through the gate's face path: a stranger's
        # swapped face is not her; the PIN is offered and opens.
        site.card(ALICE["cards"][0])
        site.face([Frame(degrade.swap_rb(photos[5]))] * 3)
        feedback = [e["pattern"] for e in site.events if e["event"] == "feedback"]  # type: ignore[attr-defined]
        assert feedback[-1] == "pin_needed", feedback
        pin(site, "2468#")
        assert access(site)[-1] == (True, "granted", ["card", "pin"]), access(site)
        show([degrade.gray(rgb) for rgb in photos])  # IR light: no verdict, the fault stands
        assert CAMERA_FORMAT_FAULT in site.gate.faults.active
        show(photos[:6])  # half and half: no clear verdict, the fault stands
        assert CAMERA_FORMAT_FAULT in site.gate.faults.active
        show(photos)  # the camera set right: right-coloured faces clear it
        assert CAMERA_FORMAT_FAULT not in site.gate.faults.active
        assert CAMERA_FORMAT_FAULT not in status(site, tmp_path)["device_faults"]
        assert [a for a, _ in faults_seen()] == [True, False]
        assert f"fault {CAMERA_FORMAT_FAULT} cleared" in caplog.text
    finally:
        site.close()
