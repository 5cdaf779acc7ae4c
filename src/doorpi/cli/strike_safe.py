"""`doorpi strike-safe`: the gate unit's ExecStopPost= step (doorpi.strikesafe)."""

from __future__ import annotations

import argparse
import os

from doorpi.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "strike-safe",
        help="drive the strike line de-energised (systemd runs this after the gate stops)",
    )
    p.add_argument("--sim", action="store_true", help="simulated GPIO (MockFactory)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from doorpi.hardware.pins import NoGpioError, make_pin_factory
    from doorpi.strikesafe import StrikeLineUnknown, drive_safe, strike_line

    why = os.environ.get("SERVICE_RESULT", "")  # systemd: success, exit-code, signal, watchdog
    code = os.environ.get("EXIT_STATUS", "")
    try:
        line = strike_line(args.config)
        factory = make_pin_factory("mock" if args.sim else "auto")
        drive_safe(line, factory)
    except (StrikeLineUnknown, NoGpioError) as exc:
        raise CliError(f"strike not driven: {exc}") from None
    except Exception as exc:  # gpiozero: line busy, no permission
        raise CliError(f"strike not driven: GPIO{line.pin}: {type(exc).__name__}: {exc}") from None
    parts = " ".join(x for x in (why, code) if x)
    after = f" after the gate stopped ({parts})" if parts else ""
    print(f"strike on GPIO{line.pin} de-energised{after}; pin from {line.source}")
    return 0
