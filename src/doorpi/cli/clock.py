"""`doorpi clock`: show the gate's clock, and repair it (set or trust), audited.

The repair is the one way to lower the trusted floor (see doorpi.core.clock):
it needs write access to the gate's database (root or the doorpi service
user), asks for confirmation, and is recorded in the audit log with who ran
it. A running gate applies it within a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from doorpi.cli import CliError, common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clock", help="show the gate's clock; set or trust it (audited)")
    cs = p.add_subparsers(dest="clock_cmd", metavar="ACTION")
    p.set_defaults(func=cmd_show)
    show = cs.add_parser("show", help="time zone, system clock, trusted floor, faults")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    st = cs.add_parser("set", help="set the system clock (and RTC) to a local time, then trust it")
    st.add_argument("when", help='local time at the site, e.g. "2026-03-02 08:15"')
    st.add_argument("--yes", action="store_true", help="confirm without asking")
    st.set_defaults(func=cmd_set)
    tr = cs.add_parser("trust", help="confirm the system clock is right (may lower the floor)")
    tr.add_argument("--yes", action="store_true", help="confirm without asking")
    tr.set_defaults(func=cmd_trust)


def cmd_show(args: argparse.Namespace) -> int:
    from doorpi.timekeeper import assess

    cfg = common.config(args)
    store = common.storage(cfg)
    info = {"timezone": cfg.site.timezone, **assess(store.db, time.time(), cfg.site.tz)}
    if getattr(args, "json", False):
        common.print_json(info)
        return 0
    for key in ("timezone", "system_local", "floor_local", "state"):
        print(f"{key:>14}: {info[key]}")
    if info["advice"]:
        print(f"WARNING: {info['advice']}")
    return 0


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question}: not confirmed (add --yes)")
    if input(f"{question} Type yes to confirm: ").strip().lower() != "yes":
        raise CliError("not confirmed; nothing changed")


def _who() -> str:
    """The signed-in operator (`doorpi.cli.operator`), never $LOGNAME."""
    return common.who()


def set_system_clock(epoch: float) -> str:
    """Set CLOCK_REALTIME (needs CAP_SYS_TIME) and, when an RTC is fitted,
    write it with hwclock; returns what was done for the RTC."""
    try:
        time.clock_settime(time.CLOCK_REALTIME, epoch)
    except PermissionError:
        raise CliError("setting the system clock needs root (run it with sudo)") from None
    if not os.path.exists("/dev/rtc0") or shutil.which("hwclock") is None:
        return "no RTC (/dev/rtc0) to write"
    done = subprocess.run(["hwclock", "--systohc", "--utc"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"RTC not written: {done.stderr.strip() or done.returncode}"
    return "RTC written"


def _repair(args: argparse.Namespace, floor: float, action: str, **detail: object) -> None:
    from doorpi.store.db import get_state
    from doorpi.timekeeper import write_repair

    cfg = common.config(args)
    store = common.storage(cfg)
    old = float(get_state(store.db, "clock_floor", "0") or 0)
    who = _who()
    common.audit_admin(
        store, f"clock_{action}", old_floor=old, floor=floor, by_uid=os.getuid(), **detail
    )
    write_repair(store.db, floor, who, action)
    print(
        f"clock {action}: trusted time is now {common.when(floor)} ({cfg.site.timezone}), "
        f"was {common.when(old) if old else '-'}; a running gate applies it within a second"
    )


def cmd_trust(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    now = time.time()
    _confirm(
        f"The system clock says {common.when(now)} ({cfg.site.timezone}). Is that the right "
        "local time at the gate?",
        args.yes,
    )
    _repair(args, time.time(), "trust")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    target = common.parse_date(args.when, "when")
    assert target is not None
    _confirm(
        f"Set the system clock from {common.when(time.time())} to {common.when(target)} "
        f"({cfg.site.timezone})?",
        args.yes,
    )
    rtc = set_system_clock(target)
    print(f"system clock set ({rtc})")
    _repair(args, target, "set", rtc=rtc)
    return 0
