"""The gate's key hierarchy, in one place (docs/keys.md).

::

    root  (a TPM 2.0's NV memory where fitted; otherwise files in <data_dir>/keys)
    ├── device master (32 B)  ── derive ──> "card"      keyed hash of card UIDs
    │                                       "pin"       PIN pepper before Argon2id
    │                                       "audit"     audit chain key
    │                                       "keycheck"  tag kept in the database
    │                                       "oncard-site"  this gate's site card key
    └── vault key (32 B, two slots) ── wraps ──> one random key per face template
                                    ── derive ──> "face-transform" (the template map)

**Deletion rotates what must stop existing.** Deleting a template replaces the
vault key: the remaining templates are re-encrypted under a new key written to
the *other* slot, the database commits, then the old slot is overwritten. The
deleted template's ciphertext and wrapped key may survive in the file system's
journal or on flash, but the only key that could unwrap them no longer exists:

* `TpmKeyRoot`: the keys live in TPM NV indices, never on the SD card; an
  overwritten NV index is gone (TPM 2.0 Part 3, TPM2_NV_Write). A raw image of
  the card holds no key at all, so PIN hashes, card hashes and templates on it
  cannot be tested offline without this gate's TPM.
* `FileKeyRoot`: the slots are written in place (same block), then `scrub`
  pushes the journal's size of filler through ext4 ``data=journal`` so the old
  key's copies in the journal are overwritten. That holds on a plain block
  device (tested on a loop device); on an SD card the flash translation layer
  may keep old pages where no software can reach them: **best effort**, and
  `doorpi status` says so. A copy of the card also holds the device master, so
  every 4-digit PIN and 4-byte card UID can be found offline in seconds.

Every derivation has a distinct full label (`LABELS`, up to 25 characters),
fed to BLAKE2b as its 16-byte personalisation plus 16-byte salt: nothing is
cut. Labels of up to 9 characters give the same bytes as before (an all-zero
salt is BLAKE2b's default), so card and PIN hashes and the audit chain of
existing gates stay valid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

KEY_BYTES = 32
EMPTY = bytes(KEY_BYTES)
ROOT_FILE = "keyroot.json"  # present: the keys live in a TPM (see TpmKeyRoot)
MASTER_FILE = "device.key"
VAULT_FILE = "vault.key"
LEGACY_VAULT_NEXT = "vault.key.next"  # written by doorpi before the two-slot vault file

# Every derivation of the gate, its site and the admin, with what it is for.
LABELS: dict[str, str] = {
    "card": "device master -> keyed hash of card identifiers",
    "pin": "device master -> PIN pepper applied before Argon2id",
    "audit": "device master -> audit log hash-chain key",
    "keycheck": "device master -> one-way tag kept in the database",
    "oncard-site": "device master -> this gate's site card key",
    "oncard-enc": "site card key -> encryption of templates on cards",
    "oncard-sign": "site card key -> signature of templates on cards",
    "face-transform": "vault key or site card key -> seed of the template map",
    "site-sign": "site seed -> Ed25519 bundle signing key",
    "site-box": "site seed -> X25519 report key",
    "site-pintag": "site seed -> PIN change tags",
}
_PREFIX = "doorpi:"
_MAX_LABEL = 32 - len(_PREFIX)


class KeyRootError(RuntimeError):
    """The key root cannot be read or written; the message names the file or TPM."""


def _label_bytes(label: str) -> tuple[bytes, bytes]:
    if label not in LABELS:
        raise ValueError(f"derivation label {label!r} is not in doorpi.store.keyroot.LABELS")
    raw = (_PREFIX + label).encode()
    if len(raw) > 32:
        raise ValueError(f"derivation label {label!r} is longer than {_MAX_LABEL} bytes")
    raw = raw.ljust(32, b"\0")
    return raw[:16], raw[16:]


def derive(key: bytes, label: str, size: int = 32) -> bytes:
    """A ``size``-byte purpose key from ``key`` (keyed BLAKE2b, the full ``label``
    as personalisation + salt). ValueError for a label not in `LABELS`."""
    person, salt = _label_bytes(label)
    return blake2b(b"", digest_size=size, key=key, person=person, salt=salt,
                   encoder=RawEncoder)  # fmt: skip


def derive_v1(key: bytes, label: str, size: int = 32) -> bytes:
    """The derivation before full labels (label cut to 16 bytes with its prefix).

    Only to read face templates stored before this version, once, while the
    vault re-encrypts them (TemplateVault); never for anything new."""
    return blake2b(b"", digest_size=size, key=key,
                   person=(_PREFIX + label)[:16].encode().ljust(16, b"\0"),
                   encoder=RawEncoder)  # fmt: skip


class KeyRoot(Protocol):
    """Where the device master and the two vault key slots are kept."""

    kind: str

    def read_master(self) -> bytes | None:
        """The 32-byte device master, None if there is none yet."""
        ...

    def write_master(self, key: bytes) -> None: ...

    def read_vault_slots(self) -> tuple[bytes, bytes]:
        """Both vault slots; an empty slot is 32 zero bytes."""
        ...

    def write_vault_slot(self, slot: int, key: bytes) -> None:
        """Overwrite one slot in place (``EMPTY`` wipes it); durable on return."""
        ...

    def scrub(self) -> None:
        """After a wipe: make old key copies unreachable as far as this root can."""
        ...

    def legacy_vault(self) -> bool:
        """True while the vault's keys are in the format of an earlier version."""
        ...

    def holds(self) -> str:
        """One line for `doorpi status`: what an image of the SD card reveals."""
        ...


