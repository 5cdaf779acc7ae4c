"""Who at this gate would depend on face: the core parity rule applied to the
residents stored here (requirement 1 and 4).

`doorpi.core.parity` decides; this module only reads what it needs from the
store: which credentials each resident holds and who can be asked for face (a
template on this device, or a live consent where templates live on cards).
Used when consents start (`FacePrivacy.start_enrolment` refuses), by the gate
at start and after each sync (audit notice and a fault `doorpi status`
shows), and by the device CLI when a PIN or card is taken away (a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from doorpi.core.parity import Devices, no_way_in_problem, resident_parity_problem
from doorpi.store import Storage
from doorpi.store.residents import Resident

FAULT = "face_parity"  # the fault board's name for the standing problem


def holds(storage: Storage, resident: Resident) -> frozenset[str]:
    """The face-free credentials a resident has: ``card`` (any card), ``pin``."""
    return _held(resident.has_pin, storage.residents.cards(resident.id))


@dataclass(frozen=True)
class FaceDependent:
    """A resident who can be asked for face at this door with no face-free finish."""

    resident_id: int
    problem: str

    def line(self, door: str) -> str:
        return f"resident {self.resident_id} at door {door!r} {self.problem}"


class ParityCheck:
    """Resident parity for one gate's config and store."""

    def __init__(self, cfg: Any, storage: Storage) -> None:
        self.cfg = cfg
        self.storage = storage
        self.rules = [rule for _, rule in cfg.rules()]
        self.devices: Devices = cfg.devices

    def problem(self, resident: Resident) -> str | None:
        """Would this resident depend on face here, once they hold a template?"""
        if not resident.active:
            return None
        return resident_parity_problem(self.rules, holds(self.storage, resident), self.devices,
                                       keypad_number=resident.keypad_id is not None)  # fmt: skip

    def dependents(self, asked_for_face: Callable[[Resident], bool]) -> list[FaceDependent]:
        """Residents who can be asked for face now and have no face-free finish."""
        out = []
        for r in self.storage.residents.all():
            if not asked_for_face(r):
                continue
            problem = self.problem(r)
            if problem:
                out.append(FaceDependent(r.id, problem))
        return out


def face_holders(privacy: Any, now: float) -> Callable[[Resident], bool]:
    """Who the gate can ask for face: a template on this device, or (templates on
    cards) a live consent, since their card may carry one."""

    def asked(r: Resident) -> bool:
        if r.face_refused:
            return False
        if privacy.vault.info(r.pseudonym) is not None:
            return True
        return privacy.consents.live(r.pseudonym, now) is not None

    return asked


def dependents_summary(found: list[FaceDependent]) -> str:
    """One line for the fault board / status."""
    ids = ", ".join(str(d.resident_id) for d in found[:10])
    more = f" (+{len(found) - 10} more)" if len(found) > 10 else ""
    return (
        f"{len(found)} resident(s) can be asked for face with no face-free way in "
        f"(ids {ids}{more}): give them the card or PIN they lack or change the door rule"
    )


def gate_dependents(
    cfg: Any, storage: Storage, privacy: Any, now: float
) -> tuple[list[FaceDependent], str]:
    """The gate's check at start and after each sync: the face-dependent
    residents and the one-line summary (empty when there are none)."""
    found = ParityCheck(cfg, storage).dependents(face_holders(privacy, now))
    return found, dependents_summary(found) if found else ""


def roster_face_parity(
    storage: Storage, rules: list[Any], devices: Devices, keys: dict[str, int], now: float
) -> tuple[list[str], list[dict[str, str]]]:
    """For the sync report: the roster keys (``keys``: roster key -> resident id)
    the gate can ask for face now, and those of them with no face-free way to
    finish, each with the reason. Reads only the store (no vault key needed)."""
    from types import SimpleNamespace

    from doorpi.privacy.consent import ConsentRegistry

    if "face" not in devices.factors:
        return [], []

    def template(pseudonym: str) -> object:  # the vault's rows, without its keys
        q = "SELECT 1 FROM face_templates WHERE pseudonym = ?"
        return storage.db.execute(q, [pseudonym]).fetchone()

    view = SimpleNamespace(vault=SimpleNamespace(info=template),
                           consents=ConsentRegistry(storage.db, storage.audit))  # fmt: skip
    asked = face_holders(view, now)
    holders: list[str] = []
    dependents: list[dict[str, str]] = []
    for key, rid in sorted(keys.items()):
        r = storage.residents.get(rid)
        if r is None or not r.active or not asked(r):
            continue
        holders.append(key)
        problem = resident_parity_problem(rules, holds(storage, r), devices,
                                          keypad_number=r.keypad_id is not None)  # fmt: skip
        if problem:
            dependents.append({"resident": key, "problem": problem})
    return holders, dependents


