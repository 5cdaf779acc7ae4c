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
]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorpi", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        default=os.environ.get("DOORPI_CONFIG", DEFAULT_CONFIG),
        help=f"configuration file (default: $DOORPI_CONFIG or {DEFAULT_CONFIG})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"doorpi.cli.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except CliError as exc:
        print(f"doorpi: {exc}", file=sys.stderr)
        return int(getattr(exc, "code", 2))
    except sqlite3.OperationalError as exc:  # a busy or failing database: one line
        from doorpi.store.faults import is_busy

        what = "database busy: another process is writing it; try again" if is_busy(exc) else exc
        print(f"doorpi: {what}", file=sys.stderr)
        return 75 if is_busy(exc) else 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
