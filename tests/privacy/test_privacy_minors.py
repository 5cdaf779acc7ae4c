"""Residents under 14 (law notes B8, PIPL 31): a minor flag on the resident; no
self-enrolment at the gate; consent only from a parent or guardian with the
admin present; flagging an enrolled resident withdraws a consent given alone."""

from __future__ import annotations

import json
import re

import pytest
from privacy_support import add_operator, enrol, unit_vector

import doorpi.cli
from doorpi.config import load_config
from doorpi.privacy.consent import ConsentError
from doorpi.privacy.enrolment import EnrolmentError, GateFaceMenu
from doorpi.store import Storage
from human_output import assert_human


@pytest.fixture
def kid(storage, clock) -> int:
    return storage.residents.add("Kid Wang", clock(), unit="3-101", keypad_id="102",
                                 minor=True).id  # fmt: skip


def test_the_flag_is_stored_and_shown(storage, kid, alice):
    assert storage.residents.get(kid).minor and storage.residents.get(kid).public()["minor"]
    assert not storage.residents.get(alice).minor


def test_a_child_with_card_and_pin_cannot_consent_alone_at_the_gate(privacy, storage, kid, clock):
    menu = GateFaceMenu(privacy, verify_pin=lambda rid, pin: pin == "2468")
    assert not privacy.may_offer(kid)  # the gate never offers face to a child
    menu.arm(clock())  # '#', then the tap, then the PIN
    assert menu.take_card(kid, clock()).kind == "pin_needed"
    for key in "2468#":
        menu.feed(key, clock())
    menu.feed("7", clock())
    act = menu.feed("#", clock())
    assert act is not None and act.kind == "error" and "under 14" in act.detail
    assert privacy.consents.history(storage.residents.get(kid).pseudonym) == []
    with pytest.raises(EnrolmentError, match="under 14"):
        privacy.start_enrolment(kid, "gate", by="resident")


def test_guardian_consent_with_the_admin_present(privacy, storage, kid):
    ticket = privacy.start_enrolment(kid, "admin_present", by="operator:li")
    with pytest.raises(ConsentError, match="guardian"):
        privacy.consent(ticket, confirmed_by="operator:li")  # minor=False cannot un-say the flag
    rec = privacy.consent(ticket, confirmed_by="operator:li", guardian="Fang Wang (mother)")
    assert rec.minor and rec.guardian == "Fang Wang (mother)" and rec.channel == "admin_present"
    assert privacy.enrol(kid, unit_vector(3)) > 0


def test_the_registry_refuses_a_minor_at_the_gate_channel(privacy, storage, kid, clock):
    """Belt and braces below the facade: the registry itself checks the channel."""
    ticket = privacy.start_enrolment(kid, "admin_present", by="operator:li")
    with pytest.raises(ConsentError, match="never at the gate"):
        privacy.consents.record(
            storage.residents.get(kid), ticket.notice, now=clock(), confirmed_by="resident",
            channel="gate", retention_days=30, max_retention_days=365, guardian="Fang Wang",
        )  # fmt: skip


def test_flagging_an_enrolled_child_withdraws_a_consent_given_alone(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(1))
    pseudonym = storage.residents.get(alice).pseudonym
    assert privacy.vault.info(pseudonym) is not None
    clock.advance(60)
    storage.residents.update(alice, clock(), minor=True)
    (rec,) = privacy.consents.history(pseudonym)
    assert rec.withdrawn_at == clock() and rec.withdrawn_by == "system:minor_without_guardian"
    assert privacy.vault.info(pseudonym) is None
    # A guardian's consent is not touched by setting the flag again.
    ticket = privacy.start_enrolment(alice, "admin_present", by="operator:li")
    privacy.consent(ticket, confirmed_by="operator:li", guardian="Fang Wang")
    storage.residents.update(alice, clock(), minor=False)
    storage.residents.update(alice, clock(), minor=True)
    assert privacy.consents.live(pseudonym, clock()) is not None


def test_minor_from_the_command_line(cfg_path, tmp_path, capsys):
    from privacy_support import PIA

    data = load_config(cfg_path).site.data_dir
    sign_in = add_operator(data)

    def run(*argv: str) -> tuple[int, str, str]:
        rc = doorpi.cli.main(["--config", str(cfg_path), *sign_in, *argv])
        out = capsys.readouterr()
        return rc, out.out, out.err

    (tmp_path / "pia.toml").write_text("\n".join(f'{k} = "{v}"' for k, v in PIA.items()))
    assert run("pia", "record", "--file", str(tmp_path / "pia.toml"))[0] == 0
    rc, out, _ = run("resident", "add", "Kid Wang", "--minor")
    assert rc == 0
    kid = int(out.split()[1])
    rc, _, err = run("consent", "record", str(kid), "--yes")
    assert rc == 2 and "guardian" in err
    rc, out, err = run("consent", "record", str(kid), "--yes", "--guardian", "Fang Wang")
    assert rc == 0, err
    rc, out, _ = run("consent", "show", str(kid), "--json")
    (rec,) = json.loads(out)
    assert rec["minor"] and rec["guardian"] == "Fang Wang" and rec["confirmed_by"] == "operator:li"

    # An adult enrolled alone, then marked under 14 by the admin: consent and template go.
    rc, out, _ = run("resident", "add", "Tall Kid")
    teen = int(out.split()[1])
    assert run("consent", "record", str(teen), "--yes")[0] == 0
    store = Storage.open(data)
    try:
        from doorpi.privacy.enrolment import build_face_privacy

        build_face_privacy(load_config(cfg_path), store).enrol(teen, unit_vector(5))
    finally:
        store.close()
    rc, out, _ = run("resident", "minor", str(teen))
    assert rc == 0 and "under 14" in out
    rc, out, _ = run("consent", "report", str(teen), "--json")
    rep = json.loads(out)
    assert rep["resident"]["minor"] and rep["face"]["template"] == {"stored": False}
    assert rep["face"]["consents"][0]["withdrawn_by"] == "system:minor_without_guardian"
    # --minor on consent record marks the resident too.
    rc, out, _ = run("resident", "add", "Small Kid")
    small = int(out.split()[1])
    assert run("consent", "record", str(small), "--yes", "--minor", "--guardian", "Li Na")[0] == 0
    rc, out, _ = run("resident", "show", str(small), "--json")
    assert json.loads(out)["minor"] is True
    # What the admin reads: the flag in words, in the list and on the resident.
    rc, out, _ = run("resident", "show", str(small))
    assert_human(out)
    assert re.search(r"under 14: yes", out)
    rc, out, _ = run("resident", "list")
    assert_human(out)
    flags = {line.split()[1]: line.split()[-2] for line in out.splitlines()[1:]}
    assert flags["Small"] == "yes" and flags["Kid"] == "yes" and flags["Tall"] == "yes"
    rc, out, _ = run("resident", "show", str(teen))
    assert "under 14: yes" in out
