"""Retention (C12), impact assessment and logging (F20-F22), the resident report."""

from __future__ import annotations

import json

import pytest
from privacy_support import DAY, NOW, PIA, enrol, unit_vector

from doorpi.privacy.pia import (
    AssessmentError,
    AssessmentRegistry,
    ImpactAssessment,
    require_assessment,
)
from doorpi.privacy.report import face_status, format_report, resident_report
from doorpi.privacy.retention import RetentionSweeper
from doorpi.privacy.settings import FILING_THRESHOLD, PrivacySettings, privacy_settings

# ---------------------------------------------------------------- retention


def test_sweeper_deletes_at_the_consented_retention_end_and_logs_it(
    privacy, storage, alice, clock, data_dir
):
    enrol(privacy, alice, unit_vector(1), retention_days=30)
    sweeper = RetentionSweeper(storage, privacy.vault, clock)
    assert sweeper.sweep() == []
    clock.advance(29 * DAY)
    assert sweeper.sweep() == [] and privacy.vault.count() == 1
    clock.advance(DAY)
    (gone,) = sweeper.sweep()
    assert (gone.resident_id, gone.reason) == (alice, "retention_ended")
    assert privacy.vault.count() == 0
    rec = [r for r in storage.audit.records() if r.kind == "face_template_expired"][-1]
    assert rec.data == {"resident_id": alice, "reason": "retention_ended"}


def test_sweeper_deletes_when_the_residents_validity_ends(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(2))
    storage.residents.update(alice, clock(), valid_until=NOW + 5 * DAY)  # moves out
    sweeper = RetentionSweeper(storage, privacy.vault, clock)
    assert sweeper.sweep() == []
    clock.advance(5 * DAY)
    assert [e.reason for e in sweeper.sweep()] == ["resident_validity_ended"]
    assert privacy.identify(unit_vector(2), 0.45) is None


def test_template_expiry_is_capped_by_validity_at_enrolment(privacy, storage, alice, clock):
    storage.residents.update(alice, clock(), valid_until=NOW + 3 * DAY)
    enrol(privacy, alice, unit_vector(3), retention_days=365)
    info = privacy.vault.info(storage.residents.get(alice).pseudonym)
    assert info is not None and info.expires == NOW + 3 * DAY


# ---------------------------------------------------------------- impact assessment


def test_face_cannot_be_enabled_without_an_impact_assessment(storage, clock):
    with pytest.raises(AssessmentError, match="impact assessment"):
        require_assessment(storage.db)
    AssessmentRegistry(storage.db, storage.audit).record(
        ImpactAssessment(**PIA, author="DPO Li", created=clock())
    )
    assert require_assessment(storage.db).author == "DPO Li"
    assert [r.kind for r in storage.audit.records()] == ["impact_assessment_recorded"]


@pytest.mark.parametrize("field", ["purpose", "necessity", "impact", "measures"])
def test_an_empty_or_placeholder_assessment_is_refused(storage, clock, field):
    reg = AssessmentRegistry(storage.db, storage.audit)
    with pytest.raises(AssessmentError, match=field):
        reg.record(ImpactAssessment(**{**PIA, field: "tbd"}, author="x", created=clock()))
    import tomllib

    from doorpi.privacy.pia import TEMPLATE

    placeholder = tomllib.loads(TEMPLATE)[field]
    with pytest.raises(AssessmentError, match="template"):
        reg.record(ImpactAssessment(**{**PIA, field: placeholder}, author="x", created=clock()))
    assert reg.latest() is None


def test_an_altered_assessment_is_detected(storage, clock):
    reg = AssessmentRegistry(storage.db, storage.audit)
    reg.record(ImpactAssessment(**PIA, author="DPO Li", created=clock()))
    storage.db.execute("UPDATE impact_assessments SET necessity = 'because we can'")
    with pytest.raises(AssessmentError, match="altered"):
        require_assessment(storage.db)


def test_every_enrolment_withdrawal_deletion_and_export_is_logged(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(4))
    privacy.withdraw(alice, by="admin:li", channel="admin")
    resident_report(storage, alice, by="admin:li", now=clock())
    k = [r.kind for r in storage.audit.records()]
    for needed in ("face_enrolment_started", "face_consent_recorded", "face_template_stored",
                   "face_enrolled", "face_template_deleted", "face_consent_withdrawn",
                   "resident_report_exported"):  # fmt: skip
        assert needed in k, needed
    assert storage.audit.verify().ok


# ---------------------------------------------------------------- resident report


