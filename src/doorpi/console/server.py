"""`doorpi admin console`: the admin's desk as a local web page on the laptop.

A standard-library HTTP server (`http.server`) bound to 127.0.0.1 only, one
request at a time (one admin, one state directory). It calls the same
functions as `doorpi admin ...` (`doorpi.sync.desk`, `doorpi.sync.admin`, the
CLI's report printer and notice renderer): no second implementation.

Security (OWASP ASVS 4.0 V3/V4/V13 in spirit, for a page only this laptop can reach):

- a random 256-bit token in the address the console opens (`secrets`); the
  first visit trades it for an HttpOnly, SameSite=Strict cookie; any request
  without the token is refused (403);
- the Host header must be this address (no DNS rebinding from a web page);
- every POST carries a CSRF token (an HMAC of the session token), and an
  Origin header, when sent, must be this address;
- no asset from the internet: CSS is inline, there is no script at all.

This module is imported only by `doorpi admin console`: the gate's process
never imports it (tests/console/test_console_security.py checks).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import date, datetime
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from doorpi.console.text import TEXT, t
from doorpi.sync import desk
from doorpi.sync.admin import AdminError, AdminSite
from doorpi.sync.keys import KeyFileError, PublicIdentity, pretty
from doorpi.sync.roster import RosterError
from doorpi.sync.sheet import SheetError, parse_cell, resident_cells

MAX_BODY = 17 * 1024 * 1024
COOKIE = "doorpi_desk"
LANG_COOKIE = "doorpi_desk_lang"
E = html.escape

CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:0;color:#222}
nav{background:#234;padding:.5em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
nav a.lang{float:right}main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef}.err{background:#fdd;padding:.5em;border-left:4px solid #c00}
.ok{background:#dfd;padding:.5em;border-left:4px solid #070}.warn{color:#a50}
form.inline{display:inline}label{display:block;margin:.3em 0}input[type=text]{width:28em}
progress{width:30em}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}
@media print{nav,form{display:none}}
"""


class Desk:
    """The console's state: the admin directory, the session token, the language."""

    def __init__(self, admin_dir: Path, lang: str) -> None:
        self.admin_dir = admin_dir
        self.lang = lang
        self.token = secrets.token_urlsafe(32)
        self.csrf = hmac.new(self.token.encode(), b"csrf", hashlib.sha256).hexdigest()
        self.origin = ""  # http://127.0.0.1:PORT, set once bound

    def site(self) -> AdminSite | None:
        if not (self.admin_dir / "state.json").exists():
            return None
        return AdminSite.load(self.admin_dir)


class Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class Page:
    """One response: status, HTML body (or other bytes), extra headers."""

    def __init__(self, body: str | bytes, status: int = 200, ctype: str = "text/html; charset=utf-8",
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.body = body.encode() if isinstance(body, str) else body
        self.status, self.ctype, self.headers = status, ctype, headers or {}


def redirect(to: str, headers: dict[str, str] | None = None) -> Page:
    return Page(b"", 303, headers={"Location": to, **(headers or {})})


class Handler(BaseHTTPRequestHandler):
    desk: Desk  # set on the subclass made by make_server
    server_version = "doorpi-desk"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds the token on the first visit: never logged

    # ------------------------------------------------------------ plumbing

    def do_GET(self) -> None:
        self._respond("GET")

    def do_POST(self) -> None:
        self._respond("POST")

    def _respond(self, method: str) -> None:
        try:
            page = self._route(method)
        except Refused as exc:
            page = Page(self._chrome(t(self._lang(), "error"), f'<p class="err">{E(str(exc))}</p>',
                                     nav=False), exc.status)  # fmt: skip
        except (AdminError, SheetError, RosterError, KeyFileError, OSError, ValueError) as exc:
            lines = exc.lines if isinstance(exc, SheetError | desk.RosterProblems) else []
            lines = lines or str(exc).splitlines()  # a roster's problems: one a line
            body = "".join(f'<p class="err">{E(line)}</p>' for line in lines)
            page = Page(self._chrome(t(self._lang(), "error"), body), 400)
        except Exception as exc:  # one line, never a traceback in front of a person
            from doorpi.cli.errors import describe

            page = Page(self._chrome(t(self._lang(), "error"),
                                     f'<p class="err">{E(describe(exc))}</p>'), 500)  # fmt: skip
        self.send_response(page.status)
        self.send_header("Content-Type", page.ctype)
        self.send_header("Content-Length", str(len(page.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "same-origin")  # Origin stays on POSTs
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                         "form-action 'self'; frame-ancestors 'none'")  # fmt: skip
        for k, v in page.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(page.body)

    def _cookies(self) -> dict[str, str]:
        c = SimpleCookie()
        try:
            c.load(self.headers.get("Cookie", ""))
        except Exception:
            return {}
        return {k: m.value for k, m in c.items()}

    def _lang(self) -> str:
        lang = self._cookies().get(LANG_COOKIE, self.desk.lang)
        return lang if lang in TEXT else self.desk.lang

    def _route(self, method: str) -> Page:
        d = self.desk
        host = self.headers.get("Host", "")
        if f"http://{host}" not in (d.origin, d.origin.replace("127.0.0.1", "localhost")):
            raise Refused(403, t(d.lang, "denied"))
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/login" and method == "GET":
            if not hmac.compare_digest(query.get("token", ""), d.token):
                raise Refused(403, t(d.lang, "denied"))
            return redirect(
                "/", {"Set-Cookie": f"{COOKIE}={d.token}; HttpOnly; SameSite=Strict; Path=/"}
            )
        if not hmac.compare_digest(self._cookies().get(COOKIE, ""), d.token):
            raise Refused(403, t(d.lang, "denied"))
        form: dict[str, Any] = {}
        if method == "POST":
            form = self._form()
            origin = self.headers.get("Origin")
            if origin is not None and origin != d.origin:
                raise Refused(403, t(self._lang(), "csrf"))
            if not hmac.compare_digest(str(form.get("csrf", "")), d.csrf):
                raise Refused(403, t(self._lang(), "csrf"))
        if url.path == "/lang" and method == "GET":
            to = query.get("to", "")
            if to not in TEXT:
                raise Refused(400, to)
            return redirect("/", {"Set-Cookie": f"{LANG_COOKIE}={to}; SameSite=Strict; Path=/"})
        site = d.site()
        if site is None:
            if (url.path, method) == ("/init", "POST"):
                AdminSite.init(d.admin_dir, str(form.get("site_name", "")).strip() or "site")
                return redirect("/")
            return Page(self._chrome(t(self._lang(), "init"), self._init_form(), nav=False))
        handler = ROUTES.get((method, url.path))
        if handler is None:
            raise Refused(404, url.path)
        return handler(self, site, query, form)

    def _form(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0") or 0)
        if length > MAX_BODY:
            raise Refused(413, f"more than {MAX_BODY // 2**20} MiB")
        body = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            from email.parser import BytesParser
            from email.policy import HTTP

            msg = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            out: dict[str, Any] = {}
            for part in msg.iter_parts():  # type: ignore[attr-defined]
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                out[str(name)] = (filename, data) if filename is not None else data.decode()
            return out
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                              keep_blank_values=True).items()}  # fmt: skip

    # ------------------------------------------------------------ page parts

    def _chrome(self, title: str, body: str, nav: bool = True) -> str:
        lang = self._lang()
        other = "en" if lang == "zh" else "zh"
        links = ""
        if nav:
            links = "".join(
                f'<a href="{href}">{E(t(lang, key))}</a>'
                for href, key in (("/", "residents"), ("/cards", "cards"), ("/consent", "consent"),
                                  ("/gates", "gates"), ("/bundle", "bundle"),
                                  ("/reports", "reports"), ("/print", "print"))
            )  # fmt: skip
        links += f'<a class="lang" href="/lang?to={other}">{E(t(lang, "lang_other"))}</a>'
        return (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{E(title)} · {E(t(lang, 'title'))}</title><style>{CSS}</style></head>"
            f"<body><nav>{links}</nav><main><h1>{E(title)}</h1>{body}</main></body></html>\n"
        )

    def _csrf(self) -> str:
        return f'<input type="hidden" name="csrf" value="{self.desk.csrf}">'

    def _init_form(self) -> str:
        lang = self._lang()
        return (
            f'<form method="post" action="/init">{self._csrf()}'
            f'<label>{E(t(lang, "site_name"))} <input type="text" name="site_name" id="site_name"></label>'
            f'<button id="create">{E(t(lang, "create"))}</button></form>'
        )

    def _stick_form(self, action: str, button: str, value: str = "", bid: str = "go") -> str:
        lang = self._lang()
        return (
            f'<form method="post" action="{action}">{self._csrf()}'
            f'<label>{E(t(lang, "stick"))} <input type="text" name="stick" id="stick-{bid}" '
            f'value="{E(value)}"></label><button id="{bid}">{E(t(lang, button))}</button></form>'
        )


# ---------------------------------------------------------------- pages


def _stick(form: dict[str, Any]) -> Path:
    """The stick folder the admin typed: an absolute path to a folder, never "" (which
    would mean the console's own working folder)."""
    text = str(form.get("stick", "")).strip()
    path = Path(text).expanduser()
    if not text or not path.is_absolute() or not path.is_dir():
        raise AdminError(f"{text or '(empty)'}: not a folder (give the stick's full path)")
    return path


def _yes(lang: str, v: bool) -> str:
    return t(lang, "yes" if v else "no")


def _show(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="minutes")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def residents_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    doc = desk.load_doc(site)
    needle = q.get("q", "").strip().lower()
    rows = []
    shown = 0
    for r in doc["residents"]:
        cells = resident_cells(r, lang)
        if needle and not any(needle in _show(c).lower() for c in cells):
            continue
        shown += 1
        key = str(r.get("key", ""))
        active = r.get("active", True)
        toggle = (
            f'<form class="inline" method="post" action="/active">{h._csrf()}'
            f'<input type="hidden" name="key" value="{E(key)}">'
            f'<input type="hidden" name="active" value="{"no" if active else "yes"}">'
            f'<button id="toggle-{E(key)}">{E(t(lang, "disable" if active else "enable"))}</button></form>'
            f'<form class="inline" method="post" action="/pin">{h._csrf()}'
            f'<input type="hidden" name="key" value="{E(key)}">'
            f'<button id="pin-{E(key)}">{E(t(lang, "pin_slip"))}</button></form>'
        )
        rows.append(
            f'<tr><td><a href="/resident?key={quote(key)}">{E(key)}</a></td>'
            f"<td>{E(_show(r.get('name')))}</td><td>{E(_show(r.get('unit')))}</td>"
            f"<td>{E(_show(r.get('keypad_id')))}</td><td>{E(cells[4])}</td>"
            f"<td>{E(_show(r.get('valid_until')))}</td><td>{E(_yes(lang, bool(active)))}</td>"
            f"<td>{E(_yes(lang, 'pin' in r))}</td><td>{toggle}</td></tr>"
        )
    heads = "".join(f"<th>{E(t(lang, k))}</th>" for k in
                    ("key", "name", "unit", "keypad_id", "cards", "valid_until", "active", "pin"))  # fmt: skip
    body = (
        f'<form method="get" action="/"><input type="text" name="q" id="q" value="{E(needle)}">'
        f'<button id="search">{E(t(lang, "search"))}</button></form>'
        f'<p>{E(t(lang, "count", n=shown))} · <a id="add" href="/resident">{E(t(lang, "add"))}</a>'
        f' · {E(t(lang, "export"))}: <a href="/export.xlsx">XLSX</a> <a href="/export.csv">CSV</a></p>'
        f'<table id="residents"><tr>{heads}<th></th></tr>{"".join(rows)}</table>'
        f'<form method="post" action="/import" enctype="multipart/form-data">{h._csrf()}'
        f'<label>{E(t(lang, "import"))} <input type="file" name="sheet" id="sheet" '
        f'accept=".xlsx,.csv"></label><button id="import">{E(t(lang, "import").split("（")[0].split(" (")[0])}</button></form>'
    )
    note = q.get("note")
    if note:
        body = f'<p class="ok" id="note">{E(note)}</p>' + body
    return Page(h._chrome(t(lang, "residents"), body))


FORM_FIELDS = ("key", "name", "unit", "keypad_id", "cards", "valid_from", "valid_until",
               "schedule", "gates")  # fmt: skip
FLAGS = ("active", "face_refused", "share_face_with_site_gates")


def resident_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    key = q.get("key")
    r = desk.find(desk.load_doc(site), key) if key else {"active": True}
    cells = dict(zip([c for c in _field_order()], resident_cells(r, lang), strict=True))
    labels = {
        "cards": "cards_col",
        "gates": "gates_col",
        "share_face_with_site_gates": "share_face",
    }
    inputs = "".join(
        f'<label>{E(t(lang, labels.get(f, f)))} <input type="text" name="{f}" id="f-{f}" '
        f'value="{E(_show(cells[f]))}"></label>'
        for f in FORM_FIELDS
    )
    inputs += "".join(
        f'<label><input type="checkbox" name="{f}" id="f-{f}" value="yes"'
        f"{' checked' if r.get(f, f == 'active') else ''}> {E(t(lang, labels.get(f, f)))}</label>"
        for f in FLAGS
    )
    old = f'<input type="hidden" name="old_key" value="{E(key)}">' if key else ""
    body = (
        f'<form method="post" action="/resident">{h._csrf()}{old}{inputs}'
        f'<button id="save">{E(t(lang, "save"))}</button></form>'
    )
    return Page(h._chrome(t(lang, "edit" if key else "add"), body))


def _field_order() -> list[str]:
    from doorpi.sync.sheet import COLUMNS

    return [c.field for c in COLUMNS]


def save_resident(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    table: dict[str, Any] = {}
    for f in FORM_FIELDS:
        v = parse_cell(f, form.get(f, ""), lang)
        if v is not None:
            table[f] = v
    for f in FLAGS:
        table[f] = form.get(f) == "yes"
    old = form.get("old_key") or None
    desk.put_resident(site, table, old)
    return redirect("/?note=" + quote(t(lang, "saved")))


def set_active(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    desk.set_active(site, str(form.get("key", "")), form.get("active") == "yes")
    return redirect("/")


def pin_slip(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    key = str(form.get("key", ""))
    pin = desk.issue_pin(site, key)
    slip = desk.pin_slip_html(site, key, pin, lang)
    return Page(slip.replace("</h1>", f"</h1><p>{E(t(lang, 'slip_note'))}</p>", 1))


def import_sheet(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    upload = form.get("sheet")
    if not isinstance(upload, tuple) or not upload[0]:
        raise AdminError(t(lang, "import"))
    name = Path(str(upload[0]).replace("\\", "/")).name or "roster.csv"
    with tempfile.TemporaryDirectory(prefix="doorpi-desk-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(upload[1])
        res = desk.import_sheet(site, path, lang)
    note = t(lang, "imported", n=len(res.roster.residents), a=len(res.added),
             c=len(res.changed), r=len(res.removed), p=res.pins_kept)  # fmt: skip
    return redirect("/?note=" + quote(note))


def export(kind: str) -> Callable[[Handler, AdminSite, dict[str, str], dict[str, Any]], Page]:
    def page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
        lang = h._lang()
        doc = desk.load_doc(site)
        desk.roster(site, doc)
        name = f"roster.{kind}"
        data = desk.write_sheet(Path(name), [r for r in doc["residents"] if isinstance(r, dict)],
                                lang)  # fmt: skip
        ctype = ("text/csv; charset=utf-8" if kind == "csv" else
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")  # fmt: skip
        return Page(data, ctype=ctype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    return page


def cards_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    rows = []
    for r in desk.roster(site).residents:
        e = r.entry
        for c in e.cards:
            rows.append(
                f"<tr><td>{E(c.uid)}</td><td>{E(c.label)}</td>"
                f'<td><a href="/resident?key={quote(e.key)}">{E(e.key)}</a> {E(e.name)}</td>'
                f"<td>{E(_yes(lang, e.active))}</td></tr>"
            )
    heads = "".join(f"<th>{E(t(lang, k))}</th>" for k in ("uid", "label", "resident", "active"))
    body = f'<table id="cards"><tr>{heads}</tr>{"".join(rows)}</table>'
    return Page(h._chrome(t(lang, "cards"), body))


def consent_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    from doorpi.cli.human import when

    lang = h._lang()
    rows = []
    for r in desk.roster(site).residents:
        e = r.entry
        asked = [g.name for g in site.gates.values() if e.key in g.face_holders]
        w, s = site.withdrawals.get(e.key), site.suspensions.get(e.key)
        rows.append(
            f"<tr><td>{E(e.key)}</td><td>{E(e.name)}</td>"
            f"<td>{E(_yes(lang, e.face_refused))}</td><td>{E(_yes(lang, e.share_with_site_gates))}</td>"
            f"<td>{E(when(w) if w else '-')}</td><td>{E(when(s) if s else '-')}</td>"
            f"<td>{E(', '.join(asked) or '-')}</td></tr>"
        )
    heads = "".join(f"<th>{E(t(lang, k))}</th>" for k in
                    ("key", "name", "face_refused", "share_face", "withdrawn", "false_match",
                     "asked_at"))  # fmt: skip
    body = (f'<p>{E(t(lang, "no_templates"))}</p>'
            f'<table id="consent"><tr>{heads}</tr>{"".join(rows)}</table>')  # fmt: skip
    return Page(h._chrome(t(lang, "consent"), body))


def gates_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    from doorpi.cli.human import when

    lang = h._lang()
    rows = []
    for g in site.gates.values():
        rep = g.last_report
        last = f"{when(rep['created'])}: {rep.get('summary', '')}" if rep.get("created") else "-"
        rows.append(
            f"<tr><td>{E(g.name)}</td><td><code>{E(pretty(g.fingerprint))}</code></td>"
            f"<td>{g.last_sequence}</td><td>{E(last)}</td></tr>"
        )
    heads = "".join(f"<th>{E(t(lang, k))}</th>" for k in
                    ("name", "fingerprint", "applied", "last_report"))  # fmt: skip
    roster = desk.roster(site)
    warn = [*site.problems(roster), *site.face_warnings(roster)] if site.gates else []
    warn_html = (
        "".join(f'<li class="warn">{E(w)}</li>' for w in warn) or f"<li>{E(t(lang, 'none'))}</li>"
    )
    stick = q.get("stick", "")
    found = ""
    if stick:
        for p in desk.gates_on_stick(site, Path(stick)):
            found += (
                f'<form method="post" action="/gate/add">{h._csrf()}'
                f'<input type="hidden" name="path" value="{E(str(p))}">'
                f"<code>{E(p.name[:16])}…</code> {E(t(lang, 'name'))} "
                f'<input type="text" name="name" id="name-{E(p.stem[:8])}" value=""> '
                f"<label>{E(t(lang, 'fingerprint_same'))} <code>{E(_pretty_fp(p))}</code> "
                f'<input type="checkbox" name="confirm" value="1" id="confirm-{E(p.stem[:8])}">'
                "</label>"
                f'<button id="register-{E(p.stem[:8])}">{E(t(lang, "register"))}</button></form>'
            )
        found = found or f"<p>{E(t(lang, 'none'))}</p>"
    body = (
        f'<table id="gates"><tr>{heads}</tr>{"".join(rows)}</table>'
        f'<h2>{E(t(lang, "warnings"))}</h2><ul id="warnings">{warn_html}</ul>'
        f'<h2>{E(t(lang, "add_gates"))}</h2><form method="get" action="/gates">'
        f'<label>{E(t(lang, "stick"))} <input type="text" name="stick" id="stick" '
        f'value="{E(stick)}"></label><button id="look">{E(t(lang, "find"))}</button></form>{found}'
    )
    return Page(h._chrome(t(lang, "gates"), body))


def _pretty_fp(path: Path) -> str:
    """The fingerprint a gate's key file holds, grouped as the gate's console shows it."""
    try:
        return pretty(PublicIdentity.read(path, "gate").fingerprint)
    except KeyFileError:
        return "?"


def add_gate(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    path = Path(str(form.get("path", "")))
    desk.add_gate_file(site, path, str(form.get("name", "")).strip() or None,
                       confirmed=form.get("confirm") == "1")  # fmt: skip
    return redirect("/gates?stick=" + quote(str(path.parents[2])))


def bundle_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    body = (h._stick_form("/stick", "prepare", bid="prepare")
            + h._stick_form("/bundle", "write", bid="write"))  # fmt: skip
    return Page(h._chrome(t(lang, "bundle"), body))


def prepare_stick(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    stick = _stick(form)
    site.write_stick(stick, [])
    body = f'<p class="ok">{E(t(lang, "done"))}</p>' + _contents(lang, stick)
    body += h._stick_form("/bundle", "write", str(stick), bid="write")
    return Page(h._chrome(t(lang, "bundle"), body))


def _contents(lang: str, stick: Path) -> str:
    rows = "".join(f"<tr><td>{E(p)}</td><td>{n}</td></tr>" for p, n in desk.stick_contents(stick))
    return (f'<h2>{E(t(lang, "stick_contents"))}</h2><table id="contents">'
            f'<tr><th>{E(t(lang, "stick"))}</th><th>{E(t(lang, "bytes"))}</th></tr>{rows}</table>')  # fmt: skip


def write_bundles(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    stick = _stick(form)
    run = desk.bundle_to_stick(site, desk.roster(site), stick)
    total = len(run.steps)
    steps = "".join(f"<li>{E(s)}</li>" for s in run.steps)
    built = "".join(
        f"<tr><td>{E(b.gate.name)}</td><td>{len(b.bundle.residents)}</td>"
        f"<td>{len(b.bundle.tombstones)}</td><td>{len(b.data)}</td></tr>"
        for b in run.built
    )
    warn = "".join(f'<li class="warn">{E(w)}</li>' for w in run.warnings)
    reports = _reports_text(site, run.reports) if run.reports else ""
    body = (
        f'<p class="ok" id="result">{E(t(lang, "sequence"))} {site.sequence}</p>'
        f'<h2>{E(t(lang, "steps"))}</h2><progress id="progress" value="{total}" max="{total}">'
        f'</progress><ol id="steps">{steps}</ol>'
        f'<table id="built"><tr><th>{E(t(lang, "gates"))}</th><th>{E(t(lang, "residents"))}</th>'
        f"<th>-</th><th>{E(t(lang, 'bytes'))}</th></tr>{built}</table>"
        f'<ul id="warnings">{warn}</ul>{reports}{_contents(lang, stick)}'
    )
    return Page(h._chrome(t(lang, "bundle"), body))


def _reports_text(site: AdminSite, results: list[Any]) -> str:
    """The reports exactly as `doorpi admin report read` prints them."""
    from doorpi.cli.admin import _print_reports

    buf = io.StringIO()
    with redirect_stdout(buf):
        _print_reports(site, results)
    return f'<pre id="reports">{E(buf.getvalue())}</pre>'


def reports_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    body = h._stick_form("/reports", "read", bid="read")
    if form:
        results = site.read_reports(_stick(form))
        body += _reports_text(site, results) if results else f"<p>{E(t(lang, 'none'))}</p>"
    return Page(h._chrome(t(lang, "reports"), body))


def print_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    lang = h._lang()
    rows = "".join(
        f"<tr><td>{E(g.name)}</td>"
        + "".join(
            f'<td><a href="/notice?gate={g.fingerprint}&amp;kind={k}">{E(t(lang, label))}</a></td>'
            for k, label in (("sign", "sign"), ("consent", "consent_form"), ("entry", "entry_sign"))
        )
        + "</tr>"
        for g in site.gates.values()
    )
    body = f'<h2>{E(t(lang, "notices"))}</h2><table id="notices">{rows}</table>'
    return Page(h._chrome(t(lang, "print"), body))


def notice_page(h: Handler, site: AdminSite, q: dict[str, str], form: dict[str, Any]) -> Page:
    """The gate's notice as `doorpi notice` renders it, from the admin's settings for it."""
    from doorpi.cli import CliError
    from doorpi.cli.notice import render, render_entry_sign
    from doorpi.sync.admin import _candidate

    lang = h._lang()
    g = site.find_gate(q.get("gate", ""))
    cfg = _candidate(site.gate_settings(g) or {}, f"gate {g.name}")
    kind = q.get("kind", "sign")
    try:
        text = (render_entry_sign(cfg, lang, "html") if kind == "entry"
                else render(cfg, lang, "html", "consent" if kind == "consent" else "sign"))  # fmt: skip
    except CliError as exc:
        raise AdminError(f"gate {g.name}: {exc}") from None
    return Page(text)


Route = Callable[[Handler, AdminSite, dict[str, str], dict[str, Any]], Page]
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/"): residents_page,
    ("GET", "/resident"): resident_page,
    ("POST", "/resident"): save_resident,
    ("POST", "/active"): set_active,
    ("POST", "/pin"): pin_slip,
    ("POST", "/import"): import_sheet,
    ("GET", "/export.xlsx"): export("xlsx"),
    ("GET", "/export.csv"): export("csv"),
    ("GET", "/cards"): cards_page,
    ("GET", "/consent"): consent_page,
    ("GET", "/gates"): gates_page,
    ("POST", "/gate/add"): add_gate,
    ("GET", "/bundle"): bundle_page,
    ("POST", "/stick"): prepare_stick,
    ("POST", "/bundle"): write_bundles,
    ("GET", "/reports"): reports_page,
    ("POST", "/reports"): reports_page,
    ("GET", "/print"): print_page,
    ("GET", "/notice"): notice_page,
}


# ---------------------------------------------------------------- the server


def make_server(admin_dir: Path, lang: str, port: int = 0) -> tuple[HTTPServer, str]:
    """A server bound to 127.0.0.1 (never another address) and its login URL."""
    d = Desk(admin_dir, lang)
    handler = type("DeskHandler", (Handler,), {"desk": d})
    server = HTTPServer(("127.0.0.1", port), handler)
    d.origin = f"http://127.0.0.1:{server.server_address[1]}"
    return server, f"{d.origin}/login?token={d.token}"


def serve(
    admin_dir: Path,
    lang: str,
    port: int = 0,
    open_browser: bool = True,
    exit_after: float | None = None,
) -> int:
    """Run until Ctrl-C (or ``exit_after`` seconds); prints the address (with its
    token) and opens it in the browser."""
    import threading
    import webbrowser

    server, url = make_server(admin_dir, lang, port)
    if exit_after is not None:
        threading.Timer(max(exit_after, 0.0), server.shutdown).start()
    print(f"doorpi admin console: {url}", flush=True)
    print("  (only this laptop can reach it; Ctrl-C stops it)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stdout.flush()
    time.sleep(0)
    return 0
