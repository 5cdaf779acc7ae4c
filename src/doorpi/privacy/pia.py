"""The personal-information impact assessment that must precede face recognition.

Why (PIPL 55-56, MFR, GDPR 35): processing sensitive personal information
needs an assessment of purpose, necessity, impact and protective measures
*before* it starts, kept on record. `require_assessment` is what the gate
and `doorpi config check` call when ``face.enabled`` is true: face cannot be
switched on until an `ImpactAssessment` is stored. Each record carries a
SHA-256 of its content so later edits are evident; records are never
updated, only superseded by newer ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import sqlite_utils

from doorpi.store.audit import AuditLog

FIELDS = ("purpose", "necessity", "impact", "measures")
MIN_CHARS = 20

TEMPLATE = """\
# doorpi impact assessment (PIPL 55-56). Fill every field, then:
#   doorpi pia record --file this-file.toml
purpose = \"\"\"Why face recognition at this gate, for whom, and what it must never be used for.\"\"\"
necessity = \"\"\"Why card and PIN alone are not enough for the residents who choose face;
that face is optional and card/PIN stay available at every door and time.\"\"\"
impact = \"\"\"What could go wrong for residents (leak, misuse, false accept, exclusion)
and how many people are affected.\"\"\"
measures = \"\"\"Consent and withdrawal, on-device encrypted templates, retention,
access control, audit log, staff training, who reviews this and when.\"\"\"
"""


class AssessmentError(ValueError):
    """No usable impact assessment; the message says what is missing."""


@dataclass(frozen=True)
class ImpactAssessment:
    purpose: str
    necessity: str
    impact: str
    measures: str
    author: str
    created: float
    id: int = 0

    @property
    def digest(self) -> str:
        body = {k: getattr(self, k) for k in (*FIELDS, "author")}
        body["created"] = round(self.created, 3)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def check(self) -> None:
        for name in FIELDS:
            text = getattr(self, name).strip()
            if len(text) < MIN_CHARS:
                raise AssessmentError(
                    f"{name}: must say something real (at least {MIN_CHARS} characters)"
                )
            if text == _template_value(name):
                raise AssessmentError(f"{name}: still the template text")
        if not self.author.strip():
            raise AssessmentError("author: who made the assessment")


def _template_value(name: str) -> str:
    import tomllib

    return str(tomllib.loads(TEMPLATE)[name]).strip()


class AssessmentRegistry:
    def __init__(self, db: sqlite_utils.Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def record(self, pia: ImpactAssessment) -> ImpactAssessment:
        pia.check()
        cur = self.db.execute(
            "INSERT INTO impact_assessments(created, author, purpose, necessity, impact, measures,"
            " digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [pia.created, pia.author.strip(), pia.purpose.strip(), pia.necessity.strip(),
             pia.impact.strip(), pia.measures.strip(), pia.digest],
        )  # fmt: skip
        stored = self.latest()
        assert stored is not None
        self.audit.append(
            "impact_assessment_recorded",
            {"id": cur.lastrowid, "author": pia.author, "digest": stored.digest[:16]},
            ts=pia.created,
        )
        return stored

    def all(self) -> list[ImpactAssessment]:
        rows = self.db.execute(
            "SELECT purpose, necessity, impact, measures, author, created, id, digest "
            "FROM impact_assessments ORDER BY id"
        ).fetchall()
        out = []
        for r in rows:
            pia = ImpactAssessment(*r[:7])
            if pia.digest != r[7]:
                raise AssessmentError(f"impact assessment {r[6]} was altered after it was stored")
            out.append(pia)
        return out

    def latest(self) -> ImpactAssessment | None:
        items = self.all()
        return items[-1] if items else None


def require_assessment(db: sqlite_utils.Database) -> ImpactAssessment:
    """The stored assessment, or AssessmentError: face may not be enabled without one."""
    pia = AssessmentRegistry(db, audit=None).latest()  # type: ignore[arg-type]
    if pia is None:
        raise AssessmentError(
            "face.enabled = true needs an impact assessment first: run `doorpi pia template`, "
            "fill it in, then `doorpi pia record --file FILE` (PIPL 55-56)"
        )
    return pia


def assessment_problem(db: sqlite_utils.Database) -> str | None:
    """Why face data may not be processed here (no assessment, or one altered), or None."""
    try:
        require_assessment(db)
    except AssessmentError as exc:
        return str(exc)
    return None


def as_dict(pia: ImpactAssessment) -> dict[str, Any]:
    return {**asdict(pia), "digest": pia.digest}


__all__ = [
    "FIELDS",
    "TEMPLATE",
    "AssessmentError",
    "AssessmentRegistry",
    "ImpactAssessment",
    "as_dict",
    "assessment_problem",
    "require_assessment",
]
