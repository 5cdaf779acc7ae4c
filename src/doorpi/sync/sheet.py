"""The roster as a spreadsheet (XLSX or CSV) for the property office, in zh or en.

One row per resident under one header row; the columns (any order, headers in
either language, matched without regard to case):

====  =============  ==========  ==============================================
col   en header      zh header   cell
====  =============  ==========  ==============================================
A     key            编号         the stable roster key (`doorpi.sync.roster`)
B     name           姓名
C     unit           房号
D     keypad         键盘号       the number typed before the PIN
E     cards          卡号         hex UIDs, ``;`` between cards, ``UID (label)``
F     valid_from     生效日期      a date (whole day) or date and time, site-local
G     valid_until    到期日期      the same; the whole day counts
H     schedule       时段         a schedule name from the gates' config
I     gates          门           gate names, ``,`` between them; empty: every
                                  gate; ``-``: none
J     active         启用         yes/no (是/否); empty: yes
K     face_refused   拒绝人脸      yes/no; empty: no
L     share_face     同意人脸共享   yes/no: consent to move the face template
                                  between the site's gates; empty: no
====  =============  ==========  ==============================================

PINs are never in a spreadsheet (it is mailed, shared and printed): a sheet
with a PIN column is refused, and PINs stay in the admin's 0600 roster file
(one-time PIN slips, `doorpi.sync.desk.issue_pin`). CSV is written as UTF-8
with a byte order mark, so spreadsheet programs show Chinese names; a CSV
that is not UTF-8 is read as GB18030 (what Chinese Excel saves as "CSV").

Every error names the spreadsheet cell as people see it ("row 7, column D
(keypad)") in the admin's language; the reasons that come from the shared
validators are put in it by `doorpi.sync.desk` (`doorpi.sync.reasons`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

MAX_SHEET_BYTES = 16 * 1024 * 1024
MAX_ROWS = 100_000
LANGS = ("zh", "en")


@dataclass(frozen=True)
class Column:
    field: str  # the roster TOML field
    en: str
    zh: str


COLUMNS: tuple[Column, ...] = (
    Column("key", "key", "编号"),
    Column("name", "name", "姓名"),
    Column("unit", "unit", "房号"),
    Column("keypad_id", "keypad", "键盘号"),
    Column("cards", "cards", "卡号"),
    Column("valid_from", "valid_from", "生效日期"),
    Column("valid_until", "valid_until", "到期日期"),
    Column("schedule", "schedule", "时段"),
    Column("gates", "gates", "门"),
    Column("active", "active", "启用"),
    Column("face_refused", "face_refused", "拒绝人脸"),
    Column("share_face_with_site_gates", "share_face", "同意人脸共享"),
)
BY_FIELD = {c.field: c for c in COLUMNS}
BOOLS = {"active": True, "face_refused": False, "share_face_with_site_gates": False}
TEXT_FIELDS = ("key", "name", "unit", "keypad_id", "schedule")
PIN_HEADER = re.compile(r"pin|密码|口令", re.I)
YES = {"yes", "y", "true", "1", "是", "x", "✓"}
NO = {"no", "n", "false", "0", "否"}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "cell": "row {row}, column {col} ({head})",
        "pin": "a spreadsheet must not hold PINs: delete this column, then issue one-time PIN "
        "slips (`doorpi admin roster pin-slip KEY`) or set the PIN at the gate",
        "unknown": "unknown column{near}",
        "near": " (did you mean {name}?)",
        "twice": "this column appears twice (also column {other})",
        "no_key": "there is no key column (编号/key): every resident needs a stable key",
        "empty": "the sheet has no header row",
        "bool": "write yes or no (是 or 否), not {value}",
        "date": "write a date like 2027-06-30 or 2027-06-30 18:00, not {value}",
        "card": "write hex card numbers separated by ';', each optionally followed by "
        "(label), not {value}",
        "number": "write this as text, not the number {value}",
        "rows": "more than {n} rows",
        "big": "larger than {mib} MiB",
        "unread": "cannot read: {why}",
        "xlsx": "not an XLSX workbook ({why})",
        "type": "the file name must end in .xlsx or .csv",
        "label": "the card label {label} contains ';' or a line break: a sheet cannot hold it",
        "yes": "yes",
        "no": "no",
    },
    "zh": {
        "cell": "第 {row} 行，{col} 列（{head}）",
        "pin": "表格中不得包含密码：请删除此列，然后打印一次性密码条"
        "（`doorpi admin roster pin-slip 编号`），或在门禁上设置密码",
        "unknown": "无法识别的列{near}",
        "near": "（是否应为 {name}？）",
        "twice": "此列重复出现（另见 {other} 列）",
        "no_key": "缺少“编号”（key）列：每位住户都需要一个固定编号",
        "empty": "表格没有标题行",
        "bool": "请填写“是”或“否”（yes/no），而不是 {value}",
        "date": "请填写日期，如 2027-06-30 或 2027-06-30 18:00，而不是 {value}",
        "card": "请填写十六进制卡号，多张卡用“;”分隔，可在卡号后加（标签），而不是 {value}",
        "number": "请以文本填写，而不是数字 {value}",
        "rows": "超过 {n} 行",
        "big": "文件大于 {mib} MiB",
        "unread": "无法读取：{why}",
        "xlsx": "不是 XLSX 工作簿（{why}）",
        "type": "文件名须以 .xlsx 或 .csv 结尾",
        "label": "卡标签 {label} 含有“;”或换行，表格无法保存",
        "yes": "是",
        "no": "否",
    },
}


class SheetError(ValueError):
    """Mistakes in a spreadsheet: ``lines`` holds one line per mistake, each naming
    the file and the cell in the admin's language."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if len(lines) == 1 else f"{len(lines)} problems")
        self.lines = lines


