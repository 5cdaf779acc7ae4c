"""A simulated site for gate tests: its events recorded, residents added, settled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite, sim_config

MONDAY_9 = 1_772_442_000.0  # 2026-03-02 09:00 UTC


def recorded_site(
    data: Path, residents: list[dict[str, Any]], config: dict[str, Any] | None = None
) -> SimulatedSite:
    """A site on a ManualClock at `MONDAY_9` whose events go to ``site.events`` (a
    list, cleared once the residents are added and the start-up has settled)."""
    events: list[dict[str, Any]] = []
    site = SimulatedSite(sim_config(config or {}, data), ManualClock(MONDAY_9),
                         observers=[events.append])  # fmt: skip
    site.events = events  # type: ignore[attr-defined]
    for spec in residents:
        site.add_resident(spec)
    site.advance(0.2)
    events.clear()
    return site
