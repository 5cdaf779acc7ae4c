"""`doorpi status`: what the gate holds and how it is doing, at a glance."""

from __future__ import annotations

import argparse
import time
from typing import Any

from doorpi.cli import CliError, common
from doorpi.store.db import get_state, integrity_check
from doorpi.store.health import read_health


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="residents, cards, audit state, clock, face data")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def collect(cfg: common.Config, store: common.Storage) -> dict[str, common.Any]:
    db = store.db
    now = time.time()
    residents = db.execute("SELECT count(*), sum(active) FROM residents").fetchone()
    from doorpi.timekeeper import assess

    clock = assess(db, now, cfg.site.tz)
    last = store.audit.tail(1)
    info: dict[str, common.Any] = {
        "door": cfg.door.name,
        "access": ["+".join(sorted(c)) for c in cfg.door.policy.default],
        "residents": residents[0],
        "active_residents": residents[1] or 0,
        "expired_residents": db.execute(
            "SELECT count(*) FROM residents WHERE valid_until IS NOT NULL AND valid_until < ?",
            [now],
        ).fetchone()[0],
        "cards": db.execute("SELECT count(*) FROM cards").fetchone()[0],
        "pins": db.execute("SELECT count(*) FROM residents WHERE pin_hash IS NOT NULL").fetchone()[
            0
        ],
        "audit_records": db.execute("SELECT count(*) FROM audit").fetchone()[0],
        "audit_retention_days": cfg.audit.retention_days,
        "last_event": {"seq": last[0].seq, "kind": last[0].kind, "ts": last[0].ts}
        if last
        else None,
        "database": _database_line(store),
        "timezone": cfg.site.timezone,
        "clock": clock["state"],
        "clock_trusted": clock["trusted"],
        "clock_floor": clock["floor"],
        "clock_floor_local": clock["floor_local"],
        "face_enabled": cfg.face.enabled,
        "key_root": _key_root_line(cfg),
        "warnings": [],
    }
    from doorpi.privacy.report import face_status
    from doorpi.privacy.settings import privacy_settings

    face = face_status(store, privacy_settings(cfg.face.settings), now)
    info["warnings"].extend(face.pop("warnings", []))
    info.update(face)
    from doorpi.cards.policy import card_status

    info.update(card_status(cfg.reader, now, info["warnings"], cfg.site.data_dir))
    path_info = _face_path_info(cfg, store, now)
    info["warnings"].extend(path_info.pop("warnings"))
    info.update(path_info)
    sync_info = _sync_info(cfg, store, now)
    info["warnings"].extend(sync_info.pop("warnings"))
    info.update(sync_info)
    info["warnings"].extend(store.schema_lost)
    if store.degraded:
        info["warnings"].append(f"{store.degraded}: database opened read-only")
    gate_lines = gate_storage_warnings(read_health())
    info["gate_storage"] = "ok" if not gate_lines else f"{len(gate_lines)} fault(s)"
    info["warnings"].extend(gate_lines)
    if clock["advice"]:
        info["warnings"].append(clock["advice"])
    faults, source, lines = device_faults(db)
    info["device_faults"] = {k: v["detail"] for k, v in sorted(faults.items())}
    info["device_faults_from"] = source
    info["warnings"].extend(lines)
    info["warnings"].extend(f"device fault: {k}: {v['detail']}" for k, v in sorted(faults.items()))
    info.update(_lockout_info(db, now))
    from doorpi.doormodes import mode_status

    modes = mode_status(db)
    info["warnings"].extend(modes.pop("warnings"))
    info.update(modes)
    from doorpi.settings import last_intake

    intake = last_intake(cfg)
    layers = sorted({v.split(" (")[0] for v in cfg.sources.values()}) or ["default"]
    info["settings_from"] = ", ".join(layers) + " (each value: doorpi config show)"
    if intake is not None and intake.result == "rejected":
        info["warnings"].append(
            f"the installer's boot file was rejected, the gate runs with its previous settings: "
            f"{intake.reason}"
        )
    return info