def msg(lang: str, which: str, /, **kw: Any) -> str:
    """One message of this module in ``lang`` ("zh" or "en")."""
    return MESSAGES[lang if lang in MESSAGES else "en"][which].format(**kw)


def col_letter(i: int) -> str:
    """Spreadsheet column letters for a 0-based index: 0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def where(lang: str, row: int, col: int, head: str) -> str:
    """ "row 7, column D (keypad)" / "第 7 行，D 列（keypad）"; ``row`` 1-based, ``col`` 0-based."""
    return msg(lang, "cell", row=row, col=col_letter(col), head=head)


def colon(lang: str) -> str:
    """What separates a place from its message: ": " or "："."""
    return "：" if lang == "zh" else ": "


def header(field: str, lang: str) -> str:
    c = BY_FIELD[field]
    return c.zh if lang == "zh" else c.en


# ------------------------------------------------------------------ reading


def read_rows(path: Path, lang: str) -> list[list[Any]]:
    """The cells of the first sheet (XLSX) or of the CSV, header row first."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SheetError([f"{path}: {msg(lang, 'unread', why=exc.strerror)}"]) from None
    if size > MAX_SHEET_BYTES:
        raise SheetError([f"{path}: {msg(lang, 'big', mib=MAX_SHEET_BYTES // 2**20)}"])
    suffix = path.suffix.lower()
    if suffix == ".csv":
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("gb18030", errors="strict") if _is_gb(data) else ""
            if not text:
                raise SheetError(
                    [f"{path}: {msg(lang, 'unread', why='not UTF-8 or GB18030 text')}"]
                ) from None
        rows: list[list[Any]] = list(csv.reader(io.StringIO(text, newline="")))
    elif suffix == ".xlsx":
        rows = _xlsx_rows(path, lang)
    else:
        raise SheetError([f"{path}: {msg(lang, 'type')}"])
    if len(rows) > MAX_ROWS + 1:
        raise SheetError([f"{path}: {msg(lang, 'rows', n=MAX_ROWS)}"])
    return rows


def _is_gb(data: bytes) -> bool:
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


def _openpyxl() -> Any:
    """openpyxl, an extra of the laptop's install (``pip install doorpi[desk]``)."""
    try:
        import openpyxl
        import openpyxl.styles
    except ImportError:
        raise SheetError(["XLSX needs openpyxl: pip install 'doorpi[desk]' "
                          "(Debian: apt install python3-openpyxl), or use CSV"]) from None  # fmt: skip
    return openpyxl


