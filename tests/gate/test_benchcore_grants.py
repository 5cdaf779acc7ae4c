"""`doorpi bench core`'s grant_at_soak_site, the soak's reference (doorpi.benchcore):
every timed action is a grant on a populated site, paced, and timed to the release."""

from __future__ import annotations

import time

from doorpi.benchcore import grant_latency, populate, soak_card
from doorpi.clocks import ManualClock
from doorpi.sim.site import SimulatedSite, sim_config


def test_grant_latency_times_paced_grants_on_a_populated_site(tmp_path):
    t0 = time.monotonic()
    out = grant_latency(residents=300, cards=8, pins=3, data_dir=tmp_path)
    took = time.monotonic() - t0
    assert out["residents"] == 301 and out["period_s"] == 0.1
    assert out["card"]["samples"] == 8 and out["pin"]["samples"] == 3
    for kind in ("card", "pin"):
        r = out[kind]
        assert 0 < r["median_ms"] <= r["p99_ms"] <= r["max_ms"] < 1000, out
    assert took >= 11 * 0.1 * 0.9, f"11 decisions in {took:.2f} s: not paced"


def test_populate_gives_every_resident_a_working_card(tmp_path):
    site = SimulatedSite(sim_config({}, tmp_path), ManualClock(1_772_442_000.0))
    try:
        populate(site, 50)
        assert site.storage.db.execute("SELECT count(*) FROM residents").fetchone()[0] == 51
        site.card(soak_card(49))
        assert site.strike_pin.state is True
    finally:
        site.close()