def _check(data: bytes, where: str, size: int = KEY_BYTES) -> bytes:
    if len(data) != size:
        raise KeyRootError(f"{where}: must be {size} bytes, found {len(data)}")
    return data


class FileKeyRoot:
    """Keys in files of the keys folder (0600, in a 0700 folder): no TPM fitted."""

    kind = "file"

    def __init__(self, keys_dir: Path, scrub_bytes: int | None = None) -> None:
        self.keys_dir = keys_dir
        self.scrub_bytes = scrub_bytes

    def read_master(self) -> bytes | None:
        """Raises FileNotFoundError for no file (callers distinguish a first boot)."""
        return (self.keys_dir / MASTER_FILE).read_bytes()

    def write_master(self, key: bytes) -> None:
        from doorpi.store.secrets import write_secret_file

        write_secret_file(self.keys_dir / MASTER_FILE, _check(key, "device master"))

    def read_vault_slots(self) -> tuple[bytes, bytes]:
        path = self.keys_dir / VAULT_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return EMPTY, EMPTY
        except OSError as exc:
            raise KeyRootError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if len(data) == KEY_BYTES:  # the one-key file of earlier versions
            nxt = self.keys_dir / LEGACY_VAULT_NEXT
            pending = nxt.read_bytes() if nxt.exists() else EMPTY
            return data, pending if len(pending) == KEY_BYTES else EMPTY
        _check(data, str(path), 2 * KEY_BYTES)
        return data[:KEY_BYTES], data[KEY_BYTES:]

    def write_vault_slot(self, slot: int, key: bytes) -> None:
        """In place (the same file blocks), so no copy is left in a freed block."""
        from doorpi.store.secrets import write_secret_file

        _check(key, "vault key")
        path = self.keys_dir / VAULT_FILE
        slots = list(self.read_vault_slots())
        if not path.exists() or path.stat().st_size != 2 * KEY_BYTES:
            slots[slot] = key  # first write, or the one-key file of earlier versions
            if path.exists():
                with open(path, "r+b") as f:
                    f.write(b"".join(slots))
                    f.flush()
                    os.fsync(f.fileno())
            else:
                write_secret_file(path, b"".join(slots))
            legacy_next = self.keys_dir / LEGACY_VAULT_NEXT
            if legacy_next.exists():
                _wipe_file(legacy_next)
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, key, slot * KEY_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)

    def scrub(self) -> None:
        if self.scrub_bytes is not None or data_journal(self.keys_dir):
            scrub_journal(self.keys_dir, self.scrub_bytes)

    def legacy_vault(self) -> bool:
        """The one-key ``vault.key`` of versions before the two slots."""
        path = self.keys_dir / VAULT_FILE
        return path.exists() and path.stat().st_size == KEY_BYTES

    def holds(self) -> str:
        return (
            "files on the SD card (no TPM): a copy of the card reveals every "
            "4-digit PIN and card UID offline in seconds; deleted face templates are "
            "unrecoverable on the file system, best effort on flash (docs/keys.md)"
        )


def _wipe_file(path: Path) -> None:
    """Overwrite a small key file in place with zeros, then remove it."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.write(bytes(size))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except FileNotFoundError:
        pass


def _block_device(path: Path) -> str | None:
    """The kernel's name of the block device holding ``path`` ("mmcblk0p3", "loop0")."""
    st = os.stat(path)
    link = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    return link.resolve().name if link.exists() else None


