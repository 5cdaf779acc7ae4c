"""Marking a face false match (peers' users cannot): `doorpi log false-match SEQ`.

The template that let the wrong person in leaves face-alone (1:N) matching
until the resident enrols again; face with their card or number, card and
PIN keep working; the report is in the audit log and `doorpi status` warns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from privacy_support import PIA, enrol, near, unit_vector

import doorpi.cli
from doorpi.config import load_config
from doorpi.privacy.enrolment import build_face_privacy
from doorpi.privacy.gallery import VaultGallery
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.store import Storage


def test_suspended_template_is_never_best_but_still_competes(privacy, alice, storage, clock):
    e_alice = unit_vector(1)
    enrol(privacy, alice, e_alice)
    bob = storage.residents.add("Bob", clock(), keypad_id="102").id
    e_bob = unit_vector(2)  # somebody else
    enrol(privacy, bob, e_bob)
    gallery = VaultGallery(privacy.vault, clock)
    probe = near(e_alice, 0.05, 9)
    assert gallery.search(probe).identity == str(alice)
    assert privacy.vault.suspend_hands_free(storage.residents.get(alice).pseudonym, clock())
    m = gallery.search(probe)
    # Bob is best now, but Alice's template still counts as second: the margin fails.
    assert m.identity == str(bob) and m.second > m.score
    assert privacy.identify(probe, 0.45, margin=0.05) is None
    # 1:1 (with her card or number) is unaffected.
    scores = dict(zip(gallery.ids, gallery.scores(probe), strict=True))
    assert scores[str(alice)] > 0.8  # far above the 0.45 threshold
    # Enrolling again replaces the row: face alone works again.
    enrol(privacy, alice, e_alice)
    assert gallery.search(probe).identity == str(alice)


def test_false_match_command(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(cfg_path)
    store = Storage.open(cfg.site.data_dir)
    AssessmentRegistry(store.db, store.audit).record(
        ImpactAssessment(**PIA, author="DPO", created=1.0)
    )
    rid = store.residents.add("Alice", 1.0, keypad_id="101").id
    privacy = build_face_privacy(cfg, store)
    ticket = privacy.start_enrolment(rid, "admin_present", by="admin:li")
    privacy.consent(ticket, confirmed_by="admin:li")
    e = unit_vector(3)
    privacy.enrol(rid, e)
    grant = store.audit.append("access", {"granted": True, "reason": "granted",
                                          "resident_id": rid, "factors": ["face"]}, ts=2.0)  # fmt: skip
    denied = store.audit.append("access", {"granted": False, "reason": "no_match",
                                           "resident_id": None, "factors": ["face"]}, ts=3.0)  # fmt: skip

    def run(*argv: str) -> tuple[int, str]:
        rc = doorpi.cli.main(["--config", str(cfg_path), *argv])
        out = capsys.readouterr()
        return rc, out.out + out.err

    rc, out = run("log", "false-match", str(denied.seq))
    assert rc == 2 and f"record {denied.seq} is not a granted entry by face" in out
    rc, out = run("log", "false-match", "99999")
    assert rc == 2 and "no audit record 99999" in out
    rc, out = run("log", "false-match", str(grant.seq), "--note", "guard saw a stranger")
    assert rc == 0 and "no longer opens the door alone" in out
    assert privacy.identify(e, 0.45) is None
    assert privacy.vault.verify(store.residents.get(rid).pseudonym, e) > 0.99  # 1:1 still
    rec = [r for r in store.audit.records() if r.kind == "admin"][-1]
    assert rec.data["action"] == "face_false_match" and rec.data["seq"] == grant.seq
    assert rec.data["note"] == "guard saw a stranger" and rec.data["suspended"] is True
    from doorpi.store.db import get_state

    kept = json.loads(get_state(store.db, "face_false_matches") or "[]")
    assert [p for p, _ in kept] == [store.residents.get(rid).pseudonym]  # for the sync
    rc, out = run("status", "--json")
    status = json.loads(out)
    assert status["face_false_matches_reported"] == 1
    assert any("false match" in w for w in status["warnings"])
    rc, out = run("log", "-n", "3")  # `doorpi log` itself still works beside the sub-command
    assert rc == 0 and "face_false_match" in out
    assert np.isfinite(privacy.vault.verify(store.residents.get(rid).pseudonym, e))
