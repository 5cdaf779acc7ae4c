"""Face is never the only way in: checked against the devices and the person.

Pure functions, no I/O. Two questions, both from requirement 1 (SPC 2021
Art. 10, MFR 2025 Art. 10: face may not be the only way in) and requirement 4
(every face failure falls back to card/PIN):

* *Door parity*: does a door's access rule have a combination without face
  that the devices actually fitted can complete? ``["face", "pin"]`` with no
  keypad, ``["face", "card"]`` with the reader disabled, or
  ``["card+face", "card+pin"]`` with no keypad all leave face as the only way
  in, although each lists a face-free combination on paper.
* *Resident parity*: can this resident, with the credentials they hold
  (card, PIN) on these devices, finish some combination without face? A
  resident with a card and no PIN at a ``["card+face", "card+pin"]`` door can be
  asked for face but has no face-free way to finish: when face fails (dark,
  camera fault) there is no way in for them.

A *device set* is the factors the configured hardware can read: ``card`` when
the reader is enabled, ``pin`` when a keypad is fitted, ``face`` when face is on.

A PIN names nobody: a face-free attempt starts with a card, or with the
resident's keypad number typed before the PIN (``101#2468#``). A resident with a
PIN but neither a card nor a keypad number can type that PIN only after a face
match (``face+pin``): it is no face-free way in (`face_free_holds`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Combination = frozenset[str]
Rule = tuple[Combination, ...]

_DEVICE_FOR = {"card": "the card reader", "pin": "a keypad", "face": "the camera"}
_HOW_TO_FIT = {"card": "reader.enabled = true", "pin": 'keypad.kind = "matrix" or "usb"',
               "face": "face.enabled = true"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Devices:
    """What the configured hardware can read (from `doorpi.config.Config`)."""

    reader: bool = True  # reader.enabled
    keypad: bool = True  # keypad.kind != "none"
    camera: bool = False  # face.enabled

    @property
    def factors(self) -> frozenset[str]:
        """The factors these devices can read, e.g. ``{"card", "pin"}``."""
        have = {"card": self.reader, "pin": self.keypad, "face": self.camera}
        return frozenset(f for f, ok in have.items() if ok)


def show(combo: Iterable[str]) -> str:
    """A combination as the config writes it: ``card+pin``."""
    order = ("card", "pin", "face")
    return "+".join(f for f in order if f in set(combo))


def show_rule(rule: Rule) -> str:
    return " | ".join(show(c) for c in rule)


def face_free_holds(holds: frozenset[str], keypad_number: bool) -> frozenset[str]:
    """The credentials in ``holds`` (``card``, ``pin``) a resident can use without
    face: all of them, except a PIN when they have no card to tap first and no
    keypad number (``keypad_number`` False) to name themselves before typing it."""
    if "pin" in holds and "card" not in holds and not keypad_number:
        return holds - {"pin"}
    return holds


def _have_give(rules: list[Rule], holds: frozenset[str],
               devices: Devices) -> tuple[str, str]:  # fmt: skip
    """What a resident with no face-free way at ``rules`` holds, and what to give
    them, in the messages' words: a keypad number when their PIN would do with one."""
    if any(has_face_free_way(rule, holds, devices) for rule in rules):
        return ("a PIN but no keypad number to type it after, and no card",
                "give them a keypad number or a card or ")  # fmt: skip
    gives = {missing_credential(rule, holds, devices) for rule in rules} - {None}
    give = _GIVE.get(next((g for g in ("pin", "card") if g in gives), None), "")
    return show(holds - {"face"}) or "no card and no PIN", give


def door_parity_problem(rule: Rule, devices: Devices) -> str | None:
    """Why this rule makes face the only way in on these devices, or None.

    A rule passes when some combination without face has every factor on a
    fitted device. The message names the devices to fit or the combination to add.
    """
    face_free = [c for c in rule if "face" not in c]
    if not face_free:
        return "face is the only way in; add a card or PIN combination"
    if any(c <= devices.factors for c in face_free):
        return None
    needs = sorted({f for c in face_free for f in c - devices.factors})
    fit = " or ".join(f"{_DEVICE_FOR[f]} ({_HOW_TO_FIT[f]})" for f in needs)
    return (
        f"no way in without face on the devices fitted: {show_rule(tuple(face_free))} needs {fit}"
    )


