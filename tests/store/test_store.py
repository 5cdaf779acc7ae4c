"""Real SQLite files: schema, residents, card and PIN secrets, the audit chain."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from doorpi.store import Storage
from doorpi.store.credentials import (
    PinPolicyError,
    card_hash,
    check_pin_rules,
    hash_pin,
    verify_pin,
)
from doorpi.store.db import SCHEMA_VERSION, DatabaseError, integrity_check, open_db
from doorpi.store.residents import ResidentError
from doorpi.store.secrets import DeviceSecrets, KeyError_


@pytest.fixture
def store(data_dir):
    s = Storage.open(data_dir)
    yield s
    s.close()


def test_files_are_private_and_schema_is_current(store, data_dir):
    assert stat.S_IMODE(os.stat(data_dir / "keys").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data_dir / "keys" / "device.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data_dir / "doorpi.db").st_mode) == 0o600
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert integrity_check(store.db) == "ok"


def test_corrupt_database_gives_one_line_error(tmp_path):
    p = tmp_path / "doorpi.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match=r"doorpi.db: not a usable SQLite database"):
        open_db(p)


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "doorpi.db"
    open_db(p).conn.close()
    c = sqlite3.connect(p)
    c.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(DatabaseError, match="newer than this doorpi"):
        open_db(p)


def test_bad_device_key_is_named(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "device.key").write_bytes(b"short")
    with pytest.raises(KeyError_, match=r"device\.key: device key must be 32 bytes"):
        DeviceSecrets.load_or_create(tmp_path / "keys")


def test_resident_lifecycle_and_cards(store):
    r = store.residents.add("Alice", 1.0, unit="3-101", keypad_id="101")
    h1 = card_hash(store.secrets, bytes.fromhex("04a1b2c3d4e5f6"))
    h2 = card_hash(store.secrets, bytes.fromhex("04ffffffffffff"))
    store.residents.add_card(r.id, h1, 2.0, "blue fob")
    store.residents.add_card(r.id, h2, 3.0)
    assert store.residents.by_card_hash(h1).id == r.id
    assert store.residents.by_keypad_id("101").id == r.id
    assert [c["ref"] for c in store.residents.cards(r.id)] == [h1[:8], h2[:8]]
    other = store.residents.add("Bob", 1.0)
    with pytest.raises(ResidentError, match="already belongs to resident"):
        store.residents.add_card(other.id, h1, 4.0)
    with pytest.raises(ResidentError, match="already taken"):
        store.residents.add("Eve", 1.0, keypad_id="101")
    store.residents.remove(r.id)
    assert store.residents.by_card_hash(h1) is None  # cascade
    assert store.db.execute("SELECT count(*) FROM cards").fetchone()[0] == 0


def test_a_card_reference_is_hex_never_a_pattern(store):
    """`doorpi card remove 1 %%%%%%%%` removed every card of the resident (a LIKE
    pattern) and then said "no card": a reference is hex only, and one that names
    more than one card removes none."""
    r = store.residents.add("Alice", 1.0)
    for h in ("ab12cd34" + "0" * 56, "ab12cd34" + "1" * 56, "ef56ab78" + "2" * 56):
        store.residents.add_card(r.id, h, 2.0)
    for typed in ("%%%%%%%%", "________", "ab12cd3%", "ab12cd34", "", "ab12"):
        assert store.residents.remove_card(r.id, typed) == 0, typed  # 0: nothing removed
    assert len(store.residents.cards(r.id)) == 3
    assert store.residents.remove_card(r.id, " ＥＦ５６ＡＢ７８ ") == 1  # full-width, upper case
    assert store.residents.remove_card(r.id, "AB12CD340") == 1
    assert [c["ref"] for c in store.residents.cards(r.id)] == ["ab12cd34"]


def test_card_hash_is_keyed_and_raw_uid_is_not_stored(store, data_dir):
    uid = bytes.fromhex("04a1b2c3d4e5f6")
    h = card_hash(store.secrets, uid)
    r = store.residents.add("Alice", 1.0)
    store.residents.add_card(r.id, h, 1.0)
    other = DeviceSecrets(os.urandom(32))
    assert card_hash(other, uid) != h  # another installation derives other hashes
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for f in data_dir.iterdir():
        if f.is_file():
            blob = f.read_bytes()
            assert uid not in blob and uid.hex().encode() not in blob


def test_pin_hash_verifies_only_with_the_device_pepper(store):
    h = hash_pin(store.secrets, "2468", opslimit=1, memlimit_kib=8192)
    assert h.startswith("$argon2id$")
    assert verify_pin(store.secrets, h, "2468")
    assert not verify_pin(store.secrets, h, "2469")
    assert not verify_pin(DeviceSecrets(os.urandom(32)), h, "2468")
    assert not verify_pin(store.secrets, "garbage", "2468")


@pytest.mark.parametrize(
    "pin,msg",
    [("12a4", "digits 0-9 only"), ("123", "4 to 8"), ("1111", "repeated"), ("1234", "run")],
)
def test_pin_rules(pin, msg):
    with pytest.raises(PinPolicyError, match=msg):
        check_pin_rules(pin, 4, 8)


# ---------------------------------------------------------------- audit


def fill(store, n, t0=1000.0):
    for i in range(n):
        store.audit.append("access", {"granted": i % 2 == 0, "i": i}, ts=t0 + i)


def test_audit_chain_verifies(store):
    fill(store, 20)
    result = store.audit.verify()
    assert result.ok and result.checked == 20


def test_audit_refuses_update_and_delete(store):
    fill(store, 3)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("UPDATE audit SET kind = 'x' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("DELETE FROM audit WHERE seq = 2")


def _without_triggers(store):
    store.db.execute("DROP TRIGGER audit_no_update")
    store.db.execute("DROP TRIGGER audit_prune_only_old")


def test_audit_detects_an_edited_record(store):
    fill(store, 10)
    _without_triggers(store)
    store.db.execute("""UPDATE audit SET data = '{"granted": true, "i": 3}' WHERE seq = 4""")
    r = store.audit.verify()
    assert not r.ok and r.first_bad == 4 and "altered" in r.problem


def test_audit_detects_a_deleted_record(store):
    fill(store, 10)
    _without_triggers(store)
    store.db.execute("DELETE FROM audit WHERE seq = 5")
    r = store.audit.verify()
    assert not r.ok and "record 5 is missing" in r.problem


def test_audit_detects_records_cut_from_the_start(store):
    fill(store, 10)
    _without_triggers(store)
    row = store.db.execute("SELECT seq, hash FROM audit WHERE seq = 4").fetchone()
    store.db.execute("DELETE FROM audit WHERE seq <= 4")
    store.db.execute(
        "INSERT INTO state(key, value) VALUES ('audit_anchor', ?)", [f'[{row[0]}, "{row[1]}"]']
    )
    r = store.audit.verify()
    assert not r.ok and "cut from the start" in r.problem


def test_audit_prune_keeps_chain_verifiable(store):
    fill(store, 10, t0=1000)
    n = store.audit.prune(older_than=1005)
    assert n == 5
    r = store.audit.verify()
    assert r.ok, r.problem
    assert [rec.seq for rec in store.audit.records()][:2] == [6, 7]
    store.audit.append("access", {"after": True}, ts=2000)
    assert store.audit.verify().ok


def test_audit_prune_never_cuts_past_a_record_inside_the_retention(store):
    """A record stamped 1970 (another process, a flat RTC) after records of this
    month: pruning by its stamp would take the month along. Not past the first
    record inside the period (older_than .. now); one stamped 2040 holds nothing."""
    fill(store, 6, t0=1000)  # seq 1-6, ts 1000-1005
    store.audit.append("access", {"rtc": 1970}, ts=1.0)  # seq 7
    assert store.audit.prune(older_than=1003, now=1010) == 3  # seq 1-3 only
    assert [r.seq for r in store.audit.records()][:4] == [4, 5, 6, 7]
    store.audit.append("access", {"rtc": 2040}, ts=2.2e9)  # seq 9 (8: audit_pruned)
    store.audit.append("access", {"set right": True}, ts=1006)  # seq 10
    store.audit.append("access", {"recent": True}, ts=1009)  # seq 11
    assert store.audit.prune(older_than=1007, now=1010) == 7  # 4-10: through the 2040 stamp
    assert [r.seq for r in store.audit.records()] == [11, 12]
    assert store.audit.verify().ok


def test_audit_key_matters(store, data_dir):
    fill(store, 3)
    from doorpi.store.audit import AuditLog

    assert not AuditLog(store.db, os.urandom(32)).verify().ok


def _cut_tail(store, after: int) -> None:
    """What needs no key: the prune routine's own setting, then a DELETE of the end."""
    store.db.execute(
        "INSERT INTO state(key, value) VALUES ('audit_prune_upto', '999999') "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    )
    store.db.execute("DELETE FROM audit WHERE seq > ?", [after])
    store.db.execute("UPDATE state SET value = '0' WHERE key = 'audit_prune_upto'")


def test_audit_detects_records_cut_from_the_end(store):
    fill(store, 10)
    _cut_tail(store, 5)
    r = store.audit.verify()
    assert not r.ok and "records 6 to 10 were cut from the end" in r.problem


def test_audit_never_reuses_a_sequence_number(store):
    fill(store, 10)
    _cut_tail(store, 5)
    rec = store.audit.append("access", {"after": "cut"}, ts=5000)
    assert rec.seq == 11
    assert store.audit.head()[0] == 11
    r = store.audit.verify()
    assert not r.ok and "record 6 is missing" in r.problem


def test_audit_head_follows_appends_and_pruning(store):
    fill(store, 10, t0=1000)
    seq, h = store.audit.head()
    assert seq == 10 and store.audit.hash_at(10) == h
    store.audit.prune(older_than=1005)
    assert store.audit.verify().ok
    assert store.audit.head()[0] == 11  # the audit_pruned record
    assert store.audit.hash_at(5) is not None  # the anchor still names record 5
    assert store.audit.hash_at(3) is None
