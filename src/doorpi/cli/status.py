"""`doorpi status`: what the gate holds and how it is doing, at a glance."""

from __future__ import annotations

import argparse
import time
from typing import Any

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
    from doorpi.privacy.report import face_status
    from doorpi.privacy.settings import privacy_settings

    face = face_status(store, privacy_settings(cfg.face.settings), now)
    info["warnings"].extend(face.pop("warnings", []))
    info.update(face)
    path_info = _face_path_info(cfg, store, now)
    info["warnings"].extend(path_info.pop("warnings"))
    info.update(path_info)
    sync_info = _sync_info(cfg, store, now)
    info["warnings"].extend(sync_info.pop("warnings"))
    info.update(sync_info)
    from doorpi.settings import last_intake

    intake = last_intake(cfg)
    layers = sorted({v.split(" (")[0] for v in cfg.sources.values()}) or ["default"]
    info["settings_from"] = ", ".join(layers) + " (each value: doorpi config show)"
    if intake is not None and intake.result == "rejected":
        info["warnings"].append(
            f"the installer's boot file was rejected, the gate runs with its previous settings: "
            f"{intake.reason}"
        )
    if not info["clock_trusted"]:
        info["warnings"].append(
            "system clock is behind the last trusted time: schedule-restricted residents are "
            "refused until the clock is set"
        )
    return info


def _face_path_info(cfg: common.Config, store: common.Storage, now: float) -> dict[str, Any]:
    """Trigger mode, today's face attempts and the honest 1:N false-accept estimate."""
    from doorpi.vision.match import SHIPPED_FAR_UPPER

    day = now - (now % 86400)
    attempts = store.db.execute(
        "SELECT count(*) FROM audit WHERE ts >= ? AND (kind = 'face_rejected' OR "
        "(kind = 'credential_presented' AND json_extract(data, '$.factor') = 'face'))",
        [day],
    ).fetchone()[0]
    n = store.db.execute("SELECT count(*) FROM face_templates").fetchone()[0]
    false_matches = store.db.execute(
        "SELECT count(*) FROM audit WHERE kind = 'admin' "
        "AND json_extract(data, '$.action') = 'face_false_match'"
    ).fetchone()[0]
    chance = 1.0 - (1.0 - SHIPPED_FAR_UPPER) ** n if n else 0.0
    info: dict[str, Any] = {
        "face_trigger": cfg.face.trigger,
        "face_attempts_today": attempts,
        "face_false_accept_chance_per_stranger": round(chance, 5),
        "face_hands_free": n <= cfg.face.max_hands_free,
        "face_false_matches_reported": false_matches,
        "warnings": [],
    }
    if false_matches:
        info["warnings"].append(
            f"{false_matches} face false match(es) reported in the audit log "
            "(`doorpi log --kind admin`): consider card+face instead of face alone here"
        )
    if cfg.face.enabled and cfg.face.trigger == "continuous":
        info["warnings"].append(
            "face trigger is CONTINUOUS: everyone passing the camera is processed; "
            "the printed sign must say so"
        )
    if cfg.face.enabled and n > cfg.face.max_hands_free:
        info["warnings"].append(
            f"{n} face templates exceed face.max_hands_free ({cfg.face.max_hands_free}): face "
            "alone is refused; residents use face with their card, PIN or resident number"
        )
    return info


def _sync_info(cfg: common.Config, store: common.Storage, now: float) -> dict[str, Any]:
    """The admin's USB sync as this gate sees it: last bundle, face data from the
    site's other gates, and which card key the gate's cards are sealed with."""
    import json

    db = store.db
    last = json.loads(get_state(db, "sync_last") or "null")
    peers = json.loads(get_state(db, "sync_peers") or "[]")
    key_gate = get_state(db, "sync_card_key_gate") or ""
    adopted = len(json.loads(get_state(db, "sync_card_keys") or "[]"))
    received = db.execute(
        "SELECT count(*) FROM face_consents WHERE origin_gate IS NOT NULL "
        "AND withdrawn_at IS NULL AND retention_end > ?",
        [now],
    ).fetchone()[0]
    info: dict[str, Any] = {
        "sync_last_bundle": last,
        "sync_other_gates": len(peers),
        "face_consents_from_other_gates": received,
        "card_key": f"site key from gate {key_gate[:12]}" if adopted else "this gate's own",
        "warnings": [],
    }
    on_cards = cfg.face.enabled and cfg.face.settings.get("template_storage") == "card"
    if on_cards and peers and not adopted and key_gate:
        from doorpi.sync.keys import GateIdentity, KeyFileError

        try:
            mine = GateIdentity.load(cfg.keys_dir).fingerprint
        except KeyFileError:
            mine = ""
        if key_gate != mine:
            info["warnings"].append(
                "cards enrolled here open only this gate until the site's card key arrives "
                f"with a bundle (from gate {key_gate[:12]}: take the stick there first)"
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
