"""The admin's desk: what `doorpi admin ...` and the local console both call.

One implementation for the two faces of the laptop side: the roster kept in
the admin directory (``roster.toml``, 0600, it holds PINs), its spreadsheet
import and export (`doorpi.sync.sheet`), residents added, edited and
disabled, one-time PIN slips, gates registered from a stick, and the bundle
step. Every function raises `AdminError` (or `SheetError` for a spreadsheet,
one line per cell) with a message for people; nothing here prints.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorpi.sync.admin import AdminError, AdminSite, BuiltBundle, GateRecord
from doorpi.sync.bundle import FP_RE
from doorpi.sync.importer import STICK_DIR
from doorpi.sync.keys import KeyFileError, PublicIdentity, fingerprint_matches, pretty
from doorpi.sync.reasons import translate, translate_prefix
from doorpi.sync.report import SyncReport
from doorpi.sync.roster import Roster, RosterError, parse_roster
from doorpi.sync.rules import RULES_SUFFIX, GateRules, open_rules
from doorpi.sync.sheet import (
    BY_FIELD,
    SheetError,
    colon,
    read_rows,
    rows_to_residents,
    write_sheet,
)
from doorpi.sync.sheet import where as cell_where

ROSTER_FILE = "roster.toml"
LANGS = ("zh", "en")


def default_lang(env: dict[str, str] | None = None) -> str:
    """The admin's language when ``--lang`` is not given: the laptop's locale
    (LC_ALL, LC_MESSAGES, LANG) when it is Chinese or English, else zh like
    `doorpi notice`."""
    env = dict(os.environ) if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        v = env.get(var, "")
        if v.startswith("zh"):
            return "zh"
        if v.startswith("en"):
            return "en"
    return "zh"


# ------------------------------------------------------------------ the roster file


def roster_path(site: AdminSite) -> Path:
    return site.dir / ROSTER_FILE


def load_doc(site: AdminSite) -> dict[str, Any]:
    """The admin roster as TOML tables; an empty one named after the site if none yet."""
    path = roster_path(site)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {"site": {"name": site.key.name}, "residents": []}
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminError(f"{path}: unreadable: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AdminError(f"{path}: not valid TOML: {exc}") from None
    doc.setdefault("residents", [])
    return doc


def roster(site: AdminSite, doc: dict[str, Any] | None = None) -> Roster:
    """The admin roster, checked as `doorpi admin check` checks a roster file."""
    doc = load_doc(site) if doc is None else doc
    try:
        return parse_roster(doc, site.key.pin_tag_key)
    except RosterError as exc:
        raise AdminError(f"{roster_path(site)}: {exc}") from None


def save_doc(site: AdminSite, doc: dict[str, Any]) -> Roster:
    """Check, then write the admin roster (0600: it holds PINs)."""
    import tomli_w

    from doorpi.fsutil import write_atomic

    checked = roster(site, doc)
    write_atomic(roster_path(site), tomli_w.dumps(doc).encode(), 0o600)
    return checked


def _tidy(raw: dict[str, Any]) -> dict[str, Any]:
    """A resident table without empty or default values, fields in the sheet's order."""
    out: dict[str, Any] = {}
    order = [*BY_FIELD, "pin"]
    for k in order + [k for k in raw if k not in order]:
        v = raw.get(k)
        if v is None or v == "" or (k == "cards" and v == []):
            continue
        if k == "active" and v is True:
            continue
        if k in ("face_refused", "share_face_with_site_gates") and v is False:
            continue
        out[k] = v
    return out


# ------------------------------------------------------------------ spreadsheets


@dataclass
class ImportResult:
    roster: Roster
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    pins_kept: int = 0


_AT = re.compile(r"residents\[(\d+)\](?: \([^)]*\))?\.([a-z_]+)(?:\[\d+\])?(?:\.[a-z_]+)?: (.*)$")


