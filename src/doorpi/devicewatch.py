"""Device faults a device cannot report itself: a thread that has stopped answering.

An unplugged reader or keypad says so (`ReaderStatus`, `DeviceStatus`); a frozen
pcscd or a hung camera does not: its thread is stuck inside a call. The gate's
main loop calls `DeviceWatch.poll` from its heartbeat (at least every 0.5 s,
`Gate.run`); each probe returns "" while its device is healthy or one line naming
the problem, and every change becomes a `DeviceStatus` event, so the gate raises
or clears a fault (shown by `doorpi status`, logged, audited) the same way as for
an unplugged device. A camera delivering red and blue swapped answers, but wrongly:
its probe reads the face engine's verdict on the faces it saw (`camera format`).
Probes only read timestamps and strings: a poll never blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from doorpi.core.events import DeviceStatus, Event

log = logging.getLogger("doorpi.device")

Probe = Callable[[], str]

# The fault names `doorpi status` shows (the gate keys its fault board by them).
READER_FAULT = "card reader"
CAMERA_FAULT = "camera"
CAMERA_FORMAT_FAULT = "camera format"  # red and blue swapped, seen in the faces
FACE_MODELS_FAULT = "face models"  # will not load (inline at start, or in the face worker)
#: The faults under which the gate asks no one for their face, and the reason it gives.
FACE_OFF_FAULTS = {CAMERA_FAULT: "camera_fault", FACE_MODELS_FAULT: "face_models_fault"}
#: How the `card reader` fault begins when the reader thread waits inside a PC/SC call
#: (pcscd's fault, not ours); `doorpi.pcscdwatch` restarts pcscd on this text alone.
READER_WAITS_ON = "card reader waits on "


def face_off_reason(active: Any) -> str:
    """ "camera_fault" or "face_models_fault" while that fault stands in ``active`` (the
    gate's fault names), else "": the face-free way (PIN) is offered at once."""
    return next((why for name, why in FACE_OFF_FAULTS.items() if name in active), "")


class DeviceWatch:
    """Turns probes ("" = healthy, else one line) into DeviceStatus events on change."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self._probes: dict[str, tuple[Probe, Callable[[str], None] | None]] = {}
        self._last: dict[str, str] = {}

    def add(self, name: str, probe: Probe, on_fault: Callable[[str], None] | None = None) -> None:
        """Watch ``name``; ``on_fault(problem)`` runs once each time the fault is raised."""
        self._probes[name] = (probe, on_fault)
        self._last[name] = ""

    def poll(self) -> None:
        """Run every probe once; emit a DeviceStatus for each one whose answer changed."""
        for name, (probe, on_fault) in self._probes.items():
            try:
                problem = probe()
            except Exception as exc:  # a broken probe is itself worth showing
                problem = f"health check failed: {type(exc).__name__}: {exc}"
            if problem == self._last[name]:
                continue
            self._last[name] = problem
            self.emit(DeviceStatus(name, not problem, problem or "answering again"))
            if problem and on_fault is not None:
                on_fault(problem)


def reader_probe(reader: Any) -> Probe:
    """A PcscReader (or its double) whose thread has made no pass within its own
    `healthy()` bound (4 polls + 2 s by default: a slow card read passes).

    The line names the PC/SC call the thread waits in, when the reader can say
    (`PcscReader.thread_state`): that is pcscd's (or the card's) fault, and the
    gate keeps running with it (`PcscReader.watchdog_ok`). The line holds no
    durations, so it does not change (and re-raise the fault) while it lasts."""

    def probe() -> str:
        if reader.healthy():
            return ""
        state = reader.thread_state() if callable(getattr(reader, "thread_state", None)) else None
        if state is not None and not state.running:
            return "card reader thread has stopped"
        if state is not None and state.pcsc_call:
            return f"{READER_WAITS_ON}{state.pcsc_call} (pcscd frozen or hung?)"
        if state is not None:
            return "card reader thread stuck outside PC/SC (gate fault)"
        return "card reader thread not answering (pcscd frozen or hung?)"

    return probe


def camera_format_probe(engine: Any) -> Probe:
    """The face engine's verdict on the camera's channel order, read from its
    ``camera_problem`` ("" while faces look right or nothing is known yet;
    `doorpi.vision.engine.PipelineFaceEngine`, `doorpi.vision.camcheck`)."""
    inner = getattr(engine, "inner", engine)  # the gate's engine wraps the pipeline's

    def probe() -> str:
        return str(getattr(inner, "camera_problem", "") or "")

    return probe


def device_watch(gate: Any, devices: Any, camera_loop: Any = None) -> DeviceWatch:
    """The watch `doorpi run` polls: the PC/SC reader, the camera path and the
    camera's channel order as the faces show it."""
    watch = DeviceWatch(gate.submit)
    if devices.reader is not None and callable(getattr(devices.reader, "healthy", None)):
        watch.add(READER_FAULT, reader_probe(devices.reader))
    if camera_loop is not None:
        from doorpi.facebuild import watch_camera

        watch_camera(watch, camera_loop, gate.submit)
    if getattr(gate, "face_engine", None) is not None:
        watch.add(CAMERA_FORMAT_FAULT, camera_format_probe(gate.face_engine))
    return watch


__all__ = [
    "CAMERA_FAULT",
    "CAMERA_FORMAT_FAULT",
    "FACE_MODELS_FAULT",
    "FACE_OFF_FAULTS",
    "READER_FAULT",
    "READER_WAITS_ON",
    "DeviceWatch",
    "camera_format_probe",
    "device_watch",
    "face_off_reason",
    "reader_probe",
]
