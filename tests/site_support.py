"""A simulated site for gate tests: its events recorded, residents added, settled."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from doorpi.clocks import Clock, ManualClock
from doorpi.config import PinConfig
from doorpi.sim.site import SimulatedSite, sim_config

MONDAY_9 = 1_772_442_000.0  # 2026-03-02 09:00 UTC


def recorded_site(
    data: Path,
    residents: Iterable[dict[str, Any]] = (),
    config: dict[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    settle: bool = True,
    shipped_pin_cost: bool = False,
) -> SimulatedSite:
    """A site (``config`` merged into the simulation's defaults, data under ``data``)
    on ``clock``, by default a ManualClock at `MONDAY_9`, whose events go to
    ``site.events`` (a list), with ``residents`` added.

    ``settle``: advance 0.2 s and clear the events, so a test sees only what it
    does; False leaves the site as built, the start-up events kept and the clock
    untouched. ``shipped_pin_cost``: hash PINs at the device's cost, not the
    simulation's floor (for timing tests)."""
    cfg = sim_config(config or {}, data)
    if shipped_pin_cost:
        cfg = replace(cfg, pin=PinConfig())
    events: list[dict[str, Any]] = []
    site = SimulatedSite(cfg, clock or ManualClock(MONDAY_9), observers=[events.append])
    site.events = events  # type: ignore[attr-defined]
    for spec in residents:
        site.add_resident(spec)
    if settle:
        site.advance(0.2)
        events.clear()
    return site
