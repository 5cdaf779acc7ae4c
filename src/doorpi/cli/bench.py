"""`doorpi bench core|face`: benchmarks print JSON; targets live here, not in tests."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="measure speed and memory (JSON)")
    bs = b.add_subparsers(dest="what", required=True)
    core = bs.add_parser("core", help="card->relay latency, PIN cost, startup, idle RSS")
    core.add_argument("--json", action="store_true", help="(output is always JSON)")
    core.set_defaults(func=cmd_core)
    try:
        from doorpi.cli import bench_face
    except ImportError:
        return
    face = bs.add_parser("face", help="face pipeline stages, matching at scale, RSS")
    face.add_argument("--json", action="store_true", help="(output is always JSON)")
    for name, kw in getattr(bench_face, "ARGUMENTS", []):
        face.add_argument(name, **kw)
    face.set_defaults(func=bench_face.bench_face)


def cmd_core(args: argparse.Namespace) -> int:
    from doorpi.benchcore import bench_core
    from doorpi.config import ConfigError, load_config

    try:
        pin = load_config(args.config).pin
    except ConfigError:
        from doorpi.config import PinConfig

        pin = PinConfig()  # no device config here: the shipped defaults
    print(json.dumps(bench_core(pin.opslimit, pin.memlimit_kib), indent=2))
    return 0
