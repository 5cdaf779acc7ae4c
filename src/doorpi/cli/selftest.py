"""`doorpi selftest [--json] [--skip NAMES]`: check the installation before trusting the door.

Parsing and printing only; the checks live in doorpi.selftest.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``selftest`` command to the top-level parser."""
    from doorpi import selftest

    parser = subparsers.add_parser(
        "selftest",
        help="check configuration, data, keys, database, models and devices",
        description="Runs named checks and prints PASS/WARN/FAIL; exit code 0 only "
        "when nothing failed.",
    )
    selftest.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks against the configuration given by the global --config."""
    from doorpi import selftest

    return selftest.run_from_args(args.config, args.json, args.skip, args.camera_frame)