def test_report_shows_what_is_stored_but_never_the_template(privacy, storage, alice, clock):
    e = unit_vector(5)
    enrol(privacy, alice, e, retention_days=100)
    storage.audit.append("access", {"granted": True, "reason": "granted", "resident_id": alice,
                                    "factors": ["card", "face"]}, ts=clock())  # fmt: skip
    storage.audit.append("access", {"granted": True, "reason": "granted", "resident_id": 99,
                                    "factors": ["card"]}, ts=clock())  # fmt: skip
    rep = resident_report(storage, alice, by="resident", now=clock())
    assert rep["resident"]["name"] == "Alice Wang" and rep["resident"]["unit"] == "3-101"
    assert rep["face"]["template"]["stored"] is True
    assert rep["face"]["template"]["retention_end"] == NOW + 100 * DAY
    (c,) = rep["face"]["consents"]
    assert c["notice_version"] == "2026.3" and c["retention_end"] == NOW + 100 * DAY
    assert rep["accesses"] == [{"ts": NOW, "granted": True, "reason": "granted",
                                "factors": ["card", "face"]}]  # fmt: skip
    blob = json.dumps(rep) + format_report(rep)
    ct, wrapped = storage.db.execute(
        "SELECT t.ciphertext, k.wrapped_key FROM face_templates t JOIN face_template_keys k "
        "ON k.template_id = t.id").fetchone()  # fmt: skip
    for secret in (bytes(ct), bytes(wrapped), e.tobytes()):
        assert secret.hex() not in blob and secret[:12].hex() not in blob
    import base64

    assert base64.b64encode(bytes(ct))[:16].decode() not in blob
    assert storage.residents.get(alice).pseudonym not in blob
    assert "pin_hash" not in blob and "$argon2" not in blob
    text = format_report(rep)
    assert "deleted by" in text and "consent #1" in text


def test_report_for_unknown_resident(storage):
    from doorpi.privacy.report import ReportError

    with pytest.raises(ReportError):
        resident_report(storage, 42, by="admin")


# ---------------------------------------------------------------- status and settings


def test_status_counts_face_holders_and_warns_near_the_filing_threshold(
    privacy, storage, alice, clock
):
    settings = PrivacySettings(count_warning=100)
    enrol(privacy, alice, unit_vector(6))
    st = face_status(storage, settings, now=clock())
    assert (st["face_templates"], st["face_data_holders"], st["warnings"]) == (1, 1, [])
    rows = [(f"p{i:06d}", "v", "h", "en", NOW, "admin", "admin_present", NOW + DAY)
            for i in range(99)]  # fmt: skip
    storage.db.conn.executemany(
        "INSERT INTO face_consents(pseudonym, notice_version, notice_hash, lang, given_at, "
        "confirmed_by, channel, retention_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    st = face_status(storage, settings, now=clock())
    assert st["face_data_holders"] == 100
    assert len(st["warnings"]) == 1 and "nearing the 100,000" in st["warnings"][0]
    more = [(f"q{i:06d}", "v", "h", "en", NOW, "a", "gate", NOW + DAY)
            for i in range(FILING_THRESHOLD - 100)]  # fmt: skip
    with storage.db.conn:  # one transaction, not 100,000 fsyncs
        storage.db.conn.execute("BEGIN")
        storage.db.conn.executemany(
            "INSERT INTO face_consents(pseudonym, notice_version, notice_hash, lang, given_at, "
            "confirmed_by, channel, retention_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            more,
        )
    st = face_status(storage, settings, now=clock())
    assert st["face_data_holders"] == FILING_THRESHOLD
    assert "must file with the regulator" in st["warnings"][0]
    # Expired consents do not count; Alice's template (one year) still does.
    assert face_status(storage, settings, now=NOW + 2 * DAY)["face_data_holders"] == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"retention_days": 0}, "face.retention_days"),
        ({"retention_days": 4000}, "face.retention_days"),
        ({"retention_days": 400, "max_retention_days": 300}, "must not exceed"),
        ({"template_storage": "cloud"}, "face.template_storage"),
        ({"capture_zone": " "}, "face.capture_zone"),
        ({"capture_zone": {"fr": "ici"}}, "face.capture_zone.fr"),
        ({"count_warning": 200_000}, "face.count_warning"),
        ({"notice_lang": "de"}, "face.notice_lang"),
        ({"allow_site_sharing": "yes"}, "face.allow_site_sharing"),
    ],
)
def test_privacy_settings_are_validated(settings, message):
    with pytest.raises(ValueError, match=message):
        privacy_settings(settings)


def test_privacy_settings_defaults_and_pipeline_keys_ignored():
    s = privacy_settings({"threshold": 0.5, "retention_days": 180, "capture_zone": {"en": "here"}})
    assert s.retention_days == 180 and s.template_storage == "device"
    assert s.capture_zone["en"] == "here" and "方框" in s.capture_zone["zh"]
