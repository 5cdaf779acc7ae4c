"""Gate side: apply a bundle, then write the signed report.

A bundle whose signature, sequence, gate or format is wrong is refused as a
whole. A resident entry that breaks this gate's own limits (`doorpi.sync.rules`:
unknown schedule, PIN length or weak PIN) is refused alone: it is named in the
report, the gate keeps what it held for that resident, and every other entry,
move-out and template still applies.

Order of work, so the door keeps working and a crash changes nothing:

1. read the file (size limit, must not change while read), check the header,
   decrypt, verify the site's signature, parse every field;
2. check the sequence (older or equal is refused: no rollback, no replay),
   set aside the entries the gate's own rules refuse, and check the sealed
   templates and card key;
3. hash new PINs *outside* the write transaction (Argon2id is slow on a Pi;
   the gate must not wait on the database lock meanwhile);
4. one ``BEGIN IMMEDIATE`` transaction: tombstones, upserts, cards, templates,
   the new sequence number and clock floor; any error rolls it all back.

Roster residents are tied to gate residents through ``sync_residents``
(roster key -> resident id, plus the PIN's change tag). It is a table of its
own, created here with IF NOT EXISTS, not a migration: it belongs to sync, and
its foreign key with ON DELETE CASCADE keeps it right when a resident is
removed on the gate by hand. Residents added on the gate by hand are never
touched by a bundle; for roster residents the roster is authoritative.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets as _random
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from doorpi import __version__ as doorpi_version
from doorpi.core.clock import ClockGuard
from doorpi.fsutil import write_atomic
from doorpi.privacy.pia import assessment_problem
from doorpi.store import Storage
from doorpi.store.credentials import card_hash, hash_pin
from doorpi.store.db import SCHEMA_VERSION, get_state, integrity_check, set_state
from doorpi.store.residents import NEXT_ID_SQL
from doorpi.sync.bundle import (
    MAX_BUNDLE_BYTES,
    BundleError,
    EnrollmentBundle,
    ResidentEntry,
    open_bundle,
    read_header,
    read_stable,
)
from doorpi.sync.keys import GateIdentity, KeyFileError, PublicIdentity
from doorpi.sync.report import SyncReport, seal_report
from doorpi.sync.rules import RULES_SUFFIX, GateRules, entry_problems, signed_rules
from doorpi.sync.templates import (
    CARD_KEY_LABEL,
    PACK_SUFFIX,
    open_template,
    seal_pack,
    seal_template,
    unseal_for_vault,
)

if TYPE_CHECKING:
    from doorpi.settings import Layers

log = logging.getLogger("doorpi.sync")
# The sha256 of the bundle file last applied (sync_sequence's), in the state table.
APPLIED_SHA256 = "sync_bundle_sha256"
# BundleError code of the applied bundle's own file again: a "current" report.
ALREADY_APPLIED = "already_applied"

STICK_DIR = "doorpi"
CARD_KEY_SUFFIX = ".cardkey"
MAX_CARD_KEYS = 16  # adopted card keys remembered, newest first
SITE_CARD = "site.pub"
OUTBOX = "outbox"
MAX_AUDIT_IN_REPORT = 50_000

MAPPING_DDL = """
CREATE TABLE IF NOT EXISTS sync_residents (
    key TEXT PRIMARY KEY,
    resident_id INTEGER NOT NULL UNIQUE REFERENCES residents(id) ON DELETE CASCADE,
    pin_tag TEXT,
    share_face INTEGER NOT NULL DEFAULT 0,
    template_from TEXT
)
"""


class TemplateSink(Protocol):
    """Where face templates from other gates go (the vault: doorpi.privacy.share).

    ``sealed`` has already been verified (source gate's signature, resident,
    this gate); `doorpi.sync.templates.unseal_for_vault` gives its bytes.
    The first three run inside the import transaction on ``conn``: raising
    refuses the whole bundle. `finish` runs after the commit (audit, purge),
    `discard` after a rollback.
    """

    def store_sealed(
        self, conn: sqlite3.Connection, pseudonym: str, sealed: bytes, source_gate: str
    ) -> str:
        """Returns "stored", or why the template was skipped ("own_consent", ...)."""
        ...

    def delete(self, conn: sqlite3.Connection, pseudonym: str) -> bool:
        """Sharing ended: drop copies received from other gates (not one enrolled here)."""
        ...

    def withdraw_before(self, conn: sqlite3.Connection, pseudonym: str, at: float) -> int:
        """The resident withdrew face consent at a gate of the site at ``at``."""
        ...

    def forget(self, conn: sqlite3.Connection, pseudonym: str) -> None:
        """The resident is being removed: end every face consent and template."""
        ...

    def suspend_before(self, conn: sqlite3.Connection, pseudonym: str, at: float) -> int:
        """A false match was reported at a gate of the site at ``at``."""
        ...

    def finish(self) -> None: ...

    def discard(self) -> None: ...


class TemplateSource(Protocol):
    """The vault's side of export: this gate's template for a pseudonym, or None."""

    def template_bytes(self, pseudonym: str) -> bytes | None: ...

    def card_key(self) -> bytes | None:
        """The card key this gate seals cards with, where templates live on cards."""
        ...


@dataclass
class Changes:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    pins_hashed: int = 0
    templates_stored: int = 0
    templates_deleted: int = 0
    templates_skipped: int = 0
    face_withdrawn: int = 0
    face_suspended: int = 0
    settings_changed: int = 0  # the admin's gate settings: keys changed (at the next start)
    skipped: dict[str, int] = field(default_factory=dict)  # why templates were not taken

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if k != "skipped"}

    def skip(self, why: str) -> None:
        self.templates_skipped += 1
        self.skipped[why] = self.skipped.get(why, 0) + 1


@dataclass
class _Plan:
    """Everything computed before the transaction: card hashes and new PIN hashes."""

    cards: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # key -> (hash, label)
    pin_hashes: dict[str, str] = field(default_factory=dict)


class BundleImporter:
    def __init__(
        self,
        storage: Storage,
        identity: GateIdentity,
        rules: GateRules,
        sink: TemplateSink | None = None,
        clock: Callable[[], float] = time.time,
        source: TemplateSource | None = None,
        layers: Layers | None = None,
    ) -> None:
        self.storage = storage
        self.db = storage.db
        self.identity = identity
        self.rules = rules
        self.sink = sink
        self.source = source
        self.clock = clock
        self.layers = layers  # the gate's settings layers: None refuses bundle settings
        self._settings_changed: list[str] = []
        # sha256 of the bundle file being imported: the same file plugged in again is
        # "current" (nothing to do), any other bundle at the applied sequence a replay.
        self._incoming = ""

    # ------------------------------------------------------------ trust

    def trusted_site(self) -> PublicIdentity | None:
        raw = get_state(self.db, "sync_site_key")
        return PublicIdentity.from_json(raw, "site", "trusted site key") if raw else None

    def trust_site(self, site: PublicIdentity) -> None:
        """Pin the site's public key; changing it later is a deliberate re-pairing.

        The caller records who did it in the audit log (`doorpi keys trust-site`).
        """
        set_state(self.db, "sync_site_key", site.to_json())

    def last_sequence(self) -> int:
        return int(get_state(self.db, "sync_sequence", "0") or 0)

    # ------------------------------------------------------------ entry points

    def import_stick(self, stick: Path) -> tuple[SyncReport, Path | None]:
        """Import ``<stick>/doorpi/<fingerprint>.bundle``; write the report beside it."""
        folder = stick / STICK_DIR
        fp = self.identity.fingerprint
        bundle_path = folder / f"{fp}.bundle"
        if bundle_path.exists():
            report = self.import_file(bundle_path)
        else:
            # A pairing visit: leave the gate's public key and its limits for the admin.
            with suppress(OSError):
                self.export_identity(folder / "gates")
            report = self._report(
                "waiting", None, code="no_bundle",
                reason="no bundle for this gate on the stick yet (its public key is there "
                "for `doorpi admin gate add`)",
            )  # fmt: skip
        out = folder / f"{fp}.report"
        try:
            self.write_report(report, out)
        except OSError:
            return report, None  # a read-only or pulled stick: the import itself stands
        if self.source is not None:
            with suppress(OSError):
                self.export_templates(stick)
        return report, out

    def export_identity(self, folder: Path) -> Path:
        return export_identity(self.identity, self.rules, folder)

    def peers(self) -> list[PublicIdentity]:
        """The site's other gates, as the last applied bundle listed them."""
        raw = get_state(self.db, "sync_peers")
        cards = json.loads(raw) if raw else []
        return [PublicIdentity.from_json(c, "gate", "sync_peers") for c in cards]

    def export_templates(self, stick: Path) -> int:
        """Seal this gate's templates of sharing residents to every other gate of the site.

        One file per destination, ``<stick>/doorpi/outbox/<destination>/<this
        gate>.templates`` (`doorpi.sync.templates.seal_pack`): each template
        sealed to its destination, the list sealed to the site and padded, so
        the stick names no resident. The admin relays them in the
        destination's next bundle without being able to read a template.
        Only residents whose roster entry consents are exported, and only
        templates enrolled here (never one received from another gate).
        """
        if self.source is None:
            return 0
        me = self.identity.fingerprint
        peers = [p for p in self.peers() if p.fingerprint != me]
        written = self._export_card_key(stick, peers)
        try:
            site = self.trusted_site()
            rows = self.db.execute(
                "SELECT s.key, r.pseudonym FROM sync_residents s "
                "JOIN residents r ON r.id = s.resident_id "
                "WHERE s.share_face = 1 AND s.template_from IS NULL ORDER BY s.key"
            ).fetchall()
        except (sqlite3.OperationalError, KeyFileError):
            return 0
        if site is None:
            return 0
        packs: dict[str, list[tuple[str, bytes]]] = {p.fingerprint: [] for p in peers}
        for key, pseudonym in rows:
            template = self.source.template_bytes(pseudonym)
            if template is None:
                continue
            for peer in peers:
                packs[peer.fingerprint].append(
                    (key, seal_template(self.identity, peer, key, template))
                )
        for dest, entries in packs.items():
            path = stick / STICK_DIR / OUTBOX / dest / f"{me}{PACK_SUFFIX}"
            if entries:
                write_atomic(path, seal_pack(entries, site, MAX_BUNDLE_BYTES))
                written += len(entries)
            else:
                path.unlink(missing_ok=True)
        if written:
            self.storage.audit.append(
                "sync", {"action": "templates_exported", "count": written}, ts=self.clock()
            )
        return written

    def _export_card_key(self, stick: Path, peers: list[PublicIdentity]) -> int:
        """The gate the admin named for the site's card key seals it to the others."""
        if (
            self.source is None
            or get_state(self.db, "sync_card_key_gate") != self.identity.fingerprint
        ):
            return 0
        key = self.source.card_key()
        if key is None:
            return 0
        me = self.identity.fingerprint
        for peer in peers:
            blob = seal_template(self.identity, peer, CARD_KEY_LABEL, key)
            write_atomic(
                stick / STICK_DIR / OUTBOX / peer.fingerprint / f"{me}{CARD_KEY_SUFFIX}", blob
            )
        return len(peers)

    def import_file(self, path: Path) -> SyncReport:
        try:
            data = read_stable(path)
        except BundleError as exc:
            return self._refused(exc, None)
        return self.import_bytes(data)

    def import_bytes(self, data: bytes) -> SyncReport:
        """Apply a bundle or refuse it; never raises for bad input, the report says why."""
        bundle: EnrollmentBundle | None = None
        self._incoming = hashlib.sha256(data).hexdigest()
        try:
            read_header(data)  # size, magic, version, truncation: before anything else
            site = self.trusted_site()
            if site is None:
                raise BundleError(
                    "no_site_key", "no site key is trusted yet: run `doorpi keys trust-site FILE`"
                )
            bundle = open_bundle(data, self.identity, site)
            self._check_sequence(bundle)
            self._take_ack(bundle)
            rules = self.rules
            self.rules = self._check_settings(bundle)  # the roster meets the new settings
            try:
                bundle, refused = self._screen(bundle)
                self._check_rules(bundle)
                plan = self._plan(bundle)
                changes = self._apply(bundle, plan)
            finally:
                self.rules = rules
        except BundleError as exc:
            if exc.code == ALREADY_APPLIED:
                return self._already_applied(exc, bundle)
            return self._refused(exc, bundle)
        except KeyFileError as exc:
            return self._refused(BundleError("no_site_key", str(exc)), bundle)
        except sqlite3.DatabaseError as exc:
            return self._refused(BundleError("database", f"database error: {exc}"), bundle)
        data = {"action": "applied", "sequence": bundle.sequence, **changes.as_dict()}
        if self._settings_changed:
            data["settings_keys"] = self._settings_changed
        if changes.skipped:
            data["templates_skipped_why"] = changes.skipped
        if refused:
            data["entries_refused"] = [f"{e['resident']}.{e['field']}" for e in refused]
        self.storage.audit.append("sync", data, ts=self.clock())
        if self.sink is not None:
            self.sink.finish()
        report = self._report("applied", bundle, changes=changes.as_dict(), skipped=changes.skipped)
        report.refused_entries = refused
        return report

    # ------------------------------------------------------------ checks

    def _check_sequence(self, bundle: EnrollmentBundle) -> None:
        last = self.last_sequence()
        if bundle.sequence == last and self._incoming == get_state(self.db, APPLIED_SHA256):
            raise BundleError(
                ALREADY_APPLIED,
                f"bundle {last} is already applied here (the same bundle again): nothing changed",
            )
        if bundle.sequence == last:
            raise BundleError(
                "stale",
                f"sequence {last} is already applied here (replay refused, nothing changed)",
            )
        if bundle.sequence < last:
            raise BundleError(
                "stale",
                f"sequence {bundle.sequence} is older than the applied {last} (rollback refused)",
            )

    def _take_ack(self, bundle: EnrollmentBundle) -> None:
        """The admin's signed receipt: only now does what it names count as delivered.

        A receipt whose hash is not this log's record at that sequence number
        (another gate's log, a restored database, a record cut from the log) is
        recorded and ignored, so the records go again. A record pruned since
        (retention) is gone either way.
        """
        ack = bundle.report_ack
        if ack is None:
            return
        audit = self.storage.audit
        have = audit.hash_at(ack.audit_seq)
        pruned = have is None and ack.audit_seq <= audit.pruned_upto()
        if have != ack.audit_hash and not pruned:
            self.storage.audit.append("sync", {"action": "receipt_mismatch",
                                               "audit_seq": ack.audit_seq}, ts=self.clock())  # fmt: skip
            log.warning("bundle %d acknowledges audit record %d with another hash: ignored",
                        bundle.sequence, ack.audit_seq)  # fmt: skip
            return
        for key, value in (("sync_audit_reported", ack.audit_seq),
                           ("sync_withdrawals_reported", ack.withdrawals_at),
                           ("sync_false_matches_reported", ack.false_matches_at)):  # fmt: skip
            if value > float(get_state(self.db, key, "0") or 0):
                set_state(self.db, key, repr(value))

    def _screen(self, bundle: EnrollmentBundle) -> tuple[EnrollmentBundle, list[dict[str, str]]]:
        """Set aside the entries this gate's limits refuse (`doorpi.sync.rules`).

        A refused resident the gate already holds keeps their previous record
        (a typo must not lock a resident out); a new one is not added. Their
        relayed face template waits for the next bundle (the source gate
        exports it at every visit).
        """
        known = self._mapping()
        refused: list[dict[str, str]] = []
        keep: list[ResidentEntry] = []
        for r in bundle.residents:
            problems = entry_problems(self.rules, r)
            if not problems:
                keep.append(r)
                continue
            for field_name, why in problems:
                refused.append({"resident": r.key, "field": field_name, "reason": why,
                                "kept": "previous entry" if r.key in known else "not added"})  # fmt: skip
        if not refused:
            return bundle, []
        bad = {e["resident"] for e in refused}
        return dc_replace(
            bundle,
            residents=tuple(keep),
            templates=tuple(t for t in bundle.templates if t.resident not in bad),
        ), refused

    def _check_settings(self, bundle: EnrollmentBundle) -> GateRules:
        """The admin's settings through the gate's own validator (doorpi.settings), over
        this gate's installer layer; the rules the roster must then meet."""
        if bundle.settings is None:
            return self.rules
        if self.layers is None:
            raise BundleError("settings", "settings: this gate cannot take settings here")
        from doorpi.config import ConfigError
        from doorpi.settings import ADMIN

        try:
            cfg = self.layers.candidate(ADMIN, bundle.settings, "settings")
        except ConfigError as exc:
            raise BundleError("settings", str(exc)) from None
        return GateRules.from_config(cfg)

    def _write_settings(self, bundle: EnrollmentBundle, ch: Changes) -> None:
        """Inside the transaction, last: the admin's layer replaced atomically. A crash
        after the file and before COMMIT leaves the new settings with the old roster;
        the same bundle, imported again, then applies the roster (its sequence is new)."""
        self._settings_changed = []
        if bundle.settings is None or self.layers is None:
            return
        from doorpi.settings import changed_keys, write_admin_layer

        keys = changed_keys(self.layers.admin, bundle.settings)
        try:
            write_admin_layer(self.layers, bundle.settings)
        except OSError as exc:
            raise BundleError(
                "settings", f"settings: cannot write {exc.filename}: {exc.strerror}"
            ) from None
        self._settings_changed = keys
        ch.settings_changed = len(keys)
        self.layers = replace(self.layers, admin=bundle.settings)

    def _write_card_keys(self, bundle: EnrollmentBundle) -> None:
        """Inside the transaction, last: the secure-card keys (doorpi.cards.keys) replaced
        atomically, mode 0600. They arrived inside the body sealed to this gate; the
        running gate's reader sees the new file at its next tap (`GateKeysFile`)."""
        if bundle.secure_cards is None:
            return
        from doorpi.cards.keys import write_gate_keys

        try:
            write_gate_keys(Path(self.storage.data_dir), bundle.secure_cards)
        except OSError as exc:
            raise BundleError(
                "card_keys", f"secure_cards: cannot write {exc.filename}: {exc.strerror}"
            ) from None

    def _check_rules(self, bundle: EnrollmentBundle) -> None:
        """The sealed parts must open: a bad one refuses the whole bundle."""
        peers = {p.fingerprint: p for p in bundle.peers}
        if bundle.card_key is not None:
            k = bundle.card_key
            try:
                raw = open_template(k.sealed, self.identity, peers[k.source_gate], CARD_KEY_LABEL)
            except BundleError as exc:
                raise BundleError(exc.code, f"card_key: {exc}") from None
            if len(raw) != 32:
                raise BundleError("malformed", f"card_key: {len(raw)} bytes, a card key is 32")
        for i, t in enumerate(bundle.templates):
            try:
                open_template(t.sealed, self.identity, peers[t.source_gate], t.resident)
            except BundleError as exc:
                raise BundleError(exc.code, f"templates[{i}] ({t.resident}): {exc}") from None

    def _plan(self, bundle: EnrollmentBundle) -> _Plan:
        plan = _Plan()
        secrets = self.storage.secrets
        for r in bundle.residents:
            plan.cards[r.key] = sorted(
                (card_hash(secrets, bytes.fromhex(c.uid)), c.label) for c in r.cards
            )
        known = self._mapping()
        todo = [
            r
            for r in bundle.residents
            if r.pin is not None and (r.key not in known or known[r.key][1] != r.pin_tag)
        ]
        if todo:
            workers = max(1, min(4, os.cpu_count() or 1))
            with ThreadPoolExecutor(workers) as pool:  # libsodium releases the GIL
                hashes = pool.map(
                    lambda r: hash_pin(
                        secrets, r.pin, self.rules.opslimit, self.rules.memlimit_kib
                    ),
                    todo,
                )
                plan.pin_hashes = {r.key: h for r, h in zip(todo, hashes, strict=True)}
        return plan

    def _mapping(self) -> dict[str, tuple[int, str | None, bool]]:
        try:
            rows = self.db.execute(
                "SELECT key, resident_id, pin_tag, share_face FROM sync_residents"
            )
        except sqlite3.OperationalError:
            return {}  # no import yet
        return {k: (rid, tag, bool(share)) for k, rid, tag, share in rows.fetchall()}

    # ------------------------------------------------------------ the transaction

    def _step(self) -> None:
        """Called between statements of the transaction: the crash test's kill points."""

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            if self.sink is not None:
                self.sink.discard()
            raise
        conn.execute("COMMIT")

    def _apply(self, bundle: EnrollmentBundle, plan: _Plan) -> Changes:
        ch = Changes()
        now = self.clock()
        with self._transaction() as conn:
            conn.execute(MAPPING_DDL)
            self._check_sequence(bundle)  # again, under the write lock
            mapping = {k: rid for k, (rid, _, _) in self._mapping().items()}
            pseudonyms = dict(conn.execute("SELECT id, pseudonym FROM residents").fetchall())

            for key in bundle.tombstones:
                rid = mapping.pop(key, None)
                if rid is None:
                    continue
                self._vault(f"tombstones ({key})", "forget", conn, pseudonyms[rid])
                conn.execute("DELETE FROM residents WHERE id = ?", [rid])
                ch.removed += 1
                self._step()
            received = dict(
                conn.execute(
                    "SELECT key, template_from FROM sync_residents WHERE template_from IS NOT NULL"
                ).fetchall()
            )
            for key in bundle.template_tombstones:
                # Only copies received from other gates: a template enrolled here stays.
                if key in received and key in mapping:
                    where = f"template_tombstones ({key})"
                    if self._vault(where, "delete", conn, pseudonyms[mapping[key]]):
                        ch.templates_deleted += 1
                    conn.execute(
                        "UPDATE sync_residents SET template_from = NULL WHERE key = ?", [key]
                    )

            current = self._current(conn, mapping)
            changed = [
                (i, r)
                for i, r in enumerate(bundle.residents)
                if r.key not in mapping
                or current.get(mapping[r.key]) != self._wanted(r, plan, current.get(mapping[r.key]))
            ]
            ch.unchanged = len(bundle.residents) - len(changed)
            # Free keypad numbers and cards first, so two residents can swap them.
            for _, r in changed:
                if r.key in mapping:
                    conn.execute(
                        "UPDATE residents SET keypad_id = NULL WHERE id = ?", [mapping[r.key]]
                    )
                    conn.execute("DELETE FROM cards WHERE resident_id = ?", [mapping[r.key]])
                    self._step()
            for i, r in changed:
                rid = self._upsert(conn, i, r, mapping.get(r.key), plan, now)
                if r.key in mapping:
                    ch.updated += 1
                else:
                    mapping[r.key] = rid
                    pseudonyms[rid] = self._pseudonym(conn, rid)
                    ch.added += 1
                for card, label in plan.cards[r.key]:
                    self._insert_card(conn, i, r, rid, card, label, now)
                self._step()
            ch.pins_hashed = len(plan.pin_hashes)

            # No template without a stored impact assessment (PIPL 55-56): skipped
            # with the reason in the report; the rest of the bundle applies.
            no_pia = bool(bundle.templates) and assessment_problem(self.db) is not None
            for i, t in enumerate(bundle.templates):
                if self.sink is None:
                    ch.skip("face_off")
                    continue
                if no_pia:
                    ch.skip("no_impact_assessment")
                    continue
                where = f"templates[{i}] ({t.resident})"
                pseudonym = pseudonyms[mapping[t.resident]]
                outcome = self._vault(
                    where, "store_sealed", conn, pseudonym, t.sealed, t.source_gate
                )
                if outcome in ("stored", "unchanged"):
                    conn.execute(
                        "UPDATE sync_residents SET template_from = ? WHERE key = ?",
                        [t.source_gate, t.resident],
                    )
                if outcome == "stored":
                    ch.templates_stored += 1
                elif outcome != "unchanged":
                    ch.skip(str(outcome))
                self._step()
            # After the templates: a copy made before the withdrawal, still in
            # transit, is stored and withdrawn at once; a later consent stays.
            site_events = (
                ("face_withdrawals", bundle.face_withdrawals, "withdraw_before", "face_withdrawn"),
                ("face_suspensions", bundle.face_suspensions, "suspend_before", "face_suspended"),
            )
            for field_name, events, method, counter in site_events:
                for w in events:
                    if w.resident in mapping:
                        where = f"{field_name} ({w.resident})"
                        n = self._vault(where, method, conn, pseudonyms[mapping[w.resident]], w.at)
                        setattr(ch, counter, getattr(ch, counter) + (n or 0))
            if bundle.modes is not None:  # lockdown, holidays, responders
                from doorpi.sync.modes import apply_modes

                apply_modes(conn, self.db, bundle.modes, mapping, now)
            self._adopt_card_key(bundle)
            set_state(self.db, "sync_sequence", str(bundle.sequence))
            set_state(self.db, APPLIED_SHA256, self._incoming)
            set_state(self.db, "sync_peers", json.dumps([p.to_json() for p in bundle.peers]))
            # The laptop's signed time raises the floor, bounded like every source
            # (core/clock.py): a laptop clock at 2040 must not poison the gate.
            guard = ClockGuard(float(get_state(self.db, "clock_floor", "0") or 0))
            if guard.offer(bundle.created, 0.0):
                set_state(self.db, "clock_floor", repr(guard.floor))
            else:
                log.warning("bundle time %.0f is implausibly ahead of the gate's clock floor "
                            "%.0f: floor unchanged (check the laptop's clock)",
                            bundle.created, guard.floor)  # fmt: skip
            set_state(self.db, "sync_last", json.dumps({"sequence": bundle.sequence, "at": now}))
            self._step()
            self._write_settings(bundle, ch)
            self._write_card_keys(bundle)
        return ch

    def _adopt_card_key(self, bundle: EnrollmentBundle) -> None:
        """Remember the named card-key gate and, sealed to this gate as it came,
        its key (newest first; older ones stay so cards sealed under them read)."""
        set_state(self.db, "sync_card_key_gate", bundle.card_key_gate or "")
        if bundle.card_key is None:
            return
        raw = unseal_for_vault(bundle.card_key.sealed, self.identity)
        kid = hashlib.blake2b(raw, digest_size=8, person=b"doorpi:cardkey").hexdigest()
        held = [k for k in _card_key_entries(self.db) if k["kid"] != kid]
        entry = {"kid": kid, "sealed": base64.b64encode(bundle.card_key.sealed).decode()}
        set_state(self.db, "sync_card_keys", json.dumps([entry, *held][:MAX_CARD_KEYS]))

    def _vault(self, where: str, method: str, *args: Any) -> Any:
        """Call the template sink inside the transaction; its refusal refuses the bundle."""
        if self.sink is None:
            return None
        try:
            return getattr(self.sink, method)(*args)
        except sqlite3.DatabaseError:
            raise
        except Exception as exc:
            raise BundleError("vault", f"{where}: {exc}") from None

    def _current(
        self, conn: sqlite3.Connection, mapping: dict[str, int]
    ) -> dict[int, tuple[Any, ...]]:
        """What the gate holds for each roster resident, in the shape of `_wanted`."""
        tags = {rid: (tag, share) for _, (rid, tag, share) in self._mapping().items()}
        cards: dict[int, list[tuple[str, str]]] = {}
        for h, rid, label in conn.execute("SELECT card_hash, resident_id, label FROM cards"):
            cards.setdefault(rid, []).append((h, label))
        out: dict[int, tuple[Any, ...]] = {}
        ids = set(mapping.values())
        for row in conn.execute(
            "SELECT id, name, unit, keypad_id, valid_from, valid_until, schedule, active, "
            "face_refused, pin_hash IS NOT NULL, minor FROM residents"
        ):
            if row[0] in ids:
                out[row[0]] = (*row[1:7], bool(row[7]), bool(row[8]), bool(row[9]),
                               tags.get(row[0]), sorted(cards.get(row[0], [])), bool(row[10]))  # fmt: skip
        return out

    @staticmethod
    def _wanted(
        r: ResidentEntry, plan: _Plan, held: tuple[Any, ...] | None = None
    ) -> tuple[Any, ...]:
        refused = r.face_refused or bool(held and held[7])  # a gate refusal stays (`_upsert`)
        return (r.name, r.unit, r.keypad_id, r.valid_from, r.valid_until, r.schedule, r.active,
                refused, r.pin is not None, (r.pin_tag, r.share_with_site_gates),
                plan.cards[r.key], r.minor)  # fmt: skip

    def _upsert(
        self,
        conn: sqlite3.Connection,
        i: int,
        r: ResidentEntry,
        rid: int | None,
        plan: _Plan,
        now: float,
    ) -> int:
        fields = [r.name, r.unit, r.keypad_id, r.valid_from, r.valid_until, r.schedule,
                  int(r.active), int(r.face_refused), int(r.minor)]  # fmt: skip
        try:
            if rid is None:
                cur = conn.execute(
                    "INSERT INTO residents(id, pseudonym, name, unit, keypad_id, valid_from, "
                    "valid_until, schedule, active, face_refused, minor, pin_hash, created, "
                    f"updated) VALUES (({NEXT_ID_SQL}), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_random.token_hex(16), *fields, plan.pin_hashes.get(r.key), now, now],
                )
                rid = int(cur.lastrowid or 0)
                conn.execute(
                    "INSERT INTO sync_residents(key, resident_id, pin_tag, share_face) "
                    "VALUES (?, ?, ?, ?)",
                    [r.key, rid, r.pin_tag, int(r.share_with_site_gates)],
                )
            else:
                conn.execute(
                    "UPDATE residents SET name = ?, unit = ?, keypad_id = ?, valid_from = ?, "
                    "valid_until = ?, schedule = ?, active = ?, "
                    # A refusal made at the gate outlives every roster (only the
                    # resident lifts it, by enrolling): the roster can add one, never drop it.
                    "face_refused = MAX(face_refused, ?), minor = ?, updated = ? "
                    "WHERE id = ?",
                    [*fields, now, rid],
                )
                if r.pin is None:
                    conn.execute("UPDATE residents SET pin_hash = NULL WHERE id = ?", [rid])
                elif r.key in plan.pin_hashes:
                    conn.execute(
                        "UPDATE residents SET pin_hash = ? WHERE id = ?",
                        [plan.pin_hashes[r.key], rid],
                    )
                conn.execute(
                    "UPDATE sync_residents SET pin_tag = ?, share_face = ? WHERE resident_id = ?",
                    [r.pin_tag, int(r.share_with_site_gates), rid],
                )
        except sqlite3.IntegrityError:
            owner = conn.execute(
                "SELECT id FROM residents WHERE keypad_id = ?", [r.keypad_id]
            ).fetchone()
            who = f"resident {owner[0]} on this gate" if owner else "another resident"
            raise BundleError(
                "conflict",
                f"residents[{i}] ({r.key}): keypad number {r.keypad_id} is already used by {who}",
            ) from None
        if r.pin is not None and r.key not in plan.pin_hashes:
            has = conn.execute("SELECT pin_hash IS NOT NULL FROM residents WHERE id = ?", [rid])
            if not has.fetchone()[0]:  # tag matched but the hash was cleared on the gate
                h = hash_pin(
                    self.storage.secrets, r.pin, self.rules.opslimit, self.rules.memlimit_kib
                )
                conn.execute("UPDATE residents SET pin_hash = ? WHERE id = ?", [h, rid])
        return rid

    def _insert_card(
        self,
        conn: sqlite3.Connection,
        i: int,
        r: ResidentEntry,
        rid: int,
        card: str,
        label: str,
        now: float,
    ) -> None:
        try:
            conn.execute(
                "INSERT INTO cards(card_hash, resident_id, label, added) VALUES (?, ?, ?, ?)",
                [card, rid, label, now],
            )
        except sqlite3.IntegrityError:
            owner = conn.execute(
                "SELECT resident_id FROM cards WHERE card_hash = ?", [card]
            ).fetchone()
            raise BundleError(
                "conflict",
                f"residents[{i}] ({r.key}): card {card[:8]} already belongs to resident "
                f"{owner[0] if owner else '?'} on this gate",
            ) from None

    @staticmethod
    def _pseudonym(conn: sqlite3.Connection, rid: int) -> str:
        return str(
            conn.execute("SELECT pseudonym FROM residents WHERE id = ?", [rid]).fetchone()[0]
        )

    # ------------------------------------------------------------ reports

    def _already_applied(self, exc: BundleError, bundle: EnrollmentBundle | None) -> SyncReport:
        """The applied bundle's own file again (a stick re-plugged, or left in): not a
        fault, so not "refused"; the report is a fresh one (status, audit since)."""
        return self._unapplied("current", exc, bundle)

    def _refused(self, exc: BundleError, bundle: EnrollmentBundle | None) -> SyncReport:
        return self._unapplied("refused", exc, bundle, code=exc.code)

    def _unapplied(
        self, result: str, exc: BundleError, bundle: EnrollmentBundle | None, **extra: str
    ) -> SyncReport:
        """A bundle that changed nothing: its audit record (``action`` ``result``) and
        the report saying why."""
        data: dict[str, Any] = {"action": result, **extra, "reason": str(exc)}
        if bundle is not None:
            data["sequence"] = bundle.sequence
        with suppress(sqlite3.DatabaseError):  # the report still says why
            self.storage.audit.append("sync", data, ts=self.clock())
        return self._report(result, bundle, code=exc.code, reason=str(exc))

    def _report(
        self,
        result: str,
        bundle: EnrollmentBundle | None,
        code: str = "",
        reason: str = "",
        changes: dict[str, int] | None = None,
        skipped: dict[str, int] | None = None,
    ) -> SyncReport:
        try:
            site = self.trusted_site()
        except KeyFileError:
            site = None
        since = int(float(get_state(self.db, "sync_audit_reported", "0") or 0))
        audit = [
            {"seq": a.seq, "ts": a.ts, "kind": a.kind, "data": a.data, "hash": a.hash}
            for a in self.storage.audit.records(since, limit=MAX_AUDIT_IN_REPORT)
        ]
        withdrawals = self._withdrawals()
        suspensions = self._false_matches()
        holders, dependents = self._face_parity()
        return SyncReport(
            gate=self.identity.fingerprint,
            created=self.clock(),
            result=result,
            code=code,
            reason=reason,
            site=site.fingerprint if site else None,
            gate_name=self.identity.name,
            bundle_sequence=bundle.sequence if bundle else None,
            gate_sequence=self.last_sequence(),
            changes=changes or {},
            skipped=skipped or {},
            face_withdrawals=withdrawals,
            face_suspensions=suspensions,
            face_holders=holders,
            face_dependents=dependents,
            status=self.status(),
            audit=audit,
            audit_from=since,
            audit_head=list(self.storage.audit.head()),
        )

    def _withdrawals(self) -> list[dict[str, Any]]:
        """Roster residents who withdrew face consent here since the last report that
        left (at the gate, with the admin, or by refusing; not what the sync itself
        ended), from the consent records, which outlive the audit log's pruning.
        The admin passes them on so every gate of the site withdraws too."""
        since = float(get_state(self.db, "sync_withdrawals_reported", "0") or 0)
        rows = self.db.execute(
            "SELECT pseudonym, withdrawn_at FROM face_consents WHERE withdrawn_at > ? "
            "AND withdrawn_by != 'superseded' AND withdrawn_by NOT LIKE 'site:%'",
            [since],
        ).fetchall()
        return self._site_events(rows)

    def _false_matches(self) -> list[dict[str, Any]]:
        """Roster residents whose face let in the wrong person here (`doorpi log
        false-match`) since the last report that left; the admin passes them on."""
        since = float(get_state(self.db, "sync_false_matches_reported", "0") or 0)
        reports = json.loads(get_state(self.db, "face_false_matches") or "[]")
        return self._site_events([(p, at) for p, at in reports if at > since])

    def _face_parity(self) -> tuple[list[str], list[dict[str, str]]]:
        """Roster residents who can be asked for face here, and those with no
        face-free way to finish (doorpi.privacy.parity), with this gate's door
        rules and devices; nothing when the gate does not know them or face is off."""
        parity = self.rules.parity()
        if parity is None:
            return [], []
        from doorpi.privacy.parity import roster_face_parity

        keys = {k: rid for k, (rid, _, _) in self._mapping().items()}
        try:
            return roster_face_parity(self.storage, *parity, keys, self.clock())
        except sqlite3.DatabaseError as exc:  # the report still goes; the gate's status says
            log.error("face parity for the report: %s", exc)
            return [], []

    def _site_events(self, rows: list[tuple[str, float]]) -> list[dict[str, Any]]:
        """(pseudonym, time) -> the latest time per roster key (residents added on
        the gate by hand are not the admin's to pass on)."""
        try:
            keys = dict(self.db.execute(
                "SELECT r.pseudonym, s.key FROM sync_residents s "
                "JOIN residents r ON r.id = s.resident_id"
            ).fetchall())  # fmt: skip
        except sqlite3.OperationalError:
            return []  # no import yet
        out: dict[str, float] = {}
        for pseudonym, at in rows:
            if pseudonym in keys:
                out[keys[pseudonym]] = max(out.get(keys[pseudonym], 0.0), float(at))
        return [{"resident": k, "at": t} for k, t in sorted(out.items())]

    def status(self) -> dict[str, Any]:
        """Counts and health only: nothing that identifies a resident or a face."""
        q = self.db.execute
        verify = self.storage.audit.verify()
        return {
            "doorpi": doorpi_version,
            "schema": SCHEMA_VERSION,
            "residents": q("SELECT count(*) FROM residents").fetchone()[0],
            "active": q("SELECT count(*) FROM residents WHERE active = 1").fetchone()[0],
            "cards": q("SELECT count(*) FROM cards").fetchone()[0],
            "pins": q("SELECT count(*) FROM residents WHERE pin_hash IS NOT NULL").fetchone()[0],
            "from_roster": len(self._mapping()),
            # People with face data here (MFR 15): the admin adds the gates up.
            "face_holders": q(
                "SELECT count(*) FROM (SELECT pseudonym FROM face_templates UNION SELECT "
                "pseudonym FROM face_consents WHERE withdrawn_at IS NULL AND retention_end > ?)",
                [self.clock()],
            ).fetchone()[0],
            "integrity": integrity_check(self.db),
            "audit_chain": "ok" if verify.ok else verify.problem,
            "clock_floor": float(get_state(self.db, "clock_floor", "0") or 0),
            "gate_time": self.clock(),
            "rules": self.rules.to_doc(),
        }

    def write_report(self, report: SyncReport, path: Path) -> None:
        """Seal the report to the site and write it.

        Nothing counts as delivered here: a stick that takes the report may be
        anyone's. The admin's next bundle acknowledges it (`_take_ack`).
        """
        try:
            site = self.trusted_site()
        except KeyFileError:
            site = None
        write_atomic(path, seal_report(report, self.identity, site))
        count = (read_signal(self.db) or {}).get("count", 0) + 1
        signal = {"count": count, "result": report.result, "sequence": report.bundle_sequence,
                  "at": report.created}  # fmt: skip
        set_state(self.db, "sync_signal", json.dumps(signal))


