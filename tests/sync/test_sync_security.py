"""Issue #15, the sync protocol: a report counts as delivered only once the admin's
signed bundle acknowledges it; the admin sees a rewound or gapped audit log.

Real keys, real SQLite, the real vault and the real admin state, one stick and
one stranger's stick going round."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from doorpi.store.db import set_state
from doorpi.sync.admin import AdminSite
from doorpi.sync.bundle import ReportAck
from doorpi.sync.report import SyncReport
from doorpi.sync.roster import parse_roster
from sync.helpers import GateRig, shared_template, unit, wire_vault

ROSTER = """
[site]
name = "Test Court"

[[residents]]
key = "a-3101-wang"
name = "Alice Wang"
keypad_id = "101"
pin = "2468"
share_face_with_site_gates = true
"""


class Site:
    """The admin, the gate under test ("main") and a second gate ("peer")."""

    def __init__(self, tmp: Path) -> None:
        self.admin = AdminSite.init(tmp / "admin", "Test Court")
        self.gate = GateRig(tmp / "gate", self.admin.key)
        self.privacy = wire_vault(self.gate)
        self.admin.add_gate(self.gate.identity.public, "main")
        self.admin.add_gate(self.gate.peer.public, "peer")
        self.roster = parse_roster(tomllib.loads(ROSTER), self.admin.key.pin_tag_key)
        self.stick = tmp / "stick"
        self.stick.mkdir()
        self.tmp = tmp

    def visit(self, **build: Any) -> SyncReport:
        """`admin bundle`, the gate's import, `admin report read`: one admin round."""
        built = self.admin.build(self.roster, **build)
        self.admin.write_stick(self.stick, built)
        rep, path = self.gate.importer.import_stick(self.stick)
        assert rep.result == "applied", rep.reason and path is not None
        [(_, read)] = self.admin.read_reports(path)
        assert isinstance(read, SyncReport)
        return read

    def stranger(self, name: str = "stranger") -> Path:
        """Anyone's stick with an empty doorpi/ folder: it takes a report away."""
        stick = self.tmp / name
        (stick / "doorpi").mkdir(parents=True)
        rep, path = self.gate.importer.import_stick(stick)
        assert rep.code == "no_bundle" and path is not None and path.exists()
        return path

    def bundle_for(self, name: str) -> Any:
        return next(b.bundle for b in self.admin.build(self.roster) if b.gate.name == name)


def incidents(gate: GateRig) -> None:
    for i in range(5):
        gate.storage.audit.append("access", {"granted": False, "reason": "wrong_pin", "i": i},
                                  ts=gate.now + i)  # fmt: skip
    gate.storage.audit.append("alarm", {"kind": "tamper", "active": True}, ts=gate.now + 6)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    fp = s.gate.identity.fingerprint
    tpl = shared_template("a-3101-wang", s.gate.peer, s.gate.identity, unit(1))
    first = s.visit(templates={fp: [tpl]})
    assert first.changes["templates_stored"] == 1
    return s


def test_a_strangers_stick_acknowledges_nothing(site: Site) -> None:
    gate = site.gate
    gate.now += 600
    incidents(gate)
    rid = gate.storage.residents.by_keypad_id("101").id
    assert site.privacy.withdraw(rid, by="resident", channel="gate")
    site.stranger("one")
    site.stranger("two")
    # The admin's next real visit still gets everything.
    rep = site.visit()
    reasons = [a["data"].get("reason") for a in rep.audit if a["kind"] == "access"]
    assert reasons.count("wrong_pin") == 5
    assert any(a["kind"] == "alarm" for a in rep.audit)
    assert [w["resident"] for w in rep.face_withdrawals] == ["a-3101-wang"]
    assert rep.continuity == []
    # ... and the withdrawal reaches the site's other gate.
    peer = site.bundle_for("peer")
    assert [w.resident for w in peer.face_withdrawals] == ["a-3101-wang"]


def test_only_the_signed_receipt_marks_records_delivered(site: Site) -> None:
    gate = site.gate
    incidents(gate)
    rid = gate.storage.residents.by_keypad_id("101").id
    site.privacy.withdraw(rid, by="resident", channel="gate")
    second = site.visit()  # carries the incidents; bundle 2 acknowledged report 1 only
    assert second.face_withdrawals and second.audit_from > 0
    third = site.visit()  # bundle 3 acknowledges report 2
    assert third.audit_from == second.audit[-1]["seq"]
    assert all(a["seq"] > second.audit[-1]["seq"] for a in third.audit)
    assert third.face_withdrawals == []
    assert third.continuity == []