def device_faults(db: Any) -> tuple[dict[str, dict[str, Any]], str, list[str]]:
    """(faults, where they come from, warnings): the running gate's own (its runtime
    file: fresh even when it cannot write the database), else the ones it last stored
    (``db`` None: none known)."""
    from doorpi.faults import running_faults, stored_faults
    from doorpi.runtimefile import RuntimeFileError

    lines: list[str] = []
    try:
        live = running_faults()
    except RuntimeFileError as exc:
        live = None
        lines.append(f"{exc}: device faults shown as last stored")
    if live is not None:
        return live, "the running gate", lines
    if db is None:
        return {}, "nowhere (no gate running, no database)", lines
    return stored_faults(db), "the database (as the gate last stored them)", lines


def _key_root_line(cfg: common.Config) -> str:
    """Where the keys live and what a copy of the SD card reveals (docs/keys.md)."""
    from doorpi.store.keyroot import KeyRootError, open_root

    try:
        return open_root(cfg.keys_dir).holds()
    except KeyRootError as exc:
        return f"FAULT: {exc}"


def _lockout_info(db: Any, now: float) -> dict[str, Any]:
    """Keypad and resident lockouts still running, as the gate last stored them."""
    import json

    from doorpi.lockstate import STATE_KEY

    try:
        doc = json.loads(get_state(db, STATE_KEY) or "{}")
        gone = max(0.0, now - float(doc.get("saved_at", now)))
        left = {k: round(v["locked_left"] - gone) for k, v in doc.get("subjects", {}).items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {"lockouts": "stored lockout state unreadable"}
    return {"lockouts": {k: f"{v} s left" for k, v in sorted(left.items()) if v > 0}}


def _face_path_info(cfg: common.Config, store: common.Storage, now: float) -> dict[str, Any]:
    """Trigger mode, today's face attempts and the honest 1:N false-accept estimate."""
    from doorpi.sitetime import day_start, local
    from doorpi.vision.match import SHIPPED_FAR_UPPER

    day = day_start(local(now, cfg.site.tz).date(), cfg.site.tz)  # today at the site
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


def _database_line(store: common.Storage) -> str:
    check = integrity_check(store.db)
    if check == "ok" and store.schema_lost:
        return f"damaged schema ({len(store.schema_lost)} safeguard(s) missing)"
    if check == "ok" and store.degraded:
        return f"ok, read-only ({store.degraded})"
    return check


def gate_storage_warnings(health: dict[str, Any] | None) -> list[str]:
    """One line per storage fault the running gate reported (nothing when it runs clean)."""
    if not health:
        return []
    out: list[str] = []
    if health.get("degraded"):
        out.append(f"gate: {health['degraded']}: running on a read-only copy of the database")
    pending = int(health.get("audit_pending") or 0)
    if pending or health.get("audit_cause"):
        out.append(
            f"gate: {pending} audit record(s) waiting in memory to be written: "
            f"{health.get('audit_cause') or 'retrying'}"
        )
    spilled = int(health.get("audit_spilled") or 0)
    if spilled:
        out.append(
            f"gate: {spilled} audit record(s) kept only in the journal (journalctl -u doorpi)"
        )
    return out


def main(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    try:
        store = common.storage(cfg, degrade=True, create=False)  # looking never creates it
    except CliError as exc:  # the fault itself is the status: one line each, exit 2
        lines = gate_storage_warnings(read_health())
        faults, _, more = device_faults(None)
        lines += more + [f"device fault: {k}: {v['detail']}" for k, v in sorted(faults.items())]
        if args.json:
            common.print_json({"door": cfg.door.name, "database": f"FAULT: {exc}",
                               "warnings": lines})  # fmt: skip
        else:
            print(f"{'door':>22}: {cfg.door.name}")
            print(f"{'database':>22}: FAULT: {exc}")
            for w in lines:
                print(f"WARNING: {w}")
        return 2
    info = collect(cfg, store)
    if args.json:
        common.print_json(info)
        return 0
    from doorpi.cli.human import value

    for key, v in info.items():
        if key == "warnings":
            continue
        print(f"{key.replace('_', ' '):>37}: {value(v, key)}")
    for w in info["warnings"]:
        print(f"WARNING: {w}")
    return 0
