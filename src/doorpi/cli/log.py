"""`doorpi log` and `doorpi audit verify|prune`: reading the audit trail."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from doorpi.cli import CliError, common


def register(sub: argparse._SubParsersAction) -> None:
    lg = sub.add_parser("log", help="show the audit log readably")
    lg.add_argument("-n", type=int, default=50, help="last N records (default 50)")
    lg.add_argument("--json", action="store_true", help="one JSON object per line")
    lg.add_argument("--kind", help="only records of this kind (access, admin, alarm ...; a kind "
                    "the gate never writes and this log lacks is refused, naming the log's kinds)")  # fmt: skip
    lg.add_argument("--processing", action="store_true",
                    help="processing records only (consent, enrolment, withdrawal, deletion, "
                         "admin), also those kept after the entry log was pruned")  # fmt: skip
    lg.set_defaults(func=cmd_log)
    ls = lg.add_subparsers(dest="log_action")
    fm = ls.add_parser(
        "false-match",
        help="report that a face grant let in the wrong person (takes that template out of "
        "face-alone matching until the resident enrols again)",
    )
    fm.add_argument("seq", type=int, help="the access record's number, as `doorpi log` shows it")
    fm.add_argument("--note", default="", help="what was seen, by whom (no names of strangers)")
    fm.set_defaults(func=cmd_false_match)
    a = sub.add_parser("audit", help="verify or prune the hash-chained audit log")
    s = a.add_subparsers(dest="action", required=True)
    v = s.add_parser("verify", help="check the hash chain; exit 1 if tampered")
    v.set_defaults(func=cmd_verify)
    p = s.add_parser("prune", help="delete records older than the retention period")
    p.set_defaults(func=cmd_prune)


def describe(kind: str, data: dict[str, common.Any]) -> str:
    if kind == "access":
        who = f"resident {data['resident_id']}" if data.get("resident_id") else "unknown"
        factors = "+".join(data.get("factors") or []) or "-"
        verdict = "GRANTED" if data.get("granted") else "DENIED "
        return f"{verdict} {who} by {factors}: {data.get('reason')}"
    rest = " ".join(f"{k}={v}" for k, v in data.items())
    return f"{kind} {rest}".rstrip()


def written_kinds() -> frozenset[str]:
    """Record kinds the gate's core and the processing records write, whether or not
    this log has one yet (the notices' kinds are many and open: see the log's own)."""
    from doorpi.core import events
    from doorpi.gate import NOT_AUDITED
    from doorpi.store.audit import GOVERNANCE_KINDS

    declared = {
        kind
        for obj in vars(events).values()
        if isinstance(obj, type) and isinstance(kind := getattr(obj, "kind", None), str)
    }
    return frozenset((declared - {"event", "command", "notice"} - NOT_AUDITED) | GOVERNANCE_KINDS)


def cmd_log(args: argparse.Namespace) -> int:
    store = common.storage(common.config(args), create=False)
    if args.kind is not None:
        present = store.audit.kinds()
        if args.kind not in present and args.kind not in written_kinds():
            have = ", ".join(present) if present else "none: the log is empty"
            raise CliError(f"--kind {common.safe(args.kind)}: no such record kind in this "
                           f"gate's log (kinds in it: {have})")  # fmt: skip
    if getattr(args, "processing", False):  # kept for audit.governance_retention_days
        records = store.audit.governance()
    else:
        records = store.audit.tail(args.n if not args.kind else 100000)
    if args.kind or getattr(args, "processing", False):
        records = [r for r in records if not args.kind or r.kind == args.kind][-args.n :]
    for r in records:
        if args.json:
            print(json.dumps({"seq": r.seq, "ts": r.ts, "kind": r.kind, **r.data}))
        else:
            stamp = f"{datetime.fromtimestamp(r.ts, common.site_tz()):%Y-%m-%d %H:%M:%S}"
            print(f"{r.seq:>7} {stamp}  {common.safe(describe(r.kind, r.data))}")
    return 0


def cmd_false_match(args: argparse.Namespace) -> int:
    """Peers give no way to mark a false match; here it is one command, in the log."""
    cfg = common.config(args)
    store = common.storage(cfg)
    row = store.db.execute("SELECT kind, data FROM audit WHERE seq = ?", [args.seq]).fetchone()
    if row is None:
        raise CliError(f"no audit record {args.seq} (pruned, or a wrong number?)")
    data = json.loads(row[1])
    if row[0] != "access" or not data.get("granted") or "face" not in (data.get("factors") or []):
        raise CliError(f"record {args.seq} is not a granted entry by face")
    rid = data.get("resident_id")
    resident = store.residents.get(rid) if rid is not None else None
    suspended = False
    if resident is not None:
        from doorpi.privacy.vault import TemplateVault

        vault = TemplateVault(store.db, cfg.site.data_dir / "keys", store.audit)
        suspended = vault.suspend_hands_free(resident.pseudonym, time.time())
    note = " ".join(args.note.split())[:200]
    common.audit_admin(store, "face_false_match", seq=args.seq, resident_id=rid,
                       factors=data.get("factors"), note=note, suspended=suspended)  # fmt: skip
    if suspended:
        print(f"resident {rid}: their face template no longer opens the door alone; face with "
              "their card or number, card and PIN still work; it ends when they enrol again")  # fmt: skip
    else:
        print(f"recorded; resident {rid} holds no template on this gate (card mode or removed)")
    if "card" in data["factors"]:
        print(f"their card was presented too: if it was not resident {rid}, disable that card")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = common.storage(common.config(args), create=False)
    result = store.audit.verify()
    if result.ok:
        print(f"audit log ok: {result.checked} records, chain intact")
        return 0
    raise CliError(f"audit log TAMPERED: {result.problem} (after {result.checked} good records)")


def cmd_prune(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    from doorpi.timekeeper import vouched_by_floor

    # Both periods end at a time the gate has vouched for (its clock floor,
    # doorpi.core.clock), as the gate's own hourly sweep does: a clock reading 2040
    # must delete neither the entry log nor the processing records early.
    vouched = vouched_by_floor(store.db, time.time())
    n = store.audit.prune(vouched - cfg.audit.retention_days * 86400,
                          governance_older_than=vouched - cfg.audit.governance_retention_days * 86400,
                          now=vouched)  # fmt: skip
    print(f"pruned {n} records older than {cfg.audit.retention_days} days; processing records "
          f"are kept {cfg.audit.governance_retention_days} days")  # fmt: skip
    return 0
