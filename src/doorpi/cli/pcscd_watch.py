"""`doorpi pcscd-watch`: restart a frozen pcscd the gate reports (doorpi.pcscdwatch).

doorpi-pcscd-watch.timer runs it every 30 s as root; one check, then exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from doorpi.cli import common


def register(sub: argparse._SubParsersAction) -> None:
    from doorpi.pcscdwatch import RESTART_AFTER, RESTART_EVERY, STATE_FILE

    p = sub.add_parser(
        "pcscd-watch",
        help="restart pcscd when the gate reports it frozen (systemd runs this every 30 s)",
        description=(
            "One check: when the gate's `card reader` fault says it waits on a PC/SC call "
            f"and this watch has seen that for {RESTART_AFTER:.0f} s, run `systemctl restart "
            f"pcscd.service`, at most once every {RESTART_EVERY:.0f} s. Reads the gate's "
            "database read-only. Exit 0: nothing to do, or restarted; 1: the restart (or "
            "the watch's own state) failed, one line says why."
        ),
    )
    p.add_argument("--state", type=Path, default=STATE_FILE, metavar="FILE",
                   help=f"where the watch keeps what it saw and did (default: {STATE_FILE})")  # fmt: skip
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from doorpi.pcscdwatch import check

    cfg = common.config(args)
    code, lines = check(cfg.db_path, args.state)
    for line in lines:
        print(line, file=sys.stderr if code else sys.stdout)
    return code
