"""`doorpi operator add|list|remove`, and the sign-in every admin action asks for.

Admin actions on the device (`ADMIN_ACTIONS`) name an operator with
``--operator NAME`` (or ``$DOORPI_OPERATOR``) and give the passphrase in
``--passphrase-file FILE`` (``-`` is standard input), else at a terminal
prompt. The audit log then names ``operator:NAME`` (see `doorpi.operators`).

Until the first operator is added, the gate is being set up: consent commands
are refused (a consent must name an authenticated admin, law notes F21) and
other admin actions are logged as ``unauthenticated:uid=N`` (the process's
real user id, which an environment variable cannot change), never as the
login name. The first ``operator add`` needs no sign-in (it needs root's
write access to the data directory); every later one does.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time

from doorpi.cli import CliError, common

#: command -> actions that change something or show a person's data ("*": all).
ADMIN_ACTIONS: dict[str, frozenset[str]] = {
    "resident": frozenset({"add", "disable", "enable", "remove", "report", "minor"}),
    "card": frozenset({"enroll", "remove"}),
    "pin": frozenset({"set", "clear"}),
    "consent": frozenset({"*"}),
    "keys": frozenset({"init", "trust-site", "rotate"}),
    "clock": frozenset({"set", "trust"}),
    "pia": frozenset({"record"}),
    "audit": frozenset({"prune"}),
    "operator": frozenset({"add", "remove"}),
}
#: Commands refused until an operator exists: their records must name one.
NEEDS_OPERATOR = frozenset({"consent"})
STATE_KEY = "operators_enrolled"


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--operator`` and ``--passphrase-file`` on the top-level parser."""
    parser.add_argument("--operator", default=os.environ.get("DOORPI_OPERATOR"),
                        help="operator name for admin actions (default: $DOORPI_OPERATOR)")  # fmt: skip
    parser.add_argument("--passphrase-file", metavar="FILE",
                        help="the operator's passphrase, first line of FILE ('-': stdin); "
                        "else asked at the terminal")  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("operator", help="operators who may run admin actions on this gate")
    ps = p.add_subparsers(dest="action", required=True)
    a = ps.add_parser("add", help="add an operator (the first needs no sign-in)")
    a.add_argument("name")
    a.add_argument("--new-passphrase-file", metavar="FILE",
                   help="the new operator's passphrase, first line of FILE ('-': stdin)")  # fmt: skip
    a.set_defaults(func=cmd_add)
    ps.add_parser("list", help="operator names").set_defaults(func=cmd_list)
    r = ps.add_parser("remove", help="remove an operator (never the last)")
    r.add_argument("name")
    r.set_defaults(func=cmd_remove)


def _action(args: argparse.Namespace) -> str:
    for attr in ("action", "clock_cmd", "log_action"):
        v = getattr(args, attr, None)
        if isinstance(v, str):
            return v
    return ""


def is_admin_action(args: argparse.Namespace) -> bool:
    acts = ADMIN_ACTIONS.get(getattr(args, "command", None) or "")
    return bool(acts) and ("*" in acts or _action(args) in acts)


def read_secret(path: str | None, prompt: str) -> str:
    """First line of ``path`` ('-' stdin), or a terminal prompt; never echoed."""
    import getpass

    if path == "-" or (path is None and not sys.stdin.isatty()):
        line = sys.stdin.readline()
        where = "standard input" if path == "-" else "standard input (no terminal to ask on)"
    elif path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                line = f.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{path}: cannot read the passphrase: {exc}") from None
        where = f"the file {path}"
    else:
        try:
            line = getpass.getpass(prompt) + "\n"
        except EOFError:
            line = ""
        where = "the terminal"
    if not line:  # end of input before any line: nothing was given, not a wrong one
        raise CliError(
            f"no passphrase: {where} was empty; give --passphrase-file FILE (- for "
            "standard input) or run it at a terminal"
        )
    return line.rstrip("\r\n")


def _enrolled_before(cfg: common.Config) -> bool:
    """Did this gate ever have an operator (the database remembers)?"""
    if not cfg.db_path.exists():
        return False
    try:
        conn = sqlite3.connect(f"{cfg.db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM state WHERE key = ?", [STATE_KEY]).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # the command itself names what is wrong with the database
    return bool(row and row[0] == "1")


def authorise(args: argparse.Namespace) -> None:
    """Before an admin action runs: sign the operator in, or refuse (CliError)."""
    from doorpi.operators import OperatorError, OperatorStore

    common.set_operator(None)  # nobody is signed in until the passphrase is checked
    if not is_admin_action(args):
        return
    cfg = common.config(args)
    store = OperatorStore(cfg.site.data_dir)
    try:
        enrolled = store.enrolled()
    except OperatorError as exc:
        raise CliError(str(exc)) from None
    if not enrolled:
        if _enrolled_before(cfg):
            raise CliError(
                f"{store.path}: missing or empty, but this gate has had operators: "
                "restore it from a backup (docs/recovery.md)"
            )
        if args.command in NEEDS_OPERATOR:
            raise CliError(
                f"{args.command} needs an authenticated operator and this gate has none: "
                "add one first (`doorpi operator add NAME`)"
            )
        return  # being set up: audit_admin names the real uid
    if not args.operator:
        raise CliError(
            f"{args.command} {_action(args)}: an admin action: give --operator NAME "
            "(or $DOORPI_OPERATOR) and the passphrase"
        )
    secret = read_secret(args.passphrase_file, f"passphrase for operator {args.operator}: ")
    try:
        op = store.verify(args.operator, secret)
    except OperatorError as exc:
        _log_failure(cfg, args)
        raise CliError(str(exc)) from None
    common.set_operator(op.label)


def _log_failure(cfg: common.Config, args: argparse.Namespace) -> None:
    try:
        st = common.storage(cfg)
    except CliError:
        return
    try:
        st.audit.append(
            "admin_auth_failed",
            {"operator": str(args.operator)[:64], "command": f"{args.command} {_action(args)}",
             "uid": os.getuid()},
            ts=time.time(),
        )  # fmt: skip
    finally:
        st.close()


def cmd_add(args: argparse.Namespace) -> int:
    from doorpi.operators import OperatorError, OperatorStore
    from doorpi.store.db import set_state

    cfg = common.config(args)
    st = common.storage(cfg)
    ops = OperatorStore(cfg.site.data_dir)
    secret = read_secret(args.new_passphrase_file, f"new passphrase for {args.name}: ")
    again = args.new_passphrase_file is None and sys.stdin.isatty()
    if again and read_secret(None, "the same again: ") != secret:
        raise CliError(f"operator {args.name}: the two passphrases differ; nothing changed")
    with common.as_cli_error(OperatorError):
        op = ops.add(args.name, secret, time.time(), by=common.who())
    set_state(st.db, STATE_KEY, "1")
    common.audit_admin(st, "operator_added", operator=op.name)
    print(f"operator {op.name} added")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from doorpi.operators import OperatorError, OperatorStore

    cfg = common.config(args)
    with common.as_cli_error(OperatorError):
        names = OperatorStore(cfg.site.data_dir).names()
    for n in names:
        print(n)
    if not names:
        print("no operators: admin actions are not authenticated (`doorpi operator add NAME`)")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from doorpi.operators import OperatorError, OperatorStore

    cfg = common.config(args)
    st = common.storage(cfg)
    with common.as_cli_error(OperatorError):
        OperatorStore(cfg.site.data_dir).remove(args.name)
    common.audit_admin(st, "operator_removed", operator=args.name)
    print(f"operator {args.name} removed")
    return 0