def test_a_receipt_for_another_log_is_ignored(site: Site) -> None:
    gate = site.gate
    incidents(gate)
    head_seq, _ = gate.storage.audit.head()
    wrong = ReportAck(head_seq, "ab" * 32)
    rep = gate.apply(gate.bundle(site.admin.sequence + 1, report_ack=wrong))
    assert rep.result == "applied", rep.reason
    assert rep.audit_from == 0  # nothing counts as delivered
    kinds = [a["data"].get("action") for a in rep.audit if a["kind"] == "sync"]
    assert "receipt_mismatch" in kinds


def _cut_tail(gate: GateRig, keep: int, rewrite_head: bool) -> None:
    """What a person with the SD card and no key can do: the prune setting, a DELETE."""
    db = gate.storage.db
    set_state(db, "audit_prune_upto", "999999999")
    db.execute("DELETE FROM audit WHERE seq > ?", [keep])
    set_state(db, "audit_prune_upto", "0")
    if rewrite_head:  # the thorough one also rewrites the head the gate keeps
        row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        set_state(db, "audit_head", json.dumps(list(row)))


@pytest.mark.parametrize(
    ("seen", "rewrite_head", "expect"),
    [
        (True, True, "rewound"),  # records the admin saw, the gate's head rewritten too
        (True, False, "audit chain on the gate"),  # its own chain check, in the report
        (False, False, "missing (gap)"),  # records the admin never saw
    ],
)
def test_the_admin_sees_a_cut_audit_log(
    site: Site, seen: bool, rewrite_head: bool, expect: str
) -> None:
    gate = site.gate
    before = site.visit()
    incidents(gate)
    second = site.visit() if seen else before
    keep = (second.audit[0] if seen else before.audit[-1])["seq"]
    _cut_tail(gate, keep, rewrite_head)
    third = site.visit()
    assert any(expect in w for w in third.continuity), third.continuity
    # The warning stays with the gate for `doorpi admin gate list`.
    assert site.admin.gates[gate.identity.fingerprint].last_report["warnings"]


def test_the_admin_sees_records_the_gate_claims_were_delivered(site: Site) -> None:
    gate = site.gate
    incidents(gate)
    head, _ = gate.storage.audit.head()
    set_state(gate.storage.db, "sync_audit_reported", str(head))  # no receipt said so
    rep = site.visit()
    assert any("gap" in w for w in rep.continuity), rep.continuity


def test_new_records_after_a_cut_do_not_reuse_numbers(site: Site) -> None:
    gate = site.gate
    incidents(gate)
    before, _ = gate.storage.audit.head()
    _cut_tail(gate, before - 3, rewrite_head=False)
    assert gate.storage.audit.append("access", {"granted": True}, ts=gate.now).seq == before + 1


# ---------------------------------------------------------------- what a lost stick tells


def test_names_on_the_stick_carry_no_personal_data(site: Site) -> None:
    from sync.helpers import TwoGateSite

    two = TwoGateSite(site.tmp / "two", ROSTER)
    home, away = two.home, two.away
    two.visit(home)
    two.visit(away)
    alice = home.storage.residents.by_keypad_id("101")
    home.storage.db.execute(
        "UPDATE sync_residents SET share_face = 1 WHERE resident_id = ?", [alice.id]
    )
    home.importer.source = _OneTemplate(alice.pseudonym)
    two.visit(home)
    names = [p.name for p in two.stick.rglob("*")]
    assert any(n.endswith(".templates") for n in names), names
    for n in names:
        assert "wang" not in n.lower() and "a-3101" not in n and "alice" not in n.lower(), n
    for f in (p for p in two.stick.rglob("*") if p.is_file()):
        data = f.read_bytes()
        assert b"a-3101-wang" not in data and b"Alice" not in data, f


class _OneTemplate:
    """The vault's export side for one resident (what SiteTemplateSource gives)."""

    def __init__(self, pseudonym: str) -> None:
        self.pseudonym = pseudonym

    def template_bytes(self, pseudonym: str) -> bytes | None:
        return b"T" * 600 if pseudonym == self.pseudonym else None

    def card_key(self) -> bytes | None:
        return None


def _residents(n: int) -> str:
    return ROSTER + "".join(
        f'\n[[residents]]\nkey = "r-{i}"\nname = "Resident {i}"\nkeypad_id = "{200 + i}"\n'
        f'pin = "{1300 + i * 7:04d}"\n'
        for i in range(n)
    )


def test_sizes_on_the_stick_do_not_count_residents_or_activity(site: Site) -> None:
    sizes = {}
    for n in (0, 40):
        site.roster = parse_roster(tomllib.loads(_residents(n)), site.admin.key.pin_tag_key)
        [built] = [b for b in site.admin.build(site.roster) if b.gate.name == "main"]
        sizes[n] = len(built.data)
    assert sizes[0] == sizes[40], sizes  # 1 and 41 residents: the same 16 KiB step
    reports = {}
    for busy in (False, True):
        if busy:
            incidents(site.gate)
            incidents(site.gate)
        reports[busy] = site.stranger(f"s{busy}").stat().st_size
    assert reports[False] == reports[True], reports
