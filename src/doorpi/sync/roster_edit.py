"""Changes doorpi makes to the admin's roster file itself (`doorpi.sync.roster`).

The roster is the admin's own TOML file, with their comments and layout:
edits go through tomlkit (style-preserving) so only the changed value
differs, the result is validated exactly as `doorpi admin check` would before
anything is written, and the file is replaced atomically with its own mode
(it holds PINs: 0600). A roster that does not validate before the edit is
never touched.
"""

from __future__ import annotations

import codecs
import stat
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from doorpi import validation
from doorpi.fsutil import write_atomic
from doorpi.sync.roster import RosterError, load_roster, parse_roster, read_roster_bytes
from doorpi.validation import InputError, decode_text_file

#: The roster's default place in the admin directory (``doorpi admin card issue``
#: uses it when no ``--roster`` is given).
ADMIN_ROSTER = "roster.toml"


def _uid_of(card: Any) -> str | None:
    raw = card.get("uid") if isinstance(card, dict) else card
    try:
        return validation.card_uid_hex(str(raw))
    except InputError:
        return None


def check_resident(path: Path, resident: str, tag_key: bytes) -> None:
    """Raise `RosterError` (one line naming ``path``) unless the roster at
    ``path`` is valid and has an entry with ``key = resident``."""
    roster = load_roster(path, tag_key)
    if not any(r.entry.key == resident for r in roster.residents):
        raise RosterError(f"{path}: no resident with key = {resident!r}")


def add_card(path: Path, resident: str, uid: bytes, label: str, tag_key: bytes) -> str:
    """Record card ``uid`` in the ``cards`` of the roster entry ``key = resident``.

    Returns what happened: ``"added"``, ``"labelled"`` (the UID was there,
    now with ``label``: a UID-only card upgraded to a secure one keeps its
    place) or ``"unchanged"``. Raises `RosterError`, one line naming ``path``,
    if the file cannot be read or written, the resident is unknown, the card
    is already another resident's, or the edited roster would not validate
    (then nothing is written).
    """
    data = read_roster_bytes(path)
    try:
        text = decode_text_file(data)
        doc = tomlkit.parse(text)
    except InputError as exc:
        raise RosterError(f"{path}: {exc}") from None
    except TOMLKitError as exc:
        raise RosterError(f"{path}: not valid TOML: {exc}") from None
    uid_hex = uid.hex()
    residents = doc.get("residents")
    entry = None
    for i, raw in enumerate(residents if isinstance(residents, list) else []):
        if not isinstance(raw, dict):
            continue
        if raw.get("key") == resident:
            entry = raw
        elif any(_uid_of(c) == uid_hex for c in raw.get("cards") or []):
            raise RosterError(
                f"{path}: card {uid_hex} is already the card of residents[{i}] "
                f"({validation.safe_text(raw.get('key'))})"
            )
    if entry is None:
        raise RosterError(f"{path}: no resident with key = {resident!r}")

    cards = entry.get("cards")
    if cards is None:
        cards = tomlkit.array()
        entry["cards"] = cards
    elif not isinstance(cards, list):
        raise RosterError(f"{path}: {resident}.cards: must be a list of hex UIDs")
    outcome = "added"
    for i, c in enumerate(cards):
        if _uid_of(c) != uid_hex:
            continue
        old_label = c.get("label", "") if isinstance(c, dict) else ""
        if not label or label == old_label:
            return "unchanged"
        cards[i] = _card_item(uid_hex, label)
        outcome = "labelled"
        break
    else:
        cards.append(_card_item(uid_hex, label))

    new_text = tomlkit.dumps(doc)
    try:
        parse_roster(tomllib.loads(new_text), tag_key)
    except (RosterError, tomllib.TOMLDecodeError) as exc:
        raise RosterError(f"{path}: not changed, the edit would not validate: {exc}") from None
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        write_atomic(path, bom + new_text.encode("utf-8"), mode)
    except OSError as exc:
        raise RosterError(f"{path}: cannot write: {exc.strerror}") from None
    return outcome


def _card_item(uid_hex: str, label: str) -> Any:
    if not label:
        return uid_hex
    item = tomlkit.inline_table()
    item.update({"uid": uid_hex, "label": label})
    return item


__all__ = ["ADMIN_ROSTER", "add_card", "check_resident"]
