"""The soak's slow-grant trace (soak_trace.GrantTrace) names what a slow grant did:
real grants on a SimulatedSite, made slow for real inside the strike's release (a
busy loop, a sleep, a full collection)."""

from __future__ import annotations

import gc
import time
from pathlib import Path

from soak_trace import GrantTrace

from doorpi.benchcore import SOAK_OVERRIDES, decide, populate, soak_card, timed_releases
from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite, sim_config


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_trace_tells_cpu_from_blocked_and_sees_collections(tmp_path: Path) -> None:
    site = SimulatedSite(sim_config(SOAK_OVERRIDES, tmp_path), ManualClock(1_772_442_000.0))
    try:
        populate(site, 10)
        strike = site.devices.strike
        release = strike.release
        slow_by: list[str] = []  # what the next release does first

        def slow_release() -> None:
            what = slow_by.pop() if slow_by else ""
            if what == "spin":
                _spin(0.02)  # 20 ms of the decision thread's own CPU
            elif what == "sleep":
                time.sleep(0.02)  # 20 ms blocked (as on a lock, the GIL, the disk)
            elif what == "gc":
                gc.collect()
            release()

        strike.release = slow_release  # type: ignore[method-assign]
        released = timed_releases(site)
        trace = GrantTrace(site, None)
        try:
            for what in ("", "spin", "sleep", "gc"):
                slow_by.append(what)
                dt = decide(site, released, ("card", soak_card(3)), mark=trace.before)
                assert dt is not None
                trace.after("card", dt, slow=what != "")
        finally:
            trace.close()
        report = trace.report()
        spin, sleep, collect = report["slow_grants"]
        assert spin["ms"] >= 20 and spin["cpu_ms"] >= 19 and spin["cause"] != "off_cpu", spin
        assert sleep["ms"] >= 20 and sleep["off_cpu_ms"] >= 15 and sleep["cause"] == "off_cpu"
        assert sleep["cpu_ms"] < 10, sleep
        assert [g for g, _ in collect["gc"]] == [2], collect  # the full collection, seen
        assert not spin["gc"] and not sleep["gc"]
        assert sum(report["slow_grant_causes"].values()) == 3
        assert gc.callbacks.count(trace._on_gc) == 0  # close() took its hook out
    finally:
        site.close()
