"""Consent, withdrawal and template protection for the optional face entry.

consent (ConsentRecord, ConsentRegistry), notices (NoticeText, the gate sign
and consent form in zh/en), vault (TemplateVault: per-template keys, crypto-
shredding, rotation, integrity), enrolment (FacePrivacy, GateFaceMenu),
retention (RetentionSweeper), pia (ImpactAssessment), report (resident
report, face status), oncard (template on the resident's own card),
settings (the privacy keys of [face]). See `gate_checks` for what the gate
and `doorpi config check` call.
"""
