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
    """A TemplateSink that keeps sealed templates in a dict, as the vault would on disk.

    Changes are staged until `finish` (commit) or dropped by `discard`
    (rollback), like the real sink's audit records.
    """

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.withdrawn: list[tuple[str, float]] = []
        self.forgotten: list[str] = []
        self.suspended: list[tuple[str, float]] = []
        self.finished = 0
        self.discarded = 0

    def store_sealed(self, conn: Any, pseudonym: str, sealed: bytes, source_gate: str) -> str:
        if self.stored.get(pseudonym) == sealed:
            return "unchanged"
        self.stored[pseudonym] = sealed
        return "stored"

    def delete(self, conn: Any, pseudonym: str) -> bool:
        self.deleted.append(pseudonym)
        return self.stored.pop(pseudonym, None) is not None

    def withdraw_before(self, conn: Any, pseudonym: str, at: float) -> int:
        self.withdrawn.append((pseudonym, at))
        return int(self.stored.pop(pseudonym, None) is not None)

    def suspend_before(self, conn: Any, pseudonym: str, at: float) -> int:
        self.suspended.append((pseudonym, at))
        return int(pseudonym in self.stored)

    def forget(self, conn: Any, pseudonym: str) -> None:
        self.forgotten.append(pseudonym)
        self.stored.pop(pseudonym, None)

    def finish(self) -> None:
        self.finished += 1

    def discard(self) -> None:
        self.discarded += 1


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

    def __init__(
        self, data_dir: Path, site: SiteKey, sink: MemorySink | None = None, pia: bool = True
    ) -> None:
        self.data_dir = data_dir
        self.site = site
        self.identity = GateIdentity.create(data_dir / "keys", "main-gate")
        self.storage = Storage.open(data_dir)
        if pia:  # a gate that takes face templates has its impact assessment on file
            from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment

            AssessmentRegistry(self.storage.db, self.storage.audit).record(
                ImpactAssessment(**PIA_TEXT, author="DPO Li", created=T0)
            )
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


#: Alice shares her face with the site's gates, Bob does not (roster TOML).
SHARING_ROSTER = """
[[residents]]
key = "a-1"
name = "Alice"
keypad_id = "101"
share_face_with_site_gates = true
[[residents]]
key = "b-2"
name = "Bob"
keypad_id = "102"
"""

EMBEDDING = b"embedding:" + bytes(range(256)) * 2


def template(
    resident_key: str, source: GateIdentity, dest: GateIdentity, consent: bool = True
) -> TemplateEntry:
    """A real sealed template from ``source`` to ``dest``, signed by the source gate."""
    sealed = seal_template(source, dest.public, resident_key, EMBEDDING)
    return TemplateEntry(resident_key, source.fingerprint, consent, sealed)


def other_gate(name: str = "car-park") -> GateIdentity:
    return GateIdentity(PrivateKey.generate(), SigningKey.generate(), name)


# ------------------------------------------------------------------ real face vaults

PIA_TEXT = dict(
    purpose="Open the site's gates for residents who choose face entry.",
    necessity="Convenience; card and PIN stay at every gate.",
    impact="Leak or misuse of face templates of the site's residents.",
    measures="Separate consent, encrypted templates on the gates, retention, audit.",
)


def make_privacy(
    storage: Storage,
    data_dir: Path,
    clock: Any,
    allow_site_sharing: bool = True,
    gate: GateIdentity | None = None,
    template_storage: str = "device",
) -> Any:
    """The real face facade of a gate's data dir (vault key in its keys dir)."""
    from doorpi.privacy.enrolment import FacePrivacy, SiteIdentity
    from doorpi.privacy.settings import PrivacySettings
    from doorpi.privacy.vault import TemplateVault

    vault = TemplateVault(storage.db, data_dir / "keys", storage.audit, clock=clock)
    settings = PrivacySettings(
        allow_site_sharing=allow_site_sharing, template_storage=template_storage
    )
    site = SiteIdentity("Test Court", "Test Court Property Co.", "+86 10 5555 0100")
    return FacePrivacy(storage, vault, settings, site, clock=clock, gate=gate)


