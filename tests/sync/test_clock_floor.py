"""A bundle's signed time raises the gate's clock floor, within what the gate can vouch for."""

from __future__ import annotations

from doorpi.core.clock import MAX_OFFLINE_SECONDS
from doorpi.store.db import get_state
from doorpi.sync.keys import SiteKey
from sync.helpers import GateRig, resident

Y2040 = 2_209_104_000.0


def floor(rig: GateRig) -> float:
    return float(get_state(rig.storage.db, "clock_floor", "0") or 0)


def test_bundle_from_a_laptop_clock_at_2040_does_not_poison_the_floor(
    rig: GateRig, site: SiteKey
) -> None:
    rig.apply(rig.bundle(1, [resident("a-1", 1, site)]))
    before = floor(rig)
    rep = rig.apply(rig.bundle(2, [resident("a-1", 1, site)], created=Y2040))
    assert rep.result == "applied", rep.reason  # the roster itself is fine
    assert floor(rig) == before


def test_bundle_within_the_offline_bound_raises_the_floor(rig: GateRig, site: SiteKey) -> None:
    rig.apply(rig.bundle(1, [resident("a-1", 1, site)]))
    later = floor(rig) + MAX_OFFLINE_SECONDS - 60  # the gate's clock was slow for weeks
    rig.apply(rig.bundle(2, [resident("a-1", 1, site)], created=later))
    assert floor(rig) == later
