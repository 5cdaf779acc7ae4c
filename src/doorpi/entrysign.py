"""The resident sign for card and PIN entry (zh/en): keypad steps and what the
lights and beeps mean, generated from this gate's door policy and from
`doorpi.hardware.feedback.PATTERNS`, the table the gate itself plays, so the
sign cannot drift from the gate. Printed with `doorpi notice --sign entry`.

The sign tells residents what they can act on ("try again" or "see the
office") and nothing a stranger could use: one pattern covers an unknown
card, a wrong PIN and an unknown resident number.
"""

from __future__ import annotations

from doorpi.hardware.feedback import MORE_NEEDED, PATTERNS, UNLOCK, Blink, Pattern, more_needed
from doorpi.privacy.notices import NoticeText

SIGN_VERSION = "2"

_WORDS = {
    "en": {
        "title": "How to open this door", "steps": "Steps", "lights": "Lights and beeps",
        "green": "green light", "red": "red light", "beep": "beep", "beeps": "beeps",
        "blinking": "blinking", "long": "long", "unlock": "while the door is open",
        "until": "until cleared", "card": "Tap your card on the reader.",
        "pin": "Type your resident number, then #, then your PIN, then #. Example: 101#2468#",
        "card+pin": "Tap your card, then type your PIN and #.",
        "card+face": "Tap your card, then look at the camera.",
        "pin+face": "Type your resident number and #, then look at the camera.",
        "face": "Press F (or A) and look at the camera.",
        "or": "Any one of these opens the door:", "clear": "* clears what you typed; "
        "* again cancels.", "exit": "To leave, press the exit button inside.",
        "office": "Lost card, forgotten PIN, moved in or out: the management office",
        "menu": "Face entry (optional): sign up or withdraw",
        "menu_steps": "Press #, then tap your card: the door stays locked. Type your PIN and #. "
        "Then 7 # to sign up (1 # agrees to the consent form posted here, 0 # says no "
        "and you will not be asked again), or 9 # then 1 # to withdraw and delete your "
        "face data. * leaves the menu; tap your card again to go in.",
    },
    "zh": {
        "title": "开门说明", "steps": "开门方法", "lights": "灯光与提示音",
        "green": "绿灯", "red": "红灯", "beep": "声短响", "beeps": "声短响",
        "blinking": "闪烁", "long": "长响", "unlock": "开门期间常亮",
        "until": "持续到解除", "card": "在读卡器上刷卡。",
        "pin": "输入住户号，按 #，再输入密码，按 #。例如：101#2468#",
        "card+pin": "先刷卡，再输入密码并按 #。",
        "card+face": "先刷卡，再看摄像头。",
        "pin+face": "输入住户号并按 #，再看摄像头。",
        "face": "按 F（或 A）键，看摄像头。",
        "or": "以下任一方式均可开门：", "clear": "* 清除已输入内容；再按 * 取消。",
        "exit": "离开时请按门内的出门按钮。",
        "office": "卡丢失、忘记密码、入住或搬离：请联系物业管理处",
        "menu": "刷脸进门（自愿）：登记或撤回",
        "menu_steps": "先按 #，再刷卡：门不会打开。输入密码并按 #。然后按 7 # 登记"
        "（按 1 # 表示同意旁边张贴的同意书，按 0 # 表示不同意，以后不会再询问您），"
        "或按 9 # 再按 1 # 撤回并删除人脸数据。按 * 退出菜单；再刷一次卡即可进门。",
    },
}  # fmt: skip


def _light(b: Blink, colour: str, w: dict[str, str]) -> str:
    if b.on == UNLOCK:
        return f"{w[colour]} ({w['unlock']})"
    if b.n is None:
        return f"{w[colour]} {w['blinking']} ({w['until']})"
    if b.n == 1:
        return f"{w[colour]} {b.on:g} s"
    return f"{w[colour]} {w['blinking']} ×{b.n}"


def _sound(b: Blink, w: dict[str, str]) -> str:
    if b.n is None:
        return f"{w['beeps']} ({w['until']})"
    if b.on >= 0.5:
        return f"{w['long']} {b.on:g} s" if b.n == 1 else f"{b.n} × {w['long']}"
    return f"{b.n} {w['beep'] if b.n == 1 else w['beeps']}"


def describe(pattern: Pattern, lang: str) -> str:
    """What a pattern looks and sounds like, from its numbers: "red light 1 s, 2 beeps"."""
    w = _WORDS[lang]
    parts = [_light(b, c, w) for b, c in ((pattern.green, "green"), (pattern.red, "red")) if b]
    if pattern.buzzer is not None:
        parts.append(_sound(pattern.buzzer, w))
    return ("，" if lang == "zh" else ", ").join(parts)


def entry_sign(
    lang: str,
    site_name: str,
    access: list[frozenset[str]],
    contact: str,
    face: bool = False,
    factors: frozenset[str] | None = None,
) -> NoticeText:
    """The sign as notice text (same markup as the face notices, so same renderers).

    ``access`` is the door's combinations (config ``door.access``), e.g.
    ``[{"card"}, {"pin"}]``; ``contact`` is how to reach the office; ``face``
    (config ``face.enabled``) adds the face menu's steps and patterns;
    ``factors`` (`doorpi.hardware.feedback.door_factors`) are what the "more is
    needed" line names, by default the factors of ``access`` (face only with ``face``).
    """
    if lang not in _WORDS:
        raise ValueError(f"--lang: {lang!r} is not one of zh, en")
    w = _WORDS[lang]
    order = ("card", "pin", "face")
    names = ["+".join(f for f in order if f in combo) for combo in access]
    lines = [f"<!-- doorpi notice: entry, version {SIGN_VERSION} -->",
             f"# {site_name}: {w['title']} {{#title}}", "", f"## {w['steps']} {{#steps}}", ""]  # fmt: skip
    if len(names) > 1:
        lines.append(w["or"])
    lines += [f"- {w.get(n, n)}" for n in names]
    lines += [f"- {w['clear']}", f"- {w['exit']}", ""]
    if face:
        lines += [f"## {w['menu']} {{#face_menu}}", "", w["menu_steps"], ""]
    lines += [f"## {w['lights']} {{#feedback}}", ""]
    if factors is None:
        factors = frozenset(f for c in access for f in c if face or f != "face")
    seen: set[int] = set()
    for name, p in PATTERNS.items():
        if not p.on_sign or (p.face and not face) or id(p) in seen:
            continue
        seen.add(id(p))
        if name in MORE_NEEDED:
            p = more_needed(factors)
        stop = "。" if lang == "zh" else "."
        lines.append(
            f"- **{describe(p, lang)}**: {p.meaning[lang]}{stop} {p.action[lang]}".rstrip()
        )
    lines += ["", f"{w['office']}: {contact}", ""]
    return NoticeText("entry", lang, SIGN_VERSION, "\n".join(lines))
