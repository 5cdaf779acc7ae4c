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
    ways = " | ".join("+".join(sorted(c)) for c in cfg.door.policy.default)
    print(
        f"{args.config}: ok (door {cfg.door.name!r}: {ways}; "
        f"{len(cfg.schedules)} schedules; face {'on' if cfg.face.enabled else 'off'})"
    )
    return 0


def cmd_default(args: argparse.Namespace) -> int:
    from doorpi.config import default_config_text

    print(default_config_text(), end="")
    return 0
