"""The roster as a spreadsheet: round trips without loss, every mistake named by its
cell in the admin's language, no PINs ever in a sheet. Real files, real openpyxl."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from openpyxl import Workbook

from doorpi.sync import desk
from doorpi.sync.admin import AdminSite
from doorpi.sync.keys import GateIdentity
from doorpi.sync.rules import GateRules
from doorpi.sync.sheet import SheetError, col_letter

CSV = (
    "key,name,unit,keypad,cards,valid_from,valid_until,schedule,gates,active,face_refused,share_face\n"
    "a-3101-wang,王小明,3-101,0101,04a1b2c3d4e5f6 (blue fob); 04112233445566,,2027-06-30,,,yes,no,是\n"
    "b-3102-li,Li Lei,3-102,102,,2026-01-01 08:00,2026-12-31 18:30,workdays,north-gate,no,yes,no\n"
    "c-3103-zhao,Zhao,3-103,,,,,,-,,,\n"
)


@pytest.fixture
def site(tmp_path: Path) -> AdminSite:
    site = AdminSite.init(tmp_path / "admin", "Sunny Garden")
    gate = GateIdentity(PrivateKey.generate(), SigningKey.generate(), "north-gate")
    site.add_gate(gate.public, rules=GateRules(frozenset({"workdays"}), 6, 8))
    return site


def _import_text(
    site: AdminSite, tmp_path: Path, text: str, lang: str = "en", name: str = "in.csv"
):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return desk.import_sheet(site, path, lang)


def _errors(site: AdminSite, tmp_path: Path, text: str, lang: str = "en") -> list[str]:
    with pytest.raises(SheetError) as exc:
        _import_text(site, tmp_path, text, lang)
    return exc.value.lines


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_export_import_export_is_identical_and_keeps_the_roster(site, tmp_path, lang, kind):
    _import_text(site, tmp_path, CSV)
    pin = desk.issue_pin(site, "a-3101-wang")  # kept in the admin roster, never in a sheet
    before = desk.roster(site)
    first, second = tmp_path / f"one.{kind}", tmp_path / f"two.{kind}"
    assert desk.export_sheet(site, first, lang) == 3
    res = desk.import_sheet(site, first, lang)
    assert (res.added, res.removed, res.changed, res.pins_kept) == ([], [], [], 1)
    desk.export_sheet(site, second, lang)
    assert first.read_bytes() == second.read_bytes()
    assert desk.roster(site) == before
    assert desk.roster(site).residents[0].entry.pin == pin
    assert pin.encode() not in first.read_bytes()
    wang = before.residents[0].entry
    assert wang.keypad_id == "0101" and [c.label for c in wang.cards] == ["blue fob", ""]
    assert wang.share_with_site_gates and before.residents[2].gates == ()
    li = before.residents[1].entry
    assert (li.active, li.face_refused, li.schedule) == (False, True, "workdays")
    if kind == "csv":
        assert first.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
        assert "王小明".encode() in first.read_bytes()
        head = first.read_bytes()[3:].decode().splitlines()[0]
        assert head.startswith("编号,姓名" if lang == "zh" else "key,name")


def test_excel_typed_cells_are_read_as_the_clerk_meant(site, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["编号", "姓名", "键盘号", "到期日期", "生效日期", "启用", "卡号"])
    ws.append(
        ["k1", "甲", 101, datetime(2027, 6, 30), datetime(2026, 1, 1, 8, 0), True, "04A1B2C3D4E5F6"]
    )
    ws.append([None, None, None, None, None, None, None])  # blank rows are skipped
    ws.append(["k2", "乙", 102.0, date(2027, 1, 1), None, "否", None])
    wb.save(tmp_path / "typed.xlsx")
    res = desk.import_sheet(site, tmp_path / "typed.xlsx", "zh")
    k1, k2 = (r.entry for r in res.roster.residents)
    assert k1.keypad_id == "101" and k2.keypad_id == "102" and not k2.active
    doc = desk.load_doc(site)["residents"]
    assert doc[0]["valid_until"] == date(2027, 6, 30)  # midnight from Excel: a whole day
    assert doc[0]["valid_from"] == datetime(2026, 1, 1, 8, 0)
    assert k1.cards[0].uid == "04a1b2c3d4e5f6"


def test_a_pin_column_is_refused_naming_the_cell_in_both_languages(site, tmp_path):
    text = "key,name,unit,PIN\na,A,1,2468\n"
    (line,) = _errors(site, tmp_path, text, "en")
    assert line.startswith("in.csv: row 1, column D (PIN): a spreadsheet must not hold PINs")
    assert "pin-slip" in line
    (line,) = _errors(site, tmp_path, text.replace("PIN", "密码"), "zh")
    assert line.startswith("in.csv: 第 1 行，D 列（密码）：表格中不得包含密码")
    assert not desk.roster_path(site).exists()  # nothing written


def test_every_bad_cell_is_named_by_row_and_column(site, tmp_path):
    text = (
        "key,name,unit,keypad,valid_until,active\n"
        "a,A,1,101,2027-06-30,yes\n"
        "b,B,2,10x,2027-06-30,yes\n"
        "c,C,3,103,2027-13-45,yes\n"
        "d,D,4,104,2027-06-30,maybe\n"
    )
    lines = _errors(site, tmp_path, text, "en")
    assert any(x.startswith("in.csv: row 4, column E (valid_until): write a date") for x in lines)
    assert any(x.startswith("in.csv: row 5, column F (active): write yes or no") for x in lines)
    # Cells that read fine but break a roster rule come after the layout is right.
    text = text.replace("2027-13-45", "2027-06-30").replace("maybe", "no")
    lines = _errors(site, tmp_path, text, "zh")
    assert lines == ["in.csv: 第 3 行，D 列（keypad）：须为 1 到 8 位数字 0-9，而不是 '10x'"]


def test_a_keypad_number_given_twice_names_the_second_row(site, tmp_path):
    text = "编号,姓名,键盘号\na,A,101\nb,B,102\nc,C,101\n"
    (line,) = _errors(site, tmp_path, text, "zh")
    assert line == "in.csv: 第 4 行，C 列（键盘号）：101 已分配给 a"


def test_a_schedule_the_gate_lacks_is_named_by_its_cell(site, tmp_path):
    (line,) = _errors(site, tmp_path, "key,name,schedule\na,A,weekends\n", "en")
    assert line.startswith("in.csv: gate 'north-gate': row 2, column C (schedule): 'weekends'")


def test_unknown_and_repeated_columns(site, tmp_path):
    lines = _errors(site, tmp_path, "key,nmae,key\na,A,a\n", "en")
    assert lines == [
        "in.csv: row 1, column B (nmae): unknown column (did you mean name?)",
        "in.csv: row 1, column C (key): this column appears twice (also column A)",
    ]
    (line,) = _errors(site, tmp_path, "name\nA\n", "en")
    assert "there is no key column" in line


def test_gb18030_csv_from_chinese_excel_is_read(site, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("编号,姓名\nk1,王小明\n".encode("gb18030"))
    res = desk.import_sheet(site, path, "zh")
    assert res.roster.residents[0].entry.name == "王小明"


def test_import_replaces_the_roster_and_keeps_pins_by_key(site, tmp_path):
    _import_text(site, tmp_path, CSV)
    pin = desk.issue_pin(site, "b-3102-li")
    res = _import_text(site, tmp_path, "key,name,keypad\nb-3102-li,Li Lei,102\nd-1,New,200\n")
    assert res.added == ["d-1"] and sorted(res.removed) == ["a-3101-wang", "c-3103-zhao"]
    assert res.changed == ["b-3102-li"] and res.pins_kept == 1
    assert desk.roster(site).residents[0].entry.pin == pin
    assert oct(desk.roster_path(site).stat().st_mode & 0o777) == "0o600"


def test_pin_slip_meets_the_weak_pin_rule(site, tmp_path):
    from doorpi.store.credentials import check_pin_rules

    _import_text(site, tmp_path, CSV)
    for _ in range(20):
        pin = desk.issue_pin(site, "a-3101-wang")
        check_pin_rules(pin, 6, 8)
    html = desk.pin_slip_html(site, "a-3101-wang", pin, "zh")
    assert pin in html and "王小明" in html and "0101" in html


def test_column_letters():
    assert [col_letter(i) for i in (0, 3, 25, 26, 27, 701, 702)] == [
        "A",
        "D",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]


def test_cli_roster_import_export_and_refusal(tmp_path):
    env = {**os.environ, "DOORPI_ADMIN_DIR": str(tmp_path / "admin"), "TZ": "UTC"}

    def doorpi(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "doorpi", "admin", *argv], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    assert doorpi("init", "--site-name", "Sunny Garden").returncode == 0
    (tmp_path / "in.csv").write_text(CSV.replace(",north-gate,", ",,"), encoding="utf-8")
    ok = doorpi("roster", "import", str(tmp_path / "in.csv"), "--lang", "en")
    assert ok.returncode == 0 and "3 residents" in ok.stdout and "3 added" in ok.stdout, ok.stderr
    ok = doorpi("roster", "export", str(tmp_path / "out.xlsx"), "--lang", "zh")
    assert ok.returncode == 0 and (tmp_path / "out.xlsx").stat().st_size > 0
    (tmp_path / "bad.csv").write_text("key,name,keypad\na,A,1\nb,B,x\nc,C,y\n", encoding="utf-8")
    bad = doorpi("roster", "import", str(tmp_path / "bad.csv"), "--lang", "en")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "row 3, column C (keypad)" in bad.stderr and "nothing imported" in bad.stderr
    assert "row 4, column C (keypad)" in bad.stdout
    slip = doorpi("roster", "pin-slip", "a-3101-wang", "--out", str(tmp_path / "slip.html"))
    assert slip.returncode == 0 and oct((tmp_path / "slip.html").stat().st_mode & 0o777) == "0o600"


# One sheet per kind of reason the shared validators give (doorpi.validation,
# the bundle and roster parsers, the gates' limits, the site's gate list): the
# cell it names and the reason's code in doorpi.sync.reasons.
HEAD = "key,name,unit,keypad,cards,valid_from,valid_until,schedule,gates\n"
BAD_CELLS = [
    ("key_format", "A B,A,,,,,,,\n", "A", 2),
    ("missing", ",A,1,,,,,,\n", "A", 2),
    ("key_twice", "a,A,,,,,,,\na,B,,,,,,,\n", "A", 3),
    ("missing", "a,,,,,,,,\n", "B", 2),
    ("text_long", "a," + "名" * 101 + ",,,,,,,\n", "B", 2),
    ("text_char", "a,A\u202eB,,,,,,,\n", "B", 2),
    ("text_long", "a,A," + "9" * 41 + ",,,,,,\n", "C", 2),
    ("digits_got", "a,A,,10x,,,,,\n", "D", 2),
    ("keypad_twice", "a,A,,101,,,,,\nb,B,,101,,,,,\n", "D", 3),
    ("uid_hex", "a,A,,,04a1b,,,,\n", "E", 2),
    ("uid_len", "a,A,,,04a1b2,,,,\n", "E", 2),
    ("uid_zero", "a,A,,,00000000,,,,\n", "E", 2),
    ("uid_ff", "a,A,,,FF:FF:FF:FF:FF:FF:FF,,,,\n", "E", 2),
    ("card_twice", "a,A,,,04a1b2c3,,,,\nb,B,,,04a1b2c3,,,,\n", "E", 3),
    ("text_long", "a,A,,,04a1b2c3 (" + "x" * 41 + "),,,,\n", "E", 2),
    ("list_limit", "a,A,,," + ";".join(f"04a1b2{i:02x}" for i in range(9)) + ",,,,\n", "E", 2),
    ("time_range", "a,A,,,,9999-01-01,,,\n", "F", 2),
    ("until_before_from", "a,A,,,,2027-06-30,2027-01-01,,\n", "G", 2),
    ("printable", "a,A,,,,,," + "w" * 65 + ",\n", "H", 2),
    ("schedule_known", "a,A,,,,,,weekends,\n", "H", 2),
    ("gate_near", "a,A,,,,,,,north-gat\n", "I", 2),
    ("gate", "a,A,,,,,,,south\n", "I", 2),
]


@pytest.mark.parametrize(("code", "row", "col", "line_no"), BAD_CELLS, ids=lambda v: str(v)[:14])
def test_every_validator_reason_reads_in_the_admins_language(
    site, tmp_path, code, row, col, line_no
):
    import re

    from doorpi.sync.reasons import REASONS, reason_code

    en = _errors(site, tmp_path, HEAD + row, "en")
    zh = _errors(site, tmp_path, HEAD + row, "zh")
    assert len(en) == len(zh) == 1, (en, zh)
    # en: the validator's own words, and the reason is the one meant
    en_at = re.search(rf"row {line_no}, column {col} \([a-z_]+\): ", en[0])
    assert en_at is not None, en[0]
    assert reason_code(en[0][en_at.end() :]) == code, en[0]
    # zh: the cell and the reason in Chinese, not an English sentence
    zh_at = re.search(rf"第 {line_no} 行，{col} 列（[a-z_]+）：", zh[0])
    assert zh_at is not None, zh[0]
    why = zh[0][zh_at.end() :]
    assert re.search(r"[\u4e00-\u9fff]", why), zh[0]
    assert not re.search(r"\b(must|is|are|has|not|also|given|the)\b", why), zh[0]
    (entry,) = [r for r in REASONS if r.code == code]
    assert why.startswith(re.split(r"\{", entry.zh)[0]), (why, entry.zh)


def test_a_pin_the_gate_refuses_names_the_row_and_the_site_roster(site, tmp_path):
    doc = desk.load_doc(site)
    doc["residents"] = [{"key": "a", "name": "A", "pin": "1234"}]
    desk.save_doc(site, doc)
    (en,) = _errors(site, tmp_path, "key,name\na,A\n", "en")
    assert en == (
        "in.csv: gate 'north-gate': row 2 (the PIN kept in the site roster, not in the sheet): "
        "a PIN has 6 to 8 digits"
    )
    (zh,) = _errors(site, tmp_path, "key,name\na,A\n", "zh")
    assert zh == (
        "in.csv: 门 'north-gate'：第 2 行（站点名册中保存的密码，不在表格中）："
        "此门的密码须为 6 到 8 位数字"
    )


def test_a_required_column_the_sheet_lacks_is_named_as_a_header_to_add(site, tmp_path):
    lines = _errors(site, tmp_path, "key,unit\na,1\nb,2\n", "en")
    assert lines[0] == (
        "in.csv: row 2: the sheet has no name column, and every resident needs one: "
        "add a column headed name (or 姓名) and fill it in"
    )
    assert len(lines) == 2 and lines[1].startswith("in.csv: row 3: ")
    zh = _errors(site, tmp_path, "编号,房号\na,1\n", "zh")
    assert zh == [
        "in.csv: 第 2 行：表格缺少“姓名”列，每位住户都必须填写：请添加标题为“姓名”（或 name）的列并填写"
    ]
