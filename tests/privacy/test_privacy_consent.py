"""Separate consent, refusal and withdrawal (law notes A2-A3, B6-B8, C10)."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace

import pytest
from privacy_support import DAY, NOW, enrol, unit_vector

from doorpi.privacy.consent import ConsentError
from doorpi.privacy.enrolment import EnrolmentError, FacePrivacy, GateFaceMenu
from doorpi.privacy.notices import NoticeText
from doorpi.privacy.settings import PrivacySettings


def kinds(storage) -> list[str]:
    return [r.kind for r in storage.audit.records()]


def test_consent_record_holds_everything_the_law_asks(privacy, storage, alice, clock):
    ticket = privacy.start_enrolment(alice, "admin_present", by="admin:li", lang="en")
    rec = privacy.consent(ticket, confirmed_by="admin:li", retention_days=200)
    pseudonym = storage.residents.get(alice).pseudonym
    assert rec.pseudonym == pseudonym
    assert rec.notice_hash == hashlib.sha256(ticket.notice.text.encode()).hexdigest()
    assert rec.notice_version == "2026.3" and rec.lang == "en"
    assert rec.given_at == NOW and rec.retention_end == NOW + 200 * DAY
    assert rec.confirmed_by == "admin:li" and rec.channel == "admin_present"
    assert rec.minor is False and rec.guardian is None and rec.share_site_gates is False
    # The record never holds the name: only the random pseudonym.
    row = storage.db.execute("SELECT * FROM face_consents").fetchone()
    assert "Alice" not in repr(row)
    assert kinds(storage)[-2:] == ["face_enrolment_started", "face_consent_recorded"]


def test_retention_end_never_after_the_residents_right_to_enter(privacy, storage, alice, clock):
    storage.residents.update(alice, clock(), valid_until=NOW + 10 * DAY)
    ticket = privacy.start_enrolment(alice, "gate", by="resident")
    assert privacy.consent(ticket, confirmed_by="resident").retention_end == NOW + 10 * DAY


@pytest.mark.parametrize("days", [0, -1, 1096, 100_000])
def test_unlimited_or_out_of_range_retention_is_refused(privacy, storage, alice, days):
    ticket = privacy.start_enrolment(alice, "gate", by="resident")
    with pytest.raises(ConsentError, match="retention period"):
        privacy.consent(ticket, confirmed_by="resident", retention_days=days)
    assert storage.db.execute("SELECT count(*) FROM face_consents").fetchone()[0] == 0


@pytest.mark.parametrize(
    "clause",
    [
        "The template is kept perpetually.",
        "This consent is irrevocable.",
        "Consent cannot be withdrawn once given.",
        "The operator may sublicense the template.",
        "We may share the data with third parties.",
        "人脸信息将被永久保存。",
        "本同意不可撤回。",
        "处理者有权转授权第三方使用。",
        "保存期限为无限期。",
    ],
)
def test_consent_texts_granting_too_much_are_refused(privacy, storage, alice, clock, clause):
    ticket = privacy.start_enrolment(alice, "gate", by="resident")
    bad = NoticeText("consent", ticket.notice.lang, "evil.1", ticket.notice.text + clause + "\n")
    ticket.notice = bad
    with pytest.raises(ConsentError, match="grants"):
        privacy.consent(ticket, confirmed_by="resident")
    assert storage.db.execute("SELECT count(*) FROM face_consents").fetchone()[0] == 0


def test_consent_text_without_withdrawal_or_purpose_is_refused(privacy, alice):
    ticket = privacy.start_enrolment(alice, "gate", by="resident", lang="en")
    text = ticket.notice.text
    cut = text[: text.index("## How to withdraw")] + text[text.index("## Your choices") :]
    ticket.notice = replace(ticket.notice, text=cut)
    with pytest.raises(ConsentError, match="lacks: withdraw"):
        privacy.consent(ticket, confirmed_by="resident")


def test_the_sign_is_not_a_consent_form(privacy, alice):
    ticket = privacy.start_enrolment(alice, "gate", by="resident")
    ticket.notice = privacy.notice("sign")
    with pytest.raises(ConsentError, match="consent form"):
        privacy.consent(ticket, confirmed_by="resident")


def test_under_14_needs_a_guardian(privacy, storage, alice):
    ticket = privacy.start_enrolment(alice, "admin_present", by="admin:li")
    with pytest.raises(ConsentError, match="guardian"):
        privacy.consent(ticket, confirmed_by="admin:li", minor=True)
    with pytest.raises(ConsentError, match="guardian"):
        privacy.consent(ticket, confirmed_by="admin:li", minor=True, guardian="  ")
    rec = privacy.consent(
        ticket, confirmed_by="admin:li", minor=True, guardian="Wang Fang (mother)"
    )
    assert rec.minor and rec.guardian == "Wang Fang (mother)"
    with pytest.raises(sqlite3.IntegrityError):  # the schema enforces it too
        storage.db.execute("UPDATE face_consents SET guardian = NULL WHERE id = ?", [rec.id])


def test_sharing_with_other_gates_needs_the_site_and_the_resident(privacy, storage, alice):
    ticket = privacy.start_enrolment(alice, "admin_present", by="admin:li")
    with pytest.raises(ConsentError, match="does not allow"):
        privacy.consent(ticket, confirmed_by="admin:li", share_site_gates=True)
    privacy.settings = replace(privacy.settings, allow_site_sharing=True)
    assert privacy.consent(ticket, confirmed_by="admin:li").share_site_gates is False
    assert privacy.consent(ticket, confirmed_by="admin:li", share_site_gates=True).share_site_gates


def test_no_template_before_consent(privacy, alice):
    with pytest.raises(EnrolmentError, match="no live face consent"):
        privacy.enrol(alice, unit_vector(1))
    assert privacy.vault.count() == 0


def test_enrolment_only_by_the_resident_at_the_gate_or_in_person(privacy, alice):
    for channel in ("admin_remote", "auto", "camera"):
        with pytest.raises(EnrolmentError, match="started by the resident"):
            privacy.start_enrolment(alice, channel, by="admin:li")


def test_enrolment_needs_an_impact_assessment(storage, vault, alice, clock):
    from privacy_support import SITE

    bare = FacePrivacy(storage, vault, PrivacySettings(), SITE, clock=clock)
    with pytest.raises(EnrolmentError, match="impact assessment"):
        bare.start_enrolment(alice, "gate", by="resident")


def test_refusal_is_remembered_and_never_offered_again(privacy, storage, alice):
    assert privacy.may_offer(alice)
    privacy.refuse(alice, by="resident")
    assert storage.residents.get(alice).face_refused
    assert not privacy.may_offer(alice)
    # Only the resident starting enrolment themselves lifts it.
    enrol(privacy, alice, unit_vector(2))
    assert not storage.residents.get(alice).face_refused
    assert "face_refused" in kinds(storage)


def identity_snapshot(storage, rid):
    r = storage.residents.get(rid).public()
    r.pop("face_refused")
    return r, storage.residents.cards(rid), storage.residents.pin_hash(rid)


def test_declining_or_withdrawing_changes_nothing_else(privacy, storage, alice, clock):
    storage.residents.add_card(alice, "c" * 64, clock(), label="blue fob")
    storage.residents.set_pin_hash(alice, "$argon2id$fake", clock())
    storage.residents.update(alice, clock(), schedule="daytime", valid_until=NOW + 300 * DAY)
    before = identity_snapshot(storage, alice)
    enrol(privacy, alice, unit_vector(3))
    privacy.withdraw(alice, by="resident", channel="gate")
    privacy.refuse(alice, by="resident")
    assert identity_snapshot(storage, alice) == before


def test_refusing_while_enrolled_also_deletes_the_template(privacy, storage, alice):
    enrol(privacy, alice, unit_vector(4))
    privacy.refuse(alice, by="resident")
    assert privacy.vault.count() == 0
    assert privacy.identify(unit_vector(4), 0.45) is None


def test_withdraw_keeps_the_consent_as_proof_and_logs_everything(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(5))
    clock.advance(60)
    assert privacy.withdraw(alice, by="admin:li", channel="admin")
    (rec,) = privacy.consents.history(storage.residents.get(alice).pseudonym)
    assert rec.withdrawn_at == NOW + 60 and rec.withdrawn_by == "admin:li"
    assert privacy.consents.live(rec.pseudonym, clock()) is None
    assert kinds(storage)[-2:] == ["face_template_deleted", "face_consent_withdrawn"]
    assert storage.audit.verify().ok


def test_removing_a_resident_removes_the_template_even_without_the_facade(privacy, storage, alice):
    enrol(privacy, alice, unit_vector(6))
    storage.residents.remove(alice)
    assert privacy.vault.count() == 0


# ---------------------------------------------------------------- at the gate


PIN = "2468"


def opened(privacy, rid, clock, **kw) -> GateFaceMenu:
    """A menu after '#', the resident's tap and PIN '#'."""
    menu = GateFaceMenu(privacy, verify_pin=lambda r, pin: r == rid and pin == PIN, **kw)
    reopen(menu, rid, clock)
    return menu


