"""The `doorpi` command: one sub-command group per module in this package.

Each module listed in COMMAND_MODULES exposes ``register(subparsers)`` and sets
``func`` on its parsers; ``func(args) -> int`` is the exit code. Modules keep
heavy imports (numpy, models, pyscard) inside their handlers so that
``doorpi --help`` and the gate's start-up stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys

DEFAULT_CONFIG = "/etc/doorpi/doorpi.toml"

COMMAND_MODULES: list[str] = [
    "run",
    "demo",
    "config",
    "resident",
    "status",
    "clock",
    "log",
    "bench",
    "selftest",
    "eval",
    "notice",
    "pia",
    "consent",
    "keys",
    "sync",
    "admin",
    "modes",
    "operator",
    "strike_safe",
    "pcscd_watch",
]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorpi", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"doorpi {_version()}")
    parser.add_argument(
        "--config",
        default=os.environ.get("DOORPI_CONFIG", DEFAULT_CONFIG),
        metavar="FILE",
        help=f"configuration file (default: $DOORPI_CONFIG or {DEFAULT_CONFIG})",
    )
    from doorpi.cli.operator import add_options

    add_options(parser)  # --operator, --passphrase-file: admin actions sign in
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"doorpi.cli.{name}")
        module.register(sub)
    from doorpi.cli.errors import bound_int_arguments
    from doorpi.cli.helptext import apply

    bound_int_arguments(parser)
    apply(parser, sub)  # `doorpi --help`: the commands grouped by who uses them
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("doorpi")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    """Run one command; whatever goes wrong reaches a person as one line (cli/errors.py)."""
    from doorpi.cli import errors

    command = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        from doorpi.cli.operator import authorise

        authorise(args)  # an admin action: the operator signs in first (or is refused)
        code = int(func(args) or 0)
        sys.stdout.flush()
        return code
    except CliError as exc:
        print(f"doorpi: {errors.safe_text(exc)}", file=sys.stderr)
        return int(getattr(exc, "code", 2))
    except sqlite3.OperationalError as exc:  # a busy or failing database: one line
        from doorpi.store.faults import is_busy

        what = "database busy: another process is writing it; try again" if is_busy(exc) else exc
        print(f"doorpi: {errors.safe_text(what)}", file=sys.stderr)
        return 75 if is_busy(exc) else 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return errors.quiet_broken_pipe()
    except Exception as exc:
        return errors.report(exc, command)


if __name__ == "__main__":
    sys.exit(main())
