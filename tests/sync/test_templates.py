"""Face templates between gates: sealed and signed gate to gate, consent-gated."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from doorpi.sync.admin import AdminSite
from doorpi.sync.bundle import BundleError, TemplateEntry
from doorpi.sync.keys import SiteKey
from doorpi.sync.roster import parse_roster
from doorpi.sync.templates import open_template, seal_template, unseal_for_vault
from sync.helpers import (
    EMBEDDING,
    SHARING_ROSTER,
    GateRig,
    MemorySink,
    other_gate,
    resident,
    template,
)


class DictSource:
    """A TemplateSource standing in for the vault: pseudonym -> template bytes."""

    def __init__(self) -> None:
        self.templates: dict[str, bytes] = {}

    def template_bytes(self, pseudonym: str) -> bytes | None:
        return self.templates.get(pseudonym)

    def card_key(self) -> bytes | None:
        return None


def test_seal_open_binds_signer_resident_and_destination() -> None:
    src, dst, third = other_gate("a"), other_gate("b"), other_gate("c")
    sealed = seal_template(src, dst.public, "a-1", EMBEDDING)
    assert EMBEDDING not in sealed
    assert open_template(sealed, dst, src.public, "a-1") == EMBEDDING
    assert unseal_for_vault(sealed, dst) == EMBEDDING
    cases = [
        (lambda: open_template(sealed, dst, third.public, "a-1"), "bad_signature"),
        (lambda: open_template(sealed, dst, src.public, "b-2"), "malformed"),
        (lambda: open_template(sealed, third, src.public, "a-1"), "undecryptable"),
    ]
    for call, code in cases:
        with pytest.raises(BundleError) as info:
            call()
        assert info.value.code == code


def test_forged_template_is_refused_and_nothing_changes(rig: GateRig, site: SiteKey) -> None:
    """SealedBox is anonymous: an intruder's face sealed to the gate must not get in."""
    intruder = other_gate("intruder")
    forged = seal_template(intruder, rig.identity.public, "a-1", b"intruder face")
    entry = TemplateEntry("a-1", rig.peer.fingerprint, True, forged)
    rep = rig.apply(rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                               templates=(entry,)))  # fmt: skip
    assert (rep.code, rep.reason) == (
        "bad_signature",
        f"templates[0] (a-1): template was not signed by gate {rig.peer.fingerprint[:12]}",
    )
    assert rig.sink.stored == {} and rig.storage.residents.all() == []


def test_template_from_outside_the_site_is_malformed(rig: GateRig, site: SiteKey) -> None:
    stranger = other_gate("elsewhere")
    b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                   templates=(template("a-1", stranger, rig.identity),))  # fmt: skip
    rep = rig.apply(b)
    assert rep.code == "malformed" and "is not one of this site's gates (peers)" in rep.reason


def test_home_gate_keeps_its_own_template(rig: GateRig, site: SiteKey) -> None:
    """A template tombstone removes received copies only, never one enrolled here."""
    rig.apply(rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)]))
    rig.sink.stored["local"] = b"enrolled here"
    rep = rig.apply(rig.bundle(2, [resident("a-1", 1, site)], template_tombstones=("a-1",)))
    assert rep.changes["templates_deleted"] == 0 and rig.sink.deleted == []


ROSTER = SHARING_ROSTER


def test_template_travels_gate_to_gate_through_the_admin(tmp_path: Path) -> None:
    admin = AdminSite.init(tmp_path / "admin", "Test Court")
    home = GateRig(tmp_path / "home", admin.key, MemorySink())
    away = GateRig(tmp_path / "away", admin.key, MemorySink())
    admin.add_gate(home.identity.public, "home")
    admin.add_gate(away.identity.public, "away")
    source = DictSource()
    home.importer.source = source
    stick = tmp_path / "stick"
    stick.mkdir()
    roster = parse_roster(tomllib.loads(ROSTER), admin.key.pin_tag_key)

    # Round 1: both gates learn the residents; Alice enrols her face at home.
    admin.write_stick(stick, admin.build(roster))
    for rig in (home, away):
        assert rig.importer.import_stick(stick)[0].result == "applied"
    alice = home.storage.residents.by_keypad_id("101")
    bob = home.storage.residents.by_keypad_id("102")
    source.templates = {alice.pseudonym: EMBEDDING, bob.pseudonym: b"bob has not consented"}
    # Round 2: home exports Alice's template (only hers) for the away gate.
    admin.write_stick(stick, admin.build(roster))
    home.importer.import_stick(stick)
    outbox = sorted((stick / "doorpi" / "outbox").rglob("*.templates"))
    assert [p.name for p in outbox] == [f"{home.identity.fingerprint}.templates"]
    assert b"a-1" not in outbox[0].read_bytes()  # the resident is named only inside the seal
    assert outbox[0].parent.name == away.identity.fingerprint
    # Round 3: the admin relays it, unread; the away gate stores it for its own Alice.
    relayed = admin.collect_outbox(stick)
    built = admin.build(roster, templates=relayed)
    admin.write_stick(stick, built)
    admin.clear_outbox(stick, relayed)
    assert not list((stick / "doorpi" / "outbox").rglob("*.templates"))
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "admin").iterdir() if p.is_file())
    assert EMBEDDING[:40] not in on_disk
    assert all(EMBEDDING[:40] not in p.read_bytes() for p in stick.rglob("*") if p.is_file())
    rep = away.importer.import_stick(stick)[0]
    assert rep.result == "applied" and rep.changes["templates_stored"] == 1
    away_alice = away.storage.residents.by_keypad_id("101").pseudonym
    assert unseal_for_vault(away.sink.stored[away_alice], away.identity) == EMBEDDING
    # Round 4: Alice withdraws consent to share: the away copy goes, home keeps hers.
    roster = parse_roster(tomllib.loads(ROSTER.replace("true", "false")), admin.key.pin_tag_key)
    admin.write_stick(stick, admin.build(roster))
    for rig in (home, away):
        assert rig.importer.import_stick(stick)[0].result == "applied"
    assert away.sink.stored == {} and away.sink.deleted == [away_alice]
    assert home.sink.deleted == []
    assert not list((stick / "doorpi" / "outbox").rglob("*.templates"))  # nothing to share now
