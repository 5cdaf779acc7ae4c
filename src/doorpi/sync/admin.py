"""Laptop side: the site key, the registry of gates, sequence numbers, bundle building.

State lives in one directory (default ``~/.local/share/doorpi-admin``)::

    site.key     the site's 32-byte secret seed (0600): back it up, it signs everything
    site.pub     the public half, copied to every stick for pairing
    state.json   sequence number, registered gates, keys sent to each gate,
                 face withdrawals and false matches the gates reported (0600)

The sequence number is raised and saved *before* any bundle is written, so a
crash can skip a number but never reuse one (gates refuse older or equal).
For each gate the registry remembers every roster key ever sent to it; keys
that are no longer in that gate's part of the roster travel as tombstones in
every later bundle, so a gate that missed a stick still deletes them.
Face consent withdrawals and face false matches reported by one gate go to
every gate in every later bundle for as long as the resident is in the roster (applying one twice
changes nothing), for the same reason.

Where templates live on the residents' cards, every gate must read every
card: the first gate registered is the site's *card-key gate*, and its card
key travels sealed gate to gate in the bundles like a face template (the
laptop cannot read it). If that gate is removed, the next oldest takes over;
the gates keep the keys they had, so cards already written still work.
"""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorpi.core.parity import (
    Devices,
    Rule,
    face_free_holds,
    has_face_free_way,
    may_ask_face,
    missing_credential,
    show_rule,
)
from doorpi.store.secrets import write_secret_file
from doorpi.sync.bundle import (
    CardKeyEntry,
    EnrollmentBundle,
    FaceEvent,
    ReportAck,
    TemplateEntry,
    seal_bundle,
)
from doorpi.sync.importer import SITE_CARD, STICK_DIR
from doorpi.sync.keys import KeyFileError, PublicIdentity, SiteKey, pretty
from doorpi.sync.report import SyncReport, continuity, open_report, read_report_file
from doorpi.sync.rules import GateRules, entry_problems

STATE_FILE = "state.json"
SETTINGS_DIR = "settings"  # <fingerprint>.toml: the admin's settings layer per gate


class AdminError(ValueError):
    """An admin-side mistake, as one line."""


@dataclass
class GateRecord:
    public: PublicIdentity
    added: float
    sent_keys: list[str] = field(default_factory=list)
    last_sequence: int = 0
    last_report: dict[str, Any] = field(default_factory=dict)
    templates_sent: list[str] = field(default_factory=list)  # roster keys relayed to it
    # What the next bundle acknowledges (ReportAck fields) and the audit head the
    # last report showed, for the continuity check of the next one.
    ack: dict[str, Any] = field(default_factory=dict)
    audit_head: list[Any] | None = None
    rules: dict[str, Any] = field(default_factory=dict)  # the gate's limits, as it signed them
    face_holders: list[str] = field(default_factory=list)  # roster keys it can ask for face

    @property
    def name(self) -> str:
        return self.public.name

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint


@dataclass
class BuiltBundle:
    gate: GateRecord
    bundle: EnrollmentBundle
    data: bytes
    path: Path | None = None


