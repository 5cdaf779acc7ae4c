"""Consent terms come from doorpi's own reviewed text (law notes B6-B7, SPC 11).

The operator's fields (capture zone, controller, contact, site name) are
filled into the consent form, so they may carry facts only: a place, a name,
a phone/e-mail/address, bounded, with no word about retention, withdrawal,
licensing or sharing in either language. Refused in `doorpi config check`, on
the gate (the keypad menu has no form to agree to), and on the laptop
(`doorpi notice`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from privacy_support import SITE, FakeClock

from doorpi.config import ConfigError, load_config
from doorpi.privacy.consent import ConsentError
from doorpi.privacy.enrolment import EnrolmentError, FacePrivacy, GateFaceMenu, SiteIdentity
from doorpi.privacy.notices import (
    NoticeDetails,
    NoticeError,
    NoticeText,
    check_consent_terms,
    check_fact,
    load_notice,
)
from doorpi.privacy.settings import DEFAULT_CAPTURE_ZONE, PrivacySettings, privacy_settings

# The example, and more of the same kind in both languages.
EVIL_EN = (
    "kept permanently; consent is final and non-revocable; we may license the template to partners"
)
EVIL_ZH = "门口方框内，不能撤回，长期保存，提供给合作方"
PROMISES = [
    EVIL_EN,
    EVIL_ZH,
    "the yellow square (template kept for 10 years)",
    "the gate, data retained after move-out",
    "the gate; consent cannot be withdrawn",
    "the gate, agreement is binding",
    "the gate, shared with our partners",
    "the gate, templates sold to third parties",
    "the gate, used to train models",
    "the gate, we will keep it",
    "the gate, sublicensable",
    "门口方框内，不能撤回",
    "门口方框内，长期保存",
    "门口方框内，提供给合作方",
    "门口方框内，永久保留",
    "门口方框内，授权第三方使用",
    "门口方框内，与物业共享",
    "门口方框内，本人同意",
    "门口方框内，我们有权使用",
]
PLACES_OK = [
    *DEFAULT_CAPTURE_ZONE.values(),
    "the yellow square at the gate",
    "门口黄色方框内",
    "the marked square, 1 m in front of the north gate camera",
    "3号楼东门摄像头前方的方框内",
]
CONTROLLERS_OK = [
    "Sunny Garden Property Management Co.",
    "Example Court Property Management Ltd.",
    "阳光花园物业管理有限公司",
]
CONTACTS_OK = [
    "+86 10 5555 0100",
    "+86 10 5555 0100, privacy@example.cn",
    "office@example.org",
    "Room 101, Building 3",
    "3号楼101室物业办公室",
    "电话 010-5555-0100",
]


@pytest.mark.parametrize("text", PROMISES)
def test_a_place_carrying_a_term_is_refused(text):
    with pytest.raises(NoticeError, match=r"^capture_zone: "):
        check_fact("capture_zone", text)


@pytest.mark.parametrize("text", PLACES_OK)
def test_places_are_facts(text):
    assert check_fact("capture_zone", text) == text.strip()


@pytest.mark.parametrize("text", CONTROLLERS_OK)
def test_controller_names_are_facts(text):
    assert check_fact("controller", text) == text


@pytest.mark.parametrize("text", CONTACTS_OK)
def test_contacts_are_facts(text):
    assert check_fact("contact", text) == text


@pytest.mark.parametrize(
    ("field", "text", "why"),
    [
        ("contact", "ask at the office", "phone number, e-mail or postal address"),
        ("contact", "+86 10 5555 0100; consent is final", "without ';'"),
        ("controller", "Sunny Garden. See the house rules", "sentences"),
        ("controller", "Sunny Co.\n## Retention {#retention}", "without '\\\\n'"),
        ("capture_zone", "the **gate**", "without '\\*'"),
        ("capture_zone", "the gate {retention_days}", "without '\\{'"),
        ("capture_zone", "x" * 121, "at most 120 characters"),
        ("controller", "C" * 101, "at most 100 characters"),
        ("site", "Sunny Garden. Data kept for ever", "sentences"),
        ("contact", " ", "must not be empty"),
    ],
)
def test_bounded_and_one_phrase(field, text, why):
    with pytest.raises(NoticeError, match=why):
        check_fact(field, text)


@pytest.mark.parametrize(
    "clause",
    [
        "Your template is kept permanently.",
        "This consent is final and non-revocable.",
        "We may license the template to partners.",
        "Your consent is final.",
        "本同意不能撤回。",
        "模板将长期保存。",
        "模板将提供给合作方。",
    ],
)
def test_the_whole_consent_form_is_checked_too(clause):
    """A form (say a damaged install) saying such things is refused, wherever the words sit."""
    with pytest.raises(NoticeError, match=r"SPC Art\. 11"):
        check_consent_terms(clause)


def details(**kw: object) -> NoticeDetails:
    base: dict[str, object] = dict(site="Sunny Garden", controller=SITE.controller,
                                   contact=SITE.contact, retention_days=365,
                                   capture_zone=DEFAULT_CAPTURE_ZONE["en"])  # fmt: skip
    base.update(kw)
    return NoticeDetails(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sign", "consent"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("capture_zone", EVIL_EN), ("controller", "Sunny Co., partners may use it"),
     ("contact", "office@example.org, consent is final"), ("site", EVIL_ZH)],
)  # fmt: skip
def test_no_notice_is_made_from_operator_terms(kind, field, value):
    with pytest.raises(NoticeError, match=field):
        load_notice(kind, "en", details(**{field: value}))


def test_config_refuses_terms_in_every_operator_field(tmp_path):
    def cfg(site: str, face: str) -> Path:
        p = tmp_path / "doorpi.toml"
        p.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\n{site}\n[face]\n{face}\n')
        return p

    good_site = 'controller = "Sunny Co."\ncontact = "+86 10 5555 0100"'
    with pytest.raises(ConfigError, match=r"face\.capture_zone: "):
        load_config(cfg(good_site, f'capture_zone = "{EVIL_EN}"'))
    with pytest.raises(ConfigError, match=r"face\.capture_zone\.zh: .*(撤回|长期|合作)"):
        load_config(cfg(good_site, f'capture_zone = {{ en = "the gate", zh = "{EVIL_ZH}" }}'))
    with pytest.raises(ConfigError, match=r"site\.controller: .*licen"):
        load_config(cfg('controller = "Sunny Co. may license it to partners"\ncontact = "a@b.cn"',
                        ""))  # fmt: skip
    with pytest.raises(ConfigError, match=r"site\.contact: .*phone number"):
        load_config(cfg('controller = "Sunny Co."\ncontact = "just ask"', ""))
    with pytest.raises(ValueError, match=r"face\.capture_zone\.en: "):
        privacy_settings({"capture_zone": {"en": "the gate, kept for 5 years"}})


def test_config_check_and_notice_on_the_command_line_refuse_them(tmp_path):
    p = tmp_path / "doorpi.toml"
    p.write_text(
        f'[site]\ndata_dir = "{tmp_path / "d"}"\ncontroller = "Sunny Co."\n'
        f'contact = "+86 10 5555 0100"\n[face]\ncapture_zone = "{EVIL_EN}"\n'
    )
    for argv in (["config", "check"], ["notice", "--lang", "en"]):
        r = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(p), *argv],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode != 0 and "face.capture_zone" in r.stderr, (argv, r.stderr)
        assert "Traceback" not in r.stderr and "license" not in r.stdout


def test_the_gate_menu_offers_no_form_built_from_terms(storage, vault, clock: FakeClock, alice):
    """An operator who edits the code path around the config (a SiteIdentity made by
    hand, an old config) still gets no consent recorded at the keypad."""
    from privacy_support import PIA

    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment

    AssessmentRegistry(storage.db, storage.audit).record(
        ImpactAssessment(**PIA, author="DPO Li", created=clock())
    )
    evil = SiteIdentity("Sunny Garden", "Sunny Co., we may license templates to partners",
                        SITE.contact)  # fmt: skip
    privacy = FacePrivacy(storage, vault, PrivacySettings(), evil, clock=clock)
    menu = GateFaceMenu(privacy, verify_pin=lambda rid, pin: pin == "2468")
    menu.arm(clock())
    assert menu.take_card(alice, clock()).kind == "pin_needed"
    assert [menu.feed(k, clock()).kind for k in "2468#"][-1] == "menu"
    menu.feed("7", clock())
    act = menu.feed("#", clock())
    assert act is not None and act.kind == "error" and "controller" in act.detail
    assert privacy.consents.history(storage.residents.get(alice).pseudonym) == []
    with pytest.raises(EnrolmentError, match="controller"):
        privacy.start_enrolment(alice, "admin_present", by="operator:li")


def test_a_recorded_form_is_checked_again(privacy, alice, storage):
    """ConsentRegistry.record refuses a form with such terms, whoever built it."""
    ticket = privacy.start_enrolment(alice, "admin_present", by="operator:li")
    bad = NoticeText(
        "consent", "zh", ticket.notice.version, ticket.notice.text + "\n模板将长期保存。\n"
    )
    ticket.notice = bad
    with pytest.raises(ConsentError, match="unlimited duration"):
        privacy.consent(ticket, confirmed_by="operator:li")
