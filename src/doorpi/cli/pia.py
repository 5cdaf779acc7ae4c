"""`doorpi pia template|record|show`: the impact assessment face needs first."""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

from doorpi.cli import CliError, common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pia", help="the impact assessment required before face is enabled")
    ps = p.add_subparsers(dest="action", required=True)
    t = ps.add_parser("template", help="print a template to fill in")
    t.set_defaults(func=cmd_template)
    r = ps.add_parser("record", help="store a filled-in assessment (TOML file)")
    r.add_argument("--file", required=True, help="TOML with purpose, necessity, impact, measures")
    r.add_argument("--author", help="who made it (default: the login name)")
    r.set_defaults(func=cmd_record)
    s = ps.add_parser("show", help="show the stored assessments")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)


def cmd_template(args: argparse.Namespace) -> int:
    from doorpi.privacy.pia import TEMPLATE

    sys.stdout.write(TEMPLATE)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from doorpi.privacy.pia import FIELDS, AssessmentError, AssessmentRegistry, ImpactAssessment
    from doorpi.validation import InputError, decode_text_file

    try:
        doc = tomllib.loads(decode_text_file(Path(args.file).read_bytes()))
    except OSError as exc:
        raise CliError(f"{args.file}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, InputError) as exc:
        raise CliError(f"{args.file}: {exc}") from None
    missing = [f for f in FIELDS if not isinstance(doc.get(f), str)]
    if missing:
        raise CliError(f"{args.file}: missing {', '.join(missing)}")
    cfg = common.config(args)
    store = common.storage(cfg)
    author = args.author or common.who()
    try:
        pia = AssessmentRegistry(store.db, store.audit).record(
            ImpactAssessment(**{f: doc[f] for f in FIELDS}, author=author, created=time.time())
        )
    except AssessmentError as exc:
        raise CliError(str(exc)) from None
    common.audit_admin(store, "pia_record", pia_id=pia.id)
    print(f"impact assessment {pia.id} stored (sha256 {pia.digest[:16]})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from doorpi.privacy.pia import AssessmentError, AssessmentRegistry, as_dict

    cfg = common.config(args)
    store = common.storage(cfg)
    try:
        items = AssessmentRegistry(store.db, store.audit).all()
    except AssessmentError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        common.print_json([as_dict(p) for p in items])
        return 0
    if not items:
        print("no impact assessment stored: face cannot be enabled")
        return 1
    for p in items:
        print(f"#{p.id} {common.when(p.created)} by {p.author} (sha256 {p.digest[:16]})")
        for f in ("purpose", "necessity", "impact", "measures"):
            print(f"  {f}: {getattr(p, f)}")
    return 0