def export_identity(identity: GateIdentity, rules: GateRules, folder: Path) -> Path:
    """Write ``<fingerprint>.pub`` and the signed ``<fingerprint>.rules`` into ``folder``
    (the stick's ``doorpi/gates/``); returns the public key file's path."""
    fp = identity.fingerprint
    path = folder / f"{fp}.pub"
    write_atomic(path, (identity.public.to_json() + "\n").encode())
    write_atomic(folder / f"{fp}{RULES_SUFFIX}", signed_rules(identity.signing, fp, rules))
    return path


def _card_key_entries(db: Any) -> list[dict[str, str]]:
    raw = get_state(db, "sync_card_keys")
    return list(json.loads(raw)) if raw else []


def adopted_card_keys(db: Any, gate: GateIdentity) -> list[bytes]:
    """The site card keys this gate received with the sync, newest first (raw keys)."""
    out = []
    for entry in _card_key_entries(db):
        with suppress(BundleError, ValueError):
            out.append(unseal_for_vault(base64.b64decode(entry["sealed"]), gate))
    return [k for k in out if len(k) == 32]


def read_signal(db: Any) -> dict[str, Any] | None:
    """The last import's outcome, for the running gate to show on LED and buzzer.

    The import runs in its own process (systemd unit) while the gate process
    owns the GPIO lines, so the gate polls this value and plays "done"
    (applied) or "denied" (refused) when ``count`` changes.
    """
    raw = get_state(db, "sync_signal")
    return json.loads(raw) if raw else None


class SyncSignalWatcher:
    """Lets the running gate notice a finished import: poll() once per tick.

    Returns the feedback pattern to play ("done" when applied, "denied" when
    refused) once per import, and the bundle's clock floor for
    ClockGuard.raise_floor, so the gate's in-memory floor follows the
    database. Imports from before the gate started are not replayed.
    """

    def __init__(self, db: Any) -> None:
        self.db = db
        seen = read_signal(db)
        self._seen = seen.get("count") if seen else None

    def poll(self) -> tuple[str, float] | None:
        sig = read_signal(self.db)
        if sig is None or sig.get("count") == self._seen:
            return None
        self._seen = sig.get("count")
        floor = float(get_state(self.db, "clock_floor", "0") or 0)
        return ("denied" if sig.get("result") == "refused" else "done"), floor
