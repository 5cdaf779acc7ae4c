"""The gate's writes on the power-cut rig's data partition, and the checks after a cut.

Usage: ``python powercut_child.py MODE DATA_DIR WORK_DIR``, where WORK_DIR is off the
device under test (bundles, the acknowledgement list, the pin log).

- ``setup``: a gate (keys, database) with 40 residents from bundle 1, 8 of them with
  face templates shared by another gate; bundle 2 is sealed to WORK_DIR.
- ``run``: the writes whose cut we test, printing ``phase NAME`` before each group and
  ``ack KIND ID`` after each write has returned (committed and fsynced): audit
  records (direct and through the gate's audit queue), enrolment of residents with
  a card, the import of bundle 2 (one consent withdrawn, one sharing ended, ten
  residents removed), more audit records, a retention sweep past every template's
  retention end, then audit records again. With POWERCUT_SYNC_ACKS=1 (the guest,
  vm_guest.py) it waits for a line on stdin after each of those lines, so the
  recorder's mark lands between this write and the next.
- ``check``: what a restart after the cut must find (WORK_DIR/acks.json lists the
  acknowledged writes): integrity_check ok, the audit chain verifies, every
  acknowledged record present, residents old or new with their sequence number, no
  withdrawn or swept template back, every template left decrypts, and a gate built on
  the data (the `doorpi run --sim` code path, mock pins recorded) keeps the strike
  de-energised. Prints ``ok`` and a JSON line of counts, or exits 1 naming the problem.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doorpi.store import Storage
from doorpi.store.db import get_state, integrity_check
from doorpi.sync.bundle import FaceEvent
from doorpi.sync.keys import GateIdentity, SiteKey
from sync.helpers import (
    RULES,
    T0,
    GateRig,
    make_privacy,
    real_sink,
    resident,
    shared_template,
    unit,
)

SITE = SiteKey(bytes([9]) * 32, "Power Court")
WITHDRAWN = ("Resident 20", "Resident 21")  # r-20 withdrew at another gate, r-21 stopped sharing
SWEEP_AT = T0 + 400 * 86400  # past every template's retention end (T0 + 300 days)


def setup(data: Path, work: Path) -> None:
    rig = GateRig(data, SITE)
    rig.importer.sink = real_sink(make_privacy(rig.storage, data, lambda: rig.now), rig.identity)
    people = [resident(f"r-{n}", n, SITE, share_with_site_gates=20 <= n < 30) for n in range(40)]
    faces = tuple(shared_template(f"r-{n}", rig.peer, rig.identity, unit(n), id=n)
                  for n in range(20, 28))  # fmt: skip
    rep = rig.apply(rig.bundle(1, people, templates=faces))
    assert rep.result == "applied" and rep.changes["templates_stored"] == 8, rep
    kept = [replace(p, share_with_site_gates=False) if p.key == "r-21" else p for p in people[10:]]
    bundle2 = rig.bundle(2, kept, tombstones=tuple(p.key for p in people[:10]),
                         template_tombstones=("r-21",),
                         face_withdrawals=(FaceEvent("r-20", T0),))  # fmt: skip
    (work / "2.bundle").write_bytes(rig.seal(bundle2))
    rig.storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rig.storage.close()


def run(data: Path, work: Path) -> None:
    from doorpi.privacy.retention import RetentionSweeper
    from doorpi.store.credentials import card_hash
    from doorpi.sync.importer import BundleImporter

    storage = Storage.open(data)
    identity = GateIdentity.load(data / "keys")
    n_audit = int(os.environ.get("POWERCUT_AUDIT", "40"))

    sync_acks = os.environ.get("POWERCUT_SYNC_ACKS") == "1"

    def say(*words: object) -> None:
        print(*words, flush=True)
        if sync_acks and words[0] != "done":  # the recorder marks the log, then lets us go on
            sys.stdin.readline()

    def audit(start: int) -> None:
        for i in range(start, start + n_audit):
            if i % 2:
                storage.audit.append("reliability_probe", {"n": i}, ts=T0 + i)
            else:
                q = storage.audit_queue
                q.put([("reliability_probe", {"n": i}, T0 + i)])
                if not q.flush():
                    raise SystemExit(f"audit queue did not write record {i}: {q.cause}")
            say("ack audit", i)

    say("phase audit")
    audit(0)
    say("phase enrol")
    for i in range(12):
        r = storage.residents.add(f"Enrolled {i}", T0, unit="9-99", keypad_id=str(900 + i))
        storage.residents.add_card(r.id, card_hash(storage.secrets, bytes([5, i, 1, 2])), T0)
        say("ack enrol", i)
    say("phase import")
    sink = real_sink(make_privacy(storage, data, lambda: T0), identity)
    importer = BundleImporter(storage, identity, RULES, sink, lambda: T0)
    rep = importer.import_file(work / "2.bundle")
    if rep.result != "applied":
        raise SystemExit(f"bundle 2 not applied: {rep.result} {rep.reason}")
    say("ack import 2")
    say("phase audit2")
    audit(1000)
    say("phase sweep")
    vault = make_privacy(storage, data, lambda: SWEEP_AT).vault
    gone = RetentionSweeper(storage, vault, lambda: SWEEP_AT).sweep()
    if len(gone) != 6:  # 8 stored, r-20 withdrawn and r-21 ended by the import
        raise SystemExit(f"sweep removed {len(gone)} templates, expected 6")
    say("ack sweep 1")
    say("phase audit3")
    audit(2000)
    storage.close()
    say("done")


def check(data: Path, work: Path) -> None:
    acks = json.loads((work / "acks.json").read_text())
    storage = Storage.open(data)
    db = storage.db
    problems: list[str] = []
    if (ic := integrity_check(db)) != "ok":
        problems.append(f"integrity_check: {ic}")
    v = storage.audit.verify()
    if not v.ok:
        problems.append(f"audit chain: {v}")
    probes = {json.loads(d)["n"] for (d,) in db.execute(
        "SELECT data FROM audit WHERE kind = 'reliability_probe'")}  # fmt: skip
    lost = [i for i in acks.get("audit", []) if i not in probes]
    if lost:
        problems.append(f"acknowledged audit records missing: {lost}")
    enrolled = {n for (n,) in db.execute("SELECT name FROM residents WHERE name LIKE 'Enrolled %'")}
    lost_enrol = [i for i in acks.get("enrol", []) if f"Enrolled {i}" not in enrolled]
    if lost_enrol:
        problems.append(f"acknowledged enrolments missing: {lost_enrol}")
    seq = get_state(db, "sync_sequence")
    originals = db.execute("SELECT count(*) FROM residents WHERE name LIKE 'Resident %'").fetchone()
    if (seq, originals[0]) not in {("1", 40), ("2", 30)}:
        problems.append(f"residents mixed: sequence {seq} with {originals[0]} residents")
    if acks.get("import") and seq != "2":
        problems.append(f"acknowledged import of bundle 2 lost: sequence {seq}")
    vault = make_privacy(storage, data, lambda: T0).vault
    templates = db.execute(
        "SELECT r.name, t.pseudonym FROM face_templates t "
        "LEFT JOIN residents r ON r.pseudonym = t.pseudonym"
    ).fetchall()
    for name, pseudonym in templates:
        if vault.embedding(pseudonym) is None:
            problems.append(f"template of {name} does not decrypt")
        if seq == "2" and name in WITHDRAWN:
            problems.append(f"withdrawn template of {name} is back")
    if acks.get("sweep") and templates:
        problems.append(f"{len(templates)} templates back after the acknowledged sweep")
    counts = {"audit_records": db.execute("SELECT count(*) FROM audit").fetchone()[0],
              "probes": len(probes), "templates": len(templates), "sequence": seq}  # fmt: skip
    storage.close()
    # Restart: the gate as `doorpi run --sim` builds it, on the recovered data.
    from doorpi.clocks import ManualClock
    from doorpi.sim.site import SimulatedSite, sim_config

    site = SimulatedSite(sim_config({}, data), ManualClock(T0 + 10))
    if site.strike_pin.state:
        problems.append("strike energised after restart")
    strike = site.strike_pin.info.name
    site.close()
    pin_log = Path(os.environ["DOORPI_PIN_LOG"])
    lines = pin_log.read_text().splitlines() if pin_log.exists() else []
    levels = [ln.split()[3] for ln in lines if ln.split()[2] == strike]
    if "1" in levels:
        problems.append(f"strike pin history after restart: {levels}")
    if problems:
        print("; ".join(problems), flush=True)
        raise SystemExit(1)
    print("ok", json.dumps(counts), flush=True)


if __name__ == "__main__":
    mode, data_dir, work_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    {"setup": setup, "run": run, "check": check}[mode](data_dir, work_dir)
