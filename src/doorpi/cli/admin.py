"""`doorpi admin ...`: the laptop side of USB sync (site key, gates, roster, bundles).

Runs anywhere the package is installed; it never reads the gate config. State
is kept in --admin-dir (default $DOORPI_ADMIN_DIR or ~/.local/share/doorpi-admin).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from doorpi import validation
from doorpi.cli import CliError, common, human
from doorpi.sync import desk
from doorpi.sync.admin import AdminError, AdminSite
from doorpi.sync.keys import KeyFileError, PublicIdentity, pretty
from doorpi.sync.report import SyncReport
from doorpi.sync.roster import EXAMPLE, Roster, RosterError, load_roster


def _default_dir() -> Path:
    env = os.environ.get("DOORPI_ADMIN_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "doorpi-admin"


def register(sub: argparse._SubParsersAction) -> None:
    opts = argparse.ArgumentParser(add_help=False)
    opts.add_argument("--admin-dir", type=Path, default=_default_dir(),
                      help="admin state directory (default: %(default)s)")  # fmt: skip
    a = sub.add_parser("admin", help="laptop side: site key, gates, roster, bundles, reports")
    acts = a.add_subparsers(dest="action", required=True)

    init = acts.add_parser("init", parents=[opts], help="create the site key (once per site)")
    init.add_argument("--site-name", required=True)
    init.add_argument("--roster", type=Path, help="also write an example roster file here")
    init.set_defaults(func=cmd_init)

    acts.add_parser("show", parents=[opts], help="site fingerprint, sequence, gates").set_defaults(
        func=cmd_show
    )

    stick = acts.add_parser("stick", parents=[opts], help="put the site's public key on a stick")
    stick.add_argument("stick", type=Path, help="the stick's mount point")
    stick.set_defaults(func=cmd_stick)

    gate = acts.add_parser("gate", help="register, list or remove gates")
    gs = gate.add_subparsers(dest="gate_action", required=True)
    add = gs.add_parser("add", parents=[opts], help="register a gate from its public key file")
    add.add_argument("path", type=Path, help="<stick>/doorpi/gates/<fingerprint>.pub")
    add.add_argument("--name", help="name for the gate (default: the name it reports)")
    add.add_argument(
        "--fingerprint",
        help="the gate's full fingerprint, as its console showed it (32 hex digits)",
    )
    add.add_argument(
        "--yes",
        action="store_true",
        help="register without --fingerprint (you compared it by other means)",
    )
    add.set_defaults(func=cmd_gate_add)
    gs.add_parser("list", parents=[opts], help="registered gates").set_defaults(func=cmd_gate_list)
    st = gs.add_parser(
        "settings", parents=[opts],
        help="the site and door settings of one gate, sent signed with its next bundle",
    )  # fmt: skip
    st.add_argument("gate", help="name or fingerprint prefix")
    st.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help='e.g. site.contact="+86 10 5555 0100" or door.access=["card","pin"]')  # fmt: skip
    st.add_argument("--unset", action="append", default=[], metavar="KEY",
                    help="back to the gate's own value for this key")  # fmt: skip
    st.add_argument("--file", type=Path, help="replace them with this TOML file")
    st.set_defaults(func=cmd_gate_settings)
    rm = gs.add_parser("remove", parents=[opts], help="forget a gate")
    rm.add_argument("gate", help="name or fingerprint prefix")
    rm.set_defaults(func=cmd_gate_remove)

    chk = acts.add_parser("check", parents=[opts], help="validate a roster file")
    chk.add_argument("roster", type=Path)
    chk.set_defaults(func=cmd_check)

    b = acts.add_parser(
        "bundle", parents=[opts], help="write one sealed bundle per gate to a stick"
    )
    b.add_argument("roster", type=Path)
    b.add_argument("stick", type=Path, help="the stick's mount point")
    b.add_argument("--gate", action="append", help="only this gate (repeatable)")
    b.set_defaults(func=cmd_bundle)

    card = acts.add_parser("card", help="secure cards (DESFire EV2/EV3, NTAG 424 DNA): issue")
    cs = card.add_subparsers(dest="card_action", required=True)
    iss = cs.add_parser(
        "issue", parents=[opts],
        help="personalise a blank card on this laptop's reader (application, diversified keys)",
    )  # fmt: skip
    iss.add_argument("--resident", required=True, help="the roster key the card is for")
    iss.add_argument(
        "--roster", type=Path,
        help="the roster file that gets the card (default: roster.toml in the admin directory)",
    )  # fmt: skip
    iss.add_argument(
        "--reader", default="", help="PC/SC reader name or part of it (default: first)"
    )
    iss.add_argument("--label", default="", help='what the card is, e.g. "blue fob"')
    iss.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the card")
    iss.set_defaults(func=cmd_card_issue)

    lang = argparse.ArgumentParser(add_help=False)
    lang.add_argument("--lang", choices=desk.LANGS, default=None,
                      help="zh or en (default: the laptop's locale, else zh)")  # fmt: skip
    ro = acts.add_parser("roster", help="the site roster as a spreadsheet (XLSX or CSV)")
    rs_ = ro.add_subparsers(dest="roster_action", required=True)
    imp = rs_.add_parser("import", parents=[opts, lang],
                         help="make the site roster what this .xlsx or .csv says (no PINs)")  # fmt: skip
    imp.add_argument("sheet", type=Path)
    imp.set_defaults(func=cmd_roster_import)
    exp = rs_.add_parser("export", parents=[opts, lang],
                         help="write the site roster as .xlsx or .csv (UTF-8 with BOM)")  # fmt: skip
    exp.add_argument("sheet", type=Path)
    exp.set_defaults(func=cmd_roster_export)
    slip = rs_.add_parser("pin-slip", parents=[opts, lang],
                          help="a new one-time PIN for a resident, as a printable slip")  # fmt: skip
    slip.add_argument("key", help="the resident's roster key")
    slip.add_argument("--out", type=Path, required=True, help="the slip (.html) to print")
    slip.set_defaults(func=cmd_roster_pin_slip)
    con = acts.add_parser("console", parents=[opts, lang],
                          help="the admin's desk in the browser (127.0.0.1 only)")  # fmt: skip
    con.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    con.add_argument("--no-browser", action="store_true", help="print the address only")
    con.add_argument("--exit-after", type=float, metavar="SECONDS",
                     help="stop serving after this long (scripts and tests)")  # fmt: skip
    con.set_defaults(func=cmd_console)

    rep = acts.add_parser("report", help="read the gates' reports")
    rs = rep.add_subparsers(dest="report_action", required=True)
    rd = rs.add_parser("read", parents=[opts], help="verify and show the reports on a stick")
    rd.add_argument("path", type=Path, help="the stick's mount point or one .report file")
    rd.add_argument("--audit", action="store_true", help="also print each gate's audit records")
    rd.add_argument("--json", action="store_true")
    rd.set_defaults(func=cmd_report_read)


def _lang(args: argparse.Namespace) -> str:
    return args.lang or desk.default_lang()


def cmd_roster_import(args: argparse.Namespace) -> int:
    site = _site(args)
    try:
        res = desk.import_sheet(site, args.sheet, _lang(args))
    except desk.SheetError as exc:
        for line in exc.lines[1:]:
            print(f"  {line}")
        raise CliError(exc.lines[0] if len(exc.lines) == 1 else
                       f"{exc.lines[0]} (and {len(exc.lines) - 1} more above); nothing imported") from None  # fmt: skip
    except AdminError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.sheet}: {len(res.roster.residents)} residents in {desk.roster_path(site)}: "
          f"{len(res.added)} added, {len(res.changed)} changed, {len(res.removed)} removed, "
          f"{res.pins_kept} PINs kept")  # fmt: skip
    for k in res.removed:
        print(f"  removed {k}: the next bundle deletes them from the gates")
    return 0


def cmd_roster_export(args: argparse.Namespace) -> int:
    site = _site(args)
    with common.as_cli_error(AdminError, desk.SheetError):
        n = desk.export_sheet(site, args.sheet, _lang(args))
    print(f"{args.sheet}: {n} residents written (no PINs)")
    return 0


def cmd_roster_pin_slip(args: argparse.Namespace) -> int:
    from doorpi.fsutil import write_atomic

    site = _site(args)
    with common.as_cli_error(AdminError):
        pin = desk.issue_pin(site, args.key)
    write_atomic(args.out, desk.pin_slip_html(site, args.key, pin, _lang(args)).encode(), 0o600)
    print(f"{args.out}: PIN slip for {args.key}; print it, hand it over, delete the file")
    print("  the PIN reaches the gates with the next `doorpi admin bundle`")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from doorpi.console.server import serve  # never imported by the gate's process

    return serve(args.admin_dir, _lang(args), args.port, open_browser=not args.no_browser,
                 exit_after=args.exit_after)  # fmt: skip


def _site(args: argparse.Namespace) -> AdminSite:
    with common.as_cli_error(AdminError, KeyFileError):
        site = AdminSite.load(args.admin_dir)
    return site


@contextlib.contextmanager
def _roster_errors() -> Iterator[None]:
    """A roster's problems as the CLI's error: one line, or, when several residents
    have problems, each on its own line (stderr) and then the summary line."""
    try:
        yield
    except RosterError as exc:
        head, *rest = str(exc).split("\n")
        for line in rest:
            print(validation.safe_text(line), file=sys.stderr)
        raise CliError(f"{head[:-1]} (listed above)" if rest else head) from None


def _roster(site: AdminSite, path: Path) -> Roster:
    with _roster_errors():
        roster = load_roster(path, site.key.pin_tag_key)
    mode = path.stat().st_mode
    if any(r.entry.pin for r in roster.residents) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"warning: {path} holds PINs and is readable by others (chmod 600 {path})")
    return roster


def cmd_init(args: argparse.Namespace) -> int:
    with common.as_cli_error(AdminError, KeyFileError):
        site = AdminSite.init(args.admin_dir, args.site_name)
    print(f"site {args.site_name!r} created in {args.admin_dir}")
    print(f"site fingerprint: {pretty(site.key.fingerprint)}")
    print("back up site.key: it signs every bundle and opens every report")
    if args.roster is not None and not args.roster.exists():
        fd = os.open(args.roster, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(EXAMPLE.replace("Example Court", args.site_name))
        print(f"example roster written to {args.roster}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    site = _site(args)
    print(f"site:     {site.key.name} {pretty(site.key.fingerprint)}")
    print(f"sequence: {site.sequence}")
    print(f"gates:    {len(site.gates)}")
    return 0


def cmd_stick(args: argparse.Namespace) -> int:
    site = _site(args)
    try:
        site.write_stick(args.stick, [])
    except AdminError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{args.stick}: cannot write: {exc.strerror}") from None
    print(f"site key {pretty(site.key.fingerprint)} written to {args.stick}/doorpi/site.pub")
    print("at each new gate: `doorpi keys export STICK` and `doorpi keys trust-site STICK`")
    return 0


def cmd_gate_add(args: argparse.Namespace) -> int:
    site = _site(args)
    confirmed = bool(args.yes)
    if args.fingerprint is None and not args.yes:
        with common.as_cli_error(KeyFileError):
            pub = PublicIdentity.read(args.path, "gate")
        print(f"gate {pub.name!r} fingerprint: {pretty(pub.fingerprint)}")
        if not sys.stdin.isatty():
            raise CliError(
                "confirm with --fingerprint (the one the gate's console showed) or --yes"
            )
        if not common.confirm("is this the fingerprint the gate's console shows?"):
            raise CliError(
                f"gate {pub.name!r} ({args.path}): not registered: the fingerprint was not confirmed"
            )
        confirmed = True
    with common.as_cli_error(AdminError):  # its message says what to give (--name)
        rec, rules = desk.add_gate_file(
            site, args.path, args.name, args.fingerprint, confirmed=confirmed
        )
    print(f"gate {rec.name!r} registered: {pretty(rec.fingerprint)}")
    if rules is not None:
        print(f"  its limits: {rules.describe()}")
    else:
        print(
            "  its limits are not on the stick yet: `doorpi admin check` learns them from its report"
        )
    return 0


def cmd_gate_list(args: argparse.Namespace) -> int:
    site = _site(args)
    print(f"{'name':<16} {'fingerprint':<40} {'applied':>7}  last report")
    for g in site.gates.values():
        last = g.last_report.get("summary", "-")
        print(f"{g.name[:16]:<16} {pretty(g.fingerprint):<40} {g.last_sequence:>7}  {last}")
    if len(site.gates) > 1 and site.card_key_gate:
        key_gate = site.gates[site.card_key_gate].name
        print(f"card key gate: {key_gate} (templates on cards: visit it first with a new stick)")
    return 0


def cmd_gate_settings(args: argparse.Namespace) -> int:
    import tomllib

    import tomli_w

    from doorpi.config import ConfigError
    from doorpi.settings import parse_assignment

    site = _site(args)
    with common.as_cli_error(AdminError):
        rec = site.find_gate(args.gate)
        doc = site.gate_settings(rec) or {}
    changing = bool(args.file or args.set or args.unset)
    if args.file:
        try:
            doc = tomllib.loads(args.file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"{args.file}: unreadable: {exc}") from None
    for text in args.set:
        with common.as_cli_error(ConfigError):
            section, key, value = parse_assignment(text)
        doc.setdefault(section, {})[key] = value
    for name in args.unset:
        section, _, key = name.partition(".")
        doc.get(section, {}).pop(key, None)
        if section in doc and not doc[section]:
            del doc[section]
    if changing:
        with common.as_cli_error(AdminError, OSError):
            site.set_gate_settings(rec, doc)
    text = tomli_w.dumps(doc).strip() or "(none: the gate keeps its own)"
    print(f"settings for gate {rec.name!r} ({site.settings_path(rec)}):")
    print(text)
    if changing:
        print("checked with the gate's rules; sent signed with its next `doorpi admin bundle`")
    return 0


def cmd_gate_remove(args: argparse.Namespace) -> int:
    site = _site(args)
    with common.as_cli_error(AdminError):
        rec = site.remove_gate(args.gate)
    print(f"gate {rec.name!r} forgotten")
    return 0


def _problems(site: AdminSite, roster: Roster, only: list[str] | None = None) -> list[str]:
    with common.as_cli_error(AdminError):
        problems = site.problems(roster, only)
    for p in problems:
        print(f"  {p}")
    return problems


def cmd_check(args: argparse.Namespace) -> int:
    site = _site(args)
    roster = _roster(site, args.roster)
    problems = _problems(site, roster)
    if problems:
        print(f"{args.roster}: {len(problems)} problems: the gates would refuse these entries")
        return 1
    pins = sum(1 for r in roster.residents if r.entry.pin)
    cards = sum(len(r.entry.cards) for r in roster.residents)
    warned = _face_warnings(site, roster)
    note = f" ({len(warned)} warnings above)" if warned else ""
    print(f"{args.roster}: {len(roster.residents)} residents, {cards} cards, {pins} PINs: ok{note}")
    return 0


def _face_warnings(site: AdminSite, roster: Roster, only: list[str] | None = None) -> list[str]:
    """Residents left with no face-free way in at a gate that can ask them for face."""
    with common.as_cli_error(AdminError):
        lines = site.face_warnings(roster, only)
    for line in lines:
        print(f"  warning: {line}")
    return lines


def cmd_bundle(args: argparse.Namespace) -> int:
    site = _site(args)
    roster = _roster(site, args.roster)
    try:
        run = desk.bundle_to_stick(site, roster, args.stick, args.gate)
    except desk.RosterProblems as exc:
        for p in exc.lines:
            print(f"  {p}")
        raise CliError(
            f"{args.roster}: the gates would refuse the entries above; nothing written"
        ) from None
    except AdminError as exc:
        raise CliError(str(exc)) from None
    for line in run.warnings:  # the gates take these entries: a warning
        print(f"  warning: {line}")
    if run.reports:  # the gates' last reports are replaced now: say what they said first
        print("reports on the stick, read now:")
        _print_reports(site, run.reports)
    built = run.built
    signed_at = _when(built[0].bundle.created) if built else "-"
    print(f"sequence {site.sequence}, signed by site {pretty(site.key.fingerprint)} at {signed_at}")
    print("  (the gates raise their clock floor to this time: check the laptop's clock)")
    for b in built:
        print(
            f"  {b.gate.name:<16} {len(b.bundle.residents):>5} residents "
            f"{len(b.bundle.tombstones):>4} deletions {len(b.bundle.templates):>4} face templates "
            f"{len(b.bundle.face_withdrawals):>3} face withdrawals "
            f"{len(b.bundle.face_suspensions):>3} false matches "
            f"{len(b.data):>9} bytes  {b.path}"
        )
    print("plug the stick into each gate; bring it back and run `doorpi admin report read`")
    return 0


def cmd_card_issue(args: argparse.Namespace) -> int:
    """Personalise a blank card (doorpi.cards.issue) and record it in the card register."""
    from doorpi.cards.issue import issue_card
    from doorpi.cards.register import CardRegister, CardRegisterError, load_master
    from doorpi.cards.uid import CardProtocolError
    from doorpi.hardware.reader import PCSCD_CHECK
    from doorpi.privacy.oncard import OnCardError, pcsc_card
    from doorpi.sync.bundle import KEY_RE

    try:
        from doorpi.sync.roster_edit import ADMIN_ROSTER, add_card, check_resident
    except ImportError as exc:  # tomlkit: an extra of the laptop's install
        raise CliError(f"card issue needs {exc.name}: pip install 'doorpi[desk]' "
                       "(Debian: apt install python3-tomlkit)") from None  # fmt: skip

    if not KEY_RE.fullmatch(args.resident):
        raise CliError(f"--resident {validation.safe_text(args.resident)}: not a roster key "
                       "like a-3101-wang")  # fmt: skip
    try:
        validation.check_text(args.label, validation.SHORT_TEXT_MAX)
    except validation.InputError as exc:
        raise CliError(f"--label {validation.safe_text(args.label)}: {exc}") from None
    site = _site(args)  # the admin directory must be a site's
    roster = args.roster if args.roster is not None else args.admin_dir / ADMIN_ROSTER
    if args.roster is None and not roster.exists():
        raise CliError(f"{roster}: no roster there: give the roster file with --roster FILE")
    with _roster_errors():  # before the card is touched
        check_resident(roster, args.resident, site.key.pin_tag_key)
    with common.as_cli_error(CardRegisterError):
        master = load_master(args.admin_dir, create=True)
        register = CardRegister.load(args.admin_dir)
    assert master is not None
    try:
        with pcsc_card(args.reader, args.timeout) as transmit:
            uid = issue_card(transmit, master)
    except OnCardError as exc:
        where = validation.safe_text(args.reader) or "(any reader)"
        if exc.reason == "no_service":
            detail = str(exc).removeprefix("no_service: ")
            raise CliError(f"card not issued: pcscd (the PC/SC service) is not answering "
                           f"({detail}), so no reader can be used: {PCSCD_CHECK}; "
                           "then plug in the reader and run this again") from None  # fmt: skip
        if exc.reason == "no_reader":
            raise CliError(f"card not issued: {where}: no such reader attached; plug it in "
                           "(pcsc_scan lists the readers pcscd sees)") from None  # fmt: skip
        raise CliError(f"card not issued: {where}: no card on the reader") from None
    except CardProtocolError as exc:
        raise CliError(f"card not issued: {exc.reason}") from None
    except Exception as exc:  # pyscard: the card left the field, the reader went away
        raise CliError(f"card not issued: {type(exc).__name__}: {exc}") from None
    register.record(uid, args.resident, args.label)
    try:
        register.save()
    except OSError as exc:
        raise CliError(
            f"card {uid.hex()} was personalised for {args.resident} but {exc.filename} could "
            f"not be written ({exc.strerror}): add it there by hand before the next bundle"
        ) from None
    print(f"issued secure card {uid.hex()} for {args.resident}: default keys replaced")
    try:
        done = add_card(roster, args.resident, uid, args.label, site.key.pin_tag_key)
    except RosterError as exc:
        raise CliError(f"card {uid.hex()} is issued and registered, the roster is not: {exc}; "
                       f'add cards = ["{uid.hex()}"] to key = "{args.resident}" by hand') from None  # fmt: skip
    said = {"added": "recorded in", "labelled": "labelled in", "unchanged": "already in"}[done]
    print(f"  {said} {roster} (key = {args.resident})")
    print(
        f"  the next `doorpi admin bundle {roster} STICK` carries its key to the gates, sealed to each"
    )
    return 0


def _when(t: float) -> str:
    return human.when(t)


def cmd_report_read(args: argparse.Namespace) -> int:
    site = _site(args)
    results = site.read_reports(args.path)
    if not results:
        raise CliError(f"{args.path}: no reports found")
    if args.json:
        docs = [
            vars(rep) if args.audit else {k: v for k, v in vars(rep).items() if k != "audit"}
            for _, rep in results
            if isinstance(rep, SyncReport)
        ]
        common.print_json(docs)
        attention = any(isinstance(r, SyncReport) and r.needs_attention for _, r in results)
        return 1 if len(docs) < len(results) or attention else 0
    return 1 if _print_reports(site, results, args.audit) else 0


def _print_reports(
    site: AdminSite, results: list[tuple[Path, SyncReport | str]], audit: bool = False
) -> int:
    """Each report as the admin reads it; returns how many cannot be trusted or
    need the admin (refused, or entries refused)."""
    bad = 0
    for path, rep in results:
        if not isinstance(rep, SyncReport):
            bad += 1
            print(f"{path.name}: cannot be trusted: {rep}")
            continue
        name = site.gates[rep.gate].name
        st = {k: human.value(v) for k, v in rep.status.items()}
        mark = "NEEDS ATTENTION: " if rep.needs_attention else ""
        bad += rep.needs_attention
        print(f"{name} ({_when(rep.created)}): {mark}{rep.summary()}")
        for warning in rep.continuity:
            bad += 1
            print(f"  WARNING: {warning}")
        print(
            f"  {st.get('residents', '-')} residents ({st.get('active', '-')} active), "
            f"{st.get('cards', '-')} cards, {st.get('pins', '-')} PINs; database "
            f"{st.get('integrity', '-')}; audit chain {st.get('audit_chain', '-')}; "
            f"{len(rep.audit)} audit records"
        )
        for e in rep.refused_entries:
            print(f"  refused {e.get('resident')}.{e.get('field')}: {e.get('reason')} "
                  f"({e.get('kept')}); fix the roster, `doorpi admin check`, bundle again")  # fmt: skip
        for d in rep.face_dependents:
            print(f"  {d.get('resident')} {d.get('problem')} (then `doorpi admin check`, "
                  "bundle again)")  # fmt: skip
        if rep.skipped:
            why = ", ".join(f"{n} {k}" for k, n in sorted(rep.skipped.items()))
            print(f"  face templates not taken: {why}")
        for w in rep.face_withdrawals:
            print(
                f"  {w['resident']} withdrew face consent here at {_when(w['at'])}: "
                "the next bundles withdraw it at every gate"
            )
        for w in rep.face_suspensions:
            print(
                f"  {w['resident']}: a face false match was reported here at {_when(w['at'])}: "
                "the next bundles stop face alone for them at every gate until they enrol again"
            )
        if audit:
            for a in rep.audit:
                data = a.get("data")
                detail = human.fields(data) if isinstance(data, dict) else human.value(data)
                print(f"    {a['seq']:>7} {_when(a['ts'])} {a['kind']:<12} {detail}")
    from doorpi.privacy.report import site_face_count

    total, warnings = site_face_count([(r.gate, r.created, r.status) for _, r in results
                                       if isinstance(r, SyncReport)])  # fmt: skip
    print(f"face data on this site: {total} people (newest report of each gate, added up)")
    for w in warnings:
        print(f"WARNING: {w}")
    return bad
