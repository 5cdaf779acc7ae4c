"""Accessible notice and consent (law notes B9): every step of the keypad face
menu is read aloud in zh and en from reviewed texts with the same terms as the
printed form, the gate speaks on each step, and a large-type form exists."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from privacy_support import FACE_ON, SITE, face_site

from doorpi.privacy.enrolment import GateFaceMenu
from doorpi.privacy.notices import NoticeDetails, NoticeError, NoticeText, check_notice, load_notice
from doorpi.privacy.settings import DEFAULT_CAPTURE_ZONE, PrivacySettings
from doorpi.privacy.speech import EspeakSpeaker, RecordingSpeaker

# Written out here, not imported: the steps a resident meets at the keypad
# (GateFaceMenu's MenuAction kinds, minus "typing" and "release").
STEPS = {"armed", "pin_needed", "menu", "ask_consent", "ask_share", "ask_withdraw", "capture",
         "withdrawn", "refused", "cancelled", "wrong_pin", "error"}  # fmt: skip


def details(lang: str) -> NoticeDetails:
    return NoticeDetails(SITE.name, SITE.controller, SITE.contact, 180,
                         DEFAULT_CAPTURE_ZONE[lang])  # fmt: skip


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_step_has_a_prompt_with_the_forms_terms(lang):
    spoken = load_notice("spoken", lang, details(lang))
    sections = spoken.sections
    assert {k for k, v in sections.items() if v.strip()} >= STEPS
    consent = sections["ask_consent"]
    for fact in ("180", SITE.controller, SITE.contact):  # the same facts as the form
        assert fact in consent
    assert re.search(r"9.*1", consent)  # how to withdraw, as on the form
    form = load_notice("consent", lang, details(lang))
    assert spoken.version and form.version


@pytest.mark.parametrize("clause", ["Your template is kept permanently.", "本同意不能撤回。"])
def test_a_spoken_text_with_forbidden_terms_is_refused(clause):
    good = load_notice("spoken", "en", details("en"))
    bad = NoticeText("spoken", "en", good.version, good.text + clause + "\n")
    with pytest.raises(NoticeError, match=r"SPC Art\. 11"):
        check_notice(bad)
    gap = NoticeText("spoken", "en", good.version, good.text.replace("{#ask_withdraw}", ""))
    with pytest.raises(NoticeError, match="ask_withdraw"):
        check_notice(gap)


def _walk(menu: GateFaceMenu, rid: int, keys: str, clock) -> list[str]:
    """'#', the tap, then ``keys``: the kinds of the steps met, in order."""
    out = [menu.arm(clock()).kind]
    taken = menu.take_card(rid, clock())
    assert taken is not None
    out.append(taken.kind)
    for k in keys:
        act = menu.feed(k, clock())
        if act is not None and act.kind not in ("typing", "release"):
            out.append(act.kind)
    return out


def test_the_menu_speaks_on_every_step(storage, vault, clock, alice):
    from privacy_support import PIA

    from doorpi.privacy.enrolment import FacePrivacy
    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment

    AssessmentRegistry(storage.db, storage.audit).record(
        ImpactAssessment(**PIA, author="DPO Li", created=clock())
    )
    for lang in ("zh", "en"):
        privacy = FacePrivacy(storage, vault, PrivacySettings(notice_lang=lang,
                              allow_site_sharing=True), SITE, clock=clock)  # fmt: skip
        spoken = load_notice("spoken", lang, privacy.settings.notice_details(
            SITE.name, SITE.controller, SITE.contact, lang)).sections  # fmt: skip
        speaker = RecordingSpeaker()
        menu = GateFaceMenu(privacy, verify_pin=lambda rid, pin: pin == "2468", speaker=speaker)
        seen: list[str] = []
        for keys in ("2468#7#0#", "2468#7#1#1#", "2468#9#0#", "2468#9#1#", "1111#",
                     "2468#*"):  # fmt: skip
            seen += _walk(menu, alice, keys, clock)
        storage.residents.update(alice, clock(), active=False)
        seen += _walk(menu, alice, "2468#7#", clock)  # disabled: an error step
        storage.residents.update(alice, clock(), active=True, face_refused=False)
        assert set(seen) == STEPS, STEPS ^ set(seen)
        assert len(speaker.said) == len(seen)
        for kind, (said_lang, text) in zip(seen, speaker.said, strict=True):
            assert said_lang == lang and text == spoken[kind].replace("**", "")


def test_the_gate_reads_each_step_aloud(tmp_path):
    site = face_site(tmp_path, FACE_ON)
    try:
        speaker = RecordingSpeaker()
        site.gate.face_menu.speaker = speaker
        site.key("#")
        site.card("04a1b2c3d4e5f6")
        for k in "2468#7#1#":
            site.key(k)
        menu = [ev["action"] for ev in site.events if ev["event"] == "face_menu"]
        assert menu == ["armed", "pin_needed", "menu", "ask_consent", "capture"]
        assert len(speaker.said) == 5 and all(lang == "zh" for lang, _ in speaker.said)
        assert "2468" not in repr(speaker.said)  # a PIN is never spoken
    finally:
        site.close()


def test_espeak_speaker_commands_and_missing_programs(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    class Proc:
        stdout = None

        def __init__(self, argv, **kw):
            calls.append(argv)

        def poll(self):
            return None

        def kill(self):
            calls.append(["killed"])

    sp = EspeakSpeaker(run=Proc)
    sp.say("请看摄像头。", "zh")
    sp.say("Please look at the camera.", "en")
    assert calls == [["espeak-ng", "-v", "cmn", "--stdout", "请看摄像头。"], ["aplay", "-q"],
                     ["killed"], ["killed"],
                     ["espeak-ng", "-v", "en", "--stdout", "Please look at the camera."],
                     ["aplay", "-q"]]  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "espeak-ng: not installed" in (EspeakSpeaker.problem() or "")
    from doorpi.privacy.speech import build_speaker

    assert build_speaker(True) is None and build_speaker(False) is None


def test_large_type_form(tmp_path):
    p = tmp_path / "doorpi.toml"
    p.write_text(f'[site]\ndata_dir = "{tmp_path / "d"}"\ncontroller = "Sunny Co."\n'
                 'contact = "+86 10 5555 0100"\n')  # fmt: skip

    def notice(*extra: str) -> str:
        r = subprocess.run([sys.executable, "-m", "doorpi", "--config", str(p), "notice",
                            "--kind", "consent", *extra], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stdout

    large, normal = notice("--large"), notice()
    assert '<body class="large">' in large and '<body class="large">' not in normal
    css = re.search(r"<style>(.*)</style>", large, re.S).group(1)  # type: ignore[union-attr]
    sizes = [float(x) for x in re.findall(r"body\.large[^{]*\{[^}]*font-size: ([\d.]+)pt", css)]
    assert sizes and min(sizes) >= 24
    # The same words (and so the same hash a consent points to), only bigger.
    strip = lambda h: re.sub(r"<body[^>]*>", "", h.split("</style>")[1])  # noqa: E731
    assert strip(large) == strip(normal)
    # The resident sign for card and PIN comes in large type too.
    sign_large, sign = notice("--sign", "entry", "--large"), notice("--sign", "entry")
    assert '<body class="large">' in sign_large and '<body class="large">' not in sign
    assert strip(sign_large) == strip(sign)
