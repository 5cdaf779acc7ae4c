"""`doorpi run`: the gate process (what systemd starts)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from doorpi.cli import common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the gate (systemd starts this)")
    p.add_argument("--sim", action="store_true", help="simulated GPIO and reader (MockFactory)")
    p.add_argument("--json-events", action="store_true", help="print every event as JSON lines")
    p.set_defaults(func=main)


def serve(args: argparse.Namespace, sim: bool, observers: list | None = None) -> int:
    from doorpi.clocks import SystemClock
    from doorpi.device import build_outputs
    from doorpi.gate import Gate, dump
    from doorpi.sdnotify import SdNotifier

    t0 = time.monotonic()
    cfg = common.config(args)
    from doorpi.hardware.pins import NoGpioError

    with common.as_cli_error(NoGpioError):
        devices = build_outputs(cfg, sim)  # strike first: safe level before anything else
    stop = threading.Event()
    notifier = SdNotifier()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gate = None
    store = None
    camera_loop = None
    try:
        from doorpi.store.db import GATE_BUSY_MS
        from doorpi.store.health import health_path

        store = common.storage(cfg, degrade=True, busy_ms=GATE_BUSY_MS)

        store.publish_health(health_path())
        obs = list(observers or [])
        if getattr(args, "json_events", False):
            obs.append(lambda rec: print(dump(rec), flush=True))
        gate = Gate(cfg, store, devices.strike, devices.feedback, SystemClock(cfg.site.tz), obs)
        from doorpi.faults import faults_path

        gate.faults.publish(faults_path())  # doorpi status and pcscd-watch read it
        devices.start(gate.submit, cfg, sim)
        from doorpi.device import attach_card_templates, attach_mode_outputs

        attach_card_templates(gate, devices)
        attach_mode_outputs(gate, devices)
        devices.report_levels()  # a fire alarm already active at start releases at once
        if not sim:
            from doorpi.facebuild import start_camera

            camera_loop = start_camera(gate, devices.feedback.camera_active)
        from doorpi.heap import freeze_startup_heap

        frozen = freeze_startup_heap()  # no full GC of the start-up heap in a decision
        startup = time.monotonic() - t0
        problems = devices.problems + ([store.degraded] if store.degraded else [])
        gate.note("gate_started", startup_seconds=round(startup, 3), problems=problems,
                  heap_frozen=frozen)  # fmt: skip
        extra = f"; {store.degraded}: database read-only" if store.degraded else ""
        notifier.ready(f"serving {cfg.door.name}; startup {startup * 1000:.0f} ms{extra}")
        logging.getLogger("doorpi").info("ready in %.0f ms", startup * 1000)

        from doorpi.devicewatch import device_watch

        watch = device_watch(gate, devices, camera_loop)  # frozen pcscd, hung camera

        def heartbeat() -> None:
            watch.poll()
            # Every input device's thread must be alive (an unplugged keypad's thread
            # is: it waits for the keypad); a dead or stuck one stops the pings and
            # systemd restarts us. A reader thread blocked inside pcscd does not: that
            # is pcscd's fault (shown by the watch above), a restart would not cure it.
            watched = (devices.reader, devices.keypad)
            alive = all(_alive(d, STALE_AFTER) for d in watched if d is not None)
            notifier.watchdog(alive=alive)

        gate.run(stop, heartbeat)
        notifier.stopping()
        return 0
    finally:
        if camera_loop is not None:
            camera_loop.stop()
        if gate is not None:
            try:
                gate.shutdown()
                gate.note("gate_stopped")
            except Exception as exc:
                print(f"doorpi: shutdown: {exc}", file=sys.stderr)
        devices.close()
        if gate is not None:
            gate.faults.unpublish()
        if store is not None:
            store.close()  # writes deferred audit records, or logs them to the journal


#: Seconds an input device's thread may stay silent in our own code before the
#: watchdog pings stop (systemd then ends the gate after WatchdogSec, 10 s in
#: systemd/doorpi.service). Tests lower it to see a stuck thread stop the pings quickly.
STALE_AFTER = 30.0


def _alive(reader: object, stale_after: float = STALE_AFTER) -> bool:
    """May the heartbeat ping systemd for this input device (reader or keypad)?

    A reader with ``watchdog_ok`` (`PcscReader`) decides itself: False only when
    its thread died or is stuck in our code, never while it waits on pcscd. Other
    devices: their ``healthy(max_age=...)``, or a ``last_alive`` within
    ``stale_after`` seconds (the heartbeat passes `STALE_AFTER`)."""
    watchdog_ok = getattr(reader, "watchdog_ok", None)
    if callable(watchdog_ok):
        return bool(watchdog_ok(max_age=stale_after))
    healthy = getattr(reader, "healthy", None)
    if callable(healthy):
        return bool(healthy(max_age=stale_after))
    last = getattr(reader, "last_alive", None)
    return last is None or last == 0 or time.monotonic() - last < stale_after


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return serve(args, sim=args.sim)
