"""What a consent form and the gate sign must say, from the law notes, not from
the code's own list (issue #14: "the required consent sections are tested
against the same list the code uses").

Law notes B6: the separate consent states purpose, method, scope, retention
period, the controller and how to reach them, how to withdraw, and why face
is needed. B9: the sign names the controller, the alternatives and the
capture zone (and, B10, how to withdraw). The lists below are written out
here from those notes; each item maps to the id our texts give its section
and to a fact the section must carry. Dropping any item from the code's list
(`REQUIRED_CONSENT_SECTIONS`, `REQUIRED_SIGN_SECTIONS`), or a section from a
shipped text, fails here.
"""

from __future__ import annotations

import re

import pytest
from privacy_support import SITE

from doorpi.privacy.consent import ConsentError
from doorpi.privacy.notices import NoticeDetails, NoticeError, NoticeText, check_notice, load_notice

RETENTION = 123
ZONE = {"en": "the yellow square at the gate", "zh": "门口黄色方框内"}

#: Law notes B6, item by item: (what the law asks, section id, facts it must carry).
CONSENT_B6 = [
    ("purpose", "purpose", ()),
    ("method", "method", ("{zone}",)),
    ("scope", "scope", ()),
    ("retention period", "retention", (str(RETENTION),)),
    ("controller and how to reach them", "controller", (SITE.controller, SITE.contact)),
    ("how to withdraw", "withdraw", ("9", "1")),
    ("why face is needed", "why_face", ()),
]
#: Law notes B9 (and B10 for withdrawal) for the printed sign.
SIGN_B9 = [
    ("the controller", "controller", (SITE.controller,)),
    ("the alternatives", "alternatives", ()),
    ("the capture zone", "method", ("{zone}",)),
    ("how to withdraw", "withdraw", ("9",)),
]
#: "separate from house rules" (B6), said in the form's opening lines.
SEPARATE = {"en": "separate from the house rules", "zh": "与小区管理规约分开"}


def details(lang: str) -> NoticeDetails:
    return NoticeDetails(SITE.name, SITE.controller, SITE.contact, RETENTION, ZONE[lang])


def _without(notice: NoticeText, section: str) -> NoticeText:
    """The same text with one section (heading and body) cut out."""
    pattern = rf"^#{{1,2}} [^\n]*\{{#{section}\}}\s*$.*?(?=^#{{1,2}} |\Z)"
    cut, n = re.subn(pattern, "", notice.text, flags=re.M | re.S)
    assert n == 1, f"section {section} not found once in the shipped {notice.kind} text"
    return NoticeText(notice.kind, notice.lang, notice.version, cut)


def _emptied(notice: NoticeText, section: str) -> NoticeText:
    """The same text with the section's heading kept and its body removed."""
    pattern = rf"(^#{{1,2}} [^\n]*\{{#{section}\}}\s*$).*?(?=^#{{1,2}} |\Z)"
    cut, n = re.subn(pattern, r"\1\n\n", notice.text, flags=re.M | re.S)
    assert n == 1
    return NoticeText(notice.kind, notice.lang, notice.version, cut)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("kind", "items"), [("consent", CONSENT_B6), ("sign", SIGN_B9)])
def test_shipped_texts_say_what_the_law_asks(kind, items, lang):
    notice = load_notice(kind, lang, details(lang))
    sections = notice.sections
    for what, sid, facts in items:
        body = sections.get(sid, "")
        assert len(body) >= 20, f"{kind}/{lang}: no section on {what} ({sid})"
        for fact in facts:
            fact = fact.replace("{zone}", ZONE[lang])
            assert fact in body, f"{kind}/{lang}: the {what} section lacks {fact!r}"
    if kind == "consent":
        head = notice.text.split("\n## ")[0]
        assert SEPARATE[lang] in head


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(
    ("kind", "what", "sid"),
    [("consent", w, s) for w, s, _ in CONSENT_B6] + [("sign", w, s) for w, s, _ in SIGN_B9],
)
def test_a_text_missing_any_required_section_is_refused(kind, what, sid, lang):
    good = load_notice(kind, lang, details(lang))
    check_notice(good)  # the shipped text passes
    for broken in (_without(good, sid), _emptied(good, sid)):
        with pytest.raises(NoticeError, match=sid):
            check_notice(broken)


@pytest.mark.parametrize("what,sid", [(w, s) for w, s, _ in CONSENT_B6])
def test_no_consent_is_recorded_on_a_form_missing_a_section(privacy, alice, what, sid):
    ticket = privacy.start_enrolment(alice, "admin_present", by="operator:li")
    ticket.notice = _without(ticket.notice, sid)
    with pytest.raises(ConsentError, match=sid):
        privacy.consent(ticket, confirmed_by="operator:li")
    assert privacy.consents.history(privacy.storage.residents.get(alice).pseudonym) == []