def _cell_line(
    line: str,
    rows: list[int],
    cols: dict[str, tuple[int, str]],
    name: str,
    lang: str,
    tables: list[dict[str, Any]] | None = None,
) -> str | None:
    """A roster message about residents[i].field as the sheet cell, its reason in
    ``lang`` (`doorpi.sync.reasons`); None if not one. ``tables`` (the rows read)
    tells a required cell left blank from one filled in wrongly."""
    m = _AT.search(line)
    if m is None:
        return None
    i, fld, why = int(m.group(1)), m.group(2), m.group(3)
    fld = "share_face_with_site_gates" if fld == "share_with_site_gates" else fld
    prefix = translate_prefix(line[: m.start()], lang)
    row = _row(rows, i)
    if fld in _REQUIRED and tables is not None and i < len(tables) and fld not in tables[i]:
        why = "is missing"  # the validator saw None: "must be text", "must be a roster key"
    # "also residents[3]" (a key given twice) names the sheet row instead
    why = _IDX.sub(lambda k: f"row {_row(rows, int(k.group(1)))}", why)
    if fld in cols:
        j, head = cols[fld]
        return (
            f"{name}: {prefix}{cell_where(lang, row, j, head)}{colon(lang)}{translate(why, lang)}"
        )
    if fld in BY_FIELD and why == "is missing":  # a required column the sheet lacks
        return f"{name}: {prefix}{_MISSING[lang].format(row=row, zh=BY_FIELD[fld].zh, en=BY_FIELD[fld].en)}"
    what = _NOT_IN_SHEET[lang].get(fld) or (
        BY_FIELD[fld].zh if fld in BY_FIELD and lang == "zh" else fld
    )
    at = (
        f"第 {row} 行（{what}，不在表格中）"
        if lang == "zh"
        else f"row {row} ({what}, not in the sheet)"
    )
    return f"{name}: {prefix}{at}{colon(lang)}{translate(why, lang)}"


_REQUIRED = ("key", "name")
_IDX = re.compile(r"residents\[(\d+)\]")
_MISSING = {
    "en": "row {row}: the sheet has no {en} column, and every resident needs one: "
    "add a column headed {en} (or {zh}) and fill it in",
    "zh": "第 {row} 行：表格缺少“{zh}”列，每位住户都必须填写：请添加标题为“{zh}”（或 {en}）的列并填写",
}
_NOT_IN_SHEET = {  # fields kept in the site roster only
    "en": {"pin": "the PIN kept in the site roster", "pin_tag": "the PIN kept in the site roster"},
    "zh": {"pin": "站点名册中保存的密码", "pin_tag": "站点名册中保存的密码"},
}


def _row(rows: list[int], i: int) -> int:
    """The sheet row of residents[i] (the header is row 1)."""
    return rows[i] if i < len(rows) else i + 2


def import_sheet(site: AdminSite, path: Path, lang: str) -> ImportResult:
    """Make the admin roster what the spreadsheet says: residents not in it are
    removed (deleted from the gates by the next bundle), PINs kept by key.

    Raises `SheetError` naming every bad cell (nothing is written then)."""
    rows = read_rows(path, lang)
    tables, cols = rows_to_residents(path, rows, lang)
    doc = load_doc(site)
    old = {r.get("key"): r for r in doc["residents"] if isinstance(r, dict)}
    row_of = [t.pop("_row") for t in tables]
    problems: list[str] = []
    fresh: list[dict[str, Any]] = []
    pins = 0
    for t in tables:
        prev = old.get(t.get("key"), {})
        if isinstance(prev.get("pin"), str):
            t["pin"] = prev["pin"]
            pins += 1
        fresh.append(_tidy(t))
    for i, t in enumerate(fresh):  # each row alone: every bad cell, not just the first
        try:
            parse_roster({"site": doc.get("site", {}), "residents": [t]}, site.key.pin_tag_key)
        except RosterError as exc:
            line = str(exc).replace("residents[0]", f"residents[{i}]", 1)
            cell = _cell_line(line, row_of, cols, path.name, lang, fresh)
            problems.append(cell or line)
    if problems:
        raise SheetError(problems)
    new_doc = {**doc, "residents": fresh}
    try:
        checked = parse_roster(new_doc, site.key.pin_tag_key)
    except RosterError as exc:  # across rows: a keypad number or card given twice
        line = str(exc)
        raise SheetError([_cell_line(line, row_of, cols, path.name, lang) or line]) from None
    gate_lines = []
    for line in site.problems(checked):
        cell = _cell_line(line, row_of, cols, path.name, lang)
        if cell is not None:  # a gate whose limits are unknown is for the bundle step
            gate_lines.append(cell)
    if gate_lines:
        raise SheetError(gate_lines)
    result = ImportResult(save_doc(site, new_doc), pins_kept=pins)
    keys = [t["key"] for t in fresh]
    result.added = [k for k in keys if k not in old]
    result.removed = [k for k in old if k not in set(keys)]
    result.changed = [k for k in keys if k in old and _tidy(dict(old[k])) != fresh[keys.index(k)]]
    return result