def reopen(menu: GateFaceMenu, rid: int, clock) -> None:
    assert menu.arm(clock()).kind == "armed"
    a = menu.take_card(rid, clock())
    assert a is not None and a.kind == "pin_needed"
    assert press(menu, PIN + "#", clock())[-1] == "menu"


def press(menu: GateFaceMenu, keys: str, now: float) -> list[str]:
    out = []
    for k in keys:
        a = menu.feed(k, now)
        out.append(a.kind if a else "-")
    return out


def test_gate_menu_is_entered_by_hash_then_a_tap_and_a_tap_alone_never_enters(
    privacy, alice, clock
):
    menu = GateFaceMenu(privacy, verify_pin=lambda rid, pin: pin == PIN)
    assert menu.take_card(alice, clock()) is None  # a tap alone: the gate's entry path
    assert menu.feed("7", clock()) is None
    menu.arm(clock())
    clock.advance(GateFaceMenu.ARM_SECONDS + 1)
    assert menu.take_card(alice, clock()) is None and not menu.active(clock())
    menu.arm(clock())
    assert menu.take_card(None, clock()) is None and not menu.active(clock())  # unknown card
    menu.arm(clock())
    clock.advance(GateFaceMenu.ARM_SECONDS - 1)
    assert menu.feed("#", clock()).kind == "armed"  # '#' again: armed from now
    clock.advance(GateFaceMenu.ARM_SECONDS - 1)
    assert menu.take_card(alice, clock()).kind == "pin_needed"
    assert menu.take_card(alice, clock()) is None and not menu.active(clock())  # tap again: leave
    menu.arm(clock())
    a = menu.feed("1", clock())  # a resident number after a stray '#': given back, '#' not
    assert a is not None and (a.kind, a.detail) == ("release", "1")