def clear_device_templates(privacy: Any, now: float) -> int:
    """Templates on cards (requirement 18): the device holds none. A gate
    switched from ``template_storage = "device"`` deletes the templates it still
    holds, each on record, and purges once; returns how many went."""
    if privacy.settings.template_storage != "card":
        return 0
    gone = 0
    for pseudonym in privacy.vault.pseudonyms():
        if privacy.vault.delete(pseudonym, reason="template_storage_card", purge=False):
            gone += 1
    if gone:
        privacy.vault.purge()
        privacy.storage.audit.append(
            "face_templates_cleared",
            {"count": gone, "reason": 'face.template_storage = "card": the device keeps none'},
            ts=now,
        )
        import logging

        logging.getLogger("doorpi.privacy").warning(
            'face.template_storage = "card": deleted %d template(s) kept on this device', gone
        )
    return gone


def no_way_in_lines(
    cfg: Any, residents: Iterable[tuple[int, str, frozenset[str], bool]]
) -> list[str]:
    """One line per active resident who can finish no combination of the door's
    rules without face (`doorpi.core.parity.no_way_in_problem`): a PIN and no card
    at a ``["card+pin"]`` door is refused at every attempt. ``residents``: (id,
    name, the face-free credentials held, as `holds` gives them, whether they
    have a keypad number) of the active residents."""
    from doorpi.validation import safe_text

    rules = [rule for _, rule in cfg.rules()]
    out = []
    for rid, name, held, keypad_number in residents:
        problem = no_way_in_problem(rules, held, cfg.devices, keypad_number)
        if problem:
            out.append(f"resident {rid} ({safe_text(name)}) at door {cfg.door.name!r} {problem}")
    return out


def stored_no_way_in(cfg: Any, conn: Any) -> list[str]:
    """`no_way_in_lines` for every active resident of a database (``conn``: a
    sqlite3 connection, read-only is enough: `doorpi config check`)."""
    rows = conn.execute(
        "SELECT r.id, r.name, r.pin_hash IS NOT NULL, "
        "EXISTS (SELECT 1 FROM cards c WHERE c.resident_id = r.id), r.keypad_id IS NOT NULL "
        "FROM residents r WHERE r.active = 1 ORDER BY r.id"
    ).fetchall()
    return no_way_in_lines(cfg, [(rid, name, _held(pin, card), bool(number))
                                 for rid, name, pin, card, number in rows])  # fmt: skip


def _held(has_pin: Any, has_card: Any) -> frozenset[str]:
    return frozenset(k for k, v in (("pin", has_pin), ("card", has_card)) if v)


def warn_lines(cfg: Any, storage: Storage, resident_id: int) -> list[str]:
    """For the device CLI after a PIN or card is taken away: a warning line if
    this resident is now face-dependent here (nothing when face is off)."""
    if not cfg.face.enabled:
        return []
    from doorpi.privacy.enrolment import build_face_privacy

    r = storage.residents.get(resident_id)
    if r is None:
        return []
    import time

    privacy = build_face_privacy(cfg, storage)
    if not face_holders(privacy, time.time())(r):
        return []
    problem = ParityCheck(cfg, storage).problem(r)
    return [FaceDependent(r.id, problem).line(cfg.door.name)] if problem else []


__all__ = [
    "FAULT",
    "FaceDependent",
    "ParityCheck",
    "clear_device_templates",
    "dependents_summary",
    "face_holders",
    "gate_dependents",
    "holds",
    "no_way_in_lines",
    "roster_face_parity",
    "stored_no_way_in",
    "warn_lines",
]
