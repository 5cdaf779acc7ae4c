"""Card policy: secure by default, UID-only cards only with legacy_uid, in a window."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from doorpi.cards.keys import GateCardKeys, SiteCardKeys, load_gate_keys, write_gate_keys
from doorpi.cards.policy import (
    CardPolicyProtocol,
    LegacyWindow,
    card_status,
    legacy_allowed,
    parse_until,
)
from doorpi.cards.uid import CardProtocolError
from doorpi.config import ConfigError, ReaderConfig
from doorpi.sim.ev2_card import Ev2CardApp
from doorpi.sim.vpcd_card import uid_handler

SITE = SiteCardKeys(bytes(range(16)))
ALICE = bytes.fromhex("04112233445566")
BOB_LEGACY = bytes.fromhex("04A1B2C3")


def ts(y: int, m: int, d: int, hh: int = 0) -> float:
    return datetime(y, m, d, hh, tzinfo=UTC).timestamp()


def transmit_to(handler):
    def transmit(apdu):
        resp = handler(bytes(apdu))
        return list(resp[:-2]), resp[-2], resp[-1]

    return transmit


def test_legacy_window_edges() -> None:
    assert not legacy_allowed(LegacyWindow(), ts(2026, 1, 1))
    assert legacy_allowed(LegacyWindow(True), ts(2040, 1, 1))
    w = LegacyWindow(True, date(2027, 1, 31))
    assert legacy_allowed(w, ts(2027, 1, 30, 23))
    assert not legacy_allowed(w, ts(2027, 1, 31, 0))
    assert not legacy_allowed(LegacyWindow(False, date(2030, 1, 1)), ts(2027, 1, 1))


def test_parse_until_names_the_setting() -> None:
    assert parse_until("") is None
    assert parse_until("2027-01-31") == date(2027, 1, 31)
    with pytest.raises(ValueError, match=r"reader.legacy_uid_until = '31/01/2027'"):
        parse_until("31/01/2027")


def policy(legacy: bool, until: date | None = None, now: float = ts(2027, 1, 1)):
    keys = GateCardKeys.for_cards(SITE, [ALICE])
    return CardPolicyProtocol(keys, LegacyWindow(legacy, until), now=lambda: now)


def test_secure_card_accepted_by_default() -> None:
    p = policy(False)
    assert p.identify(transmit_to(Ev2CardApp.issued(SITE, ALICE, random_uid=True))) == ALICE
    assert p.method == "desfire_ev2"


def test_uid_card_refused_by_default() -> None:
    with pytest.raises(CardProtocolError, match="legacy_uid"):
        policy(False).identify(transmit_to(uid_handler(BOB_LEGACY)))


def test_uid_card_in_window_is_weak_then_refused_after() -> None:
    p = policy(True, date(2027, 2, 1))
    assert p.identify(transmit_to(uid_handler(BOB_LEGACY))) == BOB_LEGACY
    assert p.method == "uid"
    # the secure card still works in the window, and sets the method back
    assert p.identify(transmit_to(Ev2CardApp.issued(SITE, ALICE))) == ALICE
    assert p.method == "desfire_ev2"
    late = policy(True, date(2027, 2, 1), now=ts(2027, 2, 1, 8))
    with pytest.raises(CardProtocolError):
        late.identify(transmit_to(uid_handler(BOB_LEGACY)))


def test_clone_of_secure_uid_refused_even_in_window() -> None:
    with pytest.raises(CardProtocolError, match="clone"):
        policy(True).identify(transmit_to(uid_handler(ALICE)))


def test_secure_card_without_gate_keys_is_a_clear_refusal() -> None:
    p = CardPolicyProtocol(None, LegacyWindow(), now=lambda: 0.0)
    with pytest.raises(CardProtocolError, match="no card keys"):
        p.identify(transmit_to(Ev2CardApp.issued(SITE, ALICE)))


def test_status_flags_weak_cards() -> None:
    warnings: list[str] = []
    assert card_status(ReaderConfig(), ts(2027, 1, 1), warnings) == {
        "cards_accepted": "secure cards only"
    }
    assert warnings == []
    cfg = ReaderConfig(legacy_uid=True, legacy_uid_until="2027-03-01")
    line = card_status(cfg, ts(2027, 1, 1), warnings)["cards_accepted"]
    assert "weak" in line and "2027-03-01" in line
    assert len(warnings) == 1 and "WEAK" in warnings[0]


def test_config_rejects_a_bad_window(tmp_path) -> None:
    from doorpi.config import load_config

    p = tmp_path / "doorpi.toml"
    p.write_text('[reader]\nlegacy_uid = true\nlegacy_uid_until = "soon"\n')
    with pytest.raises(ConfigError, match="legacy_uid_until"):
        load_config(p)
    p.write_text('[reader]\nlegacy_uid = true\nlegacy_uid_until = "2027-01-31"\n')
    cfg = load_config(p)
    assert cfg.reader.legacy_uid and cfg.reader.legacy_uid_until == "2027-01-31"


def test_gate_keys_file_round_trip_and_faults(tmp_path) -> None:
    assert load_gate_keys(tmp_path) is None
    keys = GateCardKeys.for_cards(SITE, [ALICE])
    path = write_gate_keys(tmp_path, keys)
    assert path.stat().st_mode & 0o777 == 0o600
    back = load_gate_keys(tmp_path)
    assert back is not None and back.entry_key(ALICE) == SITE.entry_key(ALICE)
    path.write_text('{"uid_read": "00", "entry": {}}')
    with pytest.raises(ValueError, match=r"card-keys\.json: malformed"):
        load_gate_keys(tmp_path)


def test_ntag424_with_doorpi_keys_is_secure_a_foreign_one_is_a_uid_card() -> None:
    p = policy(True)
    assert p.identify(transmit_to(Ev2CardApp.issued(SITE, ALICE, ntag424=True))) == ALICE
    assert p.method == "ntag424"
    assert p.identify(transmit_to(Ev2CardApp.ntag424_factory(BOB_LEGACY))) == BOB_LEGACY
    assert p.method == "uid"  # weak: flagged in every record
    with pytest.raises(CardProtocolError, match="clone"):  # Alice's UID on a foreign tag
        p.identify(transmit_to(Ev2CardApp.ntag424_factory(ALICE)))
    with pytest.raises(CardProtocolError, match="NTAG 424 DNA without doorpi's keys"):
        policy(False).identify(transmit_to(Ev2CardApp.ntag424_factory(BOB_LEGACY)))
    # doorpi's UID-read key but another site's entry key: refused, no UID fallback
    other = Ev2CardApp.issued(SiteCardKeys(bytes(16)), ALICE, ntag424=True)
    other.apps[next(iter(other.apps))][1] = SITE.uid_read_key()
    with pytest.raises(CardProtocolError, match="key 2: card refused"):
        p.identify(transmit_to(other))


def test_legacy_uid_is_the_admins_setting_not_the_installers() -> None:
    from doorpi.settings import ADMIN, INSTALLER, misplaced, owner

    assert owner("reader", "legacy_uid") == ADMIN == owner("reader", "legacy_uid_until")
    assert owner("reader", "name") == INSTALLER
    assert "the admin's setting" in (misplaced({"reader": {"legacy_uid": True}}, INSTALLER) or "")
    assert misplaced({"reader": {"legacy_uid_until": "2027-01-31"}}, ADMIN) is None