def _xlsx_rows(path: Path, lang: str) -> list[list[Any]]:
    import zipfile

    load_workbook = _openpyxl().load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SheetError([f"{path}: {msg(lang, 'xlsx', why=exc)}"]) from None
    try:
        ws = wb.worksheets[0]
        rows = []
        for i, row in enumerate(ws.iter_rows(values_only=True)):
            if i > MAX_ROWS + 1:
                break
            rows.append(list(row))
        return rows
    finally:
        wb.close()


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else str(v)


def rows_to_residents(
    path: Path, rows: list[list[Any]], lang: str
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, str]]]:
    """Roster ``[[residents]]`` tables from the rows (each with its sheet row number
    under ``_row``) and where each field's column is (field -> (0-based column,
    header as written)); `SheetError` listing every cell that cannot be read. The
    values are then checked by `doorpi.sync.roster`."""
    name = path.name
    problems: list[str] = []
    if not rows or all(_blank(v) for v in rows[0]):
        raise SheetError([f"{name}: {msg(lang, 'empty')}"])
    lookup = {}
    for c in COLUMNS:
        lookup[c.en.lower()] = c.field
        lookup[c.zh] = c.field
        lookup[c.field] = c.field
    fields: dict[int, str] = {}
    seen: dict[str, int] = {}
    for j, raw in enumerate(rows[0]):
        if _blank(raw):
            continue
        head = _text(raw)
        at = where(lang, 1, j, head)
        if PIN_HEADER.search(head):
            problems.append(f"{name}: {at}{colon(lang)}{msg(lang, 'pin')}")
            continue
        field = lookup.get(head.lower())
        if field is None:
            import difflib

            near = difflib.get_close_matches(head.lower(), list(lookup), n=1)
            hint = msg(lang, "near", name=near[0]) if near else ""
            problems.append(f"{name}: {at}{colon(lang)}{msg(lang, 'unknown', near=hint)}")
            continue
        if field in seen:
            other = col_letter(seen[field])
            problems.append(f"{name}: {at}{colon(lang)}{msg(lang, 'twice', other=other)}")
            continue
        seen[field] = j
        fields[j] = field
    if "key" not in seen and not problems:
        problems.append(f"{name}: {msg(lang, 'no_key')}")
    if problems:
        raise SheetError(problems)
    heads = {j: _text(rows[0][j]) for j in fields}
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows[1:], start=2):
        if all(_blank(v) for v in row):
            continue
        doc: dict[str, Any] = {}
        for j, field in fields.items():
            v = row[j] if j < len(row) else None
            if _blank(v):
                continue
            try:
                doc[field] = _cell(field, v, lang)
            except ValueError as exc:
                problems.append(f"{name}: {where(lang, i, j, heads[j])}{colon(lang)}{exc}")
        doc["_row"] = i
        out.append(doc)
    if problems:
        raise SheetError(problems)
    return out, {f: (j, heads[j]) for j, f in fields.items()}


def parse_cell(field: str, v: Any, lang: str) -> Any:
    """One cell (or a console form field, written the same way) as the roster value;
    None when blank. ValueError with the reason in ``lang``."""
    return None if _blank(v) else _cell(field, v, lang)


def _cell(field: str, v: Any, lang: str) -> Any:
    if field in BOOLS:
        if isinstance(v, bool):
            return v
        t = _text(v).lower()
        if t in YES:
            return True
        if t in NO:
            return False
        raise ValueError(msg(lang, "bool", value=repr(_text(v))))
    if field in ("valid_from", "valid_until"):
        return _date(v, lang)
    if field == "cards":
        return _cards_cell(v, lang)
    if field == "gates":
        t = _text(v)
        if t == "-":
            return []
        return [g.strip() for g in re.split(r"[,，;；\n]", t) if g.strip()]
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(msg(lang, "number", value=v))
        v = int(v)
    if isinstance(v, datetime | date | bool):
        raise ValueError(msg(lang, "number", value=v))
    return _text(v)