class AdminSite:
    def __init__(self, admin_dir: Path, key: SiteKey, state: dict[str, Any]) -> None:
        self.dir = admin_dir
        self.key = key
        self.sequence: int = int(state.get("sequence", 0))
        self.withdrawals: dict[str, float] = dict(state.get("face_withdrawals", {}))
        self.suspensions: dict[str, float] = dict(state.get("face_suspensions", {}))
        self.gates: dict[str, GateRecord] = {}
        for g in state.get("gates", []):
            pub = PublicIdentity.from_json(json.dumps(g["public"]), "gate", "state.json")
            self.gates[pub.fingerprint] = GateRecord(
                pub, g["added"], g.get("sent_keys", []), g.get("last_sequence", 0),
                g.get("last_report", {}), g.get("templates_sent", []),
                g.get("ack", {}), g.get("audit_head"), g.get("rules", {}),
                g.get("face_holders", []),
            )  # fmt: skip

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def init(cls, admin_dir: Path, site_name: str) -> AdminSite:
        admin_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = SiteKey.create(admin_dir, site_name)
        site = cls(admin_dir, key, {"site_name": site_name})
        site.save()
        (admin_dir / "site.pub").write_text(key.public.to_json() + "\n")
        return site

    @classmethod
    def load(cls, admin_dir: Path) -> AdminSite:
        path = admin_dir / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise AdminError(f"{admin_dir}: no admin state here; run `doorpi admin init`") from None
        except (OSError, ValueError) as exc:
            raise AdminError(f"{path}: unreadable: {exc}") from None
        key = SiteKey.load(admin_dir, state.get("site_name", ""))
        return cls(admin_dir, key, state)

    def save(self) -> None:
        state = {
            "site_name": self.key.name,
            "site": self.key.fingerprint,
            "sequence": self.sequence,
            "face_withdrawals": dict(sorted(self.withdrawals.items())),
            "face_suspensions": dict(sorted(self.suspensions.items())),
            "gates": [
                {
                    "public": json.loads(g.public.to_json()),
                    "added": g.added,
                    "sent_keys": sorted(g.sent_keys),
                    "last_sequence": g.last_sequence,
                    "last_report": g.last_report,
                    "templates_sent": sorted(g.templates_sent),
                    "ack": g.ack,
                    "audit_head": g.audit_head,
                    "rules": g.rules,
                    "face_holders": sorted(g.face_holders),
                }
                for g in self.gates.values()
            ],
        }
        write_secret_file(self.dir / STATE_FILE, json.dumps(state, indent=2).encode())

    # ------------------------------------------------------------ gates

    def add_gate(
        self, public: PublicIdentity, name: str | None = None, rules: GateRules | None = None
    ) -> GateRecord:
        if name:
            public = PublicIdentity("gate", name, public.box_key, public.sign_key)
        if not public.name:
            raise AdminError("the gate needs a name: give --name")
        if public.fingerprint in self.gates:
            raise AdminError(f"gate {pretty(public.fingerprint)} is already registered")
        clash = [g for g in self.gates.values() if g.name == public.name]
        if clash:
            raise AdminError(
                f"a gate named {public.name!r} is already registered "
                f"({pretty(clash[0].fingerprint)[:14]}): give this one its own name with "
                f"--name, e.g. --name {public.name}-2"
            )
        rec = GateRecord(public, time.time(), rules=rules.to_doc() if rules else {})
        self.gates[public.fingerprint] = rec
        self.save()
        return rec

    def find_gate(self, name_or_fp: str) -> GateRecord:
        probe = name_or_fp.replace("-", "").lower()
        hits = [g for g in self.gates.values()
                if g.name == name_or_fp or (len(probe) >= 8 and g.fingerprint.startswith(probe))]  # fmt: skip
        if len(hits) != 1:
            raise AdminError(f"no single registered gate matches {name_or_fp!r}")
        return hits[0]

    def remove_gate(self, name_or_fp: str) -> GateRecord:
        rec = self.find_gate(name_or_fp)
        del self.gates[rec.fingerprint]
        self.save()
        return rec

    # ------------------------------------------------------------ the gates' limits

    def rules_of(self, gate: GateRecord) -> GateRules | None:
        """The limits this gate will apply to the next bundle: those of the admin's
        settings for it when there are any (they travel in the same bundle and the
        gate checks the roster under them), else those it last sent (pairing file or
        report); None if unknown."""
        settings = self.gate_settings(gate)
        if settings is not None:
            return GateRules.from_config(_candidate(settings, f"gate {gate.name}"))
        return GateRules.from_doc(gate.rules) if gate.rules else None

    def problems(self, roster: Any, only: list[str] | None = None) -> list[str]:
        """What the gates would refuse in this roster, one line each (empty: all good).

        The same `entry_problems` the gates run, with each gate's own limits;
        a name in ``gates = [...]`` that is not a registered gate is a problem too.
        """
        out: list[str] = []
        names = sorted(g.name for g in self.gates.values())
        for i, r in enumerate(roster.residents):
            for g in r.gates or ():
                if g not in names:
                    near = difflib.get_close_matches(g, names, n=1)
                    hint = (
                        f" (did you mean {near[0]!r}?)"
                        if near
                        else f" (gates: {', '.join(names) or 'none'})"
                    )
                    out.append(
                        f"residents[{i}] ({r.entry.key}).gates: {g!r} is not a registered gate{hint}"
                    )
        gates = [self.find_gate(n) for n in only] if only else list(self.gates.values())
        index = {r.entry.key: i for i, r in enumerate(roster.residents)}
        for g in gates:
            rules = self.rules_of(g)
            if rules is None:
                out.append(
                    f"gate {g.name!r}: its limits are unknown (paired by an older doorpi); plug "
                    "the stick into it once and run `doorpi admin report read`"
                )
                continue
            for e in roster.for_gate(g.name):
                for field_name, why in entry_problems(rules, e):
                    out.append(
                        f"gate {g.name!r}: residents[{index[e.key]}] ({e.key}).{field_name}: {why}"
                    )
        return out

    def face_warnings(self, roster: Any, only: list[str] | None = None) -> list[str]:
        """Residents this roster leaves with no face-free way to finish at a gate that
        can ask them for face (they hold a template or a consent there, as its last
        report said): requirement 1, checked with the gate's door rules and devices.
        One line each, in words for the admin; the gates accept such entries."""
        out: list[str] = []
        gates = [self.find_gate(n) for n in only] if only else list(self.gates.values())
        for g in gates:
            rules = self.rules_of(g)
            parity = rules.parity() if rules is not None else None
            if parity is None or not g.face_holders:
                continue
            asked = set(g.face_holders)
            for e in roster.for_gate(g.name):
                if e.key in asked and e.active and not e.face_refused:
                    line = face_free_gap(e, g.name, *parity)
                    if line:
                        out.append(line)
        return out

    # ------------------------------------------------------------ gate settings

    def settings_path(self, rec: GateRecord) -> Path:
        return self.dir / SETTINGS_DIR / f"{rec.fingerprint}.toml"

    def gate_settings(self, rec: GateRecord) -> dict[str, Any] | None:
        """The admin's settings for this gate, checked as the gate checks them; None
        while the admin has never set any (the gate's stay as they are)."""
        import tomllib

        path = self.settings_path(rec)
        if not path.exists():
            return None
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise AdminError(f"{path}: unreadable: {exc}") from None
        check_gate_settings(doc, str(path))
        return doc

    def set_gate_settings(self, rec: GateRecord, doc: dict[str, Any]) -> None:
        """Check with the gate's validator, then keep for the gate's next bundle."""
        import tomli_w

        from doorpi.fsutil import write_atomic

        check_gate_settings(doc, f"gate {rec.name}")
        write_atomic(self.settings_path(rec), tomli_w.dumps(doc).encode(), 0o600)

    # ------------------------------------------------------------ bundles

    def build(
        self,
        roster: Any,
        only: list[str] | None = None,
        templates: dict[str, list[TemplateEntry]] | None = None,
        now: float | None = None,
        card_keys: dict[str, CardKeyEntry] | None = None,
    ) -> list[BuiltBundle]:
        """One signed, sealed bundle per gate, all with the same new sequence number."""
        if not self.gates:
            raise AdminError("no gates registered; add one with `doorpi admin gate add FILE`")
        gates = [self.find_gate(n) for n in only] if only else list(self.gates.values())
        names = {g.name for g in self.gates.values()}
        for r in roster.residents:
            for g in r.gates or ():
                if g not in names:
                    raise AdminError(f"resident {r.entry.key}: unknown gate {g!r} in gates")
        settings = {
            g.fingerprint: self.gate_settings(g) for g in gates
        }  # refused before a number is used
        secure = {g.fingerprint: self._secure_cards(roster.for_gate(g.name)) for g in gates}
        in_roster = {r.entry.key for r in roster.residents}
        self.withdrawals = {k: t for k, t in self.withdrawals.items() if k in in_roster}
        self.suspensions = {k: t for k, t in self.suspensions.items() if k in in_roster}
        self.sequence += 1
        self.save()  # before anything is written: a number is never used twice
        created = time.time() if now is None else now
        out: list[BuiltBundle] = []
        for g in gates:
            residents = roster.for_gate(g.name)
            keys = {r.key for r in residents}
            tombstones = sorted(set(g.sent_keys) - keys)
            consented = {r.key for r in residents if r.share_with_site_gates}
            peers = tuple(p.public for p in self.gates.values() if p is not g)
            peer_fps = {p.fingerprint for p in peers}
            tpl = [t for t in (templates or {}).get(g.fingerprint, [])
                   if t.resident in consented and t.source_gate in peer_fps]  # fmt: skip
            # Consent withdrawn (or resident gone): the copies relayed earlier must go.
            withdrawn = sorted(set(g.templates_sent) - consented)
            bundle = EnrollmentBundle(
                site=self.key.fingerprint,
                gate=g.fingerprint,
                sequence=self.sequence,
                created=created,
                site_name=roster.site_name or self.key.name,
                residents=tuple(residents),
                tombstones=tuple(tombstones),
                templates=tuple(tpl),
                template_tombstones=tuple(k for k in withdrawn if k in keys),
                peers=peers,
                face_withdrawals=_events(self.withdrawals, keys),
                face_suspensions=_events(self.suspensions, keys),
                card_key_gate=self.card_key_gate,
                card_key=(card_keys or {}).get(g.fingerprint),
                modes=roster.modes,
                report_ack=ReportAck(**g.ack) if g.ack else None,
                settings=settings[g.fingerprint],
                secure_cards=secure[g.fingerprint],
            )
            out.append(BuiltBundle(g, bundle, seal_bundle(bundle, self.key, g.public)))
            g.sent_keys = sorted(set(g.sent_keys) | keys)
            g.templates_sent = sorted((set(g.templates_sent) - set(withdrawn))
                                      | {t.resident for t in tpl})  # fmt: skip
        self.save()
        return out

    def _secure_cards(self, residents: list[Any]) -> Any:
        """The gate's secure-card keys (doorpi.cards.register), derived here; sealed with the bundle."""
        from doorpi.cards.register import CardRegisterError, gate_keys

        try:
            return gate_keys(self.dir, [c.uid for r in residents for c in r.cards])
        except CardRegisterError as exc:
            raise AdminError(str(exc)) from None

    @property
    def card_key_gate(self) -> str | None:
        """The oldest registered gate: its card key is the site's."""
        if not self.gates:
            return None
        return min(self.gates.values(), key=lambda g: (g.added, g.fingerprint)).fingerprint

    def collect_card_keys(self, stick: Path) -> dict[str, CardKeyEntry]:
        """The card-key gate's key, sealed to each other gate, as it left it on the stick."""
        from doorpi.sync.bundle import BundleError, read_stable
        from doorpi.sync.importer import CARD_KEY_SUFFIX, OUTBOX
        from doorpi.sync.templates import MAX_TEMPLATE

        source = self.card_key_gate
        out: dict[str, CardKeyEntry] = {}
        for dest in self.gates:
            f = stick / STICK_DIR / OUTBOX / dest / f"{source}{CARD_KEY_SUFFIX}"
            if dest == source or not f.is_file():
                continue
            try:
                out[dest] = CardKeyEntry(str(source), read_stable(f, MAX_TEMPLATE + 200))
            except BundleError:
                continue
        return out

    def write_stick(self, stick: Path, built: list[BuiltBundle]) -> list[Path]:
        from doorpi.fsutil import write_atomic

        folder = stick / STICK_DIR
        if not stick.is_dir():
            raise AdminError(f"{stick}: not a directory (give the stick's mount point)")
        write_atomic(folder / SITE_CARD, (self.key.public.to_json() + "\n").encode())
        paths = []
        for b in built:
            b.path = folder / f"{b.gate.fingerprint}.bundle"
            write_atomic(b.path, b.data)
            old = folder / f"{b.gate.fingerprint}.report"
            if old.exists():
                old.rename(old.with_name(old.name + ".read"))  # never confuse last round's report
            paths.append(b.path)
        return paths

    def collect_outbox(self, stick: Path) -> dict[str, list[TemplateEntry]]:
        """Sealed templates the gates left on the stick, by destination gate.

        Each gate leaves one file per destination, sealed to the site key
        (`doorpi.sync.templates.seal_pack`); the templates inside stay sealed
        gate to gate and unreadable here. Only files from and to registered
        gates are taken; a damaged one is skipped (the gate writes it again).
        """
        from doorpi.sync.bundle import MAX_BUNDLE_BYTES, BundleError, read_stable
        from doorpi.sync.importer import OUTBOX
        from doorpi.sync.templates import PACK_SUFFIX, open_pack

        out: dict[str, list[TemplateEntry]] = {}
        root = stick / STICK_DIR / OUTBOX
        for dest in sorted(root.glob("*")) if root.is_dir() else []:
            if dest.name not in self.gates:
                continue
            for f in sorted(dest.glob(f"*{PACK_SUFFIX}")):
                source = f.name[: -len(PACK_SUFFIX)]
                if source not in self.gates or source == dest.name:
                    continue
                try:
                    entries = open_pack(read_stable(f, MAX_BUNDLE_BYTES), self.key.box)
                except BundleError:
                    continue
                out.setdefault(dest.name, []).extend(
                    TemplateEntry(key, source, True, sealed) for key, sealed in entries
                )
        return out

    def clear_outbox(self, stick: Path, relayed: dict[str, list[TemplateEntry]]) -> None:
        """Remove relayed templates from the stick once they are inside sealed bundles."""
        from doorpi.sync.importer import OUTBOX
        from doorpi.sync.templates import PACK_SUFFIX

        for dest, entries in relayed.items():
            for source in {t.source_gate for t in entries}:
                (stick / STICK_DIR / OUTBOX / dest / f"{source}{PACK_SUFFIX}").unlink(
                    missing_ok=True
                )

    def clear_card_keys(self, stick: Path, relayed: dict[str, CardKeyEntry]) -> None:
        from doorpi.sync.importer import CARD_KEY_SUFFIX, OUTBOX

        for dest, k in relayed.items():
            (stick / STICK_DIR / OUTBOX / dest / f"{k.source_gate}{CARD_KEY_SUFFIX}").unlink(
                missing_ok=True
            )

    # ------------------------------------------------------------ reports

    def read_reports(self, where: Path) -> list[tuple[Path, SyncReport | str]]:
        """Every report on a stick (or one file): the report, or why it cannot be read."""
        from doorpi.sync.bundle import BundleError

        files = [where] if where.is_file() else sorted((where / STICK_DIR).glob("*.report"))
        gates = {fp: g.public for fp, g in self.gates.items()}
        out: list[tuple[Path, SyncReport | str]] = []
        for f in files:
            try:
                rep = open_report(read_report_file(f), self.key, gates)
            except (BundleError, KeyFileError) as exc:
                out.append((f, str(exc)))
                continue
            rec = self.gates[rep.gate]
            if rep.created < rec.last_report.get("created", 0.0):
                rep.continuity = ["older than the report already read from this gate: ignored"]
                out.append((f, rep))
                continue
            self._receive(rec, rep)
            for reported, kept in ((rep.face_withdrawals, self.withdrawals),
                                   (rep.face_suspensions, self.suspensions)):  # fmt: skip
                for w in reported:
                    key, at = w.get("resident"), w.get("at")
                    if isinstance(key, str) and isinstance(at, int | float):
                        kept[key] = max(kept.get(key, 0.0), float(at))
            rules = GateRules.from_doc(rep.status.get("rules"))
            if rules is not None:
                rec.rules = rules.to_doc()
            if rep.sealed:  # an unsealed report names nobody: keep what we knew
                rec.face_holders = sorted(rep.face_holders)
            rec.last_sequence = max(rec.last_sequence, rep.gate_sequence)
            rec.last_report = {"created": rep.created, "summary": rep.summary()}
            if rep.continuity:
                rec.last_report["warnings"] = rep.continuity
            out.append((f, rep))
        self.save()
        return out

    def _receive(self, rec: GateRecord, rep: SyncReport) -> None:
        """Check the report continues the last one; note what the next bundle acknowledges."""
        from doorpi.sync.importer import MAX_AUDIT_IN_REPORT

        if not rep.sealed:
            return  # no audit and no events in it: nothing to acknowledge or compare
        acked = int(rec.ack.get("audit_seq", 0))
        rep.continuity = continuity(rep, rec.audit_head, acked, MAX_AUDIT_IN_REPORT)
        rec.audit_head = rep.audit_head
        ack = dict(rec.ack) or {"audit_seq": 0, "audit_hash": "0" * 64}
        if rep.audit and isinstance(rep.audit[-1].get("hash"), str):
            ack["audit_seq"], ack["audit_hash"] = rep.audit[-1]["seq"], rep.audit[-1]["hash"]
        for events, key in ((rep.face_withdrawals, "withdrawals_at"),
                            (rep.face_suspensions, "false_matches_at")):  # fmt: skip
            times = [float(w["at"]) for w in events if isinstance(w.get("at"), int | float)]
            ack[key] = max([float(ack.get(key, 0.0)), *times])
        rec.ack = ack


