"""Fixtures for the privacy tests: a real data dir, a resident, the face facade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from doorpi.privacy.enrolment import FacePrivacy, SiteIdentity
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.privacy.settings import PrivacySettings
from doorpi.privacy.vault import TemplateVault
from doorpi.store import Storage

NOW = 1_772_442_000.0  # 2026-03-02 09:00 UTC
DAY = 86400.0
SITE = SiteIdentity(
    "Sunny Garden", "Sunny Garden Property Management Co.", "+86 10 5555 0100, privacy@example.cn"
)

PIA = dict(
    purpose="Open the main gate for residents who choose face entry; nothing else.",
    necessity="Convenience for residents carrying goods; card and PIN stay at every door.",
    impact="Leak or misuse of face templates of up to 800 residents; false accepts.",
    measures="Separate consent, on-device encrypted templates, retention, audit log.",
)


class FakeClock:
    """Wall time the tests move by hand."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def unit_vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """The same face seen again: the template plus a little noise."""
    w = v + noise * np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (w / np.linalg.norm(w)).astype(np.float32)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(data_dir: Path) -> Iterator[Storage]:
    s = Storage.open(data_dir)
    yield s
    s.close()


@pytest.fixture
def vault(storage: Storage, data_dir: Path, clock: FakeClock) -> TemplateVault:
    return TemplateVault(storage.db, data_dir / "keys", storage.audit, clock=clock)


@pytest.fixture
def privacy(storage: Storage, vault: TemplateVault, clock: FakeClock) -> FacePrivacy:
    AssessmentRegistry(storage.db, storage.audit).record(
        ImpactAssessment(**PIA, author="DPO Li", created=clock())
    )
    return FacePrivacy(storage, vault, PrivacySettings(), SITE, clock=clock)


@pytest.fixture
def alice(storage: Storage, clock: FakeClock) -> int:
    return storage.residents.add("Alice Wang", clock(), unit="3-101", keypad_id="101").id


OPERATOR = "li"
OPERATOR_PASSPHRASE = "correct horse battery"


def add_operator(data_dir: Path, name: str = OPERATOR) -> list[str]:
    """Enrol an operator as `doorpi operator add` does; returns the CLI options
    that sign them in (``--operator NAME --passphrase-file FILE``)."""
    from doorpi.operators import OperatorStore
    from doorpi.store.db import open_db, set_state

    OperatorStore(data_dir).add(name, OPERATOR_PASSPHRASE, NOW, by="test")
    db = open_db(data_dir / "doorpi.db")
    set_state(db, "operators_enrolled", "1")
    db.conn.close()
    pf = data_dir.parent / f"{name}.passphrase"
    pf.write_text(OPERATOR_PASSPHRASE + "\n")
    return ["--operator", name, "--passphrase-file", str(pf)]


def enrol(privacy: FacePrivacy, resident_id: int, embedding: np.ndarray, **consent: object) -> int:
    ticket = privacy.start_enrolment(resident_id, "admin_present", by="admin:test")
    privacy.consent(ticket, confirmed_by="admin:test", **consent)  # type: ignore[arg-type]
    return privacy.enrol(resident_id, embedding)


def disk_blobs(root: Path) -> dict[Path, bytes]:
    """Every file under the data directory, read raw (database, WAL, SHM, keys)."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def found(root: Path, needles: list[bytes]) -> list[str]:
    """Which needles (or any 16-byte piece of one) appear in any file under root."""
    hits = []
    for path, blob in disk_blobs(root).items():
        for i, n in enumerate(needles):
            pieces = [n[j : j + 16] for j in range(0, len(n) - 15, 16)] or [n]
            if any(p in blob for p in pieces):
                hits.append(f"needle {i} in {path.name}")
    return hits


# ---------------------------------------------------------------- a simulated gate with face

MONDAY_9 = 1_772_442_000.0
ALICE = {"name": "Alice", "keypad_id": "101", "cards": ["04a1b2c3d4e5f6"], "pin": "2468"}
FACE_ON = {
    "face": {"enabled": True},
    "site": {"controller": "Sunny Garden PM Co.", "contact": "+86 10 5555 0100"},
    "door": {"access": ["card", "pin", "face"]},
}


def face_site(tmp_path: Path, overrides: dict, with_pia: bool = True):  # type: ignore[no-untyped-def]
    """A SimulatedSite (real gate, mock pins, replayed frames) with Alice and,
    unless told otherwise, an impact assessment on file; ``site.events`` collects."""
    from site_support import recorded_site

    data = tmp_path / "data"
    if with_pia:
        s = Storage.open(data)
        AssessmentRegistry(s.db, s.audit).record(
            ImpactAssessment(**PIA, author="DPO", created=MONDAY_9)
        )
        s.close()
    site = recorded_site(data, config=overrides, settle=False)
    site.rid = site.add_resident(ALICE)  # type: ignore[attr-defined]
    return site


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    """A gate config with face on (retention 90 days) and its data dir under tmp_path."""
    p = tmp_path / "doorpi.toml"
    p.write_text(
        '[site]\nname = "Sunny Garden"\ncontroller = "Sunny Garden PM Co."\n'
        f'contact = "+86 10 5555 0100"\ndata_dir = "{tmp_path / "data"}"\n'
        "[face]\nenabled = true\nretention_days = 90\n"
    )
    return p
