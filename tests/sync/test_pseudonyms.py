"""Templates are keyed by a random pseudonym (law notes D14, issue #14: "a
pseudonym derived from the name passes"). A pseudonym derived from anything
the gate knows about the person (name, unit, keypad number, roster key, id,
even under a device secret) repeats when those repeat: two gates given the
same roster entry, or one resident removed and added again with the same
details. These tests make exactly those repeats and need different pseudonyms.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from doorpi.store import Storage
from doorpi.sync.keys import SiteKey
from sync.helpers import GateRig, resident

DETAILS = {"unit": "3-101", "keypad_id": "101"}


def _plain_digests(*values: object) -> set[str]:
    """Unkeyed digests of each value, as hex and cut to the pseudonym's length."""
    out = set()
    for v in values:
        b = str(v).encode()
        for h in (hashlib.md5, hashlib.sha1, hashlib.sha256, hashlib.blake2b, hashlib.sha3_256):
            d = h(b).hexdigest()
            out |= {d, d[:32], d[-32:]}
    return out


def test_same_details_again_on_one_gate_get_a_new_pseudonym(tmp_path: Path) -> None:
    store = Storage.open(tmp_path / "gate")
    try:
        first = store.residents.add("Alice Wang", 1.0, **DETAILS)
        store.residents.remove(first.id)
        again = store.residents.add("Alice Wang", 2.0, **DETAILS)
        twin = store.residents.add("Alice Wang", 3.0, unit="3-101", keypad_id="102")
        seen = [first.pseudonym, again.pseudonym, twin.pseudonym]
        assert len(set(seen)) == 3
        for r in (first, again, twin):
            assert re.fullmatch(r"[0-9a-f]{32}", r.pseudonym)  # 128 bits
            assert r.pseudonym not in _plain_digests(
                r.name, r.id, r.keypad_id, r.unit, f"{r.name}{r.unit}", f"{r.id}:{r.name}"
            )
            assert r.pseudonym not in (r.name, str(r.id), r.keypad_id)
    finally:
        store.close()


def test_two_gates_given_the_same_roster_entry_keep_unlinkable_pseudonyms(
    tmp_path: Path, site: SiteKey
) -> None:
    """The site's gates share the roster, never the pseudonym (templates move
    between gates re-keyed to the receiving gate's own pseudonym)."""
    a, b = GateRig(tmp_path / "a", site), GateRig(tmp_path / "b", site)
    entry = resident("a-1", 1, site)
    for rig in (a, b):
        assert rig.apply(rig.bundle(1, [entry])).result == "applied"
    pa = a.storage.residents.by_keypad_id(entry.keypad_id).pseudonym
    pb = b.storage.residents.by_keypad_id(entry.keypad_id).pseudonym
    assert pa != pb
    for p in (pa, pb):
        assert re.fullmatch(r"[0-9a-f]{32}", p)
        assert p not in _plain_digests(entry.key, entry.name, entry.keypad_id)
    # Removed and sent again under the same key: a new person to the vault.
    assert a.apply(a.bundle(2, [], tombstones=("a-1",))).result == "applied"
    assert a.apply(a.bundle(3, [entry])).result == "applied"
    assert a.storage.residents.by_keypad_id(entry.keypad_id).pseudonym not in (pa, pb)
