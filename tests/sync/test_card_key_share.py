"""Template on card at a site with several gates: the card key and the consent travel.

A card enrolled at one gate must open the site's other gates (tap + face 1:1),
and stop doing so everywhere once the resident withdraws. The card key moves
sealed gate to gate like a template; the laptop never holds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doorpi.privacy.oncard import TemplateCard, TemplateCardApplet
from doorpi.sync.bundle import BundleError, CardKeyEntry, EnrollmentBundle, parse_body
from doorpi.sync.templates import CARD_KEY_LABEL, seal_template
from sync.helpers import T0, GateRig, TwoGateSite, other_gate, unit

DAY = 86400.0
ALICE_UID = bytes.fromhex("04a1b2c3d4e5f6")
ROSTER = """
[[residents]]
key = "a-1"
name = "Alice"
keypad_id = "101"
cards = ["04a1b2c3d4e5f6"]
share_face_with_site_gates = true
"""


def direct(applet: TemplateCardApplet):  # type: ignore[no-untyped-def]
    def transmit(apdu: list[int]) -> tuple[list[int], int, int]:
        r = applet(bytes(apdu))
        return list(r[:-2]), r[-2], r[-1]

    return transmit


def card_site(tmp: Path) -> TwoGateSite:
    """Two gates with templates on cards; "home" is the card-key gate."""
    return TwoGateSite(tmp, ROSTER, storage="card")


@pytest.fixture
def site(tmp_path: Path) -> TwoGateSite:
    s = card_site(tmp_path)
    s.visit(s.home)
    s.visit(s.away)
    return s


def enrol_on_card(rig: GateRig, rid: int, emb: np.ndarray, applet: TemplateCardApplet) -> None:
    privacy = rig.privacy  # type: ignore[attr-defined]
    ticket = privacy.start_enrolment(rid, "admin_present", by="admin:li")
    privacy.consent(ticket, "admin:li", share_site_gates=True)
    privacy.enrol_on_card(rid, emb, direct(applet))


def test_card_enrolled_at_one_gate_opens_the_other_until_withdrawn(site: TwoGateSite) -> None:
    home, away = site.home, site.away
    applet = TemplateCardApplet(ALICE_UID)
    emb = unit(21)
    enrol_on_card(home, site.resident_id(home), emb, applet)
    blob = TemplateCard(direct(applet)).read()
    assert blob is not None
    # The card key came round with the first visits; Alice's consent has not yet.
    assert away.privacy.verify_card_face(ALICE_UID, blob, emb, 0.45) == (None, "no_consent")  # type: ignore[attr-defined]

    site.visit(home)  # home seals its card key and Alice's consent for the away gate
    outbox = sorted(p.name for p in (site.stick / "doorpi" / "outbox").rglob("*") if p.is_file())
    assert outbox == [
        f"{home.identity.fingerprint}.cardkey",
        f"{home.identity.fingerprint}.templates",
    ]
    rep = site.visit(away)  # the laptop relays both, unread
    assert rep.changes["templates_stored"] == 1  # the consent record (no template: on the card)
    assert away.privacy.vault.count() == 0  # type: ignore[attr-defined]
    key = home.privacy.card_keyring().sealing.site_key  # type: ignore[attr-defined]
    assert away.privacy.card_keyring().sealing.site_key == key  # type: ignore[attr-defined]
    for where in (site.stick, site.admin.dir):
        assert all(key not in f.read_bytes() for f in where.rglob("*") if f.is_file())

    rid = site.resident_id(away)
    assert away.privacy.verify_card_face(ALICE_UID, blob, emb, 0.45) == (rid, "ok")  # type: ignore[attr-defined]
    assert away.privacy.verify_card_face(ALICE_UID, blob, unit(22), 0.45) == (None, "no_match")  # type: ignore[attr-defined]

    # Alice withdraws at home; the report carries it; the away gate stops matching her card.
    home.now = away.now = T0 + DAY
    home.privacy.withdraw(site.resident_id(home), by="resident", channel="gate")  # type: ignore[attr-defined]
    assert [w["resident"] for w in site.visit(home).face_withdrawals] == ["a-1"]
    assert site.visit(away).changes["face_withdrawn"] == 1
    assert away.privacy.verify_card_face(ALICE_UID, blob, emb, 0.45) == (None, "no_consent")  # type: ignore[attr-defined]


def test_cards_sealed_before_the_site_key_arrived_still_read(tmp_path: Path) -> None:
    """A card written at the away gate under its own key keeps working there."""
    site = card_site(tmp_path)
    away = site.away
    site.visit(away)  # the away gate is set up first
    applet = TemplateCardApplet(ALICE_UID)
    enrol_on_card(away, site.resident_id(away), unit(23), applet)
    blob = TemplateCard(direct(applet)).read()
    other = TemplateCardApplet(ALICE_UID)
    site.visit(site.home)
    enrol_on_card(site.home, site.resident_id(site.home), unit(25), other)
    assert site.away.privacy.verify_card_face(  # type: ignore[attr-defined]
        ALICE_UID, TemplateCard(direct(other)).read(), unit(25), 0.45
    ) == (None, "other_site")
    site.visit(away)  # adopts home's card key: new cards are sealed with it
    assert away.privacy.card_keyring().sealing != away.privacy.card_keyring().reading[-1]  # type: ignore[attr-defined]
    assert away.privacy.verify_card_face(ALICE_UID, blob, unit(23), 0.45) == (
        site.resident_id(away),
        "ok",
    )  # type: ignore[attr-defined]


def test_a_card_names_its_gate_so_a_local_consent_id_cannot_stand_in(site: TwoGateSite) -> None:
    """Consent 1 at home is not consent 1 here: the card's gate decides which record counts."""
    home, away = site.home, site.away
    ticket = away.privacy.start_enrolment(site.resident_id(away), "gate", by="resident")  # type: ignore[attr-defined]
    local = away.privacy.consent(ticket, "resident:card+pin")  # type: ignore[attr-defined]
    applet = TemplateCardApplet(ALICE_UID)
    enrol_on_card(home, site.resident_id(home), unit(24), applet)
    home_rec = home.privacy.consents.live(
        home.storage.residents.get(site.resident_id(home)).pseudonym, home.now
    )  # type: ignore[attr-defined]
    assert local.id == home_rec.id == 1  # the same number at both gates
    blob = TemplateCard(direct(applet)).read()
    site.visit(home)
    assert site.visit(away).skipped == {"own_consent": 1}
    assert away.privacy.verify_card_face(ALICE_UID, blob, unit(24), 0.45) == (None, "no_consent")  # type: ignore[attr-defined]


