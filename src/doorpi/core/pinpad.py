"""The keypad's typing buffer: digits, '*' to clear, '#' to submit, timeout.

Pure: `press()` gets the key and monotonic time and says what the press
means; the gate decides what a submitted entry is (a resident number or a PIN).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import Any


class PadAction(Enum):
    TYPING = "typing"  # a digit was taken
    SUBMIT = "submit"  # '#': entry is complete (digits in .digits)
    CLEAR = "clear"  # '*' with something typed: start this entry again
    CANCEL = "cancel"  # '*' on an empty entry: abandon the whole attempt
    FACE = "face"  # the face key ('F', or 'A' on a 4x4 pad): ask for the camera
    TIMED_OUT = "timed_out"  # the previous entry was forgotten before this key
    IGNORED = "ignored"  # unknown key, or too many digits


@dataclass(frozen=True, slots=True)
class PadResult:
    action: PadAction
    digits: str = ""


FACE_KEYS = frozenset({"F", "A"})
DIGITS = "0123456789"
# What a keypad sends: a 3x4 matrix or a USB keypad's digits, '*', '#'; a 4x4 matrix
# adds A-D (A is the face key; B-D are ignored).
KEYS = frozenset(DIGITS + "*#ABCDF")


def keypad_key(key: str) -> str | None:
    """``key`` as a keypad sends it, or None when no keypad has it.

    Typed text (a scenario's ``keys``, the demo's prompt) may hold full-width or
    other compatibility forms: NFKC reads ``１`` as ``1`` and ``＃`` as ``#``, as
    doorpi.validation reads keypad numbers and PINs. Digits of other scripts
    (Arabic-Indic ``٣``, Devanagari ``३``) are not keypad keys: None."""
    k = unicodedata.normalize("NFKC", key).upper()
    return k if k in KEYS else None


class PinPad:
    def __init__(self, timeout: float = 10.0, max_digits: int = 12) -> None:
        self.timeout = timeout
        self.max_digits = max_digits
        self._buf: list[str] = []
        self._last = 0.0

    @property
    def typed(self) -> int:
        return len(self._buf)

    def expired(self, now: float) -> bool:
        return bool(self._buf) and now - self._last > self.timeout

    def reset(self) -> None:
        self._buf.clear()

    def press(self, key: str, now: float) -> PadResult:
        if self.expired(now):
            self._buf.clear()
            self._last = now
            result = self.press(key, now)
            if result.action is PadAction.TYPING:
                return PadResult(PadAction.TIMED_OUT)
            return result
        self._last = now
        if len(key) == 1 and key in DIGITS:  # a keypad sends ASCII digits only
            if len(self._buf) >= self.max_digits:
                return PadResult(PadAction.IGNORED)
            self._buf.append(key)
            return PadResult(PadAction.TYPING)
        if key == "*":
            if self._buf:
                self._buf.clear()
                return PadResult(PadAction.CLEAR)
            return PadResult(PadAction.CANCEL)
        if key == "#":
            digits = "".join(self._buf)
            self._buf.clear()
            return PadResult(PadAction.SUBMIT, digits)
        if key in FACE_KEYS:
            return PadResult(PadAction.FACE)
        return PadResult(PadAction.IGNORED)


def keypad_number_habit(
    resident: Any, factors: set[str] | frozenset[str], digits: str, already: bool
) -> bool:
    """After a card tap, are these digits the resident's own keypad number typed out
    of habit (``101#2468#`` on a card+PIN door), not a wrong PIN?

    Asked only once the digits failed as a PIN, and only once per attempt, so a
    PIN equal to the keypad number still works and the number never becomes a
    free guess. Not counted toward the lockout; the holder of the card learns
    nothing they could not read on the door (the keypad number is the unit's).
    """
    return (
        not already and resident is not None and "card" in factors
        and bool(resident.keypad_id) and digits == resident.keypad_id
    )  # fmt: skip
