"""The template vault: face templates encrypted at rest, bound to this gate.

Why this shape (law notes D14-D17, C10-C11):

* Each template is encrypted (XChaCha20-Poly1305) under its **own** random
  key; that key is wrapped by the installation's **vault key**, kept by the
  key root (doorpi.store.keyroot: a TPM's NV memory, or the two-slot file
  ``keys/vault.key``), never in the database. Deleting a template deletes its
  wrapped key and its ciphertext, with ``secure_delete``, VACUUM and a
  truncating WAL checkpoint, **and rotates the vault key**: the remaining
  templates are re-encrypted under a new key, the old key is overwritten. A
  copy of the deleted rows that survives in a file system journal or on flash
  is then wrapped by a key that no longer exists (docs/keys.md says where that
  holds and where it is best effort).
* Before encryption the embedding is turned by a secret orthogonal map
  derived from the vault key (`InstallationTransform`). Cosine scores are
  unchanged here, but a template decrypted and carried to another
  installation does not match there, and `rotate` renews the map, so
  re-enrolment yields unlinkable templates (ISO/IEC 24745).
* Templates live apart from identity data, keyed only by the resident's
  random pseudonym; the AEAD's associated data binds each ciphertext to its
  pseudonym, so swapping rows is detected as an integrity failure, which
  is rejected and written to the audit log.
* Matching re-reads the table whenever it changed in any process (a
  trigger bumps ``state.face_generation``), so a withdrawal by the admin
  CLI stops matching in the gate process at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.encoding import RawEncoder
from nacl.exceptions import CryptoError
from nacl.hash import blake2b

from doorpi.store.audit import AuditLog
from doorpi.store.db import get_state
from doorpi.store.keyroot import EMPTY, KeyRootError, derive, derive_v1, open_root

EMBEDDING_DIM = 128
TEMPLATE_BYTES = EMBEDDING_DIM * 4
NONCE_BYTES = 24
STATE_KEY = "vault_key_id"  # which slot's key is current (set in the re-encryption's commit)
STATE_V1 = "vault_transform_v1"  # key id whose templates use the map of earlier versions
_FORMAT = b"doorpi-face-v1"
MAX_FALSE_MATCHES = 1000  # reports remembered for the sync


class VaultError(RuntimeError):
    """A vault operation that cannot be done; the message says why."""


class NoConsentError(VaultError):
    """No live consent record covers the template (PIPL 29: no consent, no template)."""


def key_id(key: bytes) -> str:
    """Short public name of a vault key (which key wrapped a row)."""
    return blake2b(key, digest_size=8, person=b"doorpi:vault-id\0", encoder=RawEncoder).hex()


def _xof(key: bytes, label: str, n: int) -> bytes:
    """``n`` pseudo-random bytes from a key (BLAKE2b in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += blake2b(
            label.encode() + counter.to_bytes(4, "big"),
            digest_size=64,
            key=key,
            encoder=RawEncoder,
        )
        counter += 1
    return bytes(out[:n])


class InstallationTransform:
    """A secret orthogonal map of embedding space, derived from the vault key.

    Eight Householder reflections and a signed permutation: exactly
    orthogonal (cosine scores are preserved), cheap, and deterministic
    without relying on a random number generator's stream staying stable
    across numpy versions.
    """

    def __init__(
        self, vault_key: bytes, dim: int = EMBEDDING_DIM, reflections: int = 8, v1: bool = False
    ) -> None:
        # v1: the seed of versions before full derivation labels (stored templates only)
        seed = (derive_v1 if v1 else derive)(vault_key, "face-transform")
        raw = np.frombuffer(_xof(seed, "householder", reflections * dim * 4), np.uint32)
        v = raw.astype(np.float64).reshape(reflections, dim) / 2**32 - 0.5
        self._v = v / np.linalg.norm(v, axis=1, keepdims=True)
        perm_bytes = np.frombuffer(_xof(seed, "permutation", dim * 4), np.uint32)
        self._perm = np.argsort(perm_bytes, kind="stable")
        signs = np.frombuffer(_xof(seed, "signs", dim), np.uint8)
        self._signs = np.where(signs & 1, -1.0, 1.0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map one embedding or a (N, dim) batch; float32 out."""
        y = np.asarray(x, np.float64)
        for v in self._v:
            y = y - 2.0 * np.multiply.outer(y @ v, v) if y.ndim == 2 else y - 2.0 * (y @ v) * v
        y = y[..., self._perm] * self._signs
        return y.astype(np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Undo `apply` for one vector (the map is orthogonal)."""
        x = np.empty(self._perm.size, np.float64)
        x[self._perm] = np.asarray(y, np.float64) * self._signs
        for v in self._v[::-1]:
            x = x - 2.0 * (x @ v) * v
        return x.astype(np.float32)


def check_embedding(embedding: np.ndarray) -> np.ndarray:
    """A 128-d finite, unit-length float32 vector, or VaultError."""
    e = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if e.size != EMBEDDING_DIM or not np.all(np.isfinite(e)):
        raise VaultError(f"a template is {EMBEDDING_DIM} finite float32 values")
    n = float(np.linalg.norm(e))
    if not 0.99 <= n <= 1.01:
        raise VaultError(f"a template must be L2-normalised (norm {n:.3f})")
    return e


@dataclass(frozen=True)
class VaultKeys:
    """The current vault key and its slot, plus the other slot's key while a
    crashed rotation left one that rows may still use."""

    current: bytes
    slot: int = 0
    other: bytes | None = None

    def by_id(self, kid: str) -> bytes | None:
        for k in (self.current, self.other):
            if k is not None and key_id(k) == kid:
                return k
        return None

    @classmethod
    def read(cls, slots: tuple[bytes, bytes], current_id: str | None) -> VaultKeys | None:
        """The keys as the slots and the database's ``vault_key_id`` say, or None
        when no slot holds that key (or none is stored and both slots are empty)."""
        live = [i for i in (0, 1) if slots[i] != EMPTY]
        if current_id is not None:
            cur = [i for i in live if key_id(slots[i]) == current_id]
        else:
            cur = live[:1]
        if not cur:
            return None
        i = cur[0]
        other = slots[1 - i] if (1 - i) in live else None
        return cls(slots[i], i, other)


@dataclass(frozen=True)
class TemplateInfo:
    """What may be said about a stored template: never the template itself."""

    pseudonym: str
    consent_id: int
    created: float
    expires: float
    vault_key_id: str


@dataclass(frozen=True)
class VaultMatch:
    pseudonym: str | None
    score: float
    second: float

    def accepted(self, threshold: float, min_margin: float = 0.0) -> bool:
        return (
            self.pseudonym is not None
            and self.score >= threshold
            and self.score - self.second >= min_margin
        )


@dataclass
class _Cache:
    generation: str = ""
    ids: list[str] = field(default_factory=list)
    matrix: np.ndarray = field(default_factory=lambda: np.empty((0, EMBEDDING_DIM), np.float32))
    expires: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    suspended: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # no face alone


def open_set_best(scores: np.ndarray, eligible: np.ndarray) -> tuple[int | None, float, float]:
    """(index, score) of the best eligible template, and the best score of any
    other live one (``scores`` > -2), which the margin rule compares against.

    A template taken out of face-alone matching is never *best* but still
    competes as second, so a probe close to it is refused rather than
    handed to the next resident.
    """
    if scores.size == 0 or not eligible.any():
        return None, -1.0, -1.0
    best = int(np.argmax(np.where(eligible, scores, -3.0)))
    others = scores > -2.0
    others[best] = False
    second = float(scores[others].max()) if others.any() else -1.0
    return best, float(scores[best]), second


def _aad(pseudonym: str, kind: bytes) -> bytes:
    return _FORMAT + b"|" + kind + b"|" + pseudonym.encode()


class TemplateVault:
    """Encrypted face templates in the gate's database, matchable in memory only."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        keys_dir: Path,
        audit: AuditLog,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.db = db
        self.keys_dir = keys_dir
        self.audit = audit
        self.clock = clock or time.time
        try:
            self.root = open_root(keys_dir)
        except KeyRootError as exc:
            raise VaultError(str(exc)) from None
        self._lock = threading.RLock()
        try:
            self._keys = self._open_keys()
        except KeyRootError as exc:  # a TPM that refuses a write, a key file that cannot be
            raise VaultError(str(exc)) from None
        self._transforms: dict[str, InstallationTransform] = {}
        self._cache = _Cache()

    @property
    def _transform(self) -> InstallationTransform:
        """The map for the current vault key (new templates are stored under it)."""
        return self._transform_for(self._keys.current)

    def _transform_for(self, key: bytes) -> InstallationTransform:
        kid = key_id(key)
        if kid not in self._transforms:
            v1 = get_state(self.db, STATE_V1) == kid
            self._transforms = {kid: InstallationTransform(key, v1=v1)}  # keep one: old keys go
        return self._transforms[kid]

    def _slots(self) -> tuple[bytes, bytes]:
        try:
            return self.root.read_vault_slots()
        except KeyRootError as exc:
            raise VaultError(str(exc)) from None

    def _used_ids(self, conn: sqlite3.Connection) -> set[str]:
        return {r[0] for r in conn.execute("SELECT DISTINCT vault_key_id FROM face_template_keys")}

    def _open_keys(self) -> VaultKeys:
        """The vault keys at start: a first key is made on first use; a slot a crashed
        rotation left behind (no row and not current) is wiped; the key file of
        earlier versions (one key, old template map) is recorded for conversion.

        VaultError when the database holds templates and no slot has their key."""
        conn = self.db.conn
        try:
            return self._open_keys_rw(conn)
        except sqlite3.OperationalError:  # read-only or full partition: read what is there
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            keys = VaultKeys.read(self._slots(), get_state(self.db, STATE_KEY))
            return keys or VaultKeys(EMPTY)

    def _open_keys_rw(self, conn: sqlite3.Connection) -> VaultKeys:
        conn.execute("BEGIN IMMEDIATE")  # no rotation in another process meanwhile
        try:
            slots = self._slots()
            used = self._used_ids(conn)
            want = get_state(self.db, STATE_KEY)
            if want is None:  # a first start, or a vault of an earlier version
                by_use = [i for i in (0, 1) if slots[i] != EMPTY and key_id(slots[i]) in used]
                if by_use:
                    want = key_id(slots[by_use[0]])
                    if self.root.legacy_vault():
                        conn.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)",
                                     [STATE_V1, want])  # fmt: skip
            keys = VaultKeys.read(slots, want)
            if keys is None:
                if used:
                    raise VaultError(
                        f"{self.root.kind} key root holds no vault key for the {len(used)} "
                        "key id(s) the face templates are wrapped with: restore keys/ with "
                        "doorpi.db from the same backup (docs/recovery.md)"
                    )
                new = os.urandom(32)
                self.root.write_vault_slot(0, new)
                keys = VaultKeys(new, 0)
            conn.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)",
                         [STATE_KEY, key_id(keys.current)])  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if keys.other is not None and key_id(keys.other) not in used:
            self.root.write_vault_slot(1 - keys.slot, EMPTY)  # left by a crashed rotation
            keys = VaultKeys(keys.current, keys.slot)
        return keys

    def _reload_keys(self) -> None:
        """Another process (`doorpi keys rotate`, a withdrawal) may have rotated."""
        fresh = VaultKeys.read(self._slots(), get_state(self.db, STATE_KEY))
        if fresh is not None and fresh != self._keys:
            self._keys = fresh
            self._cache = _Cache()

    def _key_for(self, kid: str) -> bytes | None:
        key = self._keys.by_id(kid)
        if key is None:
            self._reload_keys()
            key = self._keys.by_id(kid)
        return key

    # ------------------------------------------------------------ storing

    def store(self, pseudonym: str, embedding: np.ndarray, consent_id: int, expires: float) -> int:
        """Encrypt and store a resident's template (replacing an older one).

        The database trigger refuses the row unless ``consent_id`` is a live
        consent of the same pseudonym that lasts until ``expires``.
        """
        now = self.clock()
        self._reload_keys()  # `doorpi keys rotate` may have run in another process
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                tid, replaced = self.store_in(conn, pseudonym, embedding, consent_id, expires)
                conn.execute("COMMIT")
            except Exception as exc:
                conn.execute("ROLLBACK")
                if "no live face consent" in str(exc):
                    raise NoConsentError(
                        "no live face consent covers this template; record consent first"
                    ) from None
                raise
        if replaced:
            self.purge()  # the replaced template's pages leave the WAL too
        self.audit.append(
            "face_template_stored",
            {"pseudonym": pseudonym[:8], "consent_id": consent_id, "expires": expires},
            ts=now,
        )
        return tid

    def store_in(
        self,
        conn: sqlite3.Connection,
        pseudonym: str,
        embedding: np.ndarray,
        consent_id: int,
        expires: float,
    ) -> tuple[int, bool]:
        """`store` inside the caller's transaction: (template id, replaced an older one).

        For the sync import, which must store templates in the same transaction
        as everything else. No audit record and no `purge` here (both need a
        transaction of their own): the caller does them after its commit. The
        vault key is the one loaded when this vault was opened (the import's
        own process opens it just before).
        """
        e = check_embedding(embedding)
        protected = self._transform.apply(e).tobytes()
        tkey = os.urandom(32)
        nonce = os.urandom(NONCE_BYTES)
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(
            protected, _aad(pseudonym, b"template"), nonce, tkey
        )
        knonce = os.urandom(NONCE_BYTES)
        wrapped = crypto_aead_xchacha20poly1305_ietf_encrypt(
            tkey, _aad(pseudonym, b"key"), knonce, self._keys.current
        )
        with self._lock:
            replaced = conn.execute(
                "DELETE FROM face_templates WHERE pseudonym = ?", [pseudonym]
            ).rowcount
            cur = conn.execute(
                "INSERT INTO face_templates(pseudonym, consent_id, nonce, ciphertext, created, "
                "expires) VALUES (?, ?, ?, ?, ?, ?)",
                [pseudonym, consent_id, nonce, ct, self.clock(), expires],
            )
            tid = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO face_template_keys(template_id, vault_key_id, nonce, wrapped_key) "
                "VALUES (?, ?, ?, ?)",
                [tid, key_id(self._keys.current), knonce, wrapped],
            )
            self._cache = _Cache()
        return tid, bool(replaced)

    # ------------------------------------------------------------ reading

    def info(self, pseudonym: str) -> TemplateInfo | None:
        r = self.db.execute(
            "SELECT t.pseudonym, t.consent_id, t.created, t.expires, k.vault_key_id "
            "FROM face_templates t JOIN face_template_keys k ON k.template_id = t.id "
            "WHERE t.pseudonym = ?",
            [pseudonym],
        ).fetchone()
        return TemplateInfo(*r) if r else None

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM face_templates").fetchone()[0])

    def pseudonyms(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT pseudonym FROM face_templates ORDER BY id")]

    def _decrypt_row(self, row: tuple[Any, ...], log: bool = True) -> np.ndarray | None:
        """The embedding of one row (in memory only), or None if it fails integrity
        (logged unless ``log`` is false: the caller is inside a transaction)."""
        pseudonym, nonce, ct, kid, knonce, wrapped = row
        key = self._key_for(kid)
        try:
            if key is None:
                raise CryptoError("wrapped by an unknown vault key")
            tkey = crypto_aead_xchacha20poly1305_ietf_decrypt(
                wrapped, _aad(pseudonym, b"key"), knonce, key
            )
            plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
                ct, _aad(pseudonym, b"template"), nonce, tkey
            )
        except CryptoError as exc:
            if not log:
                return None
            self.audit.append(
                "face_template_rejected",
                {"pseudonym": pseudonym[:8], "reason": "integrity", "detail": str(exc)[:80]},
                ts=self.clock(),
            )
            return None
        if len(plain) != TEMPLATE_BYTES:
            return None
        return self._transform_for(key).invert(np.frombuffer(plain, np.float32))

    def _rows(self, pseudonym: str | None = None) -> list[tuple[Any, ...]]:
        sql = (
            "SELECT t.pseudonym, t.nonce, t.ciphertext, k.vault_key_id, k.nonce, k.wrapped_key, "
            "t.expires, t.hands_free_suspended IS NOT NULL FROM face_templates t "
            "JOIN face_template_keys k ON k.template_id = t.id WHERE t.expires > ?"
        )
        params: list[Any] = [self.clock()]
        if pseudonym is not None:
            sql += " AND t.pseudonym = ?"
            params.append(pseudonym)
        return self.db.execute(sql + " ORDER BY t.id", params).fetchall()

    def _generation(self) -> str:
        row = self.db.execute("SELECT value FROM state WHERE key = 'face_generation'").fetchone()
        return str(row[0]) if row else "0"

    def _gallery(self) -> _Cache:
        """Decrypted, transformed templates in memory; rebuilt whenever the
        template table changed in any process (a trigger bumps a counter)."""
        with self._lock:
            gen = self._generation()
            if gen != self._cache.generation:
                ids: list[str] = []
                vecs: list[np.ndarray] = []
                expires: list[float] = []
                suspended: list[bool] = []
                for row in self._rows():
                    v = self._decrypt_row(row[:6])
                    if v is not None:
                        ids.append(row[0])
                        vecs.append(v)
                        expires.append(float(row[6]))
                        suspended.append(bool(row[7]))
                mat = np.vstack(vecs) if vecs else np.empty((0, EMBEDDING_DIM), np.float32)
                self._cache = _Cache(gen, ids, mat, np.array(expires, np.float64),
                                     np.array(suspended, bool))  # fmt: skip
            return self._cache

    # ------------------------------------------------------------ matching

    def identify(self, probe: np.ndarray) -> VaultMatch:
        """1:N search of a live probe embedding against every stored template."""
        q = check_embedding(probe)
        g = self._gallery()
        # Expiry is enforced at match time too, not only by the sweeper.
        live = g.expires > self.clock()
        scores = np.where(live, g.matrix @ q, -2.0) if live.any() else np.empty(0)
        best, score, second = open_set_best(scores, live & ~g.suspended)
        return VaultMatch(None if best is None else g.ids[best], score, second)

    def suspend_hands_free(self, pseudonym: str, now: float) -> bool:
        """Take a template out of face-alone matching (a reported false match)
        until the resident enrols again; 1:1 with their card or number still works.

        The report is also remembered in ``state.face_false_matches`` so the USB
        sync can take it to the site's other gates (doorpi.sync.importer)."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = conn.execute(
                    "UPDATE face_templates SET hands_free_suspended = ? WHERE pseudonym = ?",
                    [now, pseudonym],
                ).rowcount
                row = conn.execute(
                    "SELECT value FROM state WHERE key = 'face_false_matches'"
                ).fetchone()
                reports = [*json.loads(row[0] if row else "[]"), [pseudonym, now]]
                conn.execute(
                    "INSERT OR REPLACE INTO state(key, value) VALUES ('face_false_matches', ?)",
                    [json.dumps(reports[-MAX_FALSE_MATCHES:])],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._cache = _Cache()
        return bool(n)

    def embedding(self, pseudonym: str) -> np.ndarray | None:
        """One resident's live template, decrypted in memory (for sealing it to the
        site's other gates); None if none is stored, it expired or fails integrity."""
        rows = self._rows(pseudonym)
        return self._decrypt_row(rows[0][:6]) if rows else None

    def verify(self, pseudonym: str, probe: np.ndarray) -> float | None:
        """1:1 score against one resident's template (None: none stored or rejected)."""
        v = self.embedding(pseudonym)
        return None if v is None else float(v @ check_embedding(probe))

    # ------------------------------------------------------------ deleting

    def delete(self, pseudonym: str, reason: str, by: str = "system", purge: bool = True) -> bool:
        """Crypto-shred and physically delete one template; True if there was one.

        ``purge=False`` lets a caller batch several deletions before one `purge`.
        """
        with self._lock:
            n = self.db.conn.execute(
                "DELETE FROM face_templates WHERE pseudonym = ?", [pseudonym]
            ).rowcount
            self._cache = _Cache()
        if purge:
            self.purge()
        if n:
            self.audit.append(
                "face_template_deleted",
                {"pseudonym": pseudonym[:8], "reason": reason, "by": by},
                ts=self.clock(),
            )
        return bool(n)

    def purge(self) -> None:
        """Make deletions physical: rotate the vault key (the templates kept are
        re-encrypted under a new key, the old key is overwritten in its root),
        then overwrite freed pages and empty the WAL.

        ``secure_delete`` (set by open_db) zeroes deleted cells; VACUUM
        rebuilds the file without free pages; a TRUNCATE checkpoint copies
        the WAL into the database and cuts the WAL file to zero bytes.
        """
        self._rotate(revoke=False)
        self._vacuum()
        self.root.scrub()

    def _vacuum(self) -> None:
        conn = self.db.conn
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------ re-keying

    def rotate(self, revoke: bool = False, by: str = "admin") -> int:
        """New vault key and transform; re-encrypt every template, or with
        ``revoke`` delete them all. Returns how many templates were kept."""
        now = self.clock()
        kept, dropped = self._rotate(revoke)
        self._vacuum()
        self.root.scrub()
        for pseudonym in dropped:
            self.audit.append(
                "face_template_rejected",
                {"pseudonym": pseudonym[:8], "reason": "integrity", "detail": "at key rotation"},
                ts=now,
            )
        revoked = len(dropped) if not revoke else len(dropped) + kept
        self.audit.append(
            "face_keys_rotated",
            {"revoked": revoked, "kept": 0 if revoke else kept, "by": by},
            ts=now,
        )
        return 0 if revoke else kept

    def _rotate(self, revoke: bool) -> tuple[int, list[str]]:
        """(templates re-encrypted, pseudonyms dropped as unreadable).

        Crash-safe: under the database's write lock the new key goes to the
        *other* slot first; the re-encryption and the new ``vault_key_id``
        commit together; then the old slot is overwritten. A crash before the
        commit leaves the old key current (the new slot is wiped at the next
        start), after it the new one (the old slot is wiped at the next start).
        With ``revoke`` every template is deleted (returned as re-encrypted
        count, nothing dropped)."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            dropped: list[str] = []
            n = 0
            try:
                self._reload_keys()
                old_slot = self._keys.slot
                rows = conn.execute(
                    "SELECT t.pseudonym, t.nonce, t.ciphertext, k.vault_key_id, k.nonce, "
                    "k.wrapped_key, t.id FROM face_templates t "
                    "JOIN face_template_keys k ON k.template_id = t.id ORDER BY t.id"
                ).fetchall()
                if revoke:
                    n = conn.execute("DELETE FROM face_templates").rowcount
                    plain: list[tuple[int, str, np.ndarray | None]] = []
                else:
                    plain = [(r[6], r[0], self._decrypt_row(r[:6], log=False)) for r in rows]
                new = os.urandom(32)
                self.root.write_vault_slot(1 - old_slot, new)
                self._keys = VaultKeys(self._keys.current, old_slot, new)
                transform = InstallationTransform(new)
                for tid, pseudonym, e in plain:
                    if e is None:  # unreadable: cannot be re-keyed, so it goes
                        conn.execute("DELETE FROM face_templates WHERE id = ?", [tid])
                        dropped.append(pseudonym)
                        continue
                    tkey, nonce, knonce = os.urandom(32), os.urandom(24), os.urandom(24)
                    ct = crypto_aead_xchacha20poly1305_ietf_encrypt(
                        transform.apply(e).tobytes(), _aad(pseudonym, b"template"), nonce, tkey
                    )
                    wrapped = crypto_aead_xchacha20poly1305_ietf_encrypt(
                        tkey, _aad(pseudonym, b"key"), knonce, new
                    )
                    conn.execute(
                        "UPDATE face_templates SET nonce = ?, ciphertext = ? WHERE id = ?",
                        [nonce, ct, tid],
                    )
                    conn.execute(
                        "UPDATE face_template_keys SET vault_key_id = ?, nonce = ?, "
                        "wrapped_key = ? WHERE template_id = ?",
                        [key_id(new), knonce, wrapped, tid],
                    )
                conn.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)",
                             [STATE_KEY, key_id(new)])  # fmt: skip
                conn.execute("DELETE FROM state WHERE key = ?", [STATE_V1])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if self._keys.other is not None:
                    self.root.write_vault_slot(1 - self._keys.slot, EMPTY)
                self._keys = VaultKeys(self._keys.current, self._keys.slot)
                raise
            self.root.write_vault_slot(old_slot, EMPTY)  # the old key stops existing
            self._keys = VaultKeys(new, 1 - old_slot)
            self._transforms = {}
            self._cache = _Cache()
        return (n if revoke else len(plain) - len(dropped)), dropped


__all__ = [
    "EMBEDDING_DIM",
    "STATE_KEY",
    "InstallationTransform",
    "NoConsentError",
    "TemplateInfo",
    "TemplateVault",
    "VaultError",
    "VaultKeys",
    "VaultMatch",
    "check_embedding",
    "key_id",
    "open_set_best",
]
