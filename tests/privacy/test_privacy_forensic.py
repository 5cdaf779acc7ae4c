"""Deletion against a forensic image (law notes C11, issue #14): enrol on the
shipped data partition (ext4 ``data=journal`` on a loop device), withdraw, take a
raw image of the partition, then try everything found in it.

The image is searched for the keys by their bytes, and every 8-byte-aligned
32-byte window of every non-zero block is tried as the key that unwraps the
withdrawn template's key (the slots and the journal keep key blocks aligned).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import CryptoError
from privacy_support import PIA, SITE, FakeClock, enrol, unit_vector
from tpm_support import shipped_partition, swtpm

from doorpi.privacy.enrolment import FacePrivacy
from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
from doorpi.privacy.settings import PrivacySettings
from doorpi.privacy.vault import InstallationTransform, TemplateVault, _aad
from doorpi.store import Storage
from doorpi.store.keyroot import FileKeyRoot, move_to_tpm, open_root

BLOCK = 4096


def _gate(data: Path, clock: FakeClock) -> tuple[Storage, FacePrivacy]:
    storage = Storage.open(data)
    AssessmentRegistry(storage.db, storage.audit).record(
        ImpactAssessment(**PIA, author="DPO Li", created=clock())
    )
    vault = TemplateVault(storage.db, data / "keys", storage.audit, clock=clock)
    return storage, FacePrivacy(storage, vault, PrivacySettings(), SITE, clock=clock)


def _enrol_withdraw(data: Path, clock: FakeClock) -> dict:
    """Alice and Bob enrol, Alice withdraws; what an attacker wants, kept for the test."""
    storage, privacy = _gate(data, clock)
    try:
        alice = storage.residents.add("Alice Wang", clock(), keypad_id="101").id
        bob = storage.residents.add("Bob Chen", clock(), keypad_id="202").id
        enrol(privacy, alice, unit_vector(31))
        enrol(privacy, bob, unit_vector(32))
        pa = storage.residents.get(alice).pseudonym
        row = storage.db.execute(
            "SELECT t.nonce, t.ciphertext, k.nonce, k.wrapped_key FROM face_templates t "
            "JOIN face_template_keys k ON k.template_id = t.id WHERE t.pseudonym = ?",
            [pa],
        ).fetchone()
        loot = {
            "pseudonym": pa,
            "nonce": bytes(row[0]),
            "ct": bytes(row[1]),
            "knonce": bytes(row[2]),
            "wrapped": bytes(row[3]),
            "vault_key": privacy.vault._keys.current,
            "master": storage.secrets.master,
        }
        assert privacy.withdraw(alice, by="resident", channel="gate")
        loot["vault_key_after"] = privacy.vault._keys.current
        assert privacy.vault.count() == 1
    finally:
        storage.close()
    return loot


def _candidates(image: bytes) -> list[bytes]:
    """Every 8-byte-aligned 32-byte window of every non-zero block, once each."""
    blocks = np.frombuffer(image, np.uint8).reshape(-1, BLOCK)
    nonzero = np.flatnonzero(blocks.any(axis=1))
    seen: set[bytes] = set()
    for b in nonzero:
        block = image[b * BLOCK : (b + 1) * BLOCK + 24]
        for off in range(0, BLOCK, 8):
            w = block[off : off + 32]
            if len(w) == 32 and w.count(0) < 24:
                seen.add(w)
    return list(seen)


def _try_everything(image: bytes, loot: dict) -> tuple[int, list[np.ndarray]]:
    """(windows tried, templates recovered): unwrap the withdrawn template's key
    with every candidate, and decrypt its ciphertext with what unwraps; every
    candidate is also tried as the template's own key, in case one was left in clear."""
    aad_key, aad_t = _aad(loot["pseudonym"], b"key"), _aad(loot["pseudonym"], b"template")
    recovered = []
    cands = _candidates(image)
    for k in cands:
        try:
            plain = crypto_aead_xchacha20poly1305_ietf_decrypt(loot["ct"], aad_t, loot["nonce"], k)
            recovered.append(np.frombuffer(plain, np.float32))
            continue
        except CryptoError:
            pass
        try:
            tkey = crypto_aead_xchacha20poly1305_ietf_decrypt(
                loot["wrapped"], aad_key, loot["knonce"], k
            )
        except CryptoError:
            continue
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(loot["ct"], aad_t, loot["nonce"], tkey)
        recovered.append(np.frombuffer(plain, np.float32))
    return len(cands), recovered


