"""Template vault: encryption at rest, crypto-shredding, physical deletion,
binding to the installation, re-keying and integrity (law notes C10-C11, D14-D17)."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import CryptoError
from privacy_support import FakeClock, enrol, found, near, unit_vector

from doorpi.privacy.enrolment import FacePrivacy
from doorpi.privacy.vault import (
    InstallationTransform,
    NoConsentError,
    TemplateVault,
    VaultError,
    _aad,
)
from doorpi.store import KeyError_, Storage


def opens(wrapped: bytes, knonce: bytes, pseudonym: str, key: bytes) -> bool:
    """Whether ``key`` unwraps a template key (as an attacker would try it)."""
    try:
        crypto_aead_xchacha20poly1305_ietf_decrypt(wrapped, _aad(pseudonym, b"key"), knonce, key)
    except CryptoError:
        return False
    return True


def stored_rows(storage: Storage) -> list[bytes]:
    rows = storage.db.execute(
        "SELECT t.ciphertext, k.wrapped_key FROM face_templates t "
        "JOIN face_template_keys k ON k.template_id = t.id"
    ).fetchall()
    return [bytes(b) for r in rows for b in r]


def test_template_is_stored_only_encrypted_and_apart_from_identity(
    privacy, storage, alice, data_dir
):
    e = unit_vector(1)
    enrol(privacy, alice, e)
    cols = {r[1] for r in storage.db.execute("PRAGMA table_info(face_templates)")}
    assert "pseudonym" in cols and not cols & {"name", "unit", "resident_id", "keypad_id"}
    pseudonym = storage.residents.get(alice).pseudonym
    assert storage.db.execute("SELECT pseudonym FROM face_templates").fetchone()[0] == pseudonym
    storage.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # Neither the embedding nor its float64 form nor its installation transform are on disk.
    transformed = privacy.vault._transform.apply(e).tobytes()
    assert found(data_dir, [e.tobytes(), e.astype(np.float64).tobytes(), transformed]) == []
    # ...but the ciphertext is (the scan itself works).
    assert found(data_dir, stored_rows(storage)) != []


def test_deletion_leaves_no_template_ciphertext_or_key_in_any_file(
    privacy, storage, alice, data_dir
):
    e = unit_vector(2)
    enrol(privacy, alice, e)
    secrets = stored_rows(storage)
    assert found(data_dir, secrets), "control: the ciphertext is on disk before deletion"
    assert privacy.withdraw(alice, by="admin:test", channel="admin")
    files = {p.name for p in data_dir.rglob("*") if p.is_file()}
    assert "doorpi.db" in files
    assert found(data_dir, secrets) == []
    assert found(data_dir, [e.tobytes(), privacy.vault._transform.apply(e).tobytes()]) == []
    assert storage.db.execute("SELECT count(*) FROM face_template_keys").fetchone()[0] == 0


def test_no_template_without_consent_even_by_raw_sql(vault, storage, alice):
    pseudonym = storage.residents.get(alice).pseudonym
    with pytest.raises(NoConsentError):
        vault.store(pseudonym, unit_vector(3), consent_id=1, expires=2e9)
    with pytest.raises(sqlite3.IntegrityError, match="no live face consent"):
        storage.db.execute(
            "INSERT INTO face_templates(pseudonym, consent_id, nonce, ciphertext, created, "
            "expires) VALUES (?, 1, x'00', x'00', 0, 1)",
            [pseudonym],
        )
    assert vault.count() == 0


def test_rejects_non_normalised_or_wrong_size_templates(privacy, alice):
    ticket = privacy.start_enrolment(alice, "admin_present", by="admin:test")
    privacy.consent(ticket, confirmed_by="admin:test")
    with pytest.raises(Exception, match="L2-normalised"):
        privacy.enrol(alice, unit_vector(4) * 3)
    with pytest.raises(Exception, match="128"):
        privacy.enrol(alice, np.ones(64, np.float32) / 8)


def test_a_template_carrying_more_than_the_identity_embedding_is_refused(privacy, storage, alice):
    """Requirement 16: only SFace's 128-value identity embedding is stored. A vector
    with anything appended (an age, a gender score) is refused, not cut to size."""
    ticket = privacy.start_enrolment(alice, "admin_present", by="admin:test")
    privacy.consent(ticket, confirmed_by="admin:test")
    e = unit_vector(4)
    for extra in (np.float32(0.0), np.float32(0.31)):  # 0.0 keeps the norm at 1
        longer = np.append(e, extra).astype(np.float32)
        longer /= np.linalg.norm(longer)
        with pytest.raises(Exception, match="128"):
            privacy.enrol(alice, longer)
    assert privacy.vault.count() == 0


def test_withdrawal_in_another_process_stops_matching_at_once(privacy, alice, data_dir, clock):
    e = unit_vector(5)
    enrol(privacy, alice, e)
    assert privacy.identify(near(e, 0.05, 1), threshold=0.45) == alice
    # The admin CLI: a separate connection and vault on the same data directory.
    admin_store = Storage.open(data_dir)
    try:
        admin_vault = TemplateVault(admin_store.db, data_dir / "keys", admin_store.audit, clock)
        admin = FacePrivacy(admin_store, admin_vault, privacy.settings, privacy.site, clock)
        admin.withdraw(alice, by="admin:li", channel="admin")
    finally:
        admin_store.close()
    assert privacy.vault.identify(near(e, 0.05, 1)).pseudonym is None
    assert privacy.identify(e, threshold=0.45) is None


def test_tampered_template_is_rejected_and_logged(privacy, storage, alice, clock):
    bob = storage.residents.add("Bob Chen", clock(), keypad_id="202").id
    ea, eb = unit_vector(6), unit_vector(7)
    enrol(privacy, alice, ea)
    enrol(privacy, bob, eb)
    assert privacy.identify(ea, 0.45) == alice
    # Flip one bit of Alice's ciphertext.
    ct = bytearray(storage.db.execute(
        "SELECT ciphertext FROM face_templates WHERE pseudonym = ?",
        [storage.residents.get(alice).pseudonym]).fetchone()[0])  # fmt: skip
    ct[10] ^= 0x01
    storage.db.execute(
        "UPDATE face_templates SET ciphertext = ? WHERE pseudonym = ?",
        [bytes(ct), storage.residents.get(alice).pseudonym],
    )
    assert privacy.identify(ea, 0.45) is None
    assert privacy.identify(eb, 0.45) == bob
    rejected = [r for r in storage.audit.records() if r.kind == "face_template_rejected"]
    assert rejected and rejected[-1].data["reason"] == "integrity"
    assert rejected[-1].data["pseudonym"] == storage.residents.get(alice).pseudonym[:8]


def test_swapped_rows_between_residents_fail_integrity(privacy, storage, alice, clock):
    bob = storage.residents.add("Bob Chen", clock(), keypad_id="202").id
    ea, eb = unit_vector(8), unit_vector(9)
    enrol(privacy, alice, ea)
    enrol(privacy, bob, eb)
    conn = storage.db.conn
    rows = conn.execute(
        "SELECT t.id, t.nonce, t.ciphertext, k.nonce, k.wrapped_key FROM face_templates t "
        "JOIN face_template_keys k ON k.template_id = t.id ORDER BY t.id"
    ).fetchall()
    (ia, *a), (ib, *b) = rows
    for tid, (n, c, kn, w) in ((ia, b), (ib, a)):
        conn.execute(
            "UPDATE face_templates SET nonce = ?, ciphertext = ? WHERE id = ?", [n, c, tid]
        )
        conn.execute(
            "UPDATE face_template_keys SET nonce = ?, wrapped_key = ? WHERE template_id = ?",
            [kn, w, tid],
        )
    # Bob's face must not open as Alice (or the other way round): both are refused.
    assert privacy.identify(eb, 0.45) is None
    assert privacy.identify(ea, 0.45) is None
    assert len([r for r in storage.audit.records() if r.kind == "face_template_rejected"]) >= 2


def test_database_copied_to_another_installation_does_not_match(
    privacy, storage, alice, data_dir, tmp_path, clock
):
    e = unit_vector(10)
    enrol(privacy, alice, e)
    storage.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other = tmp_path / "other-gate"
    other.mkdir()
    shutil.copy(data_dir / "doorpi.db", other / "doorpi.db")
    with pytest.raises(KeyError_, match=r"device\.key: missing, but"):
        Storage.open(other)  # doorpi itself refuses a database without its key
    # A thief does not stop there: the store's parts by hand, with a key of their own.
    from doorpi.store.audit import AuditLog
    from doorpi.store.db import open_db
    from doorpi.store.residents import ResidentStore
    from doorpi.store.secrets import DeviceSecrets

    db, keys = open_db(other / "doorpi.db"), DeviceSecrets.create(other / "keys")
    thief = Storage(db, keys, ResidentStore(db), AuditLog(db, keys.audit_key), other)
    try:
        with pytest.raises(VaultError, match="holds no vault key for the 1 key id"):
            TemplateVault(thief.db, other / "keys", thief.audit, clock)  # a fault, not afresh
        (other / "keys" / "vault.key").write_bytes(os.urandom(32) + bytes(32))  # their own
        thief.db.execute("DELETE FROM state WHERE key = 'vault_key_id'")
        v = TemplateVault(thief.db, other / "keys", thief.audit, clock)
        assert v.count() == 1
        assert v.identify(e).pseudonym is None
        assert v.verify(thief.residents.get(alice).pseudonym, e) is None
        assert [r.kind for r in thief.audit.records()][-1] == "face_template_rejected"
    finally:
        thief.close()


def test_a_decrypted_template_is_useless_at_another_installation():
    e = unit_vector(11)
    here, there = InstallationTransform(b"\x01" * 32), InstallationTransform(b"\x02" * 32)
    assert float(here.apply(e) @ here.apply(near(e, 0.05, 3))) > 0.8  # scores preserved
    assert abs(float(here.apply(e) @ there.apply(e))) < 0.35  # but not across sites
    m = np.vstack([here.apply(row) for row in np.eye(128, dtype=np.float32)])
    assert np.allclose(m @ m.T, np.eye(128), atol=1e-5)  # exactly orthogonal


def test_rotate_rekeys_everything_and_old_key_no_longer_opens_it(
    privacy, storage, alice, data_dir, tmp_path, clock
):
    e = unit_vector(12)
    enrol(privacy, alice, e)
    old_key = privacy.vault._keys.current
    slots_file = data_dir / "keys" / "vault.key"
    assert old_key in slots_file.read_bytes()
    inode = slots_file.stat().st_ino
    before = stored_rows(storage)
    assert privacy.vault.rotate(by="admin:test") == 1
    assert old_key not in slots_file.read_bytes()  # overwritten, not just unlinked
    assert slots_file.stat().st_ino == inode  # in place: no copy left in a freed block
    assert slots_file.read_bytes().count(bytes(32)) == 1  # one live slot, one wiped
    assert privacy.identify(near(e, 0.05, 4), 0.45) == alice
    assert found(data_dir, before) == []  # old ciphertext and wrapped key are gone
    # The old key (say, from a stolen backup) opens nothing now.
    stolen = tmp_path / "stolen-keys"
    stolen.mkdir()
    (stolen / "vault.key").write_bytes(old_key + bytes(32))
    storage.db.execute("DELETE FROM state WHERE key = 'vault_key_id'")
    thief = TemplateVault(storage.db, stolen, storage.audit, clock)
    assert thief.identify(e).pseudonym is None
    assert thief.verify(storage.residents.get(alice).pseudonym, e) is None


def test_every_deletion_rotates_the_vault_key(privacy, storage, alice, data_dir, clock):
    bob = storage.residents.add("Bob Chen", clock(), keypad_id="202").id
    enrol(privacy, alice, unit_vector(21))
    enrol(privacy, bob, unit_vector(22))
    key_before = privacy.vault._keys.current
    pa = storage.residents.get(alice).pseudonym
    knonce, wrapped = storage.db.execute(
        "SELECT k.nonce, k.wrapped_key FROM face_template_keys k JOIN face_templates t "
        "ON k.template_id = t.id WHERE t.pseudonym = ?",
        [pa],
    ).fetchone()
    assert opens(wrapped, knonce, pa, key_before)
    assert privacy.vault.delete(pa, reason="withdrawn", by="test")
    assert privacy.vault._keys.current != key_before
    assert key_before not in (data_dir / "keys" / "vault.key").read_bytes()
    # Bob's template survives, re-wrapped under the new key; Alice's wrapped key
    # (as a copy from a journal would hold it) no longer opens with any key there is.
    assert privacy.identify(near(unit_vector(22), 0.05, 7), 0.45) == bob
    slots = (data_dir / "keys" / "vault.key").read_bytes()
    for key in (slots[:32], slots[32:]):
        assert not opens(wrapped, knonce, pa, key)


def test_replacing_a_template_rotates_the_vault_key(privacy, storage, alice):
    enrol(privacy, alice, unit_vector(23))
    before = privacy.vault._keys.current
    enrol(privacy, alice, unit_vector(24))  # re-enrolment replaces the old template
    assert privacy.vault._keys.current != before


def test_rotation_by_the_admin_process_is_picked_up_by_the_gate(
    privacy, storage, alice, data_dir, clock
):
    e = unit_vector(19)
    enrol(privacy, alice, e)
    assert privacy.identify(e, 0.45) == alice  # the gate has the old key in memory
    admin = Storage.open(data_dir)
    try:
        TemplateVault(admin.db, data_dir / "keys", admin.audit, clock).rotate(by="admin:li")
    finally:
        admin.close()
    assert privacy.identify(near(e, 0.05, 6), 0.45) == alice  # reloads the new key
    bob = storage.residents.add("Bob", clock(), keypad_id="202").id
    enrol(privacy, bob, unit_vector(20))  # stored under the new key, readable by all
    fresh = TemplateVault(storage.db, data_dir / "keys", storage.audit, clock)
    assert fresh.identify(unit_vector(20)).pseudonym == storage.residents.get(bob).pseudonym


def test_rotate_with_revoke_deletes_every_template(privacy, storage, alice, data_dir, clock):
    bob = storage.residents.add("Bob Chen", clock(), keypad_id="202").id
    enrol(privacy, alice, unit_vector(13))
    enrol(privacy, bob, unit_vector(14))
    secrets = stored_rows(storage)
    assert privacy.vault.rotate(revoke=True, by="admin:test") == 0
    assert privacy.vault.count() == 0
    assert privacy.identify(unit_vector(13), 0.45) is None
    assert found(data_dir, secrets) == []
    rec = [r for r in storage.audit.records() if r.kind == "face_keys_rotated"][-1]
    assert rec.data == {"revoked": 2, "kept": 0, "by": "admin:test"}


def test_re_enrolment_gives_unlinkable_stored_templates(privacy, storage, alice):
    e = unit_vector(15)
    enrol(privacy, alice, e)
    first = stored_rows(storage)
    privacy.vault.rotate(by="admin:test")
    enrol(privacy, alice, e)
    second = stored_rows(storage)
    assert first[0] != second[0] and first[1] != second[1]
    assert first[0][:16] != second[0][:16]


def test_expired_template_stops_matching_before_the_sweeper_runs(privacy, alice, clock):
    e = unit_vector(16)
    enrol(privacy, alice, e, retention_days=30)
    assert privacy.identify(e, 0.45) == alice
    clock.advance(30 * 86400 + 1)
    assert privacy.identify(e, 0.45) is None


def test_clock_fixture_is_the_vaults_clock(vault, clock: FakeClock):
    assert vault.clock() == clock()


def test_a_crash_in_the_middle_of_a_rotation_loses_nothing(
    privacy, storage, alice, data_dir, clock, monkeypatch
):
    e = unit_vector(17)
    enrol(privacy, alice, e)
    root = privacy.vault.root
    real_write = root.write_vault_slot

    def crash(slot: int, key: bytes) -> None:
        if key == bytes(32):  # power cut just after the commit, before the old slot is wiped
            raise OSError("power cut")
        real_write(slot, key)

    monkeypatch.setattr(root, "write_vault_slot", crash)
    with pytest.raises(OSError, match="power cut"):
        privacy.vault.rotate(by="admin:test")
    monkeypatch.undo()
    slots = (data_dir / "keys" / "vault.key").read_bytes()
    assert bytes(32) not in (slots[:32], slots[32:])  # both keys still there
    # The gate restarts: the committed rotation is adopted, the old key wiped.
    again = TemplateVault(storage.db, data_dir / "keys", storage.audit, clock)
    slots = (data_dir / "keys" / "vault.key").read_bytes()
    assert bytes(32) in (slots[:32], slots[32:])
    assert again.identify(near(e, 0.05, 5)).accepted(0.45)


def test_a_rotation_that_never_committed_is_forgotten(
    privacy, storage, alice, data_dir, clock, monkeypatch
):
    e = unit_vector(18)
    enrol(privacy, alice, e)
    current = privacy.vault._keys.current

    def crash(*_a: object, **_k: object) -> None:
        raise OSError("power cut")

    # The new key is in the other slot, the database never committed its use.
    import doorpi.privacy.vault as vault_mod

    monkeypatch.setattr(vault_mod, "InstallationTransform", crash)
    with pytest.raises(OSError, match="power cut"):
        privacy.vault.rotate(by="admin:test")
    monkeypatch.undo()
    slots = (data_dir / "keys" / "vault.key").read_bytes()
    assert current in slots and bytes(32) in slots  # rolled back: the new key wiped
    (data_dir / "keys" / "vault.key").write_bytes(
        slots.replace(bytes(32), b"\x05" * 32)  # as if the power cut came before the wipe
    )
    again = TemplateVault(storage.db, data_dir / "keys", storage.audit, clock)
    assert b"\x05" * 32 not in (data_dir / "keys" / "vault.key").read_bytes()
    assert again.identify(e).accepted(0.45)


def test_a_vault_of_an_earlier_version_still_matches_and_converts(
    privacy, storage, alice, data_dir, clock
):
    """One-key ``vault.key`` and the template map of before full labels: read once,
    re-encrypted at the next rotation."""
    from doorpi.privacy import vault as vault_mod

    e = unit_vector(25)
    pseudonym = storage.residents.get(alice).pseudonym
    enrol(privacy, alice, e)
    old = os.urandom(32)
    # Re-encrypt the row as the earlier version did: its key, its (cut-label) map.
    t = vault_mod.InstallationTransform(old, v1=True)
    tkey, nonce, knonce = os.urandom(32), os.urandom(24), os.urandom(24)
    ct = vault_mod.crypto_aead_xchacha20poly1305_ietf_encrypt(
        t.apply(e).tobytes(), vault_mod._aad(pseudonym, b"template"), nonce, tkey
    )
    wrapped = vault_mod.crypto_aead_xchacha20poly1305_ietf_encrypt(
        tkey, vault_mod._aad(pseudonym, b"key"), knonce, old
    )
    storage.db.execute("UPDATE face_templates SET nonce = ?, ciphertext = ?", [nonce, ct])
    storage.db.execute(
        "UPDATE face_template_keys SET vault_key_id = ?, nonce = ?, wrapped_key = ?",
        [vault_mod.key_id(old), knonce, wrapped],
    )
    storage.db.execute("DELETE FROM state WHERE key IN ('vault_key_id', 'vault_transform_v1')")
    (data_dir / "keys" / "vault.key").write_bytes(old)
    again = TemplateVault(storage.db, data_dir / "keys", storage.audit, clock)
    assert again.identify(near(e, 0.05, 8)).accepted(0.45)
    assert again.rotate(by="admin:test") == 1
    assert (data_dir / "keys" / "vault.key").stat().st_size == 64
    fresh = TemplateVault(storage.db, data_dir / "keys", storage.audit, clock)
    assert fresh.identify(near(e, 0.05, 9)).accepted(0.45)
