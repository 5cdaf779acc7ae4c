"""`doorpi resident|card|pin ...`: managing residents on the device itself."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from doorpi import validation
from doorpi.cli import CliError, common, human
from doorpi.core.uid import random_uid_problem
from doorpi.store.credentials import card_hash, hash_pin
from doorpi.store.residents import ResidentError


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("resident", help="add, list, show, change or remove residents")
    rs = r.add_subparsers(dest="action", required=True)
    add = rs.add_parser("add", help="add a resident")
    add.add_argument("name")
    add.add_argument("--unit", default="")
    add.add_argument("--keypad-id", help="number typed before the PIN at the keypad")
    add.add_argument("--valid-from")
    add.add_argument("--valid-until", help="e.g. 2027-06-30 (end of tenancy)")
    add.add_argument("--schedule", help="a schedule name from the config")
    add.add_argument("--minor", action="store_true",
                     help="under 14: face only with a parent or guardian, admin present")  # fmt: skip
    add.set_defaults(func=cmd_add)
    mn = rs.add_parser("minor", help="mark a resident as under 14 (or --clear)")
    mn.add_argument("id", type=int)
    mn.add_argument("--clear", action="store_true", help="the resident is 14 or older")
    mn.set_defaults(func=cmd_minor)
    ls = rs.add_parser("list", help="list residents")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    show = rs.add_parser("show", help="show one resident")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    for name, active in (("disable", False), ("enable", True)):
        d = rs.add_parser(name, help=f"{name} a resident's access")
        d.add_argument("id", type=int)
        d.set_defaults(func=cmd_enable, active=active)
    rep = rs.add_parser("report", help="what is stored about a resident (never the template)")
    rep.add_argument("id", type=int)
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_report)
    rm = rs.add_parser("remove", help="remove a resident, their cards, PIN and face data")
    rm.add_argument("id", type=int)
    rm.set_defaults(func=cmd_remove)

    c = sub.add_parser("card", help="bind or remove cards")
    cs = c.add_subparsers(dest="action", required=True)
    en = cs.add_parser("enroll", help="bind a card: tap it on the reader (or give --uid)")
    en.add_argument("id", type=int, help="resident id")
    en.add_argument("--uid", help="card UID in hex instead of a tap")
    en.add_argument("--label", default="")
    en.add_argument(
        "--timeout", type=float, default=30.0,
        help="seconds to wait for the tap (default 30); a missing reader or pcscd is said at once",
    )  # fmt: skip
    en.set_defaults(func=cmd_card_enroll)
    cr = cs.add_parser("remove", help="remove a card by the reference `resident show` prints")
    cr.add_argument("id", type=int)
    cr.add_argument("ref")
    cr.set_defaults(func=cmd_card_remove)

    p = sub.add_parser("pin", help="set or clear a resident's PIN")
    ps = p.add_subparsers(dest="action", required=True)
    st = ps.add_parser("set", help="set a PIN (asked twice, never on the command line)")
    st.add_argument("id", type=int)
    st.add_argument("--stdin", action="store_true", help="read the PIN from standard input")
    st.set_defaults(func=cmd_pin_set)
    cl = ps.add_parser("clear", help="remove a PIN")
    cl.add_argument("id", type=int)
    cl.set_defaults(func=cmd_pin_clear)


def _check_schedule(cfg: common.Config, name: str | None) -> None:
    from doorpi.config import unknown_schedule

    problem = unknown_schedule(cfg.schedules, name)
    if problem:
        raise CliError(f"--schedule: {problem}")


def cmd_add(args: argparse.Namespace) -> int:
    from doorpi.core.parity import show_rule

    cfg = common.config(args)
    _check_schedule(cfg, args.schedule)
    store = common.storage(cfg)
    try:
        r = store.residents.add(
            args.name,
            time.time(),
            unit=args.unit,
            keypad_id=args.keypad_id,
            valid_from=common.parse_date(args.valid_from, "--valid-from"),
            valid_until=common.parse_date(args.valid_until, "--valid-until", until=True),
            schedule=args.schedule,
            minor=args.minor,
        )
    except ResidentError as exc:
        raise CliError(str(exc)) from None
    common.audit_admin(store, "resident_added", resident_id=r.id, minor=r.minor)
    keypad = f", keypad number {r.keypad_id}" if r.keypad_id else ""
    print(
        f"resident {r.id} added: {common.safe(r.name)} ({common.safe(r.unit) or 'no unit'}{keypad})"
    )
    ways = " | ".join(dict.fromkeys(show_rule(rule) for _, rule in cfg.rules()))
    print(f"  no card or PIN yet: door {cfg.door.name!r} takes {ways} "
          f"(doorpi card enroll {r.id}, doorpi pin set {r.id})")  # fmt: skip
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = common.storage(common.config(args), create=False)
    residents = store.residents.all()
    if args.json:
        common.print_json([r.public() for r in residents])
        return 0
    now = time.time()
    rows = [(r.id, common.safe(r.name), common.safe(r.unit), common.safe(r.keypad_id or "-"),
             common.when(r.valid_until, until=True),
             r.schedule or "any", "yes" if r.minor else "-", _state(r, now))
            for r in residents]  # fmt: skip
    headers = ("id", "name", "unit", "keypad", "until", "schedule", "under 14", "state")
    print(human.table(headers, rows, (0, 24, 8, 7, 16, 10, 8, 0)))
    return 0


def _state(r: Any, now: float) -> str:
    """What the door does with this resident now: active, disabled, expired, not yet valid."""
    if not r.active:
        return "disabled"
    if r.valid_until is not None and now > r.valid_until:
        return "expired"
    if r.valid_from is not None and now < r.valid_from:
        return "not yet valid"
    return "active"


def cmd_show(args: argparse.Namespace) -> int:
    store = common.storage(common.config(args), create=False)
    r = common.resident(store, args.id)
    info = r.public() | {"cards": store.residents.cards(r.id)}
    if args.json:
        common.print_json(info)
        return 0
    shown = {"id": r.id, "name": common.safe(r.name), "unit": common.safe(r.unit) or "-",
             "keypad number": r.keypad_id,
             "schedule": r.schedule or "any", "state": _state(r, time.time()),
             "PIN": "set" if r.has_pin else "none",
             "valid": f"{common.when(r.valid_from)} .. {common.when(r.valid_until, until=True)}",
             "under 14": "yes (face only with a guardian, admin present)" if r.minor else "no"}  # fmt: skip
    for key, v in shown.items():
        print(f"{key:>13}: {human.value(v)}")
    for c in info["cards"]:
        label = f" {common.safe(c['label'])}" if c["label"] else ""
        print(f"{'card':>13}: ref {c['ref']}{label} (added {common.when(c['added'])})")
    return 0


def cmd_minor(args: argparse.Namespace) -> int:
    """Under 14 (PIPL 31): a face consent given without a guardian is withdrawn
    and its template deleted (the database trigger of schema 5)."""
    store = common.storage(common.config(args))
    common.resident(store, args.id)
    with common.as_cli_error(ResidentError):
        store.residents.update(args.id, time.time(), minor=not args.clear)
    common.audit_admin(store, "resident_minor", resident_id=args.id, minor=not args.clear)
    print(f"resident {args.id}: " + ("14 or older" if args.clear else
          "under 14: face only with a parent or guardian, admin present"))  # fmt: skip
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    try:
        store.residents.update(args.id, time.time(), active=args.active)
    except ResidentError as exc:
        raise CliError(str(exc)) from None
    common.audit_admin(store, "resident_enabled" if args.active else "resident_disabled",
                       resident_id=args.id)  # fmt: skip
    r = store.residents.get(args.id)
    held = store.db.execute(
        "SELECT count(*) FROM face_templates WHERE pseudonym = ?", [r.pseudonym if r else ""]
    ).fetchone()[0]
    if not args.active and held:  # moved out: the face template goes now (requirement 12)
        from doorpi.privacy.vault import TemplateVault

        vault = TemplateVault(store.db, cfg.keys_dir, store.audit)
        if r is not None and vault.delete(r.pseudonym, reason="resident_disabled", by="admin"):
            print(f"face template of resident {args.id} deleted")
    print(f"resident {args.id} {'enabled' if args.active else 'disabled'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from doorpi.cli.consent import cmd_report as report

    return report(args)


def cmd_remove(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    common.resident(store, args.id)
    from doorpi.privacy.enrolment import build_face_privacy

    # Face data first, and logged: a moving-out resident's template must not outlive them.
    build_face_privacy(cfg, store).forget_resident(args.id, by=common.who())
    try:
        store.residents.remove(args.id)
    except ResidentError as exc:
        raise CliError(str(exc)) from None
    common.audit_admin(store, "resident_removed", resident_id=args.id)
    print(f"resident {args.id} removed with their cards and PIN")
    return 0


def _tap(cfg: common.Config, timeout: float) -> tuple[bytes, str]:
    """Wait for one card on the configured reader; its identifier and method, read
    as the gate reads it (doorpi.cards.policy): a secure card by its authenticated
    UID, a UID-only card only while ``reader.legacy_uid`` lets the gate take one."""
    import queue
    from pathlib import Path

    from doorpi.cards.keys import GateKeysFile
    from doorpi.cards.policy import CardPolicyProtocol, LegacyWindow, parse_until
    from doorpi.core.events import CardPresented, CardReadFailed, ReaderStatus
    from doorpi.hardware.reader import PCSCD_CHECK, READER_CHECK, PcscReader, reader_absent_text

    try:
        keys = GateKeysFile(Path(cfg.site.data_dir))
        window = LegacyWindow(cfg.reader.legacy_uid, parse_until(cfg.reader.legacy_uid_until))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    got: queue.Queue = queue.Queue()
    reader = PcscReader(cfg.reader.name, CardPolicyProtocol(keys, window))
    reader.start(got.put)
    deadline = time.monotonic() + timeout
    ready = False  # a reader said "ready" (the prompt was printed)
    present: set[str] = set()
    try:
        while time.monotonic() < deadline:
            try:
                ev = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(ev, CardPresented):
                return ev.card_id, ev.method
            if isinstance(ev, CardReadFailed):
                raise CliError(f"card could not be read: {ev.reason}; not bound")
            if isinstance(ev, ReaderStatus):
                if ev.present and not ready:  # a card already on the reader is not a tap
                    print("tap the card on the reader ...", file=sys.stderr)
                (present.add if ev.present else present.discard)(ev.reader)
                ready = ready or ev.present
                if not present and not ev.present:  # pcscd or the (last) reader is not there
                    raise CliError(f"{reader_absent_text(ev.reason, cfg.reader.name)}; not bound")
        if not ready:
            raise CliError(f"the card reader did not get ready within {timeout:.0f} s (pcscd "
                           f"not answering?): {PCSCD_CHECK}; {READER_CHECK}")  # fmt: skip
        raise CliError(f"no card was tapped within {timeout:.0f} s")
    finally:
        reader.stop()


def _secure_only_warning(cfg: common.Config, card_id: bytes) -> str | None:
    """A warning if the gate would refuse this typed UID today: UID-only cards are
    off (``reader.legacy_uid``) and no synced secure-card key is for it."""
    from pathlib import Path

    from doorpi.cards.keys import load_gate_keys
    from doorpi.cards.policy import LegacyWindow, legacy_allowed, parse_until

    window = LegacyWindow(cfg.reader.legacy_uid, parse_until(cfg.reader.legacy_uid_until))
    if legacy_allowed(window, time.time()):
        return None
    try:
        keys = load_gate_keys(Path(cfg.site.data_dir))
    except ValueError:
        keys = None  # `doorpi status` names a broken key file
    if keys is not None and keys.entry_key(card_id) is not None:
        return None
    off = (
        "reader.legacy_uid = false"
        if not cfg.reader.legacy_uid
        else (f"reader.legacy_uid_until = {cfg.reader.legacy_uid_until} has passed")
    )
    return (
        f"card {card_id.hex()} is bound, but this gate accepts secure cards only ({off}) "
        "and has no key for it: it will be refused until a bundle carries its key "
        "(doorpi admin card issue)"
    )


def cmd_card_enroll(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    r = common.resident(store, args.id)
    who = f"resident {args.id} ({validation.safe_text(r.name)})"
    warning = None
    if args.uid:
        try:
            card_id = validation.card_uid(args.uid)
        except validation.InputError as exc:
            raise CliError(f"{who}: --uid: {exc}") from None
        warning = _secure_only_warning(cfg, card_id)
    else:
        from doorpi.cards.policy import WEAK_METHODS

        card_id, method = _tap(cfg, args.timeout)
        problem = random_uid_problem(card_id) if method in WEAK_METHODS else None
        if problem:
            raise CliError(f"{who}: {problem}; not bound")
    h = card_hash(store.secrets, card_id)
    try:
        store.residents.add_card(args.id, h, time.time(), args.label)
    except ResidentError as exc:
        raise CliError(str(exc)) from None
    common.audit_admin(store, "card_enrolled", resident_id=args.id, card=h[:8])
    print(f"card {h[:8]} bound to resident {args.id}")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    _warn_face_only(cfg, store, args.id)
    return 0


def _warn_face_only(cfg: Any, store: Any, resident_id: int) -> None:
    """A PIN or card given or taken away may leave someone no way in at this door's
    rule, or face as their only way in: say so."""
    from doorpi.privacy.parity import holds, no_way_in_lines, warn_lines

    lines = warn_lines(cfg, store, resident_id)  # the face-parity line is the more exact
    r = store.residents.get(resident_id)
    if not lines and r is not None and r.active:
        lines = no_way_in_lines(cfg, [(r.id, r.name, holds(store, r), r.keypad_id is not None)])
    for line in lines:
        print(f"WARNING: {line}")


def cmd_card_remove(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    from doorpi import validation

    ref = validation.card_ref(args.ref)  # hex only: `%` and `_` are no wildcards
    if ref is None:
        raise CliError(f"card reference {validation.safe_repr(args.ref)}: give the "
                       "8-character hex reference from `doorpi resident show`")  # fmt: skip
    if store.residents.remove_card(args.id, ref) != 1:
        raise CliError(f"resident {args.id} has no card {ref} (nothing removed)")
    common.audit_admin(store, "card_removed", resident_id=args.id, card=ref)
    print(f"card {ref} removed")
    _warn_face_only(cfg, store, args.id)
    return 0


def cmd_pin_set(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    r = common.resident(store, args.id)
    whom = common.who_is(r)
    pin = common.new_pin(args, cfg, whom=whom)
    from doorpi.store.credentials import verify_pin
    from doorpi.store.roles import RoleStore

    duress = RoleStore(store.db).duress_hash(args.id)
    if duress is not None and verify_pin(store.secrets, duress, pin):
        raise CliError(f"PIN for {whom}: must differ from their duress PIN; nothing changed")
    h = hash_pin(store.secrets, pin, cfg.pin.opslimit, cfg.pin.memlimit_kib)
    store.residents.set_pin_hash(args.id, h, time.time())
    common.audit_admin(store, "pin_set", resident_id=args.id)
    print(f"PIN set for resident {args.id}")
    _warn_face_only(cfg, store, args.id)
    return 0


def cmd_pin_clear(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    store = common.storage(cfg)
    common.resident(store, args.id)
    store.residents.set_pin_hash(args.id, None, time.time())
    common.audit_admin(store, "pin_cleared", resident_id=args.id)
    print(f"PIN cleared for resident {args.id}")
    _warn_face_only(cfg, store, args.id)
    return 0