def export_sheet(site: AdminSite, path: Path, lang: str) -> int:
    """Write the admin roster as a spreadsheet (no PINs); returns the resident count."""
    from doorpi.fsutil import write_atomic

    doc = load_doc(site)
    roster(site, doc)  # a roster the gates would refuse is not exported as if fine
    tables = [r for r in doc["residents"] if isinstance(r, dict)]
    data = write_sheet(path, tables, lang)
    try:
        write_atomic(path, data, 0o600)
    except OSError as exc:
        raise AdminError(f"{path}: cannot write: {exc.strerror}") from None
    return len(tables)


# ------------------------------------------------------------------ residents


def find(doc: dict[str, Any], key: str) -> dict[str, Any]:
    for r in doc["residents"]:
        if isinstance(r, dict) and r.get("key") == key:
            return r
    raise AdminError(f"no resident with key {key!r} in the roster")


def put_resident(site: AdminSite, table: dict[str, Any], old_key: str | None = None) -> Roster:
    """Add a resident, or replace the one with ``old_key`` (its PIN is kept)."""
    doc = load_doc(site)
    table = dict(table)
    if old_key is not None:
        prev = find(doc, old_key)
        if "pin" in prev and old_key == table.get("key"):
            table["pin"] = prev["pin"]
        doc["residents"] = [table if r is prev else r for r in doc["residents"]]
    else:
        if any(r.get("key") == table.get("key") for r in doc["residents"]):
            raise AdminError(f"a resident with key {table.get('key')!r} is already in the roster")
        doc["residents"].append(table)
    doc["residents"] = [_tidy(r) for r in doc["residents"]]
    return save_doc(site, doc)


def set_active(site: AdminSite, key: str, active: bool) -> Roster:
    """Disable (keep the entry, refuse entry) or enable a resident."""
    doc = load_doc(site)
    find(doc, key)["active"] = active
    doc["residents"] = [_tidy(r) for r in doc["residents"]]
    return save_doc(site, doc)


def issue_pin(site: AdminSite, key: str) -> str:
    """A new random PIN for one resident, kept in the admin roster (sent in the next
    bundle); returned once for the slip. It satisfies every registered gate's limits
    and the weak-PIN rule (`doorpi.store.credentials.check_pin_rules`)."""
    from doorpi.store.credentials import PinPolicyError, check_pin_rules

    limits = [r for r in (site.rules_of(g) for g in site.gates.values()) if r is not None]
    lo = max([6, *(r.pin_min for r in limits)])
    hi = min([8, *(r.pin_max for r in limits)]) if limits else 8
    if lo > hi:
        raise AdminError(f"the gates' PIN lengths do not overlap ({lo} to {hi} digits)")
    doc = load_doc(site)
    table = find(doc, key)
    for _ in range(100):
        pin = "".join(secrets.choice("0123456789") for _ in range(lo))
        try:
            check_pin_rules(pin, lo, hi)
        except PinPolicyError:
            continue
        break
    table["pin"] = pin
    save_doc(site, doc)
    return pin


SLIP = {
    "en": ("PIN slip", "Resident", "Unit", "Keypad number", "PIN",
           "At the keypad: type the keypad number, #, the PIN, #. The PIN works once the next "
           "USB update reaches the gate. Keep this slip private; destroy it once learnt."),
    "zh": ("密码条", "住户", "房号", "键盘号", "密码",
           "在键盘上依次输入：键盘号、#、密码、#。下次 U 盘更新到达门禁后密码生效。"
           "请妥善保管本条，记住后销毁。"),
}  # fmt: skip


def pin_slip_html(site: AdminSite, key: str, pin: str, lang: str) -> str:
    """A printable slip for one resident: name, unit, keypad number, PIN, how to use it."""
    doc = load_doc(site)
    r = find(doc, key)
    title, who, unit, keypad, pin_word, how = SLIP[lang]
    e = html.escape
    site_name = str(doc.get("site", {}).get("name", site.key.name))
    return (
        f'<!doctype html><html lang="{lang}"><meta charset="utf-8"><title>{e(title)}</title>'
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.3em 1em}"
        ".pin{font-size:2em;letter-spacing:.2em;font-family:monospace}</style>"
        f"<h1>{e(site_name)}: {e(title)}</h1><table>"
        f"<tr><td>{e(who)}</td><td>{e(str(r.get('name', '')))}</td></tr>"
        f"<tr><td>{e(unit)}</td><td>{e(str(r.get('unit', '')))}</td></tr>"
        f"<tr><td>{e(keypad)}</td><td>{e(str(r.get('keypad_id', '-')))}</td></tr>"
        f'<tr><td>{e(pin_word)}</td><td class="pin">{e(pin)}</td></tr></table>'
        f"<p>{e(how)}</p></html>\n"
    )