def _report(name: str, image: bytes, loot: dict, tried: int) -> None:
    left = [k for k in ("ct", "wrapped") if loot[k] in image]
    print(f"{name}: image {len(image) >> 20} MiB, {tried} key candidates tried; "
          f"withdrawn template's {left or 'nothing'} still in the image")  # fmt: skip


def test_withdrawn_template_cannot_be_recovered_from_an_image_file_root(tmp_path: Path) -> None:
    """No TPM: the vault key is rotated on deletion, its slot overwritten in place,
    and the journal scrubbed. On a plain block device no old key is left."""
    clock = FakeClock()
    with shipped_partition(tmp_path) as (img, mnt):
        loot = _enrol_withdraw(mnt / "doorpi", clock)
        assert open_root(mnt / "doorpi" / "keys").kind == "file"
    image = img.read_bytes()
    assert loot["vault_key"] != loot["vault_key_after"]
    assert loot["vault_key"] not in image  # the key that wrapped it is gone
    tried, recovered = _try_everything(image, loot)
    _report("file root", image, loot, tried)
    assert tried > 1000  # the search saw the partition's content (journal, tables, keys)
    assert loot["vault_key_after"] in image  # and would have found a key left in clear
    assert recovered == []


def test_withdrawn_template_cannot_be_recovered_from_an_image_tpm_root(tmp_path: Path) -> None:
    """TPM root: no key is ever on the partition (the device master that was there
    before the move to the TPM is wiped and scrubbed too)."""
    clock = FakeClock()
    with swtpm(tmp_path / "tpm") as tcti, shipped_partition(tmp_path) as (img, mnt):
        data = mnt / "doorpi"
        first = Storage.open(data)  # a gate that ran on files first
        master_on_file = first.secrets.master
        first.close()
        move_to_tpm(data / "keys", tcti)
        assert not (data / "keys" / "device.key").exists()
        loot = _enrol_withdraw(data, clock)
        assert loot["master"] == master_on_file  # same pepper: PINs and cards still work
        assert open_root(data / "keys").kind == "tpm"
    image = img.read_bytes()
    for name in ("master", "vault_key", "vault_key_after"):
        assert loot[name] not in image, f"{name} found in the image"
    tried, recovered = _try_everything(image, loot)
    _report("tpm root", image, loot, tried)
    assert recovered == []


def test_the_earlier_design_gives_the_template_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without rotation and scrub (the design before), the same attack recovers the
    template exactly: the search is able to fail."""
    monkeypatch.setattr(TemplateVault, "_rotate", lambda self, revoke: (0, []))
    monkeypatch.setattr(FileKeyRoot, "scrub", lambda self: None)
    clock = FakeClock()
    with shipped_partition(tmp_path) as (img, mnt):
        loot = _enrol_withdraw(mnt / "doorpi", clock)
    image = img.read_bytes()
    _tried, recovered = _try_everything(image, loot)
    _report("no rotation", image, loot, _tried)
    assert recovered, "expected the old key and the wrapped key in the image"
    transform = InstallationTransform(loot["vault_key"])
    assert np.allclose(transform.invert(recovered[0]), unit_vector(31), atol=1e-6)


def test_the_search_finds_a_key_left_in_clear() -> None:
    """The image search itself: a template key or a vault key written anywhere
    (8-byte aligned) in a block is found and gives the template back."""
    import os

    from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt as seal

    vec = unit_vector(33)
    tkey, vkey, nonce, knonce = os.urandom(32), os.urandom(32), os.urandom(24), os.urandom(24)
    loot = {
        "pseudonym": "p" * 32,
        "nonce": nonce,
        "knonce": knonce,
        "ct": seal(vec.tobytes(), _aad("p" * 32, b"template"), nonce, tkey),
        "wrapped": seal(tkey, _aad("p" * 32, b"key"), knonce, vkey),
    }
    for key in (tkey, vkey):
        image = bytearray(4 * BLOCK)
        image[2 * BLOCK + 1000 : 2 * BLOCK + 1032] = key
        _tried, recovered = _try_everything(bytes(image), loot)
        assert len(recovered) == 1 and np.array_equal(recovered[0], vec)
    assert _try_everything(bytes(4 * BLOCK), loot) == (0, [])