def may_ask_face(rule: Rule, holds: frozenset[str], devices: Devices) -> bool:
    """Could the gate ask this resident for face under this rule? True when
    some combination with face needs nothing more than what they hold."""
    usable = (holds | {"face"}) & devices.factors
    return "face" in devices.factors and any("face" in c and c <= usable for c in rule)


def has_face_free_way(rule: Rule, holds: frozenset[str], devices: Devices) -> bool:
    """Can a resident holding ``holds`` (``card``, ``pin``) finish without face?"""
    usable = holds & devices.factors - {"face"}
    return any("face" not in c and c <= usable for c in rule)


def missing_credential(rule: Rule, holds: frozenset[str], devices: Devices) -> str | None:
    """The one credential (``"pin"``, else ``"card"``) that would give a resident
    holding ``holds`` a face-free way to finish ``rule`` on these devices; None when
    they have one already or no single credential would do (the rule must change)."""
    if has_face_free_way(rule, holds, devices):
        return None
    return next((f for f in ("pin", "card") if has_face_free_way(rule, holds | {f}, devices)), None)


def resident_parity_problem(
    rules: Iterable[Rule], holds: frozenset[str], devices: Devices, keypad_number: bool = True
) -> str | None:
    """Why a resident would depend on face at this door, or None.

    ``rules`` are the door's default and scheduled rules; ``holds`` the
    credentials the resident has (``card`` for a card, ``pin`` for a PIN);
    ``keypad_number``: whether they have one (`face_free_holds`). A
    resident who can be asked for face under a rule must also be able to
    finish that rule without face; one who can never be asked is not a
    face-parity problem (they may lack a way in for other reasons).
    """
    free = face_free_holds(holds, keypad_number)
    for rule in rules:
        if may_ask_face(rule, holds, devices) and not has_face_free_way(rule, free, devices):
            have, give = _have_give([rule], holds, devices)
            return (
                f"can be asked for face ({show_rule(rule)}) but has no face-free way to "
                f"finish (holds: {have}): {give}change the door rule"
            )
    return None


_GIVE = {"pin": "give them a PIN or ", "card": "give them a card or "}


def no_way_in_problem(rules: Iterable[Rule], holds: frozenset[str], devices: Devices,
                      keypad_number: bool = True) -> str | None:  # fmt: skip
    """Why a resident holding ``holds`` (``card``, ``pin``) can finish no combination
    of any of the door's ``rules`` without face on these devices, or None.

    The resident-side twin of `door_parity_problem`: a resident with a PIN and no
    card at a ``["card+pin"]`` door is refused every time (`doorpi.core.policy.lacking`),
    so `doorpi config check` and the device CLI name them when it is done. A PIN
    without a keypad number or a card is no way in (`face_free_holds`).
    """
    rules = list(rules)
    free = face_free_holds(holds, keypad_number)
    if any(has_face_free_way(rule, free, devices) for rule in rules):
        return None
    have, give = _have_give(rules, holds, devices)
    ways = " | ".join(dict.fromkeys(show_rule(r) for r in rules))
    return f"holds {have}: no way in at this door ({ways}): {give}change the door rule"


def face_free_next(rule: Rule, have: frozenset[str], holds: frozenset[str],
                   devices: Devices) -> str | None:  # fmt: skip
    """After a face failure: the next factor that finishes a face-free
    combination for this resident, or None when there is none.

    ``have`` are the factors already shown in this attempt; ``holds`` the
    credentials the resident has. PIN is preferred over card (the card is
    usually already shown)."""
    usable = (holds & devices.factors - {"face"}) | (have - {"face"})
    options = sorted(
        (len(c - have), show(c - have))
        for c in rule
        if "face" not in c and c <= usable and not c <= have
    )
    if not options:
        return None
    missing = set(options[0][1].split("+"))
    return next(f for f in ("pin", "card") if f in missing)


__all__ = [
    "Devices",
    "door_parity_problem",
    "face_free_holds",
    "face_free_next",
    "has_face_free_way",
    "may_ask_face",
    "missing_credential",
    "no_way_in_problem",
    "resident_parity_problem",
    "show",
    "show_rule",
]