def real_sink(privacy: Any, identity: GateIdentity) -> Any:
    from doorpi.privacy.share import SiteTemplateSink
    from doorpi.sync.templates import unseal_for_vault

    return SiteTemplateSink(privacy, lambda b: unseal_for_vault(b, identity))


def face_privacy(rig: GateRig, allow_site_sharing: bool = True, storage: str = "device") -> Any:
    """`make_privacy` for a rig, with an impact assessment on file (enrolment needs one)."""
    from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment

    AssessmentRegistry(rig.storage.db, rig.storage.audit).record(
        ImpactAssessment(**PIA_TEXT, author="DPO Li", created=rig.now)
    )
    return make_privacy(
        rig.storage, rig.data_dir, lambda: rig.now, allow_site_sharing, rig.identity, storage
    )


def wire_vault(rig: GateRig, allow_site_sharing: bool = True, storage: str = "device") -> Any:
    """Connect a rig's importer to a real vault, as `doorpi sync import` does."""
    from doorpi.privacy.share import SiteTemplateSource

    privacy = face_privacy(rig, allow_site_sharing, storage)
    rig.importer.sink = real_sink(privacy, rig.identity)
    rig.importer.source = SiteTemplateSource(privacy) if allow_site_sharing else None
    return privacy


def unit(seed: int) -> Any:
    import numpy as np

    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def shared_template(
    key: str, source: GateIdentity, dest: GateIdentity, embedding: Any, **consent: Any
) -> TemplateEntry:
    """A template with its consent record as a source gate's vault would export it."""
    from doorpi.privacy.consent import ConsentRecord
    from doorpi.privacy.share import TemplatePayload

    c = dict(id=7, pseudonym="", notice_version="consent-zh-2", notice_hash="ab" * 32, lang="zh",
             given_at=T0 - 86400, confirmed_by="resident:card+pin", channel="gate",
             retention_end=T0 + 300 * 86400, minor=False, guardian=None, share_site_gates=True,
             withdrawn_at=None, withdrawn_by=None)  # fmt: skip
    c.update(consent)
    rec = ConsentRecord(**c)
    payload = TemplatePayload(rec, rec.retention_end, embedding).to_bytes()
    return TemplateEntry(
        key, source.fingerprint, True, seal_template(source, dest.public, key, payload)
    )


class TwoGateSite:
    """An admin and two gates with real vaults ("home" registered first, so it is
    the card-key gate), one stick going round as the admin carries it."""

    def __init__(self, tmp: Path, roster_toml: str, storage: str = "device") -> None:
        import tomllib

        from doorpi.sync.admin import AdminSite
        from doorpi.sync.roster import parse_roster

        self.admin = AdminSite.init(tmp / "admin", "Test Court")
        self.home = GateRig(tmp / "home", self.admin.key)
        self.away = GateRig(tmp / "away", self.admin.key)
        for rig in (self.home, self.away):
            rig.privacy = wire_vault(rig, storage=storage)  # type: ignore[attr-defined]
        self.admin.add_gate(self.home.identity.public, "home")
        self.admin.add_gate(self.away.identity.public, "away")
        self.stick = tmp / "stick"
        self.stick.mkdir()
        self.roster = parse_roster(tomllib.loads(roster_toml), self.admin.key.pin_tag_key)

    def visit(self, rig: GateRig) -> Any:
        """`admin bundle` (relaying what the gates left), the gate's import, `report read`."""
        a = self.admin
        relayed, keys = a.collect_outbox(self.stick), a.collect_card_keys(self.stick)
        a.write_stick(self.stick, a.build(self.roster, templates=relayed, card_keys=keys))
        a.clear_outbox(self.stick, relayed)
        a.clear_card_keys(self.stick, keys)
        rep = rig.importer.import_stick(self.stick)[0]
        a.read_reports(self.stick)
        assert rep.result == "applied", rep.reason
        return rep

    def resident_id(self, rig: GateRig, keypad_id: str = "101") -> int:
        return int(rig.storage.residents.by_keypad_id(keypad_id).id)
