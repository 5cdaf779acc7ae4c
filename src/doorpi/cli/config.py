"""`doorpi config check|show-default`."""

from __future__ import annotations

import argparse

from doorpi.cli import CliError, common


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("config", help="check the configuration")
    cs = c.add_subparsers(dest="action", required=True)
    chk = cs.add_parser("check", help="validate the config file; one line per problem")
    chk.set_defaults(func=cmd_check)
    dflt = cs.add_parser("default", help="print the shipped, commented example config")
    dflt.set_defaults(func=cmd_default)


def cmd_check(args: argparse.Namespace) -> int:
    from doorpi.config import config_warnings

    cfg = common.config(args)
    from doorpi.store import preflight

    problems = preflight(cfg.site.data_dir)  # what `run` would refuse, checked read-only
    if problems:
        raise CliError("; ".join(problems))
    for w in config_warnings(cfg):
        print(f"WARNING: {w}")
    face = "on" if cfg.face.enabled else "off"
    face_problem = _face_problem(cfg)
    if face_problem:
        print(f"WARNING: face cannot be on: {face_problem}")
        face = "off: it cannot be on until the problem above is solved"
    ways = " | ".join("+".join(sorted(c)) for c in cfg.door.policy.default)
    print(
        f"{args.config}: ok (door {cfg.door.name!r}: {ways}; "
        f"{len(cfg.schedules)} schedules; face {face})"
    )
    return 0


def _face_problem(cfg: common.Config) -> str | None:
    """Why the gate would keep face off (no impact assessment stored, ...), read-only."""
    if not cfg.face.enabled:
        return None
    from doorpi.privacy.enrolment import face_enable_problem
    from doorpi.store import DB_NAME
    from doorpi.store.db import open_readonly

    path = cfg.site.data_dir / DB_NAME
    if not path.exists():
        return (
            "face.enabled = true needs an impact assessment first, and this gate has no "
            "database yet: run `doorpi pia record --file FILE` (PIPL 55-56)"
        )
    db = open_readonly(path)
    try:
        return face_enable_problem(cfg, db)
    finally:
        db.conn.close()


def cmd_default(args: argparse.Namespace) -> int:
    from doorpi.config import default_config_text

    print(default_config_text(), end="")
    return 0