def test_withdrawal_at_the_gate_is_as_easy_as_enrolment(privacy, storage, alice, clock):
    e = unit_vector(7)
    menu = opened(privacy, alice, clock)
    enrol_keys = "7#1#"
    assert press(menu, enrol_keys, clock())[-1] == "capture"
    rec = privacy.consents.live(storage.residents.get(alice).pseudonym, clock())
    assert rec is not None and rec.channel == "gate" and rec.confirmed_by == "resident:card+pin"
    privacy.enrol(alice, e)
    assert privacy.identify(e, 0.45) == alice

    reopen(menu, alice, clock)
    withdraw_keys = "9#1#"
    assert press(menu, withdraw_keys, clock()) == ["typing", "ask_withdraw", "typing", "withdrawn"]
    assert len(withdraw_keys) <= len(enrol_keys)
    assert privacy.identify(e, 0.45) is None
    assert privacy.vault.count() == 0


@pytest.mark.parametrize(("answer", "shared"), [("1", True), ("0", False)])
def test_gate_asks_the_separate_sharing_choice_where_the_site_allows_it(
    privacy, storage, alice, clock, answer, shared
):
    privacy.settings = replace(privacy.settings, allow_site_sharing=True)
    menu = opened(privacy, alice, clock)
    pseudonym = storage.residents.get(alice).pseudonym
    assert press(menu, "7#1#", clock())[-1] == "ask_share"
    assert privacy.consents.live(pseudonym, clock()) is None  # nothing recorded yet
    assert press(menu, answer + "#", clock())[-1] == "capture"
    rec = privacy.consents.live(pseudonym, clock())
    assert rec is not None and rec.share_site_gates is shared


def test_sharing_is_never_asked_where_the_site_does_not_allow_it(privacy, storage, alice, clock):
    menu = opened(privacy, alice, clock)
    assert press(menu, "7#1#", clock())[-1] == "capture"
    assert not privacy.consents.live(
        storage.residents.get(alice).pseudonym, clock()
    ).share_site_gates


def test_an_unclear_sharing_answer_records_nothing(privacy, storage, alice, clock):
    privacy.settings = replace(privacy.settings, allow_site_sharing=True)
    menu = opened(privacy, alice, clock)
    assert press(menu, "7#1#5#", clock())[-1] == "cancelled"
    assert privacy.consents.live(storage.residents.get(alice).pseudonym, clock()) is None


