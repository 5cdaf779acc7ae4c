"""One set of rules for what people type: names, keypad numbers, PINs, card UIDs.

Every entry path uses these functions: the device CLI (`doorpi resident`,
`card`, `pin`), the admin roster and the bundle parser on the gate
(`doorpi.sync.roster`, `doorpi.sync.bundle`), scenarios (`doorpi.sim`) and the
store itself (`doorpi.store.residents`, `doorpi.store.credentials`). A value
accepted on the laptop is accepted by the gate and the other way round.

The rules, and why:

* **Digits** (keypad numbers, PINs) are read with Unicode NFKC normalisation,
  then must be ASCII ``0-9``. Chinese and Japanese input methods type
  full-width ``１０１``; NFKC reads it as ``101``, the digits a keypad sends,
  so a PIN set that way works at the door. Superscripts and circled digits
  (``²``, ``①``) are compatibility forms of digits and are read the same way.
  Digits of other scripts (Arabic-Indic ``١٠١``, Devanagari) are *not* the
  keypad's digits and are refused, as are letters and spaces inside.
* **Names** (and units, card labels) are stored NFC-normalised and trimmed.
  Refused: control characters (C0/C1, e.g. line feed, carriage return, NUL,
  escape), line and paragraph separators (U+2028/2029), surrogates, private
  use, and invisible format characters, which include every text-direction
  control (U+200E/200F, U+202A-202E, U+2066-2069, U+061C: the "Trojan Source"
  characters, CVE-2021-42574) and zero-width spaces/BOM. Allowed: the
  joiners U+200C (ZWNJ, the Persian half-space) and U+200D (ZWJ, emoji
  sequences such as 👩‍👩‍👧), and emoji tag sequences (subdivision flags).
  Unassigned code points are allowed, because the laptop and the gate may run
  Python versions that know different Unicode versions (a new emoji must not
  make a gate refuse a bundle the laptop accepted).
* **Length**: a name has at most `NAME_MAX` = 100 characters (code points).
  The UK government data standard for a full name allows 70 (35 + 35);
  100 leaves room for long multi-part names and emoji sequences (a family
  emoji is up to 11 code points), and keeps listings, the audit log and the
  bundle bounded. Units and card labels: 40.
* **Card UIDs** are hex, 4, 7 or 10 bytes (ISO/IEC 14443-3 single, double,
  triple size), not all zero nor all FF (`doorpi.core.uid.blank_uid`: a
  read of nothing, or an ID several cards share); ``:``, ``-`` and spaces between bytes are
  ignored, case is ignored, full-width hex is read as ASCII (NFKC).

Printing: `safe_text` escapes exactly the characters names may not hold, so
a name stored before these rules (or read from a damaged file) cannot forge a
line or reorder a listing on a terminal.

Text files (config, roster, scenario): `decode_text_file` accepts UTF-8 with
or without the byte order mark Windows editors write, and names any other
encoding with how to save the file as UTF-8.

Errors: every check raises `InputError` (a `ValueError`) whose message is
one line without the field name; callers prefix where it came from.
"""

from __future__ import annotations

import re
import unicodedata

from doorpi.core.uid import blank_uid, random_uid_problem

#: Longest resident name in characters (code points); see the module docstring.
NAME_MAX = 100
#: Longest unit or card label in characters (the bundle's limit since v1).
SHORT_TEXT_MAX = 40
#: A keypad number: typed before the PIN, 1 to 8 digits (the store's rule since v1).
KEYPAD_ID_MAX = 8
#: Longest PIN any config may allow (the keypad buffer; config bounds it further).
PIN_MAX = 12
#: ISO/IEC 14443-3 UID lengths in bytes: single, double, triple size.
UID_LENGTHS = (4, 7, 10)

ZWNJ, ZWJ = "\u200c", "\u200d"
_BLACK_FLAG = "\U0001f3f4"  # base of emoji tag sequences (e.g. the flag of Wales)
_TAGS = range(0xE0020, 0xE0080)
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Zl", "Zp"})
_SEPARATORS = re.compile(r"[ :\-]")
_HEX = re.compile(r"[0-9a-f]+")


class InputError(ValueError):
    """A value a person typed that the rules refuse; the message is one line
    saying what is wrong, without the field's name (the caller adds it)."""


def _refused(text: str, i: int) -> bool:
    ch = text[i]
    cat = unicodedata.category(ch)
    if cat in _REFUSED_CATEGORIES:
        return True
    if cat != "Cf" or ch in (ZWNJ, ZWJ):
        return False
    if ord(ch) in _TAGS:  # only inside an emoji tag sequence: 🏴 + tags
        j = i
        while j > 0 and ord(text[j - 1]) in _TAGS:
            j -= 1
        return not (j > 0 and text[j - 1] == _BLACK_FLAG)
    return True


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    if not name:
        name = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\0": "NUL"}.get(
            ch, "control character"
        )
    return f"U+{ord(ch):04X} {name}"


def check_text(value: object, max_len: int, *, required: bool = False) -> str:
    """A name-like text (name, unit, label) as stored: NFC, trimmed.

    Raises `InputError` for a non-string, an empty value when ``required``,
    more than ``max_len`` characters, or a refused character (named with its
    position, e.g. "contains U+202E RIGHT-TO-LEFT OVERRIDE at character 4").
    """
    if not isinstance(value, str):
        raise InputError("must be text")
    text = unicodedata.normalize("NFC", value).strip()
    if required and not text:
        raise InputError("must not be empty")
    if len(text) > max_len:
        raise InputError(f"has {len(text)} characters, at most {max_len} are allowed")
    for i in range(len(text)):
        if _refused(text, i):
            raise InputError(
                f"contains {_describe(text[i])} at character {i + 1}: control, "
                "text-direction and invisible characters are not allowed"
            )
    return text


