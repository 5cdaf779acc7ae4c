"""Card and PIN secrets as the database keeps them.

Cards: keyed BLAKE2b of the card identifier (a UID is not a secret, but the
database should not be a list of cloneable UIDs either). PINs: the PIN is
first peppered with the device's PIN key (keyed BLAKE2b), then hashed with
Argon2id at a cost tuned for a 512 MB Pi. Without the device key a stolen
database cannot be brute-forced offline even though PINs are short.
"""

from __future__ import annotations

import functools
import os

from nacl import pwhash
from nacl.encoding import HexEncoder, RawEncoder
from nacl.exceptions import InvalidkeyError
from nacl.hash import blake2b

from doorpi.store.secrets import DeviceSecrets


class PinPolicyError(ValueError):
    """A PIN that may not be set; the message says why."""


def card_hash(secrets: DeviceSecrets, card_id: bytes) -> str:
    return blake2b(card_id, digest_size=16, key=secrets.card_key, encoder=HexEncoder).decode()


def _pepper(secrets: DeviceSecrets, pin: str) -> bytes:
    return blake2b(pin.encode(), digest_size=32, key=secrets.pin_key, encoder=RawEncoder)


def check_pin_rules(pin: str, min_len: int, max_len: int) -> None:
    """Raise `PinPolicyError` unless ``pin`` is ASCII digits the site allows.

    Normalise what a person typed with `doorpi.validation.pin_digits` first
    (full-width digits become ASCII there); this check refuses anything a
    keypad cannot send, so a PIN that can never be typed is never stored.
    """
    if not (pin.isascii() and pin.isdigit()):
        raise PinPolicyError("a PIN has digits 0-9 only")
    if not min_len <= len(pin) <= max_len:
        raise PinPolicyError(f"a PIN has {min_len} to {max_len} digits")
    if len(set(pin)) == 1 or pin in "0123456789012" or pin in "9876543210987":
        raise PinPolicyError("a PIN may not be one repeated digit or a straight run")


def hash_pin(secrets: DeviceSecrets, pin: str, opslimit: int, memlimit_kib: int) -> str:
    """The stored form of a PIN; raises `PinPolicyError` for anything but ASCII digits."""
    if not (pin.isascii() and pin.isdigit()):
        raise PinPolicyError("a PIN has digits 0-9 only")
    return pwhash.argon2id.str(
        _pepper(secrets, pin), opslimit=opslimit, memlimit=memlimit_kib * 1024
    ).decode()


@functools.lru_cache(maxsize=4)
def decoy_hash(opslimit: int, memlimit_kib: int) -> str:
    """An Argon2id hash of 32 random bytes (never a PIN), at the site's cost.

    `check_pin` verifies against it when there is nothing to check, so an
    unknown keypad number costs the same time as a known one (issue #15: 16 ms
    against 1 ms on a PC, about 77 ms on a Pi, otherwise). Made once per process.
    """
    return pwhash.argon2id.str(
        os.urandom(32), opslimit=opslimit, memlimit=memlimit_kib * 1024
    ).decode()


def check_pin(
    secrets: DeviceSecrets, stored: str | None, pin: str, opslimit: int, memlimit_kib: int
) -> bool:
    """`verify_pin` that takes the same time whether or not a hash is stored.

    ``stored`` is None for an unknown resident number or a resident without a
    PIN: then a decoy hash at the configured cost is checked and the answer is
    False. Hashes stored at another cost take their own time.
    """
    if stored is None:
        verify_pin(secrets, decoy_hash(opslimit, memlimit_kib), pin)
        return False
    return verify_pin(secrets, stored, pin)


def verify_pin(secrets: DeviceSecrets, stored: str, pin: str) -> bool:
    try:
        return bool(pwhash.argon2id.verify(stored.encode(), _pepper(secrets, pin)))
    except InvalidkeyError:
        return False
    except Exception:  # a corrupt hash string must deny, not crash the gate
        return False