def test_saying_no_at_the_gate_is_remembered(privacy, storage, alice, clock):
    menu = opened(privacy, alice, clock)
    assert press(menu, "7#0#", clock())[-1] == "refused"
    assert storage.residents.get(alice).face_refused
    assert not privacy.may_offer(alice)


def test_gate_menu_times_out_and_lets_other_keys_through(privacy, alice, clock):
    menu = opened(privacy, alice, clock, window=20)
    clock.advance(21)
    assert menu.feed("9", clock()) is None
    reopen(menu, alice, clock)
    assert press(menu, "9#0#", clock())[-1] == "cancelled"
    assert privacy.consents.history(privacy.storage.residents.get(alice).pseudonym) == []


def test_hash_tap_then_pin_opens_the_menu(privacy, alice, clock):
    tried: list[tuple[int, str]] = []

    def verify_pin(rid: int, pin: str) -> bool:
        tried.append((rid, pin))
        return pin == PIN

    menu = GateFaceMenu(privacy, verify_pin=verify_pin)
    menu.arm(clock())
    assert menu.take_card(alice, clock()).kind == "pin_needed"
    assert press(menu, "#2468#9#1#", clock()) == [
        "pin_needed",
        "typing",
        "typing",
        "typing",
        "typing",
        "menu",
        "typing",
        "ask_withdraw",
        "typing",
        "withdrawn",
    ]  # fmt: skip  (the first '#', out of the old habit, is no wrong PIN)
    assert tried == [(alice, "2468")]
    menu.arm(clock())
    menu.take_card(alice, clock())
    assert press(menu, "1111#", clock())[-1] == "wrong_pin"
    assert not menu.active(clock())
    # Enrolment: the same keys with 7 instead of 9; the question names the posted form.
    menu.arm(clock())
    menu.take_card(alice, clock())
    acts = [menu.feed(k, clock()) for k in "2468#7#1#"]
    assert [a.kind for a in acts if a][-3:] == ["ask_consent", "typing", "capture"]
    assert acts[-3].detail == f"{privacy.settings.notice_lang} 2026.3"
    assert [a.pattern for a in acts if a][-3:] == ["face_question", "key", "face_needed"]


def test_someone_else_typing_after_a_card_tap_is_not_swallowed(privacy, alice, clock):
    menu = GateFaceMenu(privacy, verify_pin=lambda rid, pin: pin == PIN)
    menu.arm(clock())
    a = menu.feed("2", clock())  # the next person starts typing their number
    assert a is not None and (a.kind, a.detail) == ("release", "2")
    assert menu.feed("0", clock()) is None  # the gate has the keypad back
    reopen(menu, alice, clock)
    assert press(menu, "2", clock()) == ["typing"]
    a = menu.feed("0", clock())  # "20...": not a one-digit menu code
    assert a is not None and (a.kind, a.detail) == ("release", "20")
    reopen(menu, alice, clock)
    a = None
    for k in "5#":
        a = menu.feed(k, clock())
    assert a is not None and (a.kind, a.detail) == ("release", "5#")


def test_new_consent_supersedes_the_old_and_shreds_its_template(privacy, storage, alice, data_dir):
    enrol(privacy, alice, unit_vector(9))
    old = bytes(storage.db.execute("SELECT ciphertext FROM face_templates").fetchone()[0])
    ticket = privacy.start_enrolment(alice, "gate", by="resident")
    new = privacy.consent(ticket, confirmed_by="resident:card+pin", retention_days=30)
    history = privacy.consents.history(storage.residents.get(alice).pseudonym)
    assert [c.withdrawn_by for c in history] == ["superseded", None] and history[1].id == new.id
    assert privacy.vault.count() == 0
    assert not any(old[:32] in p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    rec = [r for r in storage.audit.records() if r.kind == "face_template_deleted"][-1]
    assert rec.data["reason"] == "consent_superseded"


def test_re_enrolment_replaces_the_template_physically(privacy, storage, alice, data_dir):
    enrol(privacy, alice, unit_vector(10))
    old = bytes(storage.db.execute("SELECT ciphertext FROM face_templates").fetchone()[0])
    privacy.enrol(alice, unit_vector(11))  # same consent, a better picture
    assert privacy.vault.count() == 1
    assert not any(old[:32] in p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    assert privacy.identify(unit_vector(11), 0.45) == alice
    assert privacy.identify(unit_vector(10), 0.45) is None
