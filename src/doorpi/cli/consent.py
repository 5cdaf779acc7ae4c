"""`doorpi consent ...` and `doorpi keys rotate` (`add_rotate`): face consent on the device.

Admin side of consent (the resident present), withdrawal, refusal, the
resident's report, the retention sweep, and re-keying of the template vault.
Every command is written to the audit log with the admin's login name.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import TYPE_CHECKING

from doorpi.cli import CliError, common

if TYPE_CHECKING:
    pass


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("consent", help="face consent: record, withdraw, refuse, report")
    cs = c.add_subparsers(dest="action", required=True)
    r = cs.add_parser("record", help="record consent given on the form, resident present")
    r.add_argument("id", type=int, help="resident id")
    r.add_argument("--lang", choices=("zh", "en"))
    r.add_argument("--retention-days", type=int)
    r.add_argument("--minor", action="store_true", help="the resident is under 14")
    r.add_argument("--guardian", help="parent or guardian who consented (needed with --minor)")
    r.add_argument("--share-site-gates", action="store_true",
                   help="the resident ticked: the template may be used at the site's other gates")  # fmt: skip
    r.add_argument("--yes", action="store_true",
                   help="the resident read and signed the printed form (skip the question)")  # fmt: skip
    r.set_defaults(func=cmd_record)
    for name, helptext, func in (
        ("withdraw", "withdraw consent: matching stops and the template is deleted", cmd_withdraw),
        ("refuse", "remember that the resident said no (never offered again)", cmd_refuse),
        ("show", "the resident's consent records", cmd_show),
    ):
        p = cs.add_parser(name, help=helptext)
        p.add_argument("id", type=int)
        if name == "show":
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
    cap = cs.add_parser(
        "capture", help="capture the face at the gate camera now (after consent, admin present)"
    )
    cap.add_argument("id", type=int)
    cap.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                     help="how long to wait for the gate (default: %(default)s)")  # fmt: skip
    cap.set_defaults(func=cmd_capture)
    rep = cs.add_parser("report", help="what is stored about a resident (never the template)")
    rep.add_argument("id", type=int)
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_report)
    sw = cs.add_parser("sweep", help="delete templates whose retention has ended")
    sw.set_defaults(func=cmd_sweep)


def add_rotate(keys_sub: argparse._SubParsersAction) -> None:
    """`doorpi keys rotate [--revoke]`: added to the `keys` group (cli/keys.py)."""
    rot = keys_sub.add_parser(
        "rotate", help="new face vault key: re-encrypt every template (or --revoke all)"
    )
    rot.add_argument("--revoke", action="store_true", help="delete every face template instead")
    rot.set_defaults(func=cmd_rotate)


def _who() -> str:
    try:
        return f"admin:{getpass.getuser()}"
    except Exception:
        return "admin:unknown"


def _privacy(args: argparse.Namespace):
    from doorpi.privacy.enrolment import build_face_privacy

    cfg = common.config(args)
    store = common.storage(cfg)
    with common.as_cli_error(ValueError):
        privacy = build_face_privacy(cfg, store)
    return store, privacy


def cmd_record(args: argparse.Namespace) -> int:
    from doorpi.privacy.consent import ConsentError
    from doorpi.privacy.enrolment import EnrolmentError
    from doorpi.privacy.notices import NoticeError

    store, privacy = _privacy(args)
    who = _who()
    with common.as_cli_error(EnrolmentError, NoticeError):
        ticket = privacy.start_enrolment(args.id, "admin_present", by=who, lang=args.lang)
    if not args.yes:
        print(ticket.notice.text)
        if not common.confirm("Has the resident read this and agreed?"):
            print("no consent recorded")
            return 1
    with common.as_cli_error(ConsentError):
        rec = privacy.consent(
            ticket,
            confirmed_by=who,
            retention_days=args.retention_days,
            minor=args.minor,
            guardian=args.guardian,
            share_site_gates=args.share_site_gates,
        )
    common.audit_admin(store, "consent_record", resident_id=args.id, consent_id=rec.id)
    print(f"consent {rec.id} recorded for resident {args.id} until {common.when(rec.retention_end)}"
          f" (notice {rec.notice_version}, sha256 {rec.notice_hash[:16]})")  # fmt: skip
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    """Ask the running gate to capture; wait for its answer. Exit 0 enrolled, 1 not."""
    import time

    from doorpi.privacy import capture

    store, privacy = _privacy(args)
    r = common.resident(store, args.id)
    if privacy.consents.live(r.pseudonym, time.time()) is None:
        raise CliError(
            f"resident {args.id} has no live face consent: record it first "
            f"(`doorpi consent record {args.id}`)"
        )
    req = capture.request(store.db, args.id, _who(), time.time())
    common.audit_admin(store, "face_capture_request", resident_id=args.id)
    print(f"resident {args.id}: look at the gate camera now"
          + (" with your card on the reader" if privacy.settings.template_storage == "card"
             else ""))  # fmt: skip
    deadline = time.monotonic() + args.wait
    started = False
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = capture.read(store.db)
        if now is None or now.id != req.id:
            raise CliError("another capture request replaced this one")
        if now.status == "capturing" and not started:
            started = True
            print("the gate is capturing (three good frames) ...")
        if now.done:
            if now.status == "enrolled":
                print(f"resident {args.id}: face enrolled")
                return 0
            print(f"resident {args.id}: not enrolled: {now.reason}")
            return 1
    if not started:
        raise CliError(
            f"no answer from the gate in {args.wait:.0f} s: is doorpi.service running? "
            "(systemctl status doorpi)"
        )
    print(f"resident {args.id}: no face captured in {args.wait:.0f} s")
    return 1


def cmd_withdraw(args: argparse.Namespace) -> int:
    from doorpi.privacy.enrolment import EnrolmentError

    store, privacy = _privacy(args)
    with common.as_cli_error(EnrolmentError):
        had = privacy.withdraw(args.id, by=_who(), channel="admin")
    common.audit_admin(store, "consent_withdraw", resident_id=args.id)
    print(f"resident {args.id}: " + ("consent withdrawn, face template deleted" if had
                                       else "had no face consent or template"))  # fmt: skip
    return 0


def cmd_refuse(args: argparse.Namespace) -> int:
    from doorpi.privacy.enrolment import EnrolmentError

    store, privacy = _privacy(args)
    with common.as_cli_error(EnrolmentError):
        privacy.refuse(args.id, by=_who())
    common.audit_admin(store, "consent_refuse", resident_id=args.id)
    print(f"resident {args.id}: refusal recorded; face will not be offered again")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store, privacy = _privacy(args)
    r = common.resident(store, args.id)
    common.audit_admin(store, "consent_show", resident_id=args.id)
    records = [c.public() for c in privacy.consents.history(r.pseudonym)]
    if args.json:
        common.print_json(records)
        return 0
    from doorpi.cli.human import value

    if not records:
        print(f"resident {args.id}: no face consent records")
    for rec in records:
        state = "withdrawn" if rec.get("withdrawn_at") else "live"
        print(f"consent {rec['id']} ({state})")
        for key, v in rec.items():
            if key != "id":
                print(f"  {key.replace('_', ' '):>16}: {value(v, key)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from doorpi.privacy.report import ReportError, format_report, resident_report

    cfg = common.config(args)
    store = common.storage(cfg)
    with common.as_cli_error(ReportError):
        rep = resident_report(store, args.id, by=_who())
    if args.json:
        common.print_json(rep)
    else:
        sys.stdout.write(format_report(rep, common.site_tz()) + "\n")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from doorpi.privacy.retention import RetentionSweeper

    store, privacy = _privacy(args)
    gone = RetentionSweeper(store, privacy.vault).sweep()
    common.audit_admin(store, "retention_sweep", deleted=len(gone))
    for g in gone:
        print(f"deleted the face template of resident {g.resident_id}: {g.reason}")
    print(f"{len(gone)} template(s) deleted")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    store, privacy = _privacy(args)
    started = time.monotonic()
    kept = privacy.vault.rotate(revoke=args.revoke, by=_who())
    common.audit_admin(store, "keys_rotate", revoke=args.revoke, kept=kept)
    if args.revoke:
        print("vault key replaced; every face template deleted")
    else:
        print(f"vault key replaced; {kept} template(s) re-encrypted "
              f"in {time.monotonic() - started:.1f} s")  # fmt: skip
    return 0
