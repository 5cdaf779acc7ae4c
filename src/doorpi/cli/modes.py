"""`doorpi lockdown|responder|duress`: door modes on the device, audited.

* ``doorpi lockdown on|off|show``: stored lockdown (survives a restart; a
  running gate applies it within a second). Only residents flagged responder
  get in; exit stays free; fire release overrides. A signed bundle's
  ``lockdown`` field sets the same state (the last one wins); the key switch
  (``gpio.lockdown_switch``) is a separate source.
* ``doorpi responder add|remove|list``: who gets in during lockdown.
* ``doorpi duress set|clear ID``: a resident's duress PIN, set by the admin
  (asked twice, never on the command line). It opens the door as the PIN does
  and raises a silent alarm (``gpio.duress_output`` and the audit log).
"""

from __future__ import annotations

import argparse
import getpass
import time

from doorpi import validation
from doorpi.cli import CliError, common
from doorpi.store.credentials import hash_pin, verify_pin


def register(sub: argparse._SubParsersAction) -> None:
    lk = sub.add_parser("lockdown", help="lockdown on|off|show (responders only; audited)")
    lk.add_argument("state", choices=("on", "off", "show"))
    lk.add_argument("--reason", default="", help="a short note for the audit log")
    lk.set_defaults(func=cmd_lockdown)

    rp = sub.add_parser("responder", help="residents let in during lockdown")
    rs = rp.add_subparsers(dest="responder_cmd", required=True)
    for name in ("add", "remove"):
        p = rs.add_parser(name, help=f"{name} the responder flag")
        p.add_argument("id", type=int)
        p.set_defaults(func=cmd_responder, on=name == "add")
    rs.add_parser("list", help="residents flagged responder").set_defaults(func=cmd_responder_list)

    du = sub.add_parser("duress", help="set or clear a resident's duress PIN (silent alarm)")
    ds = du.add_subparsers(dest="duress_cmd", required=True)
    st = ds.add_parser("set", help="set a duress PIN (asked twice, never on the command line)")
    st.add_argument("id", type=int)
    st.add_argument("--stdin", action="store_true", help="read the duress PIN from stdin")
    st.set_defaults(func=cmd_duress_set)
    cl = ds.add_parser("clear", help="remove a duress PIN")
    cl.add_argument("id", type=int)
    cl.set_defaults(func=cmd_duress_clear)


def cmd_lockdown(args: argparse.Namespace) -> int:
    from doorpi.doormodes import read_lockdown, write_lockdown

    cfg = common.config(args)
    store = common.storage(cfg, create=args.state != "show")
    if args.state == "show":
        try:
            doc = read_lockdown(store.db)
        except ValueError as exc:
            raise CliError(f"{cfg.db_path}: {exc}; `doorpi lockdown on|off` rewrites it") from None
        if not doc["active"]:
            print("lockdown: off")
        else:
            print(f"lockdown: on since {common.when(doc.get('since', 0))} "
                  f"({doc.get('source', '?')}, by {common.safe(str(doc.get('by', '?')))})")  # fmt: skip
        return 0
    try:
        reason = validation.check_text(args.reason, validation.SHORT_TEXT_MAX)
    except validation.InputError as exc:
        raise CliError(f"--reason: {exc}") from None
    on = args.state == "on"
    who = getpass.getuser()
    write_lockdown(store.db, on, "admin", who, time.time())
    common.audit_admin(store, "lockdown_on" if on else "lockdown_off", reason=reason)
    print(f"lockdown {args.state}; a running gate applies it within a second")
    return 0


def cmd_responder(args: argparse.Namespace) -> int:
    from doorpi.store.roles import RoleStore

    store = common.storage(common.config(args))
    common.resident(store, args.id)
    RoleStore(store.db).set_responder(args.id, args.on)
    common.audit_admin(store, "responder_added" if args.on else "responder_removed",
                       resident_id=args.id)  # fmt: skip
    print(f"resident {args.id} is {'now' if args.on else 'no longer'} a responder")
    return 0


def cmd_responder_list(args: argparse.Namespace) -> int:
    from doorpi.store.roles import RoleStore

    store = common.storage(common.config(args), create=False)
    for rid in RoleStore(store.db).responders():
        r = store.residents.get(rid)
        print(f"{rid:>5}  {common.safe(r.name) if r else '?'}")
    return 0


def cmd_duress_set(args: argparse.Namespace) -> int:
    from doorpi.store.roles import RoleStore

    cfg = common.config(args)
    store = common.storage(cfg)
    r = common.resident(store, args.id)
    whom = common.who_is(r)
    pin = common.new_pin(args, cfg, "duress PIN", whom)
    own = store.residents.pin_hash(args.id)
    if own is not None and verify_pin(store.secrets, own, pin):
        raise CliError(f"duress PIN for {whom}: must differ from their own PIN; nothing changed")
    h = hash_pin(store.secrets, pin, cfg.pin.opslimit, cfg.pin.memlimit_kib)
    RoleStore(store.db).set_duress_hash(args.id, h)
    common.audit_admin(store, "duress_pin_set", resident_id=args.id)
    print(f"duress PIN set for resident {args.id}")
    return 0


def cmd_duress_clear(args: argparse.Namespace) -> int:
    from doorpi.store.roles import RoleStore

    store = common.storage(common.config(args))
    common.resident(store, args.id)
    RoleStore(store.db).set_duress_hash(args.id, None)
    common.audit_admin(store, "duress_pin_cleared", resident_id=args.id)
    print(f"duress PIN cleared for resident {args.id}")
    return 0
