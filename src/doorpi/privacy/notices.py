"""Versioned notice texts: the gate sign and the separate consent form.

Why versioned and hashed: a consent record must prove *which* text the
resident saw (PIPL 14, 17). The templates in ``notices/<lang>/`` carry a
version; the operator's details (controller, contact, retention, capture
zone) are filled from the config, and the SHA-256 of the filled text is what
a `ConsentRecord` stores. Each section has an id, and `check_notice` refuses
a consent text that lacks purpose, method, scope, retention, controller,
withdrawal or the reason face is offered, or that grants unlimited
duration, irrevocability or onward licensing (SPC 11).

Rendering to HTML is done here with a tiny Markdown subset (headings,
paragraphs, lists, check boxes, bold) so the device needs no extra package;
the CSS sets A4 pages and large, high-contrast type for elderly residents.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from importlib import resources

LANGS = ("zh", "en")
KINDS = ("sign", "consent")

#: Sections a consent text must contain (law notes B6).
REQUIRED_CONSENT_SECTIONS = (
    "purpose",
    "method",
    "scope",
    "retention",
    "controller",
    "withdraw",
    "why_face",
)
#: Sections the gate sign must contain (law notes B9, MFR 13).
REQUIRED_SIGN_SECTIONS = ("alternatives", "method", "scope", "withdraw", "controller")

#: Wording that may not appear in a consent text (SPC 11: unlimited duration,
#: irrevocability, onward licensing), in English and Chinese.
FORBIDDEN_TERMS: tuple[tuple[str, str], ...] = (
    (r"\bperpetual(ly)?\b", "unlimited duration"),
    (r"\bindefinite(ly)?\b", "unlimited duration"),
    (r"\bunlimited (duration|period|time)\b", "unlimited duration"),
    (r"\bforever\b", "unlimited duration"),
    (r"\bwithout (any )?time limit\b", "unlimited duration"),
    (r"\birrevocabl[ey]\b", "cannot be withdrawn"),
    (r"\b(cannot|can ?not|may not) (be )?(withdraw|revoke)", "cannot be withdrawn"),
    (r"\bsub-?licen[cs]", "onward licensing"),
    (r"\b(transfer|sell|disclose|share) (it |them |the (data|template)s? )?(with|to) third parties\b",
     "onward licensing"),
    (r"永久", "unlimited duration"),
    (r"无限期", "unlimited duration"),
    (r"不限期", "unlimited duration"),
    (r"不可(撤回|撤销|撤消)", "cannot be withdrawn"),
    (r"不得(撤回|撤销)", "cannot be withdrawn"),
    (r"无法(撤回|撤销)", "cannot be withdrawn"),
    (r"转授权|再许可|授权第三方|提供给第三方", "onward licensing"),
)  # fmt: skip

_SECTION = re.compile(r"^#{1,2} (.+?) \{#([a-z_]+)\}\s*$", re.M)
_VERSION = re.compile(r"<!-- doorpi notice: (\w+), version ([\w.\-]+) -->")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class NoticeError(ValueError):
    """A notice text that may not be used; the message says what is wrong."""


@dataclass(frozen=True)
class NoticeDetails:
    """The operator's details filled into the texts (from the config)."""

    site: str
    controller: str
    contact: str
    retention_days: int
    capture_zone: str
    trigger: str = "on_request"  # face.trigger: the texts say when the camera looks

    def check(self) -> None:
        for name in ("site", "controller", "contact", "capture_zone"):
            if not str(getattr(self, name)).strip():
                raise NoticeError(
                    f"the notice needs the {name} (site.{name} or face.{name} in the config)"
                )
        from doorpi.settings import is_placeholder

        for name in ("controller", "contact"):
            if is_placeholder(str(getattr(self, name))):
                raise NoticeError(
                    f"site.{name}: {getattr(self, name)!r} is the shipped placeholder; "
                    "no notice names a fictitious controller (set the real one first)"
                )
        if not 1 <= self.retention_days <= 3650:
            raise NoticeError("the retention period must be 1 to 3650 days")


