"""Building blocks for the sync tests: real keys, real SQLite, cheap Argon2 cost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from doorpi.store import Storage
from doorpi.sync.bundle import (
    CardEntry,
    EnrollmentBundle,
    ResidentEntry,
    TemplateEntry,
    seal_bundle,
)
from doorpi.sync.importer import BundleImporter, GateRules
from doorpi.sync.keys import GateIdentity, SiteKey
from doorpi.sync.roster import pin_tag
from doorpi.sync.templates import seal_template

RULES = GateRules(frozenset({"always", "workdays"}), 4, 8, opslimit=1, memlimit_kib=8192)
T0 = 1_780_000_000.0  # 2026-05-28, "now" for the tests


class MemorySink:
    """A TemplateSink that keeps sealed templates in a dict, as the vault would on disk."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.deleted: list[str] = []

    def store_sealed(self, pseudonym: str, sealed: bytes) -> None:
        self.stored[pseudonym] = sealed

    def delete(self, pseudonym: str) -> None:
        self.deleted.append(pseudonym)
        self.stored.pop(pseudonym, None)


def resident(key: str, n: int, site: SiteKey | None = None, **kw: Any) -> ResidentEntry:
    """A plausible resident number n; the PIN tag is keyed like the admin side does it."""
    pin = kw.pop("pin", f"{(n * 7919) % 10000:04d}9")
    tag_key = site.pin_tag_key if site else b"k" * 32
    base = ResidentEntry(
        key=key,
        name=f"Resident {n}",
        unit=f"{n // 100}-{n % 100:02d}",
        keypad_id=str(100 + n),
        valid_until=T0 + 365 * 86400,
        cards=(CardEntry(f"04{n:012x}", "fob"),),
        pin=pin,
        pin_tag=pin_tag(tag_key, key, pin) if pin is not None else None,
    )
    return replace(base, **kw)


class GateRig:
    """One gate on disk (data dir, keys, database) paired with one site."""

    def __init__(self, data_dir: Path, site: SiteKey, sink: MemorySink | None = None) -> None:
        self.data_dir = data_dir
        self.site = site
        self.identity = GateIdentity.create(data_dir / "keys", "main-gate")
        self.storage = Storage.open(data_dir)
        self.sink = sink
        self.now = T0
        self.importer = BundleImporter(self.storage, self.identity, RULES, sink, lambda: self.now)
        self.importer.trust_site(site.public)
        self.peer = other_gate()  # a second gate of the site, source of shared templates

    def bundle(self, seq: int, residents: list[ResidentEntry] | tuple[ResidentEntry, ...] = (),
               **kw: Any) -> EnrollmentBundle:  # fmt: skip
        return EnrollmentBundle(
            site=self.site.fingerprint,
            gate=self.identity.fingerprint,
            sequence=seq,
            created=kw.pop("created", self.now - 60),
            site_name="Test Court",
            residents=tuple(residents),
            peers=kw.pop("peers", (self.peer.public,)),
            **kw,
        )

    def seal(self, bundle: EnrollmentBundle) -> bytes:
        return seal_bundle(bundle, self.site, self.identity.public)

    def apply(self, bundle: EnrollmentBundle):
        return self.importer.import_bytes(self.seal(bundle))

    def snapshot(self) -> list[tuple[Any, ...]]:
        """The resident set as the door sees it (PIN hashes are salted: presence only)."""
        return snapshot(self.storage)


def snapshot(storage: Storage) -> list[tuple[Any, ...]]:
    db = storage.db
    cards: dict[int, list[str]] = {}
    for h, rid in db.execute("SELECT card_hash, resident_id FROM cards"):
        cards.setdefault(rid, []).append(h)
    rows = db.execute(
        "SELECT id, name, unit, keypad_id, valid_from, valid_until, schedule, active, "
        "face_refused, pin_hash IS NOT NULL FROM residents ORDER BY name"
    ).fetchall()
    return [(*r[1:], tuple(sorted(cards.get(r[0], [])))) for r in rows]


EMBEDDING = b"embedding:" + bytes(range(256)) * 2


def template(
    resident_key: str, source: GateIdentity, dest: GateIdentity, consent: bool = True
) -> TemplateEntry:
    """A real sealed template from ``source`` to ``dest``, signed by the source gate."""
    sealed = seal_template(source, dest.public, resident_key, EMBEDDING)
    return TemplateEntry(resident_key, source.fingerprint, consent, sealed)


def other_gate(name: str = "car-park") -> GateIdentity:
    return GateIdentity(PrivateKey.generate(), SigningKey.generate(), name)
