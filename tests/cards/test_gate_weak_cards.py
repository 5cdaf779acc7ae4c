"""The gate flags every record a UID-only card produces; secure cards and refused reads."""

from __future__ import annotations

import pytest

from doorpi.core.events import CardPresented, CardReadFailed
from site_support import recorded_site

CARD = "04a1b2c3d4e5f6"


@pytest.fixture
def site(tmp_path):
    s = recorded_site(tmp_path / "data",
                      [{"name": "Alice", "keypad_id": "101", "cards": [CARD], "pin": "2468"}])  # fmt: skip
    yield s
    s.close()


def tap(site, uid: str, method: str) -> list[dict]:
    site.events.clear()
    site.gate.submit(CardPresented(bytes.fromhex(uid), "Virtual PCD 00 00", method))
    site.gate.process_pending()
    return list(site.events)


@pytest.mark.parametrize("uid", [CARD, "04ffffffffffff"], ids=["known", "unknown"])
def test_every_record_of_a_uid_card_is_weak(site, uid) -> None:
    records = tap(site, uid, "uid")
    assert {"credential_presented", "access"} <= {r["event"] for r in records}
    assert all(r.get("weak_card") is True for r in records), records
    site.advance(0.5)  # the audit queue writes in the background
    stored = [
        r for r in site.storage.audit.records() if r.kind in ("credential_presented", "access")
    ]
    assert stored and all(r.data.get("weak_card") is True for r in stored), stored


def test_secure_card_records_are_not_weak(site) -> None:
    records = tap(site, CARD, "desfire_ev2")
    assert [r["granted"] for r in records if r["event"] == "access"] == [True]
    assert not any("weak_card" in r for r in records)
    site.advance(6)
    site.gate.process_pending()
    assert not any("weak_card" in r for r in site.events)


def test_refused_secure_reads_never_lock_anyone_out(site) -> None:
    """Phones and bank cards (random UIDs, no doorpi app) give read failures, not attacks."""
    for _ in range(30):
        site.gate.submit(CardReadFailed("Virtual PCD 00 00", "no doorpi application on the card"))
        site.gate.process_pending()
        site.advance(0.5)
    assert not [e for e in site.events if e["event"] in ("lockout_started", "slow_down")]
    assert [r["granted"] for r in tap(site, CARD, "desfire_ev2") if r["event"] == "access"] == [
        True
    ]