def data_journal(path: Path) -> bool:
    """Whether ``path`` is on an ext4 file system mounted with ``data=journal`` (file
    data goes through the journal, so overwritten key blocks have copies there).
    Read from /proc/fs/ext4/DEV/options: /proc/self/mountinfo omits a mode that
    comes from the superblock's default mount options (``tune2fs -o journal_data``)."""
    dev = _block_device(path)
    try:
        opts = Path(f"/proc/fs/ext4/{dev}/options").read_text().split() if dev else []
    except OSError:
        return False
    return "data=journal" in opts


def journal_bytes(path: Path) -> int | None:
    """The ext4/jbd2 journal size of the file system holding ``path`` (bytes), from
    /proc/fs/jbd2 ("each up to N blocks" is a quarter to a third of the journal:
    this returns 4 N blocks, an upper bound); None when it cannot be told."""
    dev = _block_device(path)
    try:
        info = Path(f"/proc/fs/jbd2/{dev}-8/info").read_text() if dev else ""
    except OSError:
        return None
    for line in info.splitlines():
        if "each up to" in line:
            blocks = int(line.split("each up to")[1].split()[0])
            return 4 * blocks * os.statvfs(path).f_bsize
    return None


def scrub_journal(where: Path, size: int | None = None) -> int:
    """Push ``size`` bytes of filler (default: the file system's journal size, else
    64 MiB) through the file system holding ``where`` and remove it, so the copies
    of overwritten key blocks in an ext4 ``data=journal`` journal are overwritten
    too. The filler is one 1 MiB range rewritten and synced again and again (each
    commit journals it anew), so it needs 1 MiB of room, not the journal's size.
    Returns the bytes written."""
    size = size if size is not None else (journal_bytes(where) or 64 << 20)
    vfs = os.statvfs(where)
    room = vfs.f_bavail * vfs.f_frsize - (vfs.f_blocks * vfs.f_frsize) // 10
    filler = where / ".scrub"
    chunk = os.urandom(max(0, min(1 << 20, room)))
    if not chunk:
        return 0
    written = 0
    try:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while written < size:
                n = min(len(chunk), size - written)
                os.pwrite(fd, chunk[:n], 0)  # one block range, rewritten: each commit journals it
                os.fsync(fd)
                written += n
        finally:
            os.close(fd)
    finally:
        filler.unlink(missing_ok=True)
    return written


# ------------------------------------------------------------------ TPM 2.0

MASTER_INDEX = 0x01500D00  # owner NV range (TCG "Registry of Reserved TPM 2.0 Handles")
VAULT_INDEX = 0x01500D01