def _date(v: Any, lang: str) -> date | datetime:
    if isinstance(v, datetime):
        return v.date() if (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0) else v
    if isinstance(v, date):
        return v
    t = _text(v).replace("/", "-")
    try:
        if len(t) <= 10:
            y, m, d = (int(p) for p in t.split("-"))
            return date(y, m, d)
        return datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(msg(lang, "date", value=repr(_text(v)))) from None


_CARD = re.compile(r"^\s*([0-9A-Fa-f][0-9A-Fa-f:\- ]*?)\s*(?:[(（](.*)[)）])?\s*$", re.S)


def _cards_cell(v: Any, lang: str) -> list[Any]:
    if isinstance(v, int | float) and not isinstance(v, bool):
        raise ValueError(msg(lang, "number", value=v))
    out: list[Any] = []
    for part in re.split(r"[;；\n]", _text(v)):
        if not part.strip():
            continue
        m = _CARD.match(part)
        if m is None:
            raise ValueError(msg(lang, "card", value=repr(part.strip())))
        uid, label = re.sub(r"[:\- ]", "", m.group(1)), (m.group(2) or "").strip()
        out.append({"uid": uid, "label": label} if label else uid)
    return out


# ------------------------------------------------------------------ writing


def resident_cells(raw: dict[str, Any], lang: str) -> list[Any]:
    """One roster ``[[residents]]`` table as the sheet's row, in COLUMNS order."""
    cells: list[Any] = []
    for c in COLUMNS:
        v = raw.get(c.field)
        if c.field in BOOLS:
            v = BOOLS[c.field] if v is None else bool(v)
            cells.append(msg(lang, "yes" if v else "no"))
        elif c.field == "cards":
            parts = []
            for card in v or []:
                uid, label = (
                    (card, "") if isinstance(card, str) else (card["uid"], card.get("label", ""))
                )
                if re.search(r"[;；\n]", label):
                    raise SheetError([f"{raw.get('key')}: {msg(lang, 'label', label=repr(label))}"])
                parts.append(f"{uid} ({label})" if label else str(uid))
            cells.append("; ".join(parts))
        elif c.field == "gates":
            cells.append("" if v is None else (", ".join(v) if v else "-"))
        elif v is None:
            cells.append("")
        else:
            cells.append(v)
    return cells


def _csv_value(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="minutes" if not v.second else "seconds")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def write_sheet(path: Path, residents: list[dict[str, Any]], lang: str) -> bytes:
    """The file's bytes for these roster tables (XLSX or CSV by ``path``'s suffix)."""
    heads = [header(c.field, lang) for c in COLUMNS]
    rows = [resident_cells(r, lang) for r in residents]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(heads)
        for row in rows:
            w.writerow([_csv_value(v) for v in row])
        return buf.getvalue().encode("utf-8-sig")
    if suffix != ".xlsx":
        raise SheetError([f"{path}: {msg(lang, 'type')}"])
    return _xlsx_bytes(heads, rows, lang)


def _xlsx_bytes(heads: list[str], rows: list[list[Any]], lang: str) -> bytes:
    Workbook = _openpyxl().Workbook
    Font = _openpyxl().styles.Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "住户" if lang == "zh" else "residents"
    ws.append(heads)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    for j, c in enumerate(COLUMNS):
        letter = col_letter(j)
        ws.column_dimensions[letter].width = 24 if c.field in ("cards", "name") else 14
        for (cell,) in ws.iter_rows(min_row=2, min_col=j + 1, max_col=j + 1):
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
            elif c.field in TEXT_FIELDS or c.field == "cards":
                cell.number_format = "@"  # text: Excel keeps 0101 and long card numbers
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return _stable_zip(buf.getvalue())


def _stable_zip(data: bytes) -> bytes:
    """The workbook with fixed timestamps (openpyxl stamps the save time into
    docProps/core.xml and the zip entries): one roster, one file, byte for byte."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>2000-01-01T00:00:00Z\g<3>",
                    body,
                )
            zi = zipfile.ZipInfo(info.filename, date_time=(2000, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, body)
    return out.getvalue()
