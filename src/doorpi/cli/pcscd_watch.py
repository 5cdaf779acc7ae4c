"""`doorpi pcscd-watch`: restart a frozen pcscd the gate reports (doorpi.pcscdwatch).

doorpi-pcscd-watch.timer runs the same check every 30 s as root, as
`python -m doorpi.pcscdwatch` (without this CLI's start-up); one check, then exit."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from doorpi.pcscdwatch import DESCRIPTION, add_arguments

    p = sub.add_parser(
        "pcscd-watch",
        help="restart pcscd when the gate reports it frozen (systemd runs this every 30 s)",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from doorpi.pcscdwatch import run

    return run(args)
