"""`doorpi notice`: the printable gate sign and consent form (zh or en).

Why generated from the config: the sign must name the controller, how to
reach them and the capture zone of *this* gate (MFR 13, PIPL 17), and the
consent form must be exactly the text whose hash a consent record stores.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from doorpi.cli import CliError, common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notice", help="print the gate sign and the face consent form")
    p.add_argument("--lang", choices=("zh", "en"), default=None,
                   help="language (default: face.notice_lang, else zh)")  # fmt: skip
    p.add_argument("--format", choices=("html", "md"), default="html", dest="fmt")
    p.add_argument("--kind", choices=("all", "sign", "consent"), default="all",
                   help="the gate sign, the consent form, or both (default)")  # fmt: skip
    p.add_argument("--sign", choices=("entry",),
                   help="entry: the resident sign for card and PIN (steps, lights and beeps)")  # fmt: skip
    p.add_argument("--out", help="write to this file instead of standard output")
    p.add_argument("--large", action="store_true",
                   help="large type (24 pt and up) for elderly and low-vision residents")  # fmt: skip
    p.set_defaults(func=main)


def render(cfg: common.Config, lang: str | None, fmt: str, kind: str, large: bool = False) -> str:
    """The requested notices as one HTML document or Markdown text."""
    from doorpi.privacy.notices import NoticeError, load_notice, to_html, to_markdown
    from doorpi.privacy.settings import privacy_settings

    try:
        settings = privacy_settings(cfg.face.settings)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    lang = lang or settings.notice_lang
    kinds = ("sign", "consent") if kind == "all" else (kind,)
    details = replace(settings, trigger=cfg.face.trigger).notice_details(
        cfg.site.name, cfg.site.controller, cfg.site.contact, lang
    )
    try:
        notices = [load_notice(k, lang, details) for k in kinds]
    except NoticeError as exc:
        raise CliError(str(exc)) from None
    if fmt == "md":
        return to_markdown(notices)
    title = "人脸识别告知" if lang == "zh" else "Face recognition notice"
    return to_html(notices, f"{cfg.site.name}: {title}", large=large)


def render_entry_sign(cfg: common.Config, lang: str, fmt: str, large: bool = False) -> str:
    """The resident sign for card and PIN at this door (doorpi.entrysign)."""
    from doorpi.entrysign import entry_sign
    from doorpi.hardware.feedback import door_factors
    from doorpi.privacy.notices import to_html, to_markdown

    factors = door_factors([rule for _, rule in cfg.rules()], cfg.devices.factors)
    sign = entry_sign(lang, cfg.site.name, list(cfg.door.policy.default), cfg.site.contact,
                      face=cfg.face.enabled, factors=factors)  # fmt: skip
    if fmt == "md":
        return to_markdown([sign])
    title = sign.text.splitlines()[1][2:].split(" {#")[0]
    return to_html([sign], f"{cfg.site.name}: {title}", large=large)


def main(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    if args.sign == "entry":
        text = render_entry_sign(cfg, args.lang or "zh", args.fmt, args.large)
    else:
        text = render(cfg, args.lang, args.fmt, args.kind, args.large)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
