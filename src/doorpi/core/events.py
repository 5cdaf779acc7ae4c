"""Typed events (what the edge saw) and commands (what the core wants done).

Data flows one way: adapters turn hardware into events, the core turns events
into commands and audit records, and actuators carry out commands. Every type
here is a frozen dataclass with a stable ``kind`` name so that one serialiser
(`as_record`) serves the audit log, the demo's JSON lines and the tests'
expected sequences. No event ever carries a face image or an embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

# ---------------------------------------------------------------- events in


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class CardPresented(Event):
    """A card was read. ``card_id`` is the protocol's identity (UID or a
    cryptographically authenticated card number); the core only ever sees a
    keyed hash of it after the store's lookup."""

    kind: ClassVar[str] = "card_presented"
    card_id: bytes
    reader: str = ""
    method: str = "uid"


@dataclass(frozen=True, slots=True)
class CardRemoved(Event):
    kind: ClassVar[str] = "card_removed"
    reader: str = ""


@dataclass(frozen=True, slots=True)
class CardReadFailed(Event):
    """A card answered badly or not at all. The other paths keep working."""

    kind: ClassVar[str] = "card_read_failed"
    reader: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReaderStatus(Event):
    """A reader appeared or went away (unplug, pcscd restart)."""

    kind: ClassVar[str] = "reader_status"
    reader: str
    present: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class KeyPressed(Event):
    """One key from a keypad: '0'-'9', '*', '#', 'A'-'D', or 'F' (face)."""

    kind: ClassVar[str] = "key_pressed"
    key: str
    keypad: str = "keypad"


@dataclass(frozen=True, slots=True)
class DoorContactChanged(Event):
    kind: ClassVar[str] = "door_contact"
    is_open: bool


@dataclass(frozen=True, slots=True)
class ExitRequested(Event):
    kind: ClassVar[str] = "exit_requested"


@dataclass(frozen=True, slots=True)
class ExitReleased(Event):
    """The exit button (REX) let go; with `ExitRequested` it gives the gate the
    button's level, so a button stuck pressed can be reported."""

    kind: ClassVar[str] = "exit_released"


@dataclass(frozen=True, slots=True)
class DeviceStatus(Event):
    """An input device (USB keypad ...) went away or came back; ``reason`` is one line."""

    kind: ClassVar[str] = "device_status"
    device: str
    present: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TamperChanged(Event):
    kind: ClassVar[str] = "tamper"
    active: bool


@dataclass(frozen=True, slots=True)
class FireAlarmChanged(Event):
    """The fire-alarm input's raw levels: ``alarm`` (the panel's contact in its
    alarm state) and ``wiring_ok`` (False: the supervised loop is broken, which
    counts as an alarm). Gates treat it ahead of every other queued event."""

    kind: ClassVar[str] = "fire_input"
    alarm: bool
    wiring_ok: bool = True


@dataclass(frozen=True, slots=True)
class LockdownSwitchChanged(Event):
    """The lockdown key switch's raw level (``active``: turned to lockdown)."""

    kind: ClassVar[str] = "lockdown_switch"
    active: bool


@dataclass(frozen=True, slots=True)
class FaceMatched(Event):
    """The face path identified an enrolled resident (live, above threshold).

    Carries the resident's id and the match score only; never the embedding.
    """

    kind: ClassVar[str] = "face_matched"
    resident_id: int
    score: float
    live: bool = True


@dataclass(frozen=True, slots=True)
class FaceRejected(Event):
    """A face attempt failed (no match, liveness, quality, camera or model
    fault). No biometric data: only the reason."""

    kind: ClassVar[str] = "face_rejected"
    reason: str


@dataclass(frozen=True, slots=True)
class FaceEnrolled(Event):
    """A consented enrolment capture finished; the template is in the vault."""

    kind: ClassVar[str] = "face_enrolled"
    resident_id: int


@dataclass(frozen=True, slots=True)
class FaceHint(Event):
    """Guidance for the person at the camera: too_far, too_dark, look_straight ..."""

    kind: ClassVar[str] = "face_hint"
    hint: str


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """Time passes: lets timers (relay pulse, held-open, PIN timeout) fire."""

    kind: ClassVar[str] = "tick"


# ---------------------------------------------------------------- commands out


@dataclass(frozen=True, slots=True)
class Command:
    kind: ClassVar[str] = "command"


@dataclass(frozen=True, slots=True)
class Unlock(Command):
    """Energise (fail-secure) or de-energise (fail-safe) the strike; ``seconds``
    0 means held released by a door mode (fire release, unlock window) until
    the mode ends."""

    kind: ClassVar[str] = "relay_on"
    seconds: float


@dataclass(frozen=True, slots=True)
class Lock(Command):
    kind: ClassVar[str] = "relay_off"
    reason: str = "timeout"


@dataclass(frozen=True, slots=True)
class Feedback(Command):
    """LED/buzzer pattern: granted, denied, locked_out, alarm, key, enrol, done."""

    kind: ClassVar[str] = "feedback"
    pattern: str


@dataclass(frozen=True, slots=True)
class Alarm(Command):
    """A door alarm started (active) or cleared: forced, held, tamper."""

    kind: ClassVar[str] = "alarm"
    alarm: str
    active: bool


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Decision:
    """Who may enter, and why or why not. ``reason`` is a short stable code
    (see `doorpi.core.policy.Reason`) used in the audit log and the tests."""

    kind: ClassVar[str] = "access"
    granted: bool
    reason: str
    resident_id: int | None = None
    factors: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth recording that is neither a decision nor a command:
    door opened/closed, lockout started, reader lost, clock jumped ..."""

    kind: ClassVar[str] = "notice"
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


def as_record(item: Event | Command | Decision | Notice) -> dict[str, Any]:
    """One flat JSON-able dict for the audit log and demo output.

    Bytes (card ids) are never emitted raw: callers hash them before they
    reach a record, and any left are replaced by their length.
    """
    if isinstance(item, Notice):
        out: dict[str, Any] = {"event": item.what}
        out.update(item.detail)
        return out
    out = {"event": item.kind}
    for f in fields(item):  # type: ignore[arg-type]
        value = getattr(item, f.name)
        if isinstance(value, bytes) or (f.name == "detail" and not value):
            continue
        if isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


__all__ = [
    "Alarm",
    "CardPresented",
    "CardReadFailed",
    "CardRemoved",
    "Command",
    "Decision",
    "DeviceStatus",
    "DoorContactChanged",
    "Event",
    "ExitReleased",
    "ExitRequested",
    "FaceEnrolled",
    "FaceHint",
    "FaceMatched",
    "FaceRejected",
    "Feedback",
    "FireAlarmChanged",
    "KeyPressed",
    "Lock",
    "LockdownSwitchChanged",
    "Notice",
    "ReaderStatus",
    "TamperChanged",
    "Tick",
    "Unlock",
    "as_record",
]
