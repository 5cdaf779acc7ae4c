"""`doorpi config check|show|default|import-boot`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from doorpi.cli import CliError, common


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("config", help="check the configuration")
    cs = c.add_subparsers(dest="action", required=True)
    chk = cs.add_parser("check", help="validate the effective config; one line per problem")
    chk.set_defaults(func=cmd_check)
    show = cs.add_parser("show", help="the effective settings, each with where it came from")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    dflt = cs.add_parser("default", help="print the shipped, commented example config")
    dflt.set_defaults(func=cmd_default)
    boot = cs.add_parser(
        "import-boot",
        help="take the installer's settings from the boot partition (doorpi-settings.service)",
    )
    boot.add_argument("file", nargs="?", type=Path, default=None,
                      help="the installer's file (default: /boot/firmware/doorpi.toml)")  # fmt: skip
    boot.set_defaults(func=cmd_import_boot)


def cmd_check(args: argparse.Namespace) -> int:
    from doorpi.config import config_warnings
    from doorpi.settings import placeholder_problem

    cfg = common.config(args)
    from doorpi.store import preflight

    problems = preflight(cfg.site.data_dir)  # what `run` would refuse, checked read-only
    if problems:
        raise CliError("; ".join(problems))
    for w in config_warnings(cfg):
        print(f"WARNING: {w}")
    for line in _no_way_in(cfg):
        print(f"WARNING: {line}")
    # A placeholder controller is a settings error (exit 1); a missing impact
    # assessment or the like is the gate's state, a warning (face stays off).
    problem = placeholder_problem(cfg) if cfg.face.enabled else None
    face_problem = problem or _face_problem(cfg)
    if face_problem and not problem:
        print(f"WARNING: face cannot be on: {face_problem}")
    face = "on" if cfg.face.enabled else "off"
    if face_problem:
        face = "off: it cannot be on until the problem named here is solved"
    ways = " | ".join("+".join(sorted(c)) for c in cfg.door.policy.default)
    print(
        f"{args.config}: ok (door {cfg.door.name!r}: {ways}; "
        f"{len(cfg.schedules)} schedules; face {face})"
    )
    if problem:
        print(f"{args.config}: face stays off: {problem}", file=sys.stderr)
        return 1
    return 0


def _no_way_in(cfg: common.Config) -> list[str]:
    """Residents the door rule leaves with no way in (read-only; none without a store)."""
    import sqlite3

    from doorpi.privacy.parity import stored_no_way_in
    from doorpi.store import DB_NAME
    from doorpi.store.db import open_readonly

    path = cfg.site.data_dir / DB_NAME
    if not path.exists() or not path.stat().st_size:
        return []
    try:
        db = open_readonly(path)
        try:
            return stored_no_way_in(cfg, db.conn)
        finally:
            db.conn.close()
    except sqlite3.Error as exc:  # preflight has read it already; say so, do not stop
        return [f"{path}: residents not checked against the door rule: {exc}"]


def _values(cfg: common.Config) -> list[tuple[str, Any]]:
    """The effective settings as (section.key, value) in the config file's terms."""
    out: list[tuple[str, Any]] = []
    for section in ("site", "door", "gpio", "reader", "keypad", "lockout", "pin", "audit"):
        for key, value in vars(getattr(cfg, section)).items():
            if section == "door" and key == "policy":
                continue
            if section == "door" and key == "fail_secure":
                key, value = "strike", "fail-secure" if value else "fail-safe"
            out.append((f"{section}.{key}", list(value) if isinstance(value, tuple) else value))
    out.append(("door.access", ["+".join(sorted(c)) for c in cfg.door.policy.default]))
    for rule in cfg.door.policy.scheduled:
        out.append(
            (f"door.schedule_access[{rule.schedule}]", ["+".join(sorted(c)) for c in rule.rule])
        )
    for name, sched in cfg.schedules.items():
        out.append((f"schedules.{name}", f"{len(sched.windows)} window(s)"))
    face = vars(cfg.face)
    out += [(f"face.{k}", v) for k, v in face.items() if k != "settings"]
    out += [(f"face.{k}", v) for k, v in face["settings"].items()]
    return out


def _source(cfg: common.Config, name: str) -> str:
    key = name.split("[", 1)[0]
    if key.startswith("door.schedule_access"):
        key = "door.schedule_access"
    return cfg.sources.get(key, "default")


def cmd_show(args: argparse.Namespace) -> int:
    from doorpi.settings import last_intake

    cfg = common.config(args)
    rows = [(name, value, _source(cfg, name)) for name, value in _values(cfg)]
    intake = last_intake(cfg)
    if args.json:
        common.print_json(
            {
                "settings": {n: {"value": v, "source": s} for n, v, s in rows},
                "boot_file": vars(intake) if intake else None,
            }
        )
        return 0
    import json

    width = max(len(n) for n, _, _ in rows)
    for name, value, source in rows:
        # JSON's scalars and lists are written as TOML writes them
        shown = json.dumps(str(value) if isinstance(value, Path) else value, ensure_ascii=False)
        print(f"{name:<{width}} = {shown:<40} # {source}")
    if intake and intake.result == "rejected":
        print(f"WARNING: the installer's boot file was rejected: {intake.reason}")
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


def cmd_import_boot(args: argparse.Namespace) -> int:
    """One line for the journal; exit 0 applied or nothing to do, 1 rejected."""
    from doorpi.config import ConfigError
    from doorpi.settings import BOOT_FILE, REJECTED_NOTE, import_boot_file

    boot: Path = args.file or BOOT_FILE
    with common.as_cli_error(ConfigError, OSError):
        intake = import_boot_file(Path(args.config), boot)
    if intake.result == "none":
        print(f"doorpi config: no {boot}: settings unchanged")
        return 0
    if intake.result == "rejected":
        print(
            f"doorpi config: REJECTED {intake.reason} (the gate keeps its previous settings; "
            f"the file is now {boot.with_name(REJECTED_NOTE)})",
            file=sys.stderr,
        )
        return 1
    print(f"doorpi config: installer's settings taken from {boot}; applied at the gate's start")
    return 0