@dataclass(frozen=True)
class NoticeText:
    """One filled notice text in one language, with its version and hash."""

    kind: str
    lang: str
    version: str
    text: str

    @property
    def digest(self) -> str:
        """SHA-256 of the exact text shown: what a consent record points to."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def sections(self) -> dict[str, str]:
        """Section id -> body text."""
        out: dict[str, str] = {}
        marks = list(_SECTION.finditer(self.text))
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(self.text)
            out[m.group(2)] = self.text[m.end() : end].strip()
        return out


def check_consent_terms(text: str) -> None:
    """Refuse texts that grant unlimited duration, irrevocability or onward licensing."""
    for pattern, what in FORBIDDEN_TERMS:
        m = re.search(pattern, text, re.I)
        if m:
            raise NoticeError(f"the consent text grants {what} ({m.group(0)!r}); SPC Art. 11")


def check_notice(notice: NoticeText) -> None:
    """A notice usable for consent: every required section present and filled,
    no unfilled placeholder, no forbidden term."""
    required = REQUIRED_CONSENT_SECTIONS if notice.kind == "consent" else REQUIRED_SIGN_SECTIONS
    sections = notice.sections
    missing = [s for s in required if not sections.get(s)]
    if missing:
        raise NoticeError(f"the {notice.kind} text lacks: {', '.join(missing)}")
    left = _PLACEHOLDER.findall(notice.text)
    if left:
        raise NoticeError(f"the {notice.kind} text has unfilled fields: {', '.join(left)}")
    if notice.kind == "consent":
        check_consent_terms(notice.text)


def _template(kind: str, lang: str) -> str:
    if lang not in LANGS:
        raise NoticeError(f"no notice in language {lang!r} (have {', '.join(LANGS)})")
    if kind not in KINDS:
        raise NoticeError(f"no notice kind {kind!r} (have {', '.join(KINDS)})")
    ref = resources.files("doorpi.privacy").joinpath(f"notices/{lang}/{kind}.md")
    return ref.read_text(encoding="utf-8")


# When the camera looks, by face.trigger: the sign and the consent form must not
# say "only when you ask" at a gate that scans everyone passing.
CAMERA_MODE = {
    "en": {
        "on_request": "It looks only when someone asks at the gate (face key or card tap)",
        "presence": "It starts looking when someone steps in front of it (a motion check that "
        "computes no face features)",
        "continuous": "It looks at **everyone who passes**, all the time",
    },
    "zh": {
        "on_request": "只有有人在门口请求时（按人脸键或刷卡）才工作",
        "presence": "有人走到摄像头前时才开始工作（只检测移动，不计算人脸特征）",
        "continuous": "**持续工作，处理每一个经过的人**",
    },
}
CAMERA_WHEN = {
    "en": {
        "on_request": "When you ask at the gate (card tap or key press)",
        "presence": "When someone steps in front of the camera",
        "continuous": "Continuously, for everyone who passes",
    },
    "zh": {
        "on_request": "当您在门口请求时（刷卡或按键）",
        "presence": "当有人走到摄像头前时",
        "continuous": "持续地，对每一个经过的人",
    },
}


def load_notice(kind: str, lang: str, details: NoticeDetails) -> NoticeText:
    """The shipped text for ``kind`` and ``lang`` filled with the operator's details."""
    details.check()
    raw = _template(kind, lang)
    m = _VERSION.search(raw)
    if m is None or m.group(1) != kind:
        raise NoticeError(f"notices/{lang}/{kind}.md has no version line")
    version = m.group(2)
    values = {
        "site": details.site,
        "controller": details.controller,
        "contact": details.contact,
        "retention_days": str(details.retention_days),
        "capture_zone": details.capture_zone,
        "camera_mode": CAMERA_MODE[lang][details.trigger],
        "camera_when": CAMERA_WHEN[lang][details.trigger],
        "version": version,
    }
    body = _VERSION.sub("", raw).strip() + "\n"
    text = _PLACEHOLDER.sub(lambda p: values.get(p.group(1), p.group(0)), body)
    notice = NoticeText(kind, lang, version, text)
    check_notice(notice)
    return notice


