"""Templates for the site's other gates: only with the resident's consent, only sealed.

Why (MFR; law notes E19): moving face templates between the gates of one site
needs a per-person consent flag and may travel only encrypted to the
receiving gates. `export_for_site_gates` takes exactly the residents whose
live consent has ``share_site_gates`` set, re-seals each template under the
site's card/transfer key (`oncard.seal`, bound to the resident's pseudonym
instead of a card UID, so a blob cannot be re-labelled as someone else),
and writes one audit record naming how many left and for whom. The sync
bundle (USB, signed and encrypted again by doorpi.sync) carries the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doorpi.privacy.enrolment import FacePrivacy
from doorpi.privacy.oncard import SiteCardKeys, seal, unseal


@dataclass(frozen=True)
class SharedTemplate:
    pseudonym: str
    consent_id: int
    expires: float
    blob: bytes  # sealed: never the template in the clear


def _binding(pseudonym: str) -> bytes:
    return b"doorpi-site-share|" + pseudonym.encode()


def export_for_site_gates(
    privacy: FacePrivacy, keys: SiteCardKeys, by: str
) -> list[SharedTemplate]:
    """Sealed templates of the residents who agreed to the site's other gates."""
    now = privacy.clock()
    rows = privacy.storage.db.execute(
        "SELECT t.pseudonym, c.id, t.expires, r.id FROM face_templates t "
        "JOIN face_consents c ON c.id = t.consent_id "
        "JOIN residents r ON r.pseudonym = t.pseudonym "
        "WHERE c.share_site_gates = 1 AND c.withdrawn_at IS NULL AND c.retention_end > ? "
        "AND t.expires > ? AND r.active = 1 ORDER BY t.id",
        [now, now],
    ).fetchall()
    out: list[SharedTemplate] = []
    residents: list[int] = []
    vault = privacy.vault
    for pseudonym, consent_id, expires, rid in rows:
        v = vault._rows(pseudonym)
        if not v:
            continue
        e = vault._decrypt_row(v[0][:6])
        if e is None:
            continue
        e = e / np.linalg.norm(e)
        out.append(SharedTemplate(pseudonym, consent_id, expires,
                                  seal(keys, _binding(pseudonym), e, consent_id, expires)))  # fmt: skip
        residents.append(int(rid))
    privacy.storage.audit.append(
        "face_templates_exported",
        {"count": len(out), "resident_ids": residents, "to": "site_gates", "by": by},
        ts=now,
    )
    return out


def open_shared(keys: SiteCardKeys, item: SharedTemplate, now: float) -> np.ndarray:
    """The receiving gate's side: verify and decrypt (OnCardError if not genuine)."""
    return unseal(keys, _binding(item.pseudonym), item.blob, now).template


__all__ = ["SharedTemplate", "export_for_site_gates", "open_shared"]
