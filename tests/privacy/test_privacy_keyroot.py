"""The key hierarchy (doorpi.store.keyroot, docs/keys.md): full derivation labels,
the file root's in-place slots, and the TPM root on a real (software) TPM."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from privacy_support import enrol, near, unit_vector
from tpm_support import swtpm

from doorpi.privacy.vault import TemplateVault
from doorpi.store import KeyError_, Storage
from doorpi.store.keyroot import (
    EMPTY,
    LABELS,
    FileKeyRoot,
    TpmKeyRoot,
    derive,
    derive_v1,
    move_to_tpm,
    open_root,
)
from human_output import assert_human

KEY = bytes(range(32))

# ---------------------------------------------------------------- labels


def test_every_label_derives_a_distinct_key() -> None:
    keys = {label: derive(KEY, label) for label in LABELS}
    assert len(set(keys.values())) == len(LABELS)
    # The collision of the cut labels: both were "doorpi:oncard-si".
    assert derive_v1(KEY, "oncard-site") == derive_v1(KEY, "oncard-sign")
    assert derive(KEY, "oncard-site") != derive(KEY, "oncard-sign")


def test_short_labels_keep_their_keys_so_existing_hashes_stay_valid() -> None:
    for label in ("card", "pin", "audit", "keycheck", "site-sign", "site-box"):
        assert derive(KEY, label) == derive_v1(KEY, label), label


def test_a_label_not_written_down_or_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not in doorpi\.store\.keyroot\.LABELS"):
        derive(KEY, "oncard-signature-v2")
    for a, b in itertools.combinations(LABELS, 2):
        assert a != b
    assert max(len(label) for label in LABELS) <= 25


# ---------------------------------------------------------------- file root


def test_file_root_writes_slots_in_place_and_converts_the_one_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "vault.key").write_bytes(b"\x01" * 32)  # an earlier version's file
    root = FileKeyRoot(keys)
    assert root.legacy_vault()
    assert root.read_vault_slots() == (b"\x01" * 32, EMPTY)
    inode = (keys / "vault.key").stat().st_ino
    root.write_vault_slot(1, b"\x02" * 32)
    root.write_vault_slot(0, EMPTY)
    assert (keys / "vault.key").read_bytes() == EMPTY + b"\x02" * 32
    assert (keys / "vault.key").stat().st_ino == inode
    assert not root.legacy_vault()


def test_a_damaged_root_file_is_a_fault_not_a_fresh_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Storage.open(data).close()
    (data / "keys" / "keyroot.json").write_text("{not json")
    with pytest.raises(KeyError_, match=r"keyroot\.json: not a key root description"):
        Storage.open(data)
    assert open_root  # the same message for status (cli/status.py)


# ---------------------------------------------------------------- TPM root


def test_tpm_root_holds_the_master_and_the_vault_key_and_rotates_inside(
    tmp_path: Path, clock
) -> None:
    data = tmp_path / "data"
    with swtpm(tmp_path / "tpm") as tcti:
        s = Storage.open(data)
        master = s.secrets.master
        card_hash = s.secrets.card_key
        s.close()
        root = move_to_tpm(data / "keys", tcti)
        assert sorted(p.name for p in (data / "keys").iterdir()) == [
            "database.created",
            "keyroot.json",
        ]
        s = Storage.open(data)  # the same master, now from the TPM
        try:
            assert s.secrets.master == master and s.secrets.card_key == card_hash
            from privacy_support import PIA, SITE

            from doorpi.privacy.enrolment import FacePrivacy
            from doorpi.privacy.pia import AssessmentRegistry, ImpactAssessment
            from doorpi.privacy.settings import PrivacySettings

            AssessmentRegistry(s.db, s.audit).record(
                ImpactAssessment(**PIA, author="DPO", created=clock())
            )
            vault = TemplateVault(s.db, data / "keys", s.audit, clock)
            privacy = FacePrivacy(s, vault, PrivacySettings(), SITE, clock=clock)
            alice = s.residents.add("Alice", clock(), keypad_id="101").id
            bob = s.residents.add("Bob", clock(), keypad_id="202").id
            enrol(privacy, alice, unit_vector(41))
            enrol(privacy, bob, unit_vector(42))
            before = root.read_vault_slots()
            assert vault._keys.current in before
            privacy.withdraw(alice, by="test", channel="admin")
            after = root.read_vault_slots()
            assert vault._keys.current in after
            assert all(k not in after for k in before if k != EMPTY)  # overwritten in the TPM
            assert privacy.identify(near(unit_vector(42), 0.05, 3), 0.45) == bob
        finally:
            s.close()
    # The TPM is gone (another board, a broken module): a fault, never a new key.
    with pytest.raises(KeyError_, match=r"TPM key root \(swtpm:.*\): cannot reach the TPM"):
        Storage.open(data)
    assert not (data / "keys" / "device.key").exists()


def test_tpm_root_description_points_at_the_tpm(tmp_path: Path) -> None:
    with swtpm(tmp_path / "tpm") as tcti:
        root = move_to_tpm(tmp_path / "keys", tcti)
        again = open_root(tmp_path / "keys")
        assert isinstance(again, TpmKeyRoot) and again.tcti == tcti
        assert root.read_master() is None  # no device key yet: created on first open
        assert "SD card holds no key" in again.holds()


def test_cli_use_tpm_and_status_say_where_the_keys_are(tmp_path: Path, cfg_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def doorpi(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg_path), *argv],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    r = doorpi("status")
    assert r.returncode in (0, 2), r.stderr
    r = doorpi("resident", "add", "Alice", "--keypad-id", "101")
    assert r.returncode == 0, r.stderr
    r = doorpi("status")
    assert "no TPM" in r.stdout and "PIN and card UID offline" in r.stdout, r.stdout
    assert "best effort on flash" in r.stdout
    assert_human(r.stdout)
    with swtpm(tmp_path / "tpm") as tcti:
        r = doorpi("keys", "use-tpm", "--tcti", tcti)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("key root: TPM 2.0"), r.stdout
        assert "esys" not in r.stderr, r.stderr  # the expected probe of absent indices is quiet
        r = doorpi("status")
        assert r.returncode == 0, r.stderr
        assert "the SD card holds no key" in r.stdout and "key root: key root" not in r.stdout
        assert_human(r.stdout)
    r = doorpi("status")  # TPM unreachable: a one-line fault, no traceback
    assert r.returncode == 2 and "cannot reach the TPM" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_a_lost_vault_key_keeps_face_off_and_the_door_working(tmp_path: Path) -> None:
    """Templates whose key is gone are a fault the gate names, never a fresh key."""
    from privacy_support import FACE_ON, MONDAY_9, face_site

    site = face_site(tmp_path, FACE_ON)
    try:
        privacy = site.gate.face_privacy
        ticket = privacy.start_enrolment(site.rid, "admin_present", by="admin:test")
        privacy.consent(ticket, confirmed_by="admin:test")
        privacy.enrol(site.rid, unit_vector(61))
    finally:
        site.close()
    (tmp_path / "data" / "keys" / "vault.key").unlink()
    from doorpi.clocks import ManualClock
    from site_support import recorded_site

    site = recorded_site(tmp_path / "data", config=FACE_ON, clock=ManualClock(MONDAY_9 + 60),
                         settle=False)  # fmt: skip
    try:
        assert site.gate.face_privacy is None
        assert "face vault:" in site.gate.face_problem and "no vault key" in site.gate.face_problem
        assert not (tmp_path / "data" / "keys" / "vault.key").exists()  # nothing made afresh
        site.card("04a1b2c3d4e5f6")
        assert [e["granted"] for e in site.events if e["event"] == "access"] == [True]
    finally:
        site.close()


def test_a_read_only_database_still_matches_without_writing(
    privacy, storage, alice, data_dir: Path, clock
) -> None:
    """A read-only data partition at start: the vault reads its keys, writes nothing."""
    from doorpi.store.db import open_readonly

    enrol(privacy, alice, unit_vector(71))
    storage.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    slots = (data_dir / "keys" / "vault.key").read_bytes()
    ro = open_readonly(data_dir / "doorpi.db")
    try:
        v = TemplateVault(ro, data_dir / "keys", storage.audit, clock)
        assert v.identify(near(unit_vector(71), 0.05, 2)).accepted(0.45)
    finally:
        ro.conn.close()
    assert (data_dir / "keys" / "vault.key").read_bytes() == slots


def test_keys_init_with_a_tpm_never_writes_the_master_to_the_card(
    tmp_path: Path, cfg_path: Path
) -> None:
    """First boot with a TPM: `keys init --tpm` makes the device master in the TPM;
    strace shows no file of that name ever created or renamed into place."""
    import shutil

    if shutil.which("strace") is None:
        pytest.fail("strace is needed (scripts/system-deps.sh installs it)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    keys = cfg_path.parent / "data" / "keys"
    trace = tmp_path / "init.strace"
    with swtpm(tmp_path / "tpm") as tcti:
        r = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=openat,rename,renameat,renameat2,link,linkat",
             "-o", str(trace), sys.executable, "-m", "doorpi", "--config", str(cfg_path),
             "keys", "init", "--tpm", tcti],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        text = trace.read_text()
        assert "keyroot.json" in text  # the trace sees the key folder's writes
        writes = [ln for ln in text.splitlines() if "device.key" in ln
                  and any(w in ln for w in ("O_CREAT", "O_WRONLY", "O_RDWR", "rename", "link"))]  # fmt: skip
        assert "keys/device.key" in text and writes == []  # looked for, never written
        root = open_root(keys)
        assert root.kind == "tpm" and root.read_master() is not None
        s = Storage.open(cfg_path.parent / "data")
        try:
            assert s.secrets.master == root.read_master()
        finally:
            s.close()
        again = subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg_path), "keys", "init",
             "--tpm", tcti],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert again.returncode != 0 and "keys exist already" in again.stderr
        assert "Traceback" not in again.stderr


def test_first_boot_takes_the_tpm_only_when_the_device_is_there(
    tmp_path: Path, cfg_path: Path
) -> None:
    """doorpi-firstboot.service runs `keys init --tpm-if-present /dev/tpmrm0`: no such
    device makes file keys and says so; a device that is there but is no working TPM
    is one line and no key at all (never a silent fall back to keys on the card)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    keys = cfg_path.parent / "data" / "keys"

    def init(device: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "doorpi", "--config", str(cfg_path), "keys", "init",
             "--tpm-if-present", str(device)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    broken = tmp_path / "tpmrm0"
    broken.write_bytes(b"")  # there, but answers no TPM command
    r = init(broken)
    assert r.returncode != 0
    assert f"device:{broken}" in r.stderr and "TPM" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not (keys / "device.key").exists() and not (keys / "gate-ed25519.key").exists()
    assert open_root(keys).kind == "file"  # nothing recorded: the next boot tries again

    r = init(tmp_path / "absent")
    assert r.returncode == 0, r.stderr
    assert "key root: files on the SD card (no TPM)" in r.stdout, r.stdout
    assert (keys / "device.key").stat().st_size == 32
    assert open_root(keys).kind == "file"
    assert_human(r.stdout)


def test_keys_init_takes_one_tpm_choice(cfg_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg_path), "keys", "init",
         "--tpm", "device:/dev/tpmrm0", "--tpm-if-present", "/dev/tpmrm0"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "exclude each other" in r.stderr, r.stderr
    assert not (cfg_path.parent / "data" / "keys" / "gate-ed25519.key").exists()
