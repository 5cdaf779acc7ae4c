"""Spoken prompts for the face menu: accessible notice and consent (law notes B9).

Why: the gate has no display, and the sign and the consent form are paper.
A resident who cannot read them (poor sight, cannot read the language) hears
each step of the keypad face menu instead: the menu, the consent terms, the
question about other gates, withdrawal, and every outcome. The texts live in
``notices/<lang>/spoken.md``, versioned and reviewed with the printed sign
and form, filled with the same operator facts (`NoticeDetails`), and checked
like the consent form (`check_notice`: every step present, no forbidden term).

`Speaker` is the edge: `EspeakSpeaker` speaks through ``espeak-ng`` and
``aplay`` (the Pi's audio out or a USB speaker) without blocking the gate;
`RecordingSpeaker` is the double the tests use.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from typing import Protocol

from doorpi.privacy.notices import LANGS, NoticeDetails, NoticeText, load_notice

log = logging.getLogger("doorpi.speech")

#: espeak-ng voice per notice language (`espeak-ng --voices`).
VOICES = {"zh": "cmn", "en": "en"}


class Speaker(Protocol):
    """Says one text in one language (``zh`` or ``en``); must not block for long."""

    def say(self, text: str, lang: str) -> None: ...


class RecordingSpeaker:
    """The double: remembers what would have been said, as (lang, text)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def say(self, text: str, lang: str) -> None:
        self.said.append((lang, text))


class EspeakSpeaker:
    """``espeak-ng -v VOICE --stdout TEXT | aplay -q``, one prompt at a time: a new
    prompt stops the one still playing (the resident pressed on)."""

    def __init__(self, espeak: str = "espeak-ng", aplay: str = "aplay",
                 run: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:  # fmt: skip
        self.espeak, self.aplay, self._run = espeak, aplay, run
        self._playing: list[subprocess.Popen] = []

    @staticmethod
    def problem(espeak: str = "espeak-ng", aplay: str = "aplay") -> str | None:
        """Why prompts cannot be spoken here (a missing program), or None."""
        for prog in (espeak, aplay):
            if shutil.which(prog) is None:
                return f"{prog}: not installed (apt install espeak-ng alsa-utils)"
        return None

    def say(self, text: str, lang: str) -> None:
        for p in self._playing:
            if p.poll() is None:
                p.kill()
        try:
            tts = self._run([self.espeak, "-v", VOICES.get(lang, "en"), "--stdout", text],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
            out = self._run([self.aplay, "-q"], stdin=tts.stdout, stderr=subprocess.DEVNULL)
            if tts.stdout is not None:
                tts.stdout.close()  # aplay holds the pipe now
        except OSError as exc:  # never a reason for the gate to stop: card and PIN go on
            log.warning("spoken prompt not played: %s", exc)
            return
        self._playing = [tts, out]


class SpokenPrompts:
    """The reviewed spoken texts, per language, filled with the operator's facts."""

    def __init__(self, details: Callable[[str], NoticeDetails]) -> None:
        self._details = details
        self._texts: dict[str, NoticeText] = {}

    def notice(self, lang: str) -> NoticeText:
        if lang not in self._texts:
            self._texts[lang] = load_notice("spoken", lang, self._details(lang))
        return self._texts[lang]

    def text(self, step: str, lang: str) -> str | None:
        """What to say at ``step`` (a `MenuAction` kind), or None for a step that is silent."""
        body = self.notice(lang if lang in LANGS else "zh").sections.get(step)
        return body.replace("**", "") if body else None


def build_speaker(enabled: bool) -> Speaker | None:
    """The gate's speaker for ``face.spoken_prompts``; None (logged) when off or
    when espeak-ng or aplay is missing: the printed notice still stands."""
    if not enabled:
        return None
    problem = EspeakSpeaker.problem()
    if problem:
        log.error("spoken prompts off: %s", problem)
        return None
    return EspeakSpeaker()


__all__ = [
    "VOICES",
    "EspeakSpeaker",
    "RecordingSpeaker",
    "Speaker",
    "SpokenPrompts",
    "build_speaker",
]
