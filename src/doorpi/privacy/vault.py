"""The template vault: face templates encrypted at rest, bound to this gate.

Why this shape (law notes D14-D17, C10-C11):

* Each template is encrypted (XChaCha20-Poly1305) under its **own** random
  key; that key is wrapped by the installation's **vault key**, a 32-byte
  file in the keys directory (0600), never in the database. Deleting a
  template deletes its wrapped key and its ciphertext (crypto-shredding),
  with ``secure_delete`` and a truncating WAL checkpoint so the bytes are
  physically gone from the database file and the WAL.
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
from doorpi.store.secrets import derive, write_secret_file

EMBEDDING_DIM = 128
TEMPLATE_BYTES = EMBEDDING_DIM * 4
NONCE_BYTES = 24
VAULT_KEY_FILE = "vault.key"
VAULT_KEY_NEXT = "vault.key.next"
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

    def __init__(self, vault_key: bytes, dim: int = EMBEDDING_DIM, reflections: int = 8) -> None:
        seed = derive(vault_key, "face-transform")
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
    """The installation's vault key, plus the next one during a rotation."""

    current: bytes
    pending: bytes | None = None

    def by_id(self, kid: str) -> bytes | None:
        for k in (self.current, self.pending):
            if k is not None and key_id(k) == kid:
                return k
        return None

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> VaultKeys:
        path = keys_dir / VAULT_KEY_FILE
        if not path.exists():
            write_secret_file(path, os.urandom(32))
        current = path.read_bytes()
        if len(current) != 32:
            raise VaultError(f"{path}: vault key must be 32 bytes, found {len(current)}")
        nxt = keys_dir / VAULT_KEY_NEXT
        pending = nxt.read_bytes() if nxt.exists() else None
        if pending is not None and len(pending) != 32:
            pending = None
        return cls(current, pending)


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
        self._keys = VaultKeys.load_or_create(keys_dir)
        self._finish_rotation()
        self._transforms: dict[str, InstallationTransform] = {}
        self._cache = _Cache()
        self._lock = threading.RLock()

    @property
    def _transform(self) -> InstallationTransform:
        """The map for the current vault key (new templates are stored under it)."""
        return self._transform_for(self._keys.current)

    def _transform_for(self, key: bytes) -> InstallationTransform:
        kid = key_id(key)
        if kid not in self._transforms:
            self._transforms = {kid: InstallationTransform(key)}  # keep one: old keys go
        return self._transforms[kid]

    def _reload_keys(self) -> None:
        """Another process (`doorpi keys rotate`) may have replaced the vault key."""
        fresh = VaultKeys.load_or_create(self.keys_dir)
        if fresh != self._keys:
            self._keys = fresh
            self._cache = _Cache()

    def _key_for(self, kid: str) -> bytes | None:
        key = self._keys.by_id(kid)
        if key is None:
            self._reload_keys()
            key = self._keys.by_id(kid)
        return key

    def _finish_rotation(self) -> None:
        """After a crash mid-rotation: adopt the new key if the database already
        uses it, else forget it (the rotation never committed)."""
        pending = self._keys.pending
        if pending is None:
            return
        used = self.db.execute(
            "SELECT count(*) FROM face_template_keys WHERE vault_key_id = ?", [key_id(pending)]
        ).fetchone()[0]
        if used:
            os.replace(self.keys_dir / VAULT_KEY_NEXT, self.keys_dir / VAULT_KEY_FILE)
            self._keys = VaultKeys(pending)
        else:
            (self.keys_dir / VAULT_KEY_NEXT).unlink(missing_ok=True)
            self._keys = VaultKeys(self._keys.current)

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
        """Make deletions physical: overwrite freed pages and empty the WAL.

        ``secure_delete`` (set by open_db) zeroes deleted cells; VACUUM
        rebuilds the file without free pages; a TRUNCATE checkpoint copies
        the WAL into the database and cuts the WAL file to zero bytes.
        """
        conn = self.db.conn
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------ re-keying

    def rotate(self, revoke: bool = False, by: str = "admin") -> int:
        """New vault key and transform; re-encrypt every template, or with
        ``revoke`` delete them all. Returns how many templates were kept.

        Crash-safe: the new key is written as ``vault.key.next`` first and is
        accepted for unwrapping until it replaces ``vault.key``.
        """
        now = self.clock()
        with self._lock:
            if revoke:
                n = self.db.conn.execute("DELETE FROM face_templates").rowcount
                new = os.urandom(32)
                write_secret_file(self.keys_dir / VAULT_KEY_FILE, new)
                self._keys = VaultKeys(new)
                self._cache = _Cache()
                self.purge()
                self.audit.append("face_keys_rotated", {"revoked": n, "kept": 0, "by": by}, ts=now)
                return 0
            self._reload_keys()
            conn = self.db.conn
            # One write transaction from read to re-encryption: no template can be
            # stored under the old key meanwhile by another process.
            conn.execute("BEGIN IMMEDIATE")
            dropped: list[str] = []
            try:
                rows = conn.execute(
                    "SELECT t.pseudonym, t.nonce, t.ciphertext, k.vault_key_id, k.nonce, "
                    "k.wrapped_key, t.id FROM face_templates t "
                    "JOIN face_template_keys k ON k.template_id = t.id ORDER BY t.id"
                ).fetchall()
                plain = [(r[6], r[0], self._decrypt_row(r[:6], log=False)) for r in rows]
                new = os.urandom(32)
                write_secret_file(self.keys_dir / VAULT_KEY_NEXT, new)
                self._keys = VaultKeys(self._keys.current, new)
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
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                (self.keys_dir / VAULT_KEY_NEXT).unlink(missing_ok=True)
                self._keys = VaultKeys(self._keys.current)
                raise
            os.replace(self.keys_dir / VAULT_KEY_NEXT, self.keys_dir / VAULT_KEY_FILE)
            self._keys = VaultKeys(new)
            self._cache = _Cache()
            self.purge()
        for pseudonym in dropped:
            self.audit.append(
                "face_template_rejected",
                {"pseudonym": pseudonym[:8], "reason": "integrity", "detail": "at key rotation"},
                ts=now,
            )
        kept = len(plain) - len(dropped)
        self.audit.append(
            "face_keys_rotated", {"revoked": len(dropped), "kept": kept, "by": by}, ts=now
        )
        return kept


__all__ = [
    "EMBEDDING_DIM",
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
