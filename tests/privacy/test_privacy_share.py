"""Sharing with the site's other gates (law notes E19): per-person consent, sealed, logged."""

from __future__ import annotations

from dataclasses import replace

import pytest
from privacy_support import enrol, unit_vector

from doorpi.privacy.oncard import OnCardError, SiteCardKeys
from doorpi.privacy.share import SharedTemplate, export_for_site_gates, open_shared


def test_only_consenting_residents_leave_and_only_sealed(privacy, storage, alice, clock):
    privacy.settings = replace(privacy.settings, allow_site_sharing=True)
    bob = storage.residents.add("Bob", clock(), keypad_id="202").id
    ea, eb = unit_vector(1), unit_vector(2)
    enrol(privacy, alice, ea, share_site_gates=True)
    enrol(privacy, bob, eb)  # Bob did not tick the box
    keys = SiteCardKeys(b"\x07" * 32)
    (item,) = export_for_site_gates(privacy, keys, by="admin:li")
    assert item.pseudonym == storage.residents.get(alice).pseudonym
    assert ea.tobytes() not in item.blob and ea.tobytes()[:32] not in item.blob
    got = open_shared(keys, item, clock())
    assert float(got @ keys.transform.apply(ea)) > 0.999
    rec = [r for r in storage.audit.records() if r.kind == "face_templates_exported"][-1]
    assert rec.data == {"count": 1, "resident_ids": [alice], "to": "site_gates", "by": "admin:li"}
    # Relabelled as Bob, or opened with another site's key: refused.
    bob_p = storage.residents.get(bob).pseudonym
    with pytest.raises(OnCardError):
        open_shared(keys, SharedTemplate(bob_p, item.consent_id, item.expires, item.blob), clock())
    with pytest.raises(OnCardError):
        open_shared(SiteCardKeys(b"\x08" * 32), item, clock())


def test_withdrawn_residents_are_never_exported(privacy, alice):
    privacy.settings = replace(privacy.settings, allow_site_sharing=True)
    enrol(privacy, alice, unit_vector(3), share_site_gates=True)
    privacy.withdraw(alice, by="resident", channel="gate")
    assert export_for_site_gates(privacy, SiteCardKeys(b"\x07" * 32), by="admin:li") == []
