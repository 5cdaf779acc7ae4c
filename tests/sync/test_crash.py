"""SIGKILL during import, many times: the database is always intact and old or new.

Each run copies the gate as it was after bundle 1, starts the import of
bundle 2 in a child process that pauses between statements, and kills it at
a point spread over the whole run: half of the kills land after the k-th
statement of the transaction (k spread over all of them), the others at
times spread over start-up, hashing, the transaction and, for the last two,
after the commit. Afterwards SQLite must pass integrity_check,
the audit chain must verify, and the residents must equal exactly the old
state or exactly the new one, with the sequence number to match. The gate's
real face vault takes part: bundle 2 stores templates from another gate (with
their consents), ends one resident's sharing and carries a withdrawal, so the
face consents and templates must be old or new together with the residents,
and every template left must still decrypt.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from doorpi.store import Storage
from doorpi.store.db import get_state, integrity_check
from doorpi.sync.bundle import FaceEvent
from doorpi.sync.keys import SiteKey
from sync.helpers import (
    T0,
    GateRig,
    make_privacy,
    real_sink,
    resident,
    shared_template,
    snapshot,
    unit,
)

CHILD = Path(__file__).with_name("crash_child.py")
RUNS = 40
PAUSE = 0.004


def _run_child(data_dir: Path, bundle: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(bundle), str(PAUSE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _face_state(storage: Storage, data_dir: Path) -> list[tuple]:  # type: ignore[type-arg]
    """Consents and templates by resident name; every template must decrypt."""
    vault = make_privacy(storage, data_dir, lambda: T0).vault
    rows = storage.db.execute(
        "SELECT r.name, c.origin_consent_id, c.withdrawn_by, t.pseudonym FROM face_consents c "
        "JOIN residents r ON r.pseudonym = c.pseudonym "
        "LEFT JOIN face_templates t ON t.consent_id = c.id ORDER BY r.name, c.id"
    ).fetchall()
    for *_, pseudonym in rows:
        assert pseudonym is None or vault.embedding(pseudonym) is not None
    return [(name, cid, by, pseudonym is not None) for name, cid, by, pseudonym in rows]


def _inspect(data_dir: Path) -> tuple[list, str, bool]:  # type: ignore[type-arg]
    storage = Storage.open(data_dir)
    try:
        assert integrity_check(storage.db) == "ok"
        ok = storage.audit.verify().ok
        state = [snapshot(storage), _face_state(storage, data_dir)]
        return state, str(get_state(storage.db, "sync_sequence")), ok
    finally:
        storage.close()


@pytest.mark.slow
def test_sigkill_during_import_leaves_old_or_new_state(tmp_path: Path) -> None:
    site = SiteKey(bytes([7]) * 32, "Crash Court")
    pristine = tmp_path / "pristine"
    rig = GateRig(pristine, site)
    rig.importer.sink = real_sink(
        make_privacy(rig.storage, pristine, lambda: rig.now), rig.identity
    )
    people = [resident(f"r-{n}", n, site, share_with_site_gates=20 <= n < 30) for n in range(40)]

    def faces(lo: int, hi: int) -> tuple:  # type: ignore[type-arg]
        return tuple(shared_template(f"r-{n}", rig.peer, rig.identity, unit(n), id=n)
                     for n in range(lo, hi))  # fmt: skip

    rep = rig.apply(rig.bundle(1, people, templates=faces(20, 25)))
    assert rep.result == "applied" and rep.changes["templates_stored"] == 5
    # Bundle 2: 10 removed, 10 changed (one keypad swap), 15 added with PINs.
    changed = [replace(p, unit="moved", cards=(replace(p.cards[0], uid=f"05{n:012x}"),))
               for n, p in enumerate(people[10:20], start=10)]  # fmt: skip
    changed[0], changed[1] = (replace(changed[0], keypad_id=changed[1].keypad_id),
                              replace(changed[1], keypad_id=changed[0].keypad_id))  # fmt: skip
    added = [resident(f"n-{n}", n, site) for n in range(100, 115)]
    # Faces: five more arrive, r-21 stops sharing, r-20 withdrew at another gate.
    kept = [replace(p, share_with_site_gates=False) if p.key == "r-21" else p for p in people[20:]]
    bundle2 = rig.bundle(2, changed + kept + added, tombstones=tuple(p.key for p in people[:10]),
                         templates=faces(25, 30), template_tombstones=("r-21",),
                         face_withdrawals=(FaceEvent("r-20", T0),))  # fmt: skip
    bundle_file = tmp_path / "2.bundle"
    bundle_file.write_bytes(rig.seal(bundle2))
    rig.storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rig.storage.close()
    old = _inspect(pristine)[0]

    ref = tmp_path / "ref"
    shutil.copytree(pristine, ref)
    t = time.monotonic()
    child = _run_child(ref, bundle_file)
    assert child.stdout is not None
    while "step" not in child.stdout.readline():
        pass
    t_step = time.monotonic()
    out, err = child.communicate(timeout=120)
    full, txn = time.monotonic() - t, time.monotonic() - t_step
    assert child.returncode == 0 and "done applied" in out, err
    total_steps = out.count("step") + 1
    new, seq, chain_ok = _inspect(ref)
    assert seq == "2" and chain_ok and new != old and len(new[0]) == 45
    assert sum(has for *_, has in new[1]) == 8 and sum(has for *_, has in old[1]) == 5

    rnd = random.Random(20261128)
    outcomes = {"old": 0, "new": 0}
    in_transaction = 0
    for i in range(RUNS):
        run = tmp_path / f"run{i}"
        shutil.copytree(pristine, run)
        child = _run_child(run, bundle_file)
        seen, finished = 0, False
        if i >= RUNS - 4 and i % 2:  # after the commit, while the report is written
            assert child.stdout is not None
            while "done" not in (line := child.stdout.readline()):
                seen += "step" in line
            delay, finished = 0.0, True
        elif i % 2:  # anywhere in the run: start-up, hashing, transaction, report
            delay = full * 1.1 * (i + rnd.random()) / RUNS
        else:  # inside the transaction: after its k-th statement group, k spread over all
            assert child.stdout is not None
            k = 1 + (i // 2) * total_steps // (RUNS // 2)
            while seen < k:
                seen += "step" in child.stdout.readline()
            delay = rnd.uniform(0, PAUSE * 1.5)  # in the pause or in the next statements
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        steps = seen + out.count("step")
        in_transaction += steps > 0 and not finished and "done" not in out
        state, seq, chain_ok = _inspect(run)
        assert chain_ok, f"run {i}: audit chain broken"
        if state == old:
            assert seq == "1", f"run {i}: old residents but sequence {seq}"
            outcomes["old"] += 1
        else:
            assert state == new, f"run {i} (killed after {delay:.2f} s, {steps} steps): mixed state"
            assert seq == "2", f"run {i}: new residents but sequence {seq}"
            outcomes["new"] += 1
        shutil.rmtree(run)
    print(
        f"\n{RUNS} kills: {outcomes}, {in_transaction} inside the transaction; "
        f"run {full:.2f} s, transaction {txn:.2f} s in {total_steps} steps"
    )
    assert outcomes["old"] >= RUNS // 3 and outcomes["new"] >= 2
    assert in_transaction >= RUNS // 3
