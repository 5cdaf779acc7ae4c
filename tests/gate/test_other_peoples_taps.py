"""Case 04's kind on the real gate (simulated site, real SQLite, MockFactory
strike): other people's taps (phones' random UIDs, their transit and bank
cards) never make an enrolled card wait; a walker of neighbouring UIDs is
still slowed (20 guesses, then one per pause), also when it reaches an enrolled UID."""

from __future__ import annotations

import pytest

from doorpi.core.events import CardPresented
from doorpi.store.credentials import card_hash
from site_support import MONDAY_9, recorded_site

CARD1 = "04aa11bb22cc77"
CARD2 = "04aa11bb22cc88"


@pytest.fixture
def site(tmp_path):
    s = recorded_site(tmp_path / "data", [{"name": "One", "cards": [CARD1]},
                                          {"name": "Two", "cards": [CARD2]}])  # fmt: skip
    yield s
    s.close()


def access(site):
    return [(e["granted"], e["reason"], e.get("detail", "")) for e in site.events
            if e["event"] == "access"]  # fmt: skip


def phone(i: int) -> str:
    """A phone's random single-size UID (08xxxxxx), a different one on every read."""
    return f"08{(i * 2_654_435_761) % 2**24:06x}"


@pytest.mark.parametrize("n", [5, 10, 50])
def test_known_card_right_after_the_nth_random_uid_opens(site, n):
    for i in range(n):
        site.card(phone(i))
        site.advance(0.4, step=0.4)
    site.card(CARD1)  # 0.3 s after the last phone read
    got = access(site)
    assert got[:n] == [(False, "unknown_card", "random UID")] * n
    assert got[n][:2] == (True, "granted")
    assert not [e for e in site.events if e["event"] in ("lockout_started", "rate_limited")]


def test_two_residents_interleaved_with_twenty_random_uids(site):
    order = []
    for i in range(20):
        site.card(phone(100 + i))
        site.advance(0.3, step=0.3)
        order.append("phone")
        if i % 4 == 3:
            site.card(CARD1 if i % 8 == 3 else CARD2)
            site.advance(0.3, step=0.3)
            order.append("card")
    got = access(site)
    assert [g[1] for g, o in zip(got, order, strict=True) if o == "card"] == ["granted"] * 5
    assert all(g[1] == "unknown_card" for g, o in zip(got, order, strict=True) if o == "phone")


def test_other_peoples_seven_byte_cards_then_the_residents_card_within_a_second(site):
    transit = ["04d2e3f4a5b680", "0437c1a2b3c4d5", "04f00ba9876543", "0461e2d3c4b5a6",
               "049a8b7c6d5e4f", "04112233445566", "04c3d4e5f60718"]  # fmt: skip
    for uid in transit:
        site.card(uid)
        site.advance(0.5, step=0.5)
    site.card(CARD1)  # 0.5 s after the seventh: in a pause, but near no unknown UID
    got = access(site)
    assert [g[1] for g in got[:7]] == ["unknown_card"] * 7
    assert "slow_down" in got[6][2]  # the unknown cards are paced all the same
    assert got[7][:2] == (True, "granted")


def test_a_walker_reaching_an_enrolled_uid_during_a_pause_is_not_let_in(site):
    enrolled = int(CARD1, 16)
    for uid in range(enrolled - 25, enrolled):  # consecutive UIDs every 0.3 s
        site.card(f"{uid:014x}")
        site.advance(0.3, step=0.3)
    site.card(CARD1)  # the walk reaches the resident's card inside a pause
    got = access(site)
    assert got[-1][:2] == (False, "rate_limited")
    assert not [g for g in got if g[0]]
    assert sum(1 for g in got if g[1] == "unknown_card") == 20  # a walk: then one per pause


def test_random_uids_never_count_toward_the_slow_down(site):
    for i in range(30):
        site.card(phone(500 + i))
        site.advance(0.2, step=0.2)
    for i in range(4):  # four unknown neighbours: below the threshold of five
        site.card(f"04aa11bb22{i:04x}")
        site.advance(0.2, step=0.2)
    assert [g[2] for g in access(site)[-4:]] == ["", "", "", ""]  # no slow_down started
    assert site.gate.card_pacer.remembered() == 4  # phones' UIDs are not even kept


def test_secure_card_ids_are_never_taken_for_random_ones(site):
    """The random-ID rule applies to UID reads only: a secure card's identity is its
    authenticated UID, so an unknown one counts like any unknown card."""
    for i in range(5):
        site.gate.submit(CardPresented(bytes.fromhex(f"0800{i:04x}"), "r", "desfire_ev2"))
        site.gate.process_pending()
        site.advance(0.2, step=0.2)
    got = access(site)
    assert [g[2] for g in got] == ["", "", "", "", "slow_down 5s"]


def test_a_random_uid_bound_in_an_old_store_is_looked_up_first(site):
    """Enrolment refuses 08xxxxxx now; a binding from before still works (a magic
    card programmed with a fixed 08 UID), it just never paces anyone."""
    r = site.storage.residents.add("Legacy", MONDAY_9)
    h = card_hash(site.storage.secrets, bytes.fromhex("08c0ffee"))
    site.storage.residents.add_card(r.id, h, MONDAY_9)
    site.card("08c0ffee")
    assert access(site)[-1][:2] == (True, "granted")