def face_free_gap(entry: Any, gate: str, rules: list[Rule], devices: Devices) -> str:
    """Why this roster entry, once asked for face at ``gate``, could not finish
    without it, in the admin's words ("" when it can): what is missing and the fix."""
    held = frozenset(({"card"} if entry.cards else set()) | ({"pin"} if entry.pin else set()))
    free = face_free_holds(held, bool(entry.keypad_id))  # a PIN needs a number or a card
    for rule in rules:
        if not may_ask_face(rule, held, devices) or has_face_free_way(rule, free, devices):
            continue
        missing = missing_credential(rule, held, devices)
        if has_face_free_way(rule, held, devices):  # their PIN, with a keypad number
            gap = ("has a PIN and no keypad number to type it after, nor a card: give them "
                   "a keypad number or a card or change the door rule")  # fmt: skip
        elif missing == "pin":
            gap = "has no PIN: give them a PIN or change the door rule"
        elif missing == "card":
            gap = "has no card: give them a card or change the door rule"
        else:
            gap = "has no face-free way to finish there: change the door rule"
        name = f"{entry.name} ({entry.key})" if entry.name else entry.key
        return f"{name} can be asked for face at gate {gate!r} ({show_rule(rule)}) but {gap}"
    return ""


def check_gate_settings(doc: dict[str, Any], where: str) -> None:
    """The admin's layer through the gate's own validator (doorpi.settings), over the
    package defaults: a setting the gate would refuse never leaves the laptop. The
    gate checks again over its installer's layer (wiring the laptop does not see)."""
    _candidate(doc, where)


def _candidate(doc: dict[str, Any], where: str) -> Any:
    """The config the admin's layer gives over the package defaults (AdminError if bad)."""
    import tomllib

    from doorpi.config import ConfigError, default_config_text
    from doorpi.settings import ADMIN, Layers

    base = Path("<package defaults>")
    layers = Layers(base, tomllib.loads(default_config_text()), base)
    try:
        return layers.candidate(ADMIN, doc, where)
    except ConfigError as exc:
        raise AdminError(str(exc)) from None


def _events(kept: dict[str, float], keys: set[str]) -> tuple[FaceEvent, ...]:
    """The reported face events of the residents a gate holds, in a stable order."""
    return tuple(FaceEvent(k, t) for k, t in sorted(kept.items()) if k in keys)
