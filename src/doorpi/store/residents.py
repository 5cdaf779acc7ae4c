"""Residents and their cards and PINs: the identity side of the database.

Face templates live elsewhere (the vault), keyed by the resident's random
pseudonym, never by name or id.
"""

from __future__ import annotations

import secrets as _random
import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from doorpi import validation
from doorpi.core.policy import ResidentView
from doorpi.store.changes import bump as _credentials_changed


class ResidentError(ValueError):
    """A resident operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Resident:
    id: int
    pseudonym: str
    name: str
    unit: str
    keypad_id: str | None
    valid_from: float | None
    valid_until: float | None
    schedule: str | None
    active: bool
    has_pin: bool
    face_refused: bool
    created: float
    minor: bool = False  # under 14: face consent only by a guardian, admin present (PIPL 31)

    def view(self) -> ResidentView:
        return ResidentView(self.id, self.active, self.valid_from, self.valid_until, self.schedule)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "unit": self.unit,
            "keypad_id": self.keypad_id,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "schedule": self.schedule,
            "active": self.active,
            "has_pin": self.has_pin,
            "face_refused": self.face_refused,
            "minor": self.minor,
        }


_COLS = (
    "id, pseudonym, name, unit, keypad_id, valid_from, valid_until, schedule, active, "
    "pin_hash IS NOT NULL, face_refused, created, minor"
)

#: The id for the next resident: above every id in use and every id ever removed
#: (state.resident_id_high, migration 5), so a removed resident's records (audit,
#: reports) can never attach to someone new.
NEXT_ID_SQL = (
    "SELECT max(COALESCE((SELECT max(id) FROM residents), 0), "
    "COALESCE((SELECT CAST(value AS INTEGER) FROM state WHERE key = 'resident_id_high'), 0)) + 1"
)

_RCOLS = ", ".join("r." + c for c in _COLS.split(", "))


def _row(r: tuple[Any, ...]) -> Resident:
    return Resident(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        r[7],
        bool(r[8]),
        bool(r[9]),
        bool(r[10]),
        r[11],
        bool(r[12]),
    )


def _unit(value: object) -> str:
    return validation.check_text(value, validation.SHORT_TEXT_MAX)


def _checked(name: str, unit: str, keypad_id: str | None) -> tuple[str, str, str | None]:
    """The rules of `doorpi.validation`, the same on every entry path."""
    try:
        name = validation.check_name(name)
    except validation.InputError as exc:
        raise ResidentError(f"name: {exc}") from None
    try:
        unit = _unit(unit)
    except validation.InputError as exc:
        raise ResidentError(f"unit: {exc}") from None
    if keypad_id is not None:
        try:
            keypad_id = validation.keypad_id(keypad_id)
        except validation.InputError as exc:
            raise ResidentError(f"keypad number: {exc}") from None
    return name, unit, keypad_id


class ResidentStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(
        self,
        name: str,
        now: float,
        unit: str = "",
        keypad_id: str | None = None,
        valid_from: float | None = None,
        valid_until: float | None = None,
        schedule: str | None = None,
        minor: bool = False,
    ) -> Resident:
        name, unit, keypad_id = _checked(name, unit, keypad_id)
        if valid_from is not None and valid_until is not None and valid_until <= valid_from:
            raise ResidentError("valid-until must be after valid-from")
        try:
            cur = self.db.execute(
                "INSERT INTO residents(id, pseudonym, name, unit, keypad_id, valid_from, "
                f"valid_until, schedule, active, created, updated, minor) VALUES (({NEXT_ID_SQL}), "
                "?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                [_random.token_hex(16), name, unit, keypad_id, valid_from, valid_until,
                 schedule, now, now, int(minor)],
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise ResidentError(f"keypad number {keypad_id} is already taken") from None
        resident = self.get(int(cur.lastrowid or 0))
        assert resident is not None
        return resident

    def get(self, resident_id: int) -> Resident | None:
        r = self.db.execute(f"SELECT {_COLS} FROM residents WHERE id = ?", [resident_id]).fetchone()
        return _row(r) if r else None

    def by_keypad_id(self, keypad_id: str) -> Resident | None:
        r = self.db.execute(
            f"SELECT {_COLS} FROM residents WHERE keypad_id = ?", [keypad_id]
        ).fetchone()
        return _row(r) if r else None

    def by_card_hash(self, card_hash: str) -> Resident | None:
        r = self.db.execute(
            f"SELECT {_RCOLS} FROM cards c JOIN residents r ON r.id = c.resident_id "
            "WHERE c.card_hash = ?",
            [card_hash],
        ).fetchone()
        return _row(r) if r else None

    def all(self) -> list[Resident]:
        return [_row(r) for r in self.db.execute(f"SELECT {_COLS} FROM residents ORDER BY id")]

    def pin_hash(self, resident_id: int) -> str | None:
        r = self.db.execute("SELECT pin_hash FROM residents WHERE id = ?", [resident_id]).fetchone()
        return r[0] if r else None

    def set_pin_hash(self, resident_id: int, pin_hash: str | None, now: float) -> None:
        self._update(resident_id, now, pin_hash=pin_hash)
        _credentials_changed(self.db)

    def update(self, resident_id: int, now: float, **fields: Any) -> None:
        allowed = {"name", "unit", "keypad_id", "valid_from", "valid_until", "schedule", "active",
                   "face_refused", "minor"}  # fmt: skip
        bad = set(fields) - allowed
        if bad:
            raise ResidentError(f"cannot change {', '.join(sorted(bad))}")
        for key, check in (("name", validation.check_name), ("keypad_id", validation.keypad_id),
                           ("unit", _unit)):  # fmt: skip
            if fields.get(key) is not None:
                try:
                    fields[key] = check(fields[key])
                except validation.InputError as exc:
                    raise ResidentError(f"{key}: {exc}") from None
        self._update(resident_id, now, **fields)
        if {"active", "face_refused"} & set(fields):  # who may be asked for face, or let in
            _credentials_changed(self.db)

    def _update(self, resident_id: int, now: float, **fields: Any) -> None:
        if self.get(resident_id) is None:
            raise ResidentError(f"no resident {resident_id}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        try:
            self.db.execute(
                f"UPDATE residents SET {sets}, updated = ? WHERE id = ?",
                [*fields.values(), now, resident_id],
            )
        except sqlite3.IntegrityError as exc:
            raise ResidentError(f"cannot update resident {resident_id}: {exc}") from None

    def remove(self, resident_id: int) -> None:
        """Delete the resident and their cards (face data is the vault's job)."""
        if self.get(resident_id) is None:
            raise ResidentError(f"no resident {resident_id}")
        self.db.execute("DELETE FROM residents WHERE id = ?", [resident_id])
        _credentials_changed(self.db)

    def add_card(self, resident_id: int, card_hash: str, now: float, label: str = "") -> None:
        try:
            label = validation.check_text(label, validation.SHORT_TEXT_MAX)
        except validation.InputError as exc:
            raise ResidentError(f"card label: {exc}") from None
        if self.get(resident_id) is None:
            raise ResidentError(f"no resident {resident_id}")
        owner = self.by_card_hash(card_hash)
        if owner is not None:
            raise ResidentError(f"that card already belongs to resident {owner.id}")
        self.db.execute(
            "INSERT INTO cards(card_hash, resident_id, label, added) VALUES (?, ?, ?, ?)",
            [card_hash, resident_id, label, now],
        )
        _credentials_changed(self.db)

    def cards(self, resident_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT label, added, substr(card_hash, 1, 8) FROM cards WHERE resident_id = ? "
            "ORDER BY added",
            [resident_id],
        ).fetchall()
        return [{"label": r[0], "added": r[1], "ref": r[2]} for r in rows]

    def remove_card(self, resident_id: int, ref: str) -> int:
        """Remove the card of ``resident_id`` whose reference is ``ref``: the start of
        its hash as `cards` shows it, at least 8 hex characters (case, spaces around it
        and full-width forms are read as `doorpi.validation` reads hex). Returns 1, or
        0 with nothing removed when no card or more than one matches, or ``ref`` is
        not hex: ``%`` and ``_`` are no wildcards (``%%%%%%%%`` removed every card)."""
        key = validation.card_ref(ref)
        if key is None:
            return 0
        found = self.db.execute(
            "SELECT card_hash FROM cards WHERE resident_id = ? AND substr(card_hash, 1, ?) = ?",
            [resident_id, len(key), key],
        ).fetchall()
        if len(found) != 1:
            return 0
        self.db.execute("DELETE FROM cards WHERE card_hash = ?", [found[0][0]])
        _credentials_changed(self.db)
        return 1
