"""The gate's limits on a roster entry: one rule set for the gate and the laptop.

The gate applies `entry_problems` to every resident of a bundle; the admin's
`doorpi admin check` and `doorpi admin bundle` apply the very same function
with the limits that gate sent, so what the laptop accepts, the gate accepts.
The limits travel signed by the gate key: in every report (``status.rules``)
and, at pairing, in ``<stick>/doorpi/gates/<fingerprint>.rules`` next to the
gate's public key (`signed_rules` / `open_rules`).

The limits themselves come from the gate's config (`GateRules.from_config`):
``keypad.pin_min_length``/``pin_max_length`` (4-12, default 4-8), the names
under ``[schedules]`` and the weak-PIN rule of `doorpi.store.credentials`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

from doorpi.core.parity import Devices, Rule, show
from doorpi.store.credentials import PinPolicyError, check_pin_rules
from doorpi.sync.keys import PublicIdentity

RULES_FORMAT = "doorpi-gate-rules"
RULES_SUFFIX = ".rules"


@dataclass(frozen=True)
class GateRules:
    """What the gate's own config says a bundle must respect.

    ``opslimit``/``memlimit_kib`` are the gate's Argon2id cost (`[pin]`): they
    travel with the limits only so the gate hashes PINs as configured.
    """

    schedules: frozenset[str] = frozenset()
    pin_min: int = 4
    pin_max: int = 8
    opslimit: int = 2
    memlimit_kib: int = 19456
    #: The door's rules (``door.access`` then each ``door.schedule_access``), each
    #: its combinations as the config writes them ("card+pin"): for face parity.
    access: tuple[tuple[str, ...], ...] = ()
    #: The factors the fitted devices read ("card", "pin", "face"; `Config.devices`);
    #: None when the gate did not say (an older doorpi): no parity check then.
    devices: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> GateRules:
        access = tuple(tuple(show(c) for c in rule) for _, rule in cfg.rules())
        return cls(frozenset(cfg.schedules), cfg.keypad.pin_min_length, cfg.keypad.pin_max_length,
                   cfg.pin.opslimit, cfg.pin.memlimit_kib, access,
                   tuple(sorted(cfg.devices.factors)))  # fmt: skip

    def to_doc(self) -> dict[str, Any]:
        """The limits a laptop needs (no Argon2 cost: that is the gate's business)."""
        doc: dict[str, Any] = {"schedules": sorted(self.schedules), "pin_min": self.pin_min,
                               "pin_max": self.pin_max}  # fmt: skip
        if self.devices is not None:
            doc["door"] = {"access": [list(r) for r in self.access],
                           "devices": list(self.devices)}  # fmt: skip
        return doc

    def parity(self) -> tuple[list[Rule], Devices] | None:
        """(door rules as `doorpi.core.parity` rules, `Devices`), or None if unknown."""
        if self.devices is None:
            return None
        rules = [tuple(frozenset(c.split("+")) for c in rule) for rule in self.access]
        have = set(self.devices)
        return rules, Devices("card" in have, "pin" in have, "face" in have)

    @classmethod
    def from_doc(cls, doc: Any) -> GateRules | None:
        """Limits as a gate sent them, or None when they are not a valid rules table."""
        if not isinstance(doc, dict):
            return None
        sch, lo, hi = doc.get("schedules"), doc.get("pin_min"), doc.get("pin_max")
        if not isinstance(sch, list) or not all(isinstance(s, str) for s in sch):
            return None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
            return None
        assert isinstance(lo, int) and isinstance(hi, int)
        return cls(frozenset(sch), lo, hi, **_door_from_doc(doc.get("door")))

    def describe(self) -> str:
        names = ", ".join(sorted(self.schedules)) or "none"
        return f"PINs of {self.pin_min} to {self.pin_max} digits, schedules: {names}"


_FACTORS = frozenset({"card", "pin", "face"})


def _door_from_doc(door: Any) -> dict[str, Any]:
    """The door part of a rules table, or nothing when absent or not well formed."""
    if not isinstance(door, dict):
        return {}
    access, devices = door.get("access"), door.get("devices")
    if not isinstance(access, list) or not isinstance(devices, list):
        return {}
    if not all(isinstance(d, str) and d in _FACTORS for d in devices):
        return {}
    rules = []
    for rule in access:
        if not isinstance(rule, list) or not all(
            isinstance(c, str) and c and set(c.split("+")) <= _FACTORS for c in rule
        ):
            return {}
        rules.append(tuple(rule))
    return {"access": tuple(rules), "devices": tuple(devices)}


def entry_problems(rules: GateRules, entry: Any) -> list[tuple[str, str]]:
    """Why a gate with these limits would refuse this resident: (field, reason) pairs.

    ``entry`` is a `doorpi.sync.bundle.ResidentEntry`. An empty list means
    the gate takes it. The messages are for people (no PIN digits in them).
    """
    out: list[tuple[str, str]] = []
    if entry.schedule is not None and entry.schedule not in rules.schedules:
        known = ", ".join(sorted(rules.schedules)) or "none"
        out.append(
            ("schedule", f"{entry.schedule!r} is not a schedule on this gate (known: {known})")
        )
    if entry.pin is not None:
        try:
            check_pin_rules(entry.pin, rules.pin_min, rules.pin_max)
        except PinPolicyError as exc:
            out.append(("pin", str(exc)))
    return out


def _body(gate_fp: str, rules: GateRules) -> bytes:
    doc = {"format": RULES_FORMAT, "version": 1, "gate": gate_fp, "rules": rules.to_doc()}
    return json.dumps(doc, sort_keys=True).encode()


def signed_rules(signing: SigningKey, gate_fp: str, rules: GateRules) -> bytes:
    """The file a gate leaves beside its public key: its limits, signed by its key."""
    body = _body(gate_fp, rules)
    sig = signing.sign(body).signature
    doc = {"body": body.decode(), "signature": base64.b64encode(sig).decode()}
    return (json.dumps(doc, indent=2) + "\n").encode()


def open_rules(data: bytes, gate: PublicIdentity) -> GateRules | None:
    """The limits in a rules file, or None unless this gate's key signed them."""
    try:
        doc = json.loads(data)
        body = str(doc["body"]).encode()
        gate.verify_key.verify(body, base64.b64decode(doc["signature"], validate=True))
        inner = json.loads(body)
    except (ValueError, KeyError, TypeError, BadSignatureError):
        return None
    if not isinstance(inner, dict) or inner.get("format") != RULES_FORMAT:
        return None
    if inner.get("gate") != gate.fingerprint:
        return None
    return GateRules.from_doc(inner.get("rules"))
