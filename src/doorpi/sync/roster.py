"""The admin's roster: one plain TOML file they can edit, diff and review.

Each resident is a ``[[residents]]`` table with a stable ``key`` (for example
``a-3101-wang``): the key, not the name or a gate's row number, is how a gate
knows that an edited entry is the same person. Removing an entry deletes the
resident from the gates (the admin side sends a tombstone). Dates are local
dates at the site: ``[site] timezone`` (the gates' ``site.timezone``,
default Etc/UTC like theirs), never the laptop's zone; ``valid_until =
2027-06-30`` includes that whole day (see `doorpi.sitetime`).
PINs are written in quotes (a leading zero matters) and travel only inside the
sealed bundle: each gate hashes them with its own pepper, so the laptop never
needs a gate secret. The file holds PINs, so keep it private (0600).
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from doorpi import validation
from doorpi.sitetime import DEFAULT_TIMEZONE, TimeZoneError, parse_local, zone
from doorpi.sync.bundle import (
    BundleError,
    EnrollmentBundle,
    ResidentEntry,
    check_consistency,
    parse_resident,
)
from doorpi.sync.modes import ModesEntry, roster_modes
from doorpi.validation import InputError, decode_text_file

FIELDS = {
    "key", "name", "unit", "keypad_id", "pin", "cards", "schedule", "valid_from",
    "valid_until", "active", "face_refused", "share_face_with_site_gates", "gates", "minor",
}  # fmt: skip
MAX_ROSTER_BYTES = 16 * 1024 * 1024

EXAMPLE = """\
# doorpi roster: one [[residents]] table per resident. `doorpi admin check FILE`
# validates it; `doorpi admin bundle FILE STICK` turns it into bundles.
[site]
name = "Example Court"
timezone = "Asia/Shanghai"       # the gates' site.timezone: dates below are local there

