"""`doorpi status`: what the gate holds and how it is doing, at a glance."""

from __future__ import annotations

import argparse
import time

from doorpi.cli import common
from doorpi.store.db import get_state, integrity_check


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="residents, cards, audit state, clock, face data")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def collect(cfg: common.Config, store: common.Storage) -> dict[str, common.Any]:
    db = store.db
    now = time.time()
    residents = db.execute("SELECT count(*), sum(active) FROM residents").fetchone()
    floor = float(get_state(db, "clock_floor", "0") or 0)
    last = store.audit.tail(1)
    info: dict[str, common.Any] = {
        "door": cfg.door.name,
        "access": ["+".join(sorted(c)) for c in cfg.door.policy.default],
        "residents": residents[0],
        "active_residents": residents[1] or 0,
        "cards": db.execute("SELECT count(*) FROM cards").fetchone()[0],
        "pins": db.execute("SELECT count(*) FROM residents WHERE pin_hash IS NOT NULL").fetchone()[
            0
        ],
        "audit_records": db.execute("SELECT count(*) FROM audit").fetchone()[0],
        "audit_retention_days": cfg.audit.retention_days,
        "last_event": {"seq": last[0].seq, "kind": last[0].kind, "ts": last[0].ts}
        if last
        else None,
        "database": integrity_check(db),
        "clock_trusted": now >= floor - 120,
        "clock_floor": floor,
        "face_enabled": cfg.face.enabled,
        "warnings": [],
    }
    if not info["clock_trusted"]:
        info["warnings"].append(
            "system clock is behind the last trusted time: schedule-restricted residents are "
            "refused until the clock is set"
        )
    return info


def main(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    info = collect(cfg, store)
    if args.json:
        common.print_json(info)
        return 0
    for key, value in info.items():
        if key == "warnings":
            continue
        print(f"{key:>22}: {value}")
    for w in info["warnings"]:
        print(f"WARNING: {w}")
    return 0