def test_card_key_from_a_gate_that_is_not_the_card_key_gate_is_refused(
    data_dir: Path, site: TwoGateSite
) -> None:
    rig = site.away
    intruder = other_gate("intruder")
    forged = seal_template(intruder, rig.identity.public, CARD_KEY_LABEL, bytes(32))
    home_fp = site.home.identity.fingerprint
    b = rig.bundle(9, peers=(site.home.identity.public,), card_key_gate=home_fp,
                   card_key=CardKeyEntry(home_fp, forged))  # fmt: skip
    rep = rig.apply(b)
    assert rep.code == "bad_signature" and rep.reason.startswith("card_key:")
    body = EnrollmentBundle(**{**vars(b), "card_key_gate": rig.peer.fingerprint}).to_body()
    with pytest.raises(BundleError) as info:
        parse_body(body)
    assert str(info.value).startswith("card_key.source_gate:")


def test_status_says_which_card_key_the_gate_uses(tmp_path: Path) -> None:
    from doorpi.cli.status import _sync_info
    from doorpi.config import load_config

    site = card_site(tmp_path)
    away = site.away
    cfg_file = tmp_path / "away.toml"
    cfg_file.write_text(
        f'[site]\ndata_dir = "{away.data_dir}"\n[door]\nname = "away"\n'
        '[face]\nenabled = true\ntemplate_storage = "card"\n'
    )
    cfg = load_config(cfg_file)
    site.visit(away)  # knows its peer and the card-key gate, but not the key yet
    info = _sync_info(cfg, away.storage, away.now)
    assert info["card_key"] == "this gate's own" and info["sync_other_gates"] == 1
    assert "open only this gate until the site's card key arrives" in info["warnings"][0]
    site.visit(site.home)
    site.visit(away)
    info = _sync_info(cfg, away.storage, away.now)
    home = site.home.identity.fingerprint[:12]
    assert info["card_key"] == f"site key from gate {home}" and info["warnings"] == []