# ---------------------------------------------------------------- rendering

_CSS = """
@page { size: A4; margin: 14mm 16mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei",
       "DejaVu Sans", Arial, sans-serif; color: #000; background: #fff;
       font-size: 17pt; line-height: 1.45; margin: 0; }
.page { width: 178mm; margin: 0 auto; break-after: page; page-break-after: always; }
.page:last-child { break-after: auto; page-break-after: auto; }
h1 { font-size: 30pt; line-height: 1.2; margin: 0 0 6mm; padding: 4mm 5mm;
     background: #000; color: #fff; border-radius: 3mm; }
h2 { font-size: 20pt; margin: 5mm 0 1.5mm; border-bottom: 1.2mm solid #000;
     break-after: avoid-page; page-break-after: avoid; }
p, li { margin: 0 0 2.5mm; orphans: 3; widows: 3; }
strong { font-weight: 800; }
ul { padding-left: 8mm; margin: 0 0 3mm; }
li.box { list-style: none; margin-left: -8mm; }
li.box::before { content: ""; display: inline-block; width: 7mm; height: 7mm;
                 border: 0.8mm solid #000; margin-right: 3mm; vertical-align: -1mm; }
.sign h1 { font-size: 30pt; margin-bottom: 4mm; }
.sign h2 { font-size: 19pt; margin-top: 3.5mm; }
.sign p { margin-bottom: 2mm; }
.sign #alternatives { background: #ffe14d; padding: 2mm 4mm; border: 1mm solid #000; }
.sign { font-size: 16pt; }
.consent { font-size: 14pt; }
.consent h1 { font-size: 22pt; }
.consent h2 { font-size: 16pt; }
.sig { margin-top: 7mm; }
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)


def to_html_fragment(notice: NoticeText) -> str:
    """The notice as HTML (one printable page section)."""
    lines = notice.text.splitlines()
    out: list[str] = [f'<section class="page {notice.kind}" lang="{notice.lang}">']
    in_list = False
    for line in lines:
        s = line.strip()
        m = _SECTION.match(s)
        item = s.startswith("- ")
        if in_list and not item:
            out.append("</ul>")
            in_list = False
        if not s:
            continue
        if m:
            level = 1 if s.startswith("# ") else 2
            out.append(f'<h{level} id="{m.group(2)}">{_inline(m.group(1))}</h{level}>')
        elif item:
            if not in_list:
                out.append("<ul>")
                in_list = True
            body = s[2:]
            if body.startswith("[ ] "):
                out.append(f'<li class="box">{_inline(body[4:])}</li>')
            else:
                out.append(f"<li>{_inline(body)}</li>")
        elif "____" in s:
            out.append(f'<p class="sig">{_inline(s)}</p>')
        else:
            out.append(f"<p>{_inline(s)}</p>")
    if in_list:
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def to_html(notices: list[NoticeText], title: str) -> str:
    """A complete, printable HTML document (A4, large type) for the notices."""
    lang = notices[0].lang if notices else "en"
    html_lang = "zh-CN" if lang == "zh" else "en"
    body = "\n".join(to_html_fragment(n) for n in notices)
    return (
        f'<!DOCTYPE html>\n<html lang="{html_lang}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def to_markdown(notices: list[NoticeText]) -> str:
    """The notices as Markdown (section ids kept), separated by a rule."""
    return "\n---\n\n".join(n.text for n in notices)


__all__ = [
    "FORBIDDEN_TERMS",
    "KINDS",
    "LANGS",
    "REQUIRED_CONSENT_SECTIONS",
    "REQUIRED_SIGN_SECTIONS",
    "NoticeDetails",
    "NoticeError",
    "NoticeText",
    "check_consent_terms",
    "check_notice",
    "load_notice",
    "to_html",
    "to_markdown",
]