[[residents]]
key = "a-3101-wang"              # stable: never reuse a key for another person
name = "Alice Wang"
unit = "3-101"
keypad_id = "101"                # typed before the PIN at the keypad
pin = "2468"                     # in quotes; hashed by each gate with its own pepper
cards = ["04a1b2c3d4e5f6"]       # hex UIDs, or [{ uid = "...", label = "blue fob" }]
valid_until = 2027-06-30         # end of tenancy (the whole day counts)
# schedule = "workdays"          # a schedule name from the gates' config
# active = false                 # keep the entry but refuse entry
# face_refused = true            # the resident declined face: the gate never asks
# minor = true                   # under 14: face only with a guardian, admin present
# share_face_with_site_gates = true  # consent to move their face template between gates
# gates = ["main-gate"]          # only these gates (names from `doorpi admin gate list`)
"""


class RosterError(ValueError):
    """A roster mistake, as one line naming the file, the entry and the field."""


@dataclass(frozen=True)
class RosterResident:
    entry: ResidentEntry
    gates: tuple[str, ...] | None  # None: every gate of the site


@dataclass(frozen=True)
class Roster:
    site_name: str
    residents: tuple[RosterResident, ...]
    modes: ModesEntry | None = None  # [modes]: lockdown, holidays, responders

    def for_gate(self, gate_name: str) -> list[ResidentEntry]:
        return [r.entry for r in self.residents if r.gates is None or gate_name in r.gates]


def pin_tag(tag_key: bytes, key: str, pin: str) -> str:
    """Changes exactly when the PIN changes, without revealing it to anyone without the site key.

    The gate stores it next to its Argon2id hash and re-hashes only when it
    differs, so importing 1,000 unchanged residents costs no Argon2 at all.
    """
    return blake2b(f"{key}\0{pin}".encode(), digest_size=16, key=tag_key, encoder=RawEncoder).hex()


def _epoch(v: Any, where: str, end_of_day: bool, tz: tzinfo) -> float | None:
    if v is None:
        return None
    if isinstance(v, date | datetime):
        return parse_local(v, tz, until=end_of_day)
    raise RosterError(f"{where}: must be a date like 2027-06-30 or 2027-06-30T18:00")


def _normalised(rule: Any, value: Any) -> Any:
    """``rule(value)`` if the rule accepts it, else ``value`` unchanged."""
    if value is None:
        return None
    try:
        return rule(value)
    except InputError:
        return value


def _cards(v: Any, where: str) -> list[dict[str, Any]]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise RosterError(f"{where}: must be a list of hex UIDs")
    out = []
    for i, c in enumerate(v):
        if isinstance(c, str):
            c = {"uid": c}
        if not isinstance(c, dict) or not set(c) <= {"uid", "label"}:
            raise RosterError(f"{where}[{i}]: must be a hex UID or {{ uid = ..., label = ... }}")
        uid = _normalised(validation.card_uid_hex, c.get("uid", ""))
        out.append({"uid": uid, "label": c.get("label", "")})
    return out


def _resident(raw: Any, i: int, tag_key: bytes, tz: tzinfo) -> RosterResident:
    where = f"residents[{i}]"
    if not isinstance(raw, dict):
        raise RosterError(f"{where}: must be a [[residents]] table")
    if isinstance(raw.get("key"), str):
        where = f"residents[{i}] ({raw['key']})"
    for k in raw:
        if k not in FIELDS:
            near = difflib.get_close_matches(k, sorted(FIELDS), n=1)
            raise RosterError(
                f"{where}.{k}: unknown field" + (f" (did you mean {near[0]}?)" if near else "")
            )
    pin = raw.get("pin")
    if pin is not None and not isinstance(pin, str):
        raise RosterError(f'{where}.pin: write the PIN in quotes, like pin = "0246"')
    keypad = raw.get("keypad_id")
    if isinstance(keypad, int) and not isinstance(keypad, bool):
        keypad = str(keypad)
    # Full-width digits become ASCII before the tag is computed (doorpi.validation);
    # anything the rules refuse is left as typed for parse_resident to name.
    keypad = _normalised(validation.keypad_id, keypad)
    pin = _normalised(validation.pin_digits, pin)
    gates = raw.get("gates")
    if gates is not None and (
        not isinstance(gates, list) or not all(isinstance(g, str) for g in gates)
    ):
        raise RosterError(f"{where}.gates: must be a list of gate names")
    key = raw.get("key")
    doc = {
        "key": key,
        "name": raw.get("name"),
        "unit": raw.get("unit", ""),
        "keypad_id": keypad,
        "valid_from": _epoch(raw.get("valid_from"), f"{where}.valid_from", False, tz),
        "valid_until": _epoch(raw.get("valid_until"), f"{where}.valid_until", True, tz),
        "schedule": raw.get("schedule"),
        "active": raw.get("active", True),
        "face_refused": raw.get("face_refused", False),
        "share_with_site_gates": raw.get("share_face_with_site_gates", False),
        "minor": raw.get("minor", False),
        "cards": _cards(raw.get("cards"), f"{where}.cards"),
        "pin": pin,
        "pin_tag": pin_tag(tag_key, str(key), pin) if pin is not None else None,
    }
    try:
        entry = parse_resident(doc, where)
    except BundleError as exc:
        raise RosterError(
            str(exc).replace("share_with_site_gates", "share_face_with_site_gates")
        ) from None
    return RosterResident(entry, tuple(gates) if gates is not None else None)


# The most resident problems one refusal lists (a spreadsheet pasted in the wrong
# columns gives one per row: the first 50 say what is wrong).
MAX_PROBLEMS_SHOWN = 50


def parse_roster(doc: dict[str, Any], tag_key: bytes) -> Roster:
    for k in doc:
        if k not in ("site", "residents", "modes"):
            raise RosterError(
                f"{k}: unknown section (a roster has [site], [[residents]] and [modes])"
            )
    site = doc.get("site", {})
    if not isinstance(site, dict) or not set(site) <= {"name", "timezone"}:
        raise RosterError("site: only `name` and `timezone` are allowed here")
    try:
        tz = zone(str(site.get("timezone", DEFAULT_TIMEZONE)))
    except TimeZoneError as exc:
        raise RosterError(f"site.timezone: {exc}") from None
    raw = doc.get("residents", [])
    if not isinstance(raw, list):
        raise RosterError("residents: write each resident as a [[residents]] table")
    residents, problems = [], []
    for i, r in enumerate(raw):  # every resident's problems at once, not one a run
        try:
            residents.append(_resident(r, i, tag_key, tz))
        except RosterError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise RosterError(problems[0])
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        raise RosterError(
            f"{len(problems)} residents have problems:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    try:
        check_consistency(EnrollmentBundle("0" * 32, "0" * 32, 1, 0.0,
                                           residents=tuple(r.entry for r in residents)))  # fmt: skip
    except BundleError as exc:
        raise RosterError(str(exc)) from None
    try:
        modes = roster_modes(doc.get("modes"))
    except ValueError as exc:
        raise RosterError(str(exc)) from None
    keys = {r.entry.key for r in residents}
    for k in modes.responders if modes else ():
        if k not in keys:
            raise RosterError(f"modes.responders: no resident with key {k!r}")
    return Roster(str(site.get("name", "")), tuple(residents), modes)


def read_roster_bytes(path: Path) -> bytes:
    """The roster file's bytes, at most `MAX_ROSTER_BYTES`; `RosterError` naming it otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RosterError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_ROSTER_BYTES:
        raise RosterError(f"{path}: larger than {MAX_ROSTER_BYTES // 2**20} MiB")
    return data


def load_roster(path: Path, tag_key: bytes) -> Roster:
    """Read and validate; every failure is one `RosterError` line starting with the file."""
    data = read_roster_bytes(path)
    try:
        text = decode_text_file(data)  # UTF-8, a Windows BOM is fine
    except InputError as exc:
        raise RosterError(f"{path}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_roster(doc, tag_key)
    except RosterError as exc:
        raise RosterError(f"{path}: {exc}") from None
