"""LED and buzzer patterns a person at the gate can tell apart: one table.

`PATTERNS` is the only place a pattern is defined: `GateFeedback` drives the
LEDs and the buzzer from it, and the resident sign (`doorpi notice --sign
entry`, doorpi.privacy.sign) describes it from the same numbers, so the sign
cannot drift from what the gate does. The camera LED is separate and lit
only while the face path processes frames (issue: visible camera state).

What a resident can act on is told apart without telling a stranger more:
"denied" (try again) covers an unknown card, a wrong PIN and an unknown
resident number alike; "see_office" is shown only after a complete, correct
credential that is not valid now (expired, disabled, not yet valid, outside
its schedule or on a holiday, gate clock not trusted, lockdown for a resident
who is no responder), so it reveals nothing to someone without one (the
choice is `doorpi.core.policy.deny_pattern`).

Door modes (`doorpi.core.modes`) leave a steady indication between the
patterns above (`MODE_PATTERNS`, shown by ``show("mode_<mode>")``):

==============  ===========================================
mode            LEDs while idle
==============  ===========================================
normal          both off
lockdown        red: 0.1 s flash every 2 s
fire_release    green steady on
unlock_window   green steady on
==============  ===========================================

A duress entry shows exactly what a normal grant shows (it has no pattern).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from gpiozero import LED, Buzzer

UNLOCK = -1.0  # an on-time meaning "for the door's unlock time" (door.unlock_seconds)


@dataclass(frozen=True)
class Blink:
    """``n`` flashes of ``on`` seconds with ``off`` seconds between (n None: until cleared)."""

    on: float
    off: float
    n: int | None


@dataclass(frozen=True)
class Pattern:
    """One pattern: what lights and sounds, what it means, what a resident does (zh/en)."""

    green: Blink | None
    red: Blink | None
    buzzer: Blink | None
    meaning: dict[str, str]
    action: dict[str, str]
    on_sign: bool = True  # shown on the resident sign
    face: bool = False  # a face-menu step: on the sign only where face is on


PATTERNS: dict[str, Pattern] = {
    "granted": Pattern(
        Blink(UNLOCK, 0.01, 1), None, Blink(0.1, 0.1, 1),
        {"en": "Door unlocked", "zh": "门已开"},
        {"en": "Push or pull the door now.", "zh": "请推/拉门进入。"},
    ),
    "pin_needed": Pattern(
        Blink(0.2, 0.3, 6), None, None,
        {"en": "More is needed (PIN, card or face)", "zh": "还需要下一步（密码、卡或人脸）"},
        {"en": "Type your PIN and #, or tap your card.", "zh": "请输入密码并按 #，或刷卡。"},
    ),
    "denied": Pattern(
        None, Blink(1.0, 0.01, 1), Blink(0.1, 0.1, 2),
        {"en": "Not accepted", "zh": "未通过"},
        {"en": "Check the card or PIN and try again.", "zh": "请检查卡或密码后重试。"},
    ),
    "see_office": Pattern(
        None, Blink(3.0, 0.01, 1), Blink(0.1, 0.1, 3),
        {"en": "Recognised, but not allowed in now", "zh": "已识别，但现在不能进入"},
        {"en": "Trying again will not help: see the management office.",
         "zh": "重试无效：请联系物业管理处。"},
    ),
    "locked_out": Pattern(
        None, Blink(0.2, 0.2, 10), Blink(1.0, 0.1, 1),
        {"en": "Too many wrong tries: paused", "zh": "错误次数过多：暂停使用"},
        {"en": "Wait a few minutes, then try again.",
         "zh": "请稍等几分钟再试。"},
    ),
    "done": Pattern(
        Blink(0.3, 0.3, 3), None, Blink(0.3, 0.3, 3),
        {"en": "Done (menu step or USB update finished)", "zh": "完成（菜单步骤或 U 盘更新完成）"},
        {"en": "Nothing more to do.", "zh": "无需其他操作。"},
    ),
    "alarm": Pattern(
        None, Blink(0.5, 0.5, None), Blink(0.5, 0.5, None),
        {"en": "Alarm (door forced or held open, or tamper)", "zh": "报警（门被强行打开、未关或防拆）"},
        {"en": "Close the door; if it goes on, call the office.",
         "zh": "请关好门；持续报警请联系物业。"},
    ),
    "face_menu": Pattern(
        Blink(1.0, 0.5, 2), None, Blink(0.1, 0.1, 2),
        {"en": "Face menu open (the door stays locked)", "zh": "人脸菜单已打开（门不会打开）"},
        {"en": "7 # face entry, 9 # withdraw it, * leaves.",
         "zh": "按 7 # 登记人脸，按 9 # 撤回，按 * 退出。"},
        face=True,
    ),
    "face_question": Pattern(
        Blink(0.5, 0.5, 4), None, Blink(0.1, 0.1, 1),
        {"en": "Your answer, please (the question is on the form posted here)",
         "zh": "请回答（问题见旁边张贴的表格）"},
        {"en": "1 # yes, 0 # no, * leaves without answering.",
         "zh": "按 1 # 是，按 0 # 否，按 * 不回答并退出。"},
        face=True,
    ),
    "face_not_captured": Pattern(
        None, Blink(0.3, 0.3, 3), Blink(0.6, 0.2, 2),
        {"en": "Face not captured", "zh": "未能采集人脸"},
        {"en": "Try the face menu again, or see the management office. Card and PIN work as before.",
         "zh": "请重新进入人脸菜单再试，或联系物业管理处。卡和密码照常可用。"},
        face=True,
    ),
    # The face path's quality gate asks the person for what would fix the frame
    # (issue #19: at night the gate used to refuse silently).
    "face_closer": Pattern(
        Blink(0.1, 0.1, 3), None, Blink(0.05, 0.1, 1),
        {"en": "Face too far from the camera", "zh": "离摄像头太远"},
        {"en": "Step closer and look at the camera.", "zh": "请走近并看摄像头。"},
        face=True,
    ),
    "face_light": Pattern(
        Blink(0.1, 0.1, 5), None, None,
        {"en": "Face too dark for the camera", "zh": "脸部太暗"},
        {"en": "Step into the light in front of the camera.", "zh": "请站到摄像头前有光的地方。"},
        face=True,
    ),
    "key": Pattern(None, None, Blink(0.03, 0.01, 1), {"en": "Key pressed", "zh": "按键"},
                   {"en": "", "zh": ""}, on_sign=False),
}  # fmt: skip
# More is wanted: the same green blinking whatever the next factor is.
PATTERNS["card_needed"] = PATTERNS["pin_needed"]
PATTERNS["face_needed"] = PATTERNS["pin_needed"]
# The names of the "more is needed" prompt: which factor the gate wants next.
MORE_NEEDED = ("pin_needed", "card_needed", "face_needed")
_FACTOR_ORDER = ("pin", "card", "face")  # PIN first: after a card, the usual next step
_FACTOR_WORDS = {
    "en": {"pin": "PIN", "card": "card", "face": "face"},
    "zh": {"pin": "密码", "card": "卡", "face": "人脸"},
}
_FACTOR_STEPS = {
    "en": {"pin": "type your PIN and #", "card": "tap your card", "face": "look at the camera"},
    "zh": {"pin": "输入密码并按 #", "card": "刷卡", "face": "看摄像头"},
}


def door_factors(
    rules: Iterable[Iterable[frozenset[str]]], device_factors: Iterable[str]
) -> frozenset[str]:
    """The factors this door can take: those named in any of its access rules
    (``Config.rules()``' rules) that the fitted devices can read
    (``Config.devices.factors``: no face when face is off, no PIN without a keypad)."""
    named = {f for rule in rules for combo in rule for f in combo}
    return frozenset(named & set(device_factors))


def more_needed(factors: Iterable[str]) -> Pattern:
    """The "more is needed" prompt worded for ``factors`` (`door_factors`): the
    same lights and beeps as ``PATTERNS["pin_needed"]``, naming only what this
    door and its devices can take ("More is needed (PIN or card)" with face off)."""
    have = [f for f in _FACTOR_ORDER if f in set(factors)] or ["pin", "card"]
    base = PATTERNS["pin_needed"]
    words = {lang: [w[f] for f in have] for lang, w in _FACTOR_WORDS.items()}
    steps = {lang: [w[f] for f in have] for lang, w in _FACTOR_STEPS.items()}
    en = words["en"][0] if len(have) == 1 else f"{', '.join(words['en'][:-1])} or {words['en'][-1]}"
    zh = words["zh"][0] if len(have) == 1 else f"{'、'.join(words['zh'][:-1])}或{words['zh'][-1]}"
    en_do = ", or ".join(steps["en"])
    return replace(
        base,
        meaning={"en": f"More is needed ({en})", "zh": f"还需要下一步（{zh}）"},
        action={"en": f"{en_do[0].upper()}{en_do[1:]}.", "zh": f"请{'，或'.join(steps['zh'])}。"},
    )


# Face quality hints (doorpi.vision.quality reasons) with a pattern of their own;
# every other hint plays "face_needed".
FACE_HINT_PATTERNS = {"too_far": "face_closer", "too_dark": "face_light"}

# mode -> (LED attribute, on seconds, off seconds); None: both LEDs off.
MODE_PATTERNS: dict[str, tuple[str, float, float] | None] = {
    "normal": None,
    "lockdown": ("red", 0.1, 1.9),
    "fire_release": ("green", 1.0, 0.0),
    "unlock_window": ("green", 1.0, 0.0),
}
# How long a momentary pattern occupies the LEDs before the mode's returns (s).
MOMENTARY_SECONDS = 2.0


class Indicator(Protocol):
    def show(self, pattern: str) -> None: ...
    def alarm(self, active: bool) -> None: ...
    def close(self) -> None: ...


class GateFeedback:
    def __init__(
        self,
        green: int,
        red: int,
        buzzer: int,
        camera: int = 0,
        pin_factory: Any = None,
        unlock_seconds: float = 5.0,
    ) -> None:
        self.green = LED(green, pin_factory=pin_factory) if green else None
        self.red = LED(red, pin_factory=pin_factory) if red else None
        self.buzzer = Buzzer(buzzer, pin_factory=pin_factory) if buzzer else None
        self.camera = LED(camera, pin_factory=pin_factory) if camera else None
        self.unlock_seconds = unlock_seconds
        self.last: str = ""
        self._alarms = 0
        self.mode = "normal"
        self._restore: threading.Timer | None = None

    def _blink(self, dev: Any, on: float, off: float, n: int | None) -> None:
        if dev is not None:
            dev.blink(on_time=on, off_time=off, n=n, background=True)

    def _idle(self) -> None:
        """The current mode's steady indication."""
        if self._alarms:
            return
        for dev in (self.green, self.red):
            if dev is not None:
                dev.off()
        spec = MODE_PATTERNS.get(self.mode)
        if spec is not None:
            dev = getattr(self, spec[0])
            if dev is not None and spec[2] == 0:
                dev.on()
            else:
                self._blink(dev, spec[1], spec[2], None)

    def show(self, pattern: str) -> None:
        self.last = pattern
        if pattern.startswith("mode_"):
            self.mode = pattern.removeprefix("mode_")
            self._idle()
            return
        if self._alarms and pattern != "alarm":
            return  # an alarm pattern wins until cleared
        if self.mode != "normal":
            if self._restore is not None:
                self._restore.cancel()
            wait = self.unlock_seconds if pattern == "granted" else MOMENTARY_SECONDS
            self._restore = threading.Timer(wait, self._idle)
            self._restore.daemon = True
            self._restore.start()
        for dev in (self.green, self.red):
            if dev is not None:
                dev.off()
        p = PATTERNS.get(pattern)
        if p is None:
            return
        for dev, blink in ((self.green, p.green), (self.red, p.red), (self.buzzer, p.buzzer)):
            if blink is not None:
                on = self.unlock_seconds if blink.on == UNLOCK else blink.on
                self._blink(dev, on, blink.off, blink.n)

    def alarm(self, active: bool) -> None:
        self._alarms = max(0, self._alarms + (1 if active else -1))
        if self._alarms:
            p = PATTERNS["alarm"]
            for dev, blink in ((self.red, p.red), (self.buzzer, p.buzzer)):
                if blink is not None:
                    self._blink(dev, blink.on, blink.off, blink.n)
        else:
            for dev in (self.red, self.buzzer):
                if dev is not None:
                    dev.off()
            self._idle()

    def camera_active(self, on: bool) -> None:
        if self.camera is not None:
            self.camera.value = on

    def close(self) -> None:
        if self._restore is not None:
            self._restore.cancel()
        for dev in (self.green, self.red, self.buzzer, self.camera):
            if dev is not None:
                dev.close()


class RecordingFeedback:
    """Test double: remembers patterns and alarm changes."""

    def __init__(self) -> None:
        self.patterns: list[str] = []
        self.alarms: list[bool] = []

    def show(self, pattern: str) -> None:
        self.patterns.append(pattern)

    def alarm(self, active: bool) -> None:
        self.alarms.append(active)

    def camera_active(self, on: bool) -> None:
        pass

    def close(self) -> None:
        pass
