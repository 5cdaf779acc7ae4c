"""Processing records and the impact assessment (law notes F20, PIPL 55-56):
consent, enrolment, withdrawal, deletion and admin records outlive the 30-day
entry log for their own period; no template arrives or is enrolled without an
impact assessment on file; `config check` says face cannot be on without one."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from privacy_support import DAY, FACE_ON, enrol, face_site, unit_vector

from doorpi.config import ConfigError
from doorpi.sim.site import sim_config
from doorpi.store.audit import GOVERNANCE_KINDS

PROCESSING = {"face_consent_recorded", "face_enrolled", "face_template_stored",
              "face_template_deleted", "face_consent_withdrawn", "admin",
              "impact_assessment_recorded"}  # fmt: skip


def _kinds(records) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.kind for r in records}


def test_pruning_the_entry_log_keeps_the_processing_records(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(51))
    privacy.withdraw(alice, by="admin:li", channel="admin")
    storage.audit.append("admin", {"action": "resident_added", "by": "li"}, ts=clock())
    storage.audit.append("access", {"granted": True, "resident_id": alice}, ts=clock())
    assert GOVERNANCE_KINDS | {"impact_assessment_recorded"} >= PROCESSING
    clock.advance(31 * DAY)
    storage.audit.append("access", {"granted": True, "resident_id": alice}, ts=clock())
    n = storage.audit.prune(clock() - 30 * DAY, governance_older_than=clock() - 365 * DAY)
    assert n >= 8
    left = list(storage.audit.records())
    assert [r.kind for r in left] == ["access", "audit_pruned"]  # the entry log moved on
    kept = storage.audit.governance()
    assert _kinds(kept) >= PROCESSING, _kinds(kept)
    assert "access" not in _kinds(kept)
    assert storage.audit.verify().ok  # each kept record still verifies under the audit key
    # A year later (the period given) they go too, even with no entry left to cut.
    clock.advance(366 * DAY)
    # (entry cut-off 0: nothing in the entry log is older, so no entry is cut)
    assert storage.audit.prune(0.0, governance_older_than=clock() - 365 * DAY) == 0
    assert not (PROCESSING & _kinds(storage.audit.governance()))


def test_processing_records_cannot_be_cut_early_or_edited(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(52))
    clock.advance(31 * DAY)
    storage.audit.prune(clock() - 30 * DAY)  # no governance period given: kept for ever
    assert storage.db.execute("SELECT count(*) FROM governance_records").fetchone()[0] >= 3
    with pytest.raises(sqlite3.IntegrityError, match="kept for their retention period"):
        storage.db.execute("DELETE FROM governance_records")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        storage.db.execute("UPDATE governance_records SET data = '{}'")
    storage.db.execute("DROP TRIGGER governance_no_update")  # by hand, with the file
    storage.db.execute(
        "UPDATE governance_records SET data = replace(data, 'admin:test', 'nobody') "
        "WHERE kind = 'face_consent_recorded'"
    )
    result = storage.audit.verify()
    assert not result.ok and "governance record" in result.problem


def test_governance_period_is_at_least_a_year(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"audit\.governance_retention_days: .* 365 to"):
        sim_config({"audit": {"governance_retention_days": 30}}, tmp_path / "d")
    assert sim_config({}, tmp_path / "d").audit.governance_retention_days == 1095


def test_the_gate_prunes_entries_but_keeps_processing_records(tmp_path: Path) -> None:
    site = face_site(tmp_path, {**FACE_ON, "audit": {"governance_retention_days": 365}})
    try:
        site.gate.storage.audit.append("admin", {"action": "pin_set", "by": "li"},
                                       ts=site.clock.wall())  # fmt: skip
        site.card("04a1b2c3d4e5f6")
        site.clock.advance(31 * DAY)
        site.advance(3601, step=600)
        audit = site.gate.storage.audit
        assert "access" not in _kinds(audit.records())
        kept = _kinds(audit.governance())
        assert {"admin", "impact_assessment_recorded"} <= kept
        assert audit.verify().ok
        site.clock.advance(340 * DAY)  # past a year from the records
        site.advance(3601, step=600)
        assert "impact_assessment_recorded" not in _kinds(audit.governance())
    finally:
        site.close()


def test_config_check_says_face_cannot_be_on_without_an_assessment(cfg_path: Path) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg_path), "config", "check"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    r = check()
    assert r.returncode == 0, r.stderr
    assert "WARNING: face cannot be on: face.enabled = true needs an impact assessment" in r.stdout
    assert "face off: it cannot be on" in r.stdout and "face on)" not in r.stdout
    from doorpi.store import Storage

    s = Storage.open(cfg_path.parent / "data")
    try:
        from privacy_support import PIA

        from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment

        AssessmentRegistry(s.db, s.audit).record(ImpactAssessment(**PIA, author="DPO",
                                                                  created=1.0))  # fmt: skip
    finally:
        s.close()
    r = check()
    assert r.returncode == 0 and "face on)" in r.stdout and "WARNING" not in r.stdout, r.stdout


# Kinds the privacy code writes at entry time, not processing records: a card-held
# template that did not verify is an entry attempt (pruned with the entry log).
ENTRY_TIME_KINDS = {"face_card_rejected"}


def test_every_privacy_record_kind_is_a_processing_record_or_named_an_entry() -> None:
    """A new kind of consent, enrolment or deletion record must not fall back to the
    entry log's 30 days: every kind the privacy code and the admin CLI write is in
    GOVERNANCE_KINDS or named here as an entry-time record."""
    import re

    src = Path(__file__).resolve().parents[2] / "src" / "doorpi"
    pattern = re.compile(r'(?:_log|append)\(\s*\(?\s*"([a-z_]+)"')
    written: set[str] = set()
    for path in [*(src / "privacy").glob("*.py"), src / "cli" / "common.py"]:
        written |= set(pattern.findall(path.read_text()))
    assert {"face_consent_withdrawn", "face_templates_cleared", "admin"} <= written  # sees them
    unclassified = written - GOVERNANCE_KINDS - ENTRY_TIME_KINDS
    assert not unclassified, f"not classified: {sorted(unclassified)}"


def test_cli_prune_keeps_processing_records_and_log_shows_them(cfg_path: Path) -> None:
    """`doorpi audit prune` cuts entries after 30 days and processing records only
    after their own period, counted from a time the gate vouched for (its clock
    floor); `doorpi log --processing` shows them after the entry log moved on."""
    import time

    from doorpi.store import Storage
    from doorpi.store.db import set_state
    from human_output import assert_human

    cfg_path.write_text(cfg_path.read_text() + "[audit]\ngovernance_retention_days = 365\n")
    now = time.time()
    s = Storage.open(cfg_path.parent / "data")
    try:
        s.audit.append("admin", {"action": "consent_recorded", "by": "li"}, ts=now - 400 * DAY)
        s.audit.append("face_consent_withdrawn", {"resident_id": 7, "by": "resident"},
                       ts=now - 300 * DAY)  # fmt: skip
        s.audit.append("access", {"granted": True, "resident_id": 7}, ts=now - 40 * DAY)
        # The clock floor lags 60 days behind this wall clock (a gate whose clock
        # was set ahead by hand): the 400-day-old record is 340 vouched days old.
        set_state(s.db, "clock_floor", repr(now - 60 * DAY))
    finally:
        s.close()

    def doorpi(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg_path), *argv],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    r = doorpi("audit", "prune")
    assert r.returncode == 0 and "processing records are kept 365 days" in r.stdout, r.stderr
    assert "access" not in doorpi("log").stdout.split("audit_pruned")[0]
    r = doorpi("log", "--processing")
    assert r.returncode == 0, r.stderr
    assert "consent_recorded" in r.stdout and "face_consent_withdrawn" in r.stdout, r.stdout
    assert "GRANTED" not in r.stdout
    assert_human(r.stdout)
    s = Storage.open(cfg_path.parent / "data")  # once the vouched time passes the year
    try:
        set_state(s.db, "clock_floor", repr(now))
    finally:
        s.close()
    doorpi("audit", "prune")
    r = doorpi("log", "--processing")
    assert "consent_recorded" not in r.stdout and "face_consent_withdrawn" in r.stdout, r.stdout