@dataclass
class TpmKeyRoot:
    """Keys in a TPM 2.0's NV memory (tpm2-pytss; ``tcti`` as TCTILdr takes it,
    e.g. "device:/dev/tpmrm0" on the Pi, "swtpm:host=127.0.0.1,port=2321" in tests).

    Owner-hierarchy NV indices, read and written with owner authorisation (empty
    on a TPM nobody took ownership of). Whoever holds *this gate's* TPM and root
    on it can read them: the protection is against a copied or lost SD card."""

    tcti: str
    master_index: int = MASTER_INDEX
    vault_index: int = VAULT_INDEX
    kind = "tpm"

    def _esapi(self):  # type: ignore[no-untyped-def]
        try:
            from tpm2_pytss import ESAPI, TCTILdr
        except ImportError as exc:
            raise KeyRootError(f"TPM key root: tpm2-pytss is not installed ({exc})") from None
        # tpm2-tss writes its own log lines to stderr (an absent NV index, which define()
        # expects, is an ERROR line there); failures reach the person as one
        # KeyRootError line instead. TSS2_LOG set by whoever runs doorpi is kept.
        os.environ.setdefault("TSS2_LOG", "all+none")
        name, _, conf = self.tcti.partition(":")
        try:
            return ESAPI(TCTILdr(name, conf or None))
        except Exception as exc:
            raise KeyRootError(f"TPM key root ({self.tcti}): cannot reach the TPM: {exc}") from None

    def _handle(self, esapi, index: int):  # type: ignore[no-untyped-def]
        return esapi.tr_from_tpmpublic(index)

    def define(self) -> None:
        """Create both NV indices (idempotent: existing ones are kept)."""
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPMA_NV
        from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

        esapi = self._esapi()
        try:
            for index, size in ((self.master_index, KEY_BYTES), (self.vault_index, 2 * KEY_BYTES)):
                try:
                    self._handle(esapi, index)  # an absent index is the expected answer
                    continue
                except Exception:
                    pass
                attrs = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA
                pub = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(
                    nvIndex=index, nameAlg=TPM2_ALG.SHA256, attributes=attrs, dataSize=size))  # fmt: skip
                h = esapi.nv_define_space(b"", pub)
                esapi.nv_write(h, bytes(size), 0, auth_handle=ESYS_TR.OWNER)
        finally:
            esapi.close()

    def _read(self, index: int, size: int) -> bytes:
        from tpm2_pytss.constants import ESYS_TR

        esapi = self._esapi()
        try:
            return bytes(
                esapi.nv_read(self._handle(esapi, index), size, 0, auth_handle=ESYS_TR.OWNER)
            )
        except KeyRootError:
            raise
        except Exception as exc:
            raise KeyRootError(f"TPM key root: cannot read NV index {index:#x}: {exc}") from None
        finally:
            esapi.close()

    def _write(self, index: int, data: bytes, offset: int = 0) -> None:
        from tpm2_pytss.constants import ESYS_TR

        esapi = self._esapi()
        try:
            esapi.nv_write(self._handle(esapi, index), data, offset, auth_handle=ESYS_TR.OWNER)
        except Exception as exc:
            raise KeyRootError(f"TPM key root: cannot write NV index {index:#x}: {exc}") from None
        finally:
            esapi.close()

    def read_master(self) -> bytes | None:
        data = self._read(self.master_index, KEY_BYTES)
        return None if data == EMPTY else data

    def write_master(self, key: bytes) -> None:
        self._write(self.master_index, _check(key, "device master"))

    def read_vault_slots(self) -> tuple[bytes, bytes]:
        data = self._read(self.vault_index, 2 * KEY_BYTES)
        return data[:KEY_BYTES], data[KEY_BYTES:]

    def write_vault_slot(self, slot: int, key: bytes) -> None:
        self._write(self.vault_index, _check(key, "vault key"), slot * KEY_BYTES)

    def scrub(self) -> None:
        """Nothing to do: no key was ever on the medium."""

    def legacy_vault(self) -> bool:
        return False

    def holds(self) -> str:
        return (
            f"TPM 2.0 ({self.tcti}): the SD card holds no key; PINs, card UIDs "
            "and deleted face templates cannot be recovered from a copy of it"
        )


def open_root(keys_dir: Path) -> FileKeyRoot | TpmKeyRoot:
    """The root this gate uses: a TPM when ``keys/keyroot.json`` says so, else files.

    A root file that cannot be read is a KeyRootError (never a silent fall back
    to files: that would make a new master and refuse every card and PIN)."""
    path = keys_dir / ROOT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return FileKeyRoot(keys_dir)
    except OSError as exc:
        raise KeyRootError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        cfg = json.loads(text)
        if cfg["kind"] != "tpm":
            raise ValueError(f"kind {cfg['kind']}")
        return TpmKeyRoot(str(cfg["tcti"]), int(cfg["master_index"]), int(cfg["vault_index"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyRootError(f"{path}: not a key root description ({exc})") from None


def move_to_tpm(keys_dir: Path, tcti: str) -> TpmKeyRoot:
    """Move the device master and the vault keys from files into the TPM, then
    wipe the files in place and scrub the journal. Idempotent on a TPM root."""
    from doorpi.store.secrets import write_secret_file

    current = open_root(keys_dir)
    if isinstance(current, TpmKeyRoot):
        return current
    tpm = TpmKeyRoot(tcti)
    tpm.define()
    try:
        master = current.read_master()
    except FileNotFoundError:
        master = None
    if master is not None:
        tpm.write_master(_check(master, str(keys_dir / MASTER_FILE)))
    for i, key in enumerate(current.read_vault_slots()):
        tpm.write_vault_slot(i, key)
    if master is not None and tpm.read_master() != master:
        raise KeyRootError("TPM key root: the master read back differs; files kept")
    root_desc = {"kind": "tpm", "tcti": tcti, "master_index": tpm.master_index,
                 "vault_index": tpm.vault_index}  # fmt: skip
    write_secret_file(keys_dir / ROOT_FILE, (json.dumps(root_desc) + "\n").encode())
    for name in (MASTER_FILE, VAULT_FILE, LEGACY_VAULT_NEXT):
        _wipe_file(keys_dir / name)
    current.scrub()
    return tpm


__all__ = [
    "EMPTY",
    "LABELS",
    "FileKeyRoot",
    "KeyRoot",
    "KeyRootError",
    "TpmKeyRoot",
    "derive",
    "derive_v1",
    "journal_bytes",
    "move_to_tpm",
    "open_root",
    "scrub_journal",
]