# ------------------------------------------------------------------ gates


def add_gate_file(
    site: AdminSite,
    path: Path,
    name: str | None = None,
    fp: str | None = None,
    *,
    confirmed: bool = False,
) -> tuple[GateRecord, GateRules | None]:
    """Register the gate whose public key file (``<stick>/doorpi/gates/<fp>.pub``) this is.

    Pairing needs proof that the key is the gate's (issue #15): ``fp``, the full
    32-hex-digit fingerprint the gate's console showed, or ``confirmed`` (the admin
    compared the fingerprint shown to them). A file named by one fingerprint that
    holds another key is a swapped key and refused. Raises `AdminError`.
    """
    try:
        pub = PublicIdentity.read(path, "gate")
    except KeyFileError as exc:
        raise AdminError(str(exc)) from None
    stem = path.name.removesuffix(".pub").lower()
    if FP_RE.fullmatch(stem) and stem != pub.fingerprint:
        raise AdminError(f"{path}: holds the key of gate {pretty(pub.fingerprint)}, "
                         "not the one its name says (swapped key?): not registered")  # fmt: skip
    if fp is not None:
        if not fingerprint_matches(pub.fingerprint, fp):
            raise AdminError(
                f"gate key fingerprint {pretty(pub.fingerprint)} does not match --fingerprint "
                "(give all 32 hex digits the gate's console showed)"
            )
    elif not confirmed:
        raise AdminError("confirm with --fingerprint (the one the gate's console showed) or --yes")
    rules_file = path.with_suffix(RULES_SUFFIX)
    rules = open_rules(rules_file.read_bytes(), pub) if rules_file.is_file() else None
    return site.add_gate(pub, name, rules), rules


def gates_on_stick(site: AdminSite, stick: Path) -> list[Path]:
    """Public key files of gates on the stick that are not registered yet."""
    folder = stick / STICK_DIR / "gates"
    return [p for p in sorted(folder.glob("*.pub")) if p.stem not in site.gates]


# ------------------------------------------------------------------ the bundle step


class RosterProblems(AdminError):
    """The gates would refuse entries of the roster: ``lines`` says which."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(f"the gates would refuse {len(lines)} entries; nothing written")
        self.lines = lines


@dataclass
class BundleRun:
    reports: list[tuple[Path, SyncReport | str]]  # read before they were replaced
    warnings: list[str]
    built: list[BuiltBundle]
    steps: list[str]


def bundle_to_stick(
    site: AdminSite,
    roster: Roster,
    stick: Path,
    only: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BundleRun:
    """Check the roster with every gate's limits, read the reports left on the
    stick, then write one sealed bundle per gate and relay what the gates left.

    ``progress`` is called with each step as it starts (in English). Raises
    `RosterProblems` (nothing written) or `AdminError`."""
    steps: list[str] = []

    def step(text: str) -> None:
        steps.append(text)
        if progress is not None:
            progress(text)

    if not stick.is_dir():
        raise AdminError(f"{stick}: not a directory (give the stick's mount point)")
    step("checking the roster with each gate's limits")
    problems = site.problems(roster, only)
    if problems:
        raise RosterProblems(problems)
    warnings = site.face_warnings(roster, only)
    reports: list[tuple[Path, SyncReport | str]] = []
    if any((stick / STICK_DIR).glob("*.report")):
        step("reading the gates' reports on the stick")
        reports = site.read_reports(stick)
    try:
        step("collecting face templates and card keys the gates left for each other")
        relayed = site.collect_outbox(stick)
        card_keys = site.collect_card_keys(stick)
        step("signing and sealing one bundle per gate")
        built = site.build(roster, only=only, templates=relayed, card_keys=card_keys)
        step("writing the bundles to the stick")
        site.write_stick(stick, built)
        site.clear_outbox(stick, relayed)
        site.clear_card_keys(stick, card_keys)
    except OSError as exc:
        raise AdminError(f"{stick}: cannot write: {exc.strerror}") from None
    step("done")
    return BundleRun(reports, warnings, built, steps)


def stick_contents(stick: Path) -> list[tuple[str, int]]:
    """What doorpi keeps on the stick: (path under the stick, bytes), sorted."""
    root = stick / STICK_DIR
    if not root.is_dir():
        return []
    return sorted(
        (str(p.relative_to(stick)), p.stat().st_size) for p in root.rglob("*") if p.is_file()
    )