def check_name(value: object) -> str:
    """A resident's name; see `check_text` (at most `NAME_MAX`, not empty)."""
    return check_text(value, NAME_MAX, required=True)


def _digits(value: object, lo: int, hi: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"must be {lo} to {hi} digits 0-9")
    text = unicodedata.normalize("NFKC", value).strip()
    if not (text.isascii() and text.isdigit() and lo <= len(text) <= hi):
        raise InputError(f"must be {lo} to {hi} digits 0-9, got {safe_repr(value)}")
    return text


def keypad_id(value: object) -> str:
    """A keypad number as stored: ASCII digits, 1 to `KEYPAD_ID_MAX` of them.

    Full-width and other compatibility digits are normalised (NFKC); anything
    else raises `InputError`.
    """
    return _digits(value, 1, KEYPAD_ID_MAX)


def pin_digits(value: object) -> str:
    """A PIN as hashed: ASCII digits (NFKC-normalised), 1 to `PIN_MAX` of them.

    Only the characters are checked here; the site's length and strength
    rules are `doorpi.store.credentials.check_pin_rules`. Raises `InputError`
    (the message never contains the PIN itself).
    """
    if not isinstance(value, str):
        raise InputError("a PIN has digits 0-9 only")
    text = unicodedata.normalize("NFKC", value).strip()
    if not (text.isascii() and text.isdigit()):
        raise InputError("a PIN has digits 0-9 only")
    if len(text) > PIN_MAX:
        raise InputError(f"a PIN has at most {PIN_MAX} digits")
    return text


def card_uid(value: object) -> bytes:
    """A card UID typed as hex (``04a1b2c3d4e5f6``, ``04:A1:B2:C3``) as bytes.

    Raises `InputError` unless it is 4, 7 or 10 bytes of hex, not all zero or all FF and
    not a random ID (``08xxxxxx``, ISO/IEC 14443-3: a phone or bank card, new on
    every read, so a binding to it could never open; `doorpi.core.uid`).
    """
    rule = "must be a card UID of 4, 7 or 10 bytes in hex, like 04a1b2c3d4e5f6"
    if not isinstance(value, str):
        raise InputError(rule)
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value)).lower()
    if not _HEX.fullmatch(text) or len(text) % 2:
        raise InputError(f"{rule}; {safe_repr(value)} is not hex")
    uid = bytes.fromhex(text)
    if len(uid) not in UID_LENGTHS:
        raise InputError(f"{rule}; this one has {len(uid)} bytes")
    blank = blank_uid(uid)
    if blank:
        raise InputError(f"{rule}; an {blank} UID is not a real card")
    random_id = random_uid_problem(uid)
    if random_id:
        raise InputError(random_id)
    return uid


def card_uid_hex(value: object) -> str:
    """`card_uid` in the canonical form the roster and bundle carry (lowercase hex)."""
    return card_uid(value).hex()


_REF = re.compile(r"[0-9a-f]{8,64}")


def card_ref(value: object) -> str | None:
    """A card reference as `doorpi resident show` prints it (the start of the card's
    hash, 8 to 64 hex characters) in lowercase, or None when it is not one. Read as
    card UIDs are: NFKC (full-width), case and surrounding spaces ignored."""
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip().lower()
    return text if _REF.fullmatch(text) else None


def safe_text(value: object) -> str:
    """``value`` as text safe to print on a terminal, one line.

    Every character a name may not hold (see `check_text`) is written as an
    escape (``\\n``, ``\\u202e``), so stored text cannot start a new line,
    move the cursor or reorder the rest of a listing.
    """
    text = str(value)
    out = []
    for i, ch in enumerate(text):
        if _refused(text, i):
            out.append(
                ch.encode("unicode_escape").decode("ascii")
                if ord(ch) < 0x10000
                else f"\\U{ord(ch):08x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def safe_repr(value: object, limit: int = 40) -> str:
    """A short quoted form of what someone typed, for error messages."""
    text = safe_text(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"'{text}'"


def decode_text_file(data: bytes) -> str:
    """The text of a config, roster or scenario file.

    UTF-8, with or without a byte order mark (Windows Notepad writes one).
    Raises `InputError` naming the encoding problem and how to save the file
    as UTF-8 (UTF-16, or bytes that are not UTF-8 such as GBK or Latin-1).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            'is saved as UTF-16 ("Unicode"): save it as UTF-8 (in Notepad: '
            "File > Save as > Encoding: UTF-8)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {col}; "
            "GBK, Big5 or Latin-1 perhaps): save it as UTF-8 (in Notepad: "
            "File > Save as > Encoding: UTF-8)"
        ) from None
    return text.removeprefix("\ufeff")


__all__ = [
    "KEYPAD_ID_MAX",
    "NAME_MAX",
    "PIN_MAX",
    "SHORT_TEXT_MAX",
    "UID_LENGTHS",
    "InputError",
    "card_ref",
    "card_uid",
    "card_uid_hex",
    "check_name",
    "check_text",
    "decode_text_file",
    "keypad_id",
    "pin_digits",
    "safe_repr",
    "safe_text",
]
