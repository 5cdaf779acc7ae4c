"""The shared validators' reasons in the admin's language, for spreadsheet errors.

`doorpi.validation`, the bundle parser (`doorpi.sync.bundle`), the roster
(`doorpi.sync.roster`), the gates' limits (`doorpi.sync.rules`,
`doorpi.store.credentials`) and the site's gate list (`doorpi.sync.admin`)
word their reasons in English, one line each: the gate's logs and the CLI
use them as they are. The spreadsheet import (`doorpi.sync.desk`) shows them
in the admin's language: `REASONS` is a fixed table, one row per reason,
keyed by a stable reason code, with the English wording it matches (a
regular expression over the validator's message) and the Chinese wording
(no machine translation at run time). A reason no row matches stays English;
``tests/sync/test_sheet.py`` imports one bad cell of each kind in zh so a
reworded validator message shows up there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str  # stable name of the reason
    en: re.Pattern[str]  # the validator's English message, whole
    zh: str  # str.format template over ``en``'s named groups


def _r(code: str, en: str, zh: str) -> Reason:
    return Reason(code, re.compile(en, re.S), zh)


_UID = r"must be a card UID of 4, 7 or 10 bytes in hex, like 04a1b2c3d4e5f6"
_UID_ZH = "须为 4、7 或 10 字节的十六进制卡号，如 04a1b2c3d4e5f6"

REASONS: tuple[Reason, ...] = (
    # doorpi.sync.bundle (_Doc, parse_resident, check_consistency)
    _r("missing", r"is missing", "必须填写，不能为空"),
    _r("key_format", r"must be a roster key like a-3101-wang \(a-z, 0-9, \. _ -; max 64\)",
       "须为住户编号，如 a-3101-wang（a-z、0-9、. _ -，最多 64 个字符）"),
    _r("key_twice", r"(?P<v>.*) appears twice \(also row (?P<row>\d+)\)",
       "{v} 重复出现（另见第 {row} 行）"),
    _r("card_twice", r"card is also given to (?P<k>.*)", "此卡已发给 {k}"),
    _r("keypad_twice", r"(?P<v>.*) is also given to (?P<k>.*)", "{v} 已分配给 {k}"),
    _r("until_before_from", r"must be after valid_from", "须晚于生效日期"),
    _r("time_range", r"is out of range", "超出可用范围（日期太远）"),
    _r("time_type", r"must be seconds since the epoch or null", "须为日期"),
    _r("printable", r"must be printable text of at most (?P<n>\d+) characters",
       "须为可打印文字，最多 {n} 个字符"),
    _r("flag", r"must be true or false", "请填写“是”或“否”"),
    _r("list", r"must be a list", "须为列表"),
    _r("list_limit", r"has (?P<n>\d+) entries, the limit is (?P<max>\d+)",
       "共 {n} 项，最多 {max} 项"),
    _r("pin_short", r"must be 4 to 12 digits", "密码须为 4 到 12 位数字"),
    # doorpi.validation
    _r("text_type", r"must be text", "须为文字"),
    _r("text_empty", r"must not be empty", "不能为空"),
    _r("text_long", r"has (?P<n>\d+) characters, at most (?P<max>\d+) are allowed",
       "有 {n} 个字符，最多 {max} 个"),
    _r("text_char", r"contains (?P<ch>U\+[0-9A-F]{4,6}[^:]*) at character (?P<i>\d+): control, "
       r"text-direction and invisible characters are not allowed",
       "第 {i} 个字符是 {ch}：不得含有控制字符、文字方向字符或不可见字符"),
    _r("digits_got", r"must be (?P<lo>\d+) to (?P<hi>\d+) digits 0-9, got (?P<v>.*)",
       "须为 {lo} 到 {hi} 位数字 0-9，而不是 {v}"),
    _r("digits", r"must be (?P<lo>\d+) to (?P<hi>\d+) digits 0-9", "须为 {lo} 到 {hi} 位数字 0-9"),
    _r("uid_hex", _UID + r"; (?P<v>.*) is not hex", _UID_ZH + "；{v} 不是十六进制数"),
    _r("uid_len", _UID + r"; this one has (?P<n>\d+) bytes", _UID_ZH + "；此卡号为 {n} 字节"),
    _r("uid_zero", _UID + r"; an all-zero UID is not a real card", _UID_ZH + "；全为零的卡号不是真卡"),
    _r("uid_ff", _UID + r"; an all-FF UID is not a real card", _UID_ZH + "；全为 FF 的卡号不是真卡"),
    _r("uid", _UID, _UID_ZH),
    _r("pin_digits", r"a PIN has digits 0-9 only", "密码只能包含数字 0-9"),
    _r("pin_max", r"a PIN has at most (?P<n>\d+) digits", "密码最多 {n} 位数字"),
    # doorpi.store.credentials.check_pin_rules, via doorpi.sync.rules
    _r("pin_length", r"a PIN has (?P<lo>\d+) to (?P<hi>\d+) digits", "此门的密码须为 {lo} 到 {hi} 位数字"),
    _r("pin_weak", r"a PIN may not be one repeated digit or a straight run",
       "密码不能是同一数字重复或连续数字（如 111111、123456）"),
    # doorpi.sync.rules.entry_problems
    _r("schedule", r"(?P<v>.*) is not a schedule on this gate \(known: none\)",
       "{v} 不是此门的时段（此门未设时段）"),
    _r("schedule_known", r"(?P<v>.*) is not a schedule on this gate \(known: (?P<known>.*)\)",
       "{v} 不是此门的时段（此门的时段：{known}）"),
    # doorpi.sync.admin.AdminSite.problems
    _r("gate_near", r"(?P<v>.*) is not a registered gate \(did you mean (?P<near>.*)\?\)",
       "{v} 不是已登记的门（是否应为 {near}？）"),
    _r("gate_none", r"(?P<v>.*) is not a registered gate \(gates: none\)",
       "{v} 不是已登记的门（尚未登记任何门）"),
    _r("gate", r"(?P<v>.*) is not a registered gate \(gates: (?P<all>.*)\)",
       "{v} 不是已登记的门（已登记：{all}）"),
    # doorpi.sync.roster
    _r("date", r"must be a date like 2027-06-30 or 2027-06-30T18:00",
       "请填写日期，如 2027-06-30 或 2027-06-30 18:00"),
)  # fmt: skip

_GATE_PREFIX = re.compile(r"gate (?P<g>'[^']*'): ")


def reason_code(why: str) -> str | None:
    """The `REASONS` code of a validator's English message, or None if none matches."""
    for r in REASONS:
        if r.en.fullmatch(why):
            return r.code
    return None


def translate(why: str, lang: str) -> str:
    """``why`` (a validator's English reason, one line) in ``lang`` ("zh" or "en");
    unchanged for "en" or when no row of `REASONS` matches."""
    if lang != "zh":
        return why
    for r in REASONS:
        m = r.en.fullmatch(why)
        if m is not None:
            return r.zh.format(**m.groupdict())
    return why


def translate_prefix(prefix: str, lang: str) -> str:
    """A place before the cell ("gate 'north-gate': ") in ``lang``."""
    if lang != "zh":
        return prefix
    return _GATE_PREFIX.sub(lambda m: f"门 {m['g']}：", prefix)
