"""What the gate holds about one resident, for the resident to read.

Why (PIPL 44-45, peers "what none of them has" 9): a resident may ask what is
stored about them and who saw it. The report lists the identity fields, the
cards (by reference only), whether a PIN is set, every consent record with
its notice version, the face template's *existence*, dates and retention end
(never its bytes or anything derived from them), and the resident's entries
and face events from the audit log. Producing a report is itself logged as
an export. `face_status` gives `doorpi status` its face-data count and the
warning as the site nears the 100,000-person filing threshold (MFR 15).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo
from typing import Any

from doorpi.privacy.consent import ConsentRegistry
from doorpi.privacy.settings import FILING_THRESHOLD, PrivacySettings
from doorpi.store import Storage

FACE_KINDS = frozenset(
    {
        "face_consent_recorded",
        "face_consent_withdrawn",
        "face_enrolment_started",
        "face_enrolled",
        "face_refused",
        "face_template_expired",
        "face_card_written",
        "resident_report_exported",
    }
)


class ReportError(LookupError):
    """No such resident."""


def resident_report(
    storage: Storage, resident_id: int, by: str, now: float | None = None, access_limit: int = 200
) -> dict[str, Any]:
    """Everything stored about one resident except secrets and biometric bytes."""
    now = time.time() if now is None else now
    r = storage.residents.get(resident_id)
    if r is None:
        raise ReportError(f"no resident {resident_id}")
    db = storage.db
    consents = ConsentRegistry(db, storage.audit).history(r.pseudonym)
    t = db.execute(
        "SELECT created, expires, consent_id FROM face_templates WHERE pseudonym = ?",
        [r.pseudonym],
    ).fetchone()
    template: dict[str, Any] | None = None
    if t is not None:
        template = {
            "stored": True,
            "where": "this device, encrypted under its own key",
            "created": t[0],
            "retention_end": t[1],
            "consent_id": t[2],
        }
    accesses: list[dict[str, Any]] = []
    face_events: list[dict[str, Any]] = []
    for rec in storage.audit.records():
        if rec.data.get("resident_id") != resident_id:
            continue
        if rec.kind == "access":
            accesses.append({"ts": rec.ts, "granted": rec.data.get("granted"),
                             "reason": rec.data.get("reason"),
                             "factors": rec.data.get("factors")})  # fmt: skip
        elif rec.kind in FACE_KINDS or rec.kind == "admin":
            face_events.append({"ts": rec.ts, "kind": rec.kind,
                                **{k: v for k, v in rec.data.items() if k != "resident_id"}})  # fmt: skip
    report: dict[str, Any] = {
        "resident": {
            **r.public(),
            "created": r.created,
            "cards": storage.residents.cards(resident_id),
        },
        "face": {
            "refused": r.face_refused,
            "template": template or {"stored": False},
            "consents": [c.public() for c in consents],
        },
        "accesses": accesses[-access_limit:],
        "accesses_total": len(accesses),
        "privacy_events": face_events,
        "generated": now,
        "not_included": "PIN hash, card identifiers, face template bytes: stored only in "
        "protected form and never shown",
    }
    storage.audit.append("resident_report_exported", {"resident_id": resident_id, "by": by}, ts=now)
    return report


def site_face_count(reports: list[tuple[str, float, dict[str, Any]]],
                    warn_at: int = 90_000) -> tuple[int, list[str]]:  # fmt: skip
    """The site's face-data count from the gates' reports (gate, created, status),
    newest report per gate, and the warnings for the admin (MFR Art. 15).

    The count is the sum over gates: a person enrolled at two gates counts twice,
    so it never understates how close the site is to `FILING_THRESHOLD`.
    """
    newest: dict[str, tuple[float, int]] = {}
    for gate, created, status in reports:
        n = status.get("face_holders")
        counted = isinstance(n, int) and not isinstance(n, bool) and n >= 0
        if counted and (gate not in newest or created > newest[gate][0]):
            newest[gate] = (created, n)
    total = sum(n for _, n in newest.values())
    warnings: list[str] = []
    if total >= FILING_THRESHOLD:
        warnings.append(f"{total:,} people have face data on this site: at {FILING_THRESHOLD:,} "
                        "the operator must file with the regulator (MFR Art. 15)")  # fmt: skip
    elif total >= warn_at:
        warnings.append(f"{total:,} people have face data on this site, nearing the "
                        f"{FILING_THRESHOLD:,} filing threshold (MFR Art. 15)")  # fmt: skip
    return total, warnings


def format_report(report: dict[str, Any], tz: tzinfo = UTC) -> str:
    """The report as plain text for printing; times in ``tz`` (site.timezone)."""

    def _when(ts: float | None) -> str:
        return "-" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")

    r = report["resident"]
    f = report["face"]
    lines = [f"What this gate stores about resident {r['id']} ({_when(report['generated'])})", ""]
    for key in ("name", "unit", "keypad_id", "schedule", "active", "has_pin"):
        lines.append(f"  {key:<14} {r[key]}")
    lines.append(f"  {'valid_from':<14} {_when(r['valid_from'])}")
    lines.append(f"  {'valid_until':<14} {_when(r['valid_until'])}")
    lines.append(f"  {'cards':<14} {', '.join(c['ref'] for c in r['cards']) or '-'}")
    lines += ["", "Face recognition:"]
    lines.append(f"  refused        {f['refused']}")
    t = f["template"]
    if t.get("stored"):
        lines.append(f"  template       stored on {t['where']}, since {_when(t['created'])}, "
                     f"deleted by {_when(t['retention_end'])}")  # fmt: skip
    else:
        lines.append("  template       none stored")
    for c in f["consents"]:
        state = f"withdrawn {_when(c['withdrawn_at'])} by {c['withdrawn_by']}" if c[
            "withdrawn_at"] else f"in force until {_when(c['retention_end'])}"  # fmt: skip
        lines.append(
            f"  consent #{c['id']}    {_when(c['given_at'])}, notice {c['notice_version']} "
            f"({c['lang']}, sha256 {c['notice_hash'][:12]}), confirmed by {c['confirmed_by']}, "
            f"{state}"
            + (f", guardian {c['guardian']}" if c["guardian"] else "")
            + (", shared with the site's other gates" if c["share_site_gates"] else "")
        )
    lines += ["", f"Entries ({report['accesses_total']} in the log, which keeps them for a "
              "limited time):"]  # fmt: skip
    for a in report["accesses"]:
        result = "granted" if a["granted"] else f"refused ({a['reason']})"
        lines.append(f"  {_when(a['ts'])}  {result}  {'+'.join(a['factors'] or [])}")
    lines += ["", "Privacy events:"]
    for e in report["privacy_events"]:
        lines.append(f"  {_when(e['ts'])}  {e['kind']}")
    lines += ["", f"Not shown: {report['not_included']}."]
    return "\n".join(lines)


def face_status(
    storage: Storage, settings: PrivacySettings, now: float | None = None
) -> dict[str, Any]:
    """Counts for `doorpi status`: how many people have face data here."""
    now = time.time() if now is None else now
    db = storage.db
    templates = int(db.execute("SELECT count(*) FROM face_templates").fetchone()[0])
    holders = int(
        db.execute(
            "SELECT count(*) FROM (SELECT pseudonym FROM face_templates UNION "
            "SELECT pseudonym FROM face_consents WHERE withdrawn_at IS NULL AND retention_end > ?)",
            [now],
        ).fetchone()[0]
    )
    refused = int(db.execute("SELECT count(*) FROM residents WHERE face_refused = 1").fetchone()[0])
    pia = db.execute("SELECT count(*) FROM impact_assessments").fetchone()[0] > 0
    warnings: list[str] = []
    if holders >= FILING_THRESHOLD:
        warnings.append(
            f"{holders} people have face data on this site: at {FILING_THRESHOLD:,} the operator "
            "must file with the regulator (MFR Art. 15)"
        )
    elif holders >= settings.count_warning:
        warnings.append(
            f"{holders} people have face data on this site, nearing the {FILING_THRESHOLD:,} "
            "filing threshold (MFR Art. 15)"
        )
    return {
        "face_templates": templates,
        "face_data_holders": holders,
        "face_refusals": refused,
        "impact_assessment": pia,
        "template_storage": settings.template_storage,
        "warnings": warnings,
    }


__all__ = ["FACE_KINDS", "ReportError", "face_status", "format_report", "resident_report"]
