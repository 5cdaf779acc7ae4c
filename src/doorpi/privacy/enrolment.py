"""Enrolment, withdrawal and refusal of face entry, started by the resident.

Why one facade (`FacePrivacy`): the rules cut across consent, the vault and
the resident record, and each must hold on every path (gate keypad, admin
CLI, sweeper):

* enrolment is started by the resident, at the gate after card + PIN or with
  the admin present; there is no other way in (GB/T 35273, 41819);
* no template without a live consent (the vault's database trigger enforces
  it once more);
* a refusal is remembered and the gate never offers face again unless the
  resident starts enrolment themselves (law notes A3);
* withdrawal takes as many key presses as enrolment, stops matching at once
  and deletes the template physically (PIPL 15, 47);
* declining or withdrawing changes nothing else about the resident: only
  face rows and the ``face_refused`` flag are ever written here (PIPL 16);
* every step is in the audit log (PIPL 55-56).

`GateFaceMenu` is the keypad side, a deliberate act that never opens the door:
``#``, card tap, PIN ``#``, then ``7 # 1 #`` enrols (consent on the form posted
at the gate), ``9 # 1 #`` withdraws, ``0 #`` at the question refuses
(enrolment) or cancels (withdrawal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from doorpi.cards.uid import Transmit
from doorpi.privacy.consent import ConsentError, ConsentRecord, ConsentRegistry
from doorpi.privacy.notices import NoticeText, load_notice
from doorpi.privacy.pia import AssessmentError, require_assessment
from doorpi.privacy.settings import PrivacySettings
from doorpi.privacy.vault import TemplateVault, VaultMatch
from doorpi.store import Storage
from doorpi.store.residents import Resident

if TYPE_CHECKING:
    from doorpi.privacy.oncard import CardKeyring, CardTemplate


class EnrolmentError(RuntimeError):
    """An enrolment step that may not happen; the message says why."""


@dataclass(frozen=True)
class SiteIdentity:
    """Who runs the gate, for the notice texts (from ``[site]``)."""

    name: str
    controller: str
    contact: str


@dataclass
class EnrolmentTicket:
    """A resident-started enrolment: the notice they are shown and who is present."""

    resident_id: int
    channel: str  # "gate" or "admin_present"
    notice: NoticeText
    started: float
    consent: ConsentRecord | None = None


class FacePrivacy:
    """The one place where face consent, templates and refusals change."""

    def __init__(
        self,
        storage: Storage,
        vault: TemplateVault,
        settings: PrivacySettings,
        site: SiteIdentity,
        clock: Callable[[], float] | None = None,
        gate: Any = None,
    ) -> None:
        import time

        self.storage = storage
        self.vault = vault
        self.settings = settings
        self.site = site
        self.clock = clock or time.time
        self.gate = gate  # doorpi.sync.keys.GateIdentity once `doorpi keys init` ran, else None
        self.consents = ConsentRegistry(storage.db, storage.audit)
        # Resident parity (doorpi.privacy.parity): why a resident would depend on
        # face at this door, or None; set by build_face_privacy from the config.
        self.parity: Callable[[Resident], str | None] | None = None
        self.door = "door"
        self._keyring: tuple[tuple[bytes, ...], CardKeyring] | None = None

    # ------------------------------------------------------------ helpers

    def _resident(self, resident_id: int) -> Resident:
        r = self.storage.residents.get(resident_id)
        if r is None:
            raise EnrolmentError(f"no resident {resident_id}")
        return r

    def _log(self, kind: str, **data: object) -> None:
        self.storage.audit.append(kind, dict(data), ts=self.clock())

    def notice(self, kind: str, lang: str | None = None) -> NoticeText:
        lang = lang or self.settings.notice_lang
        details = self.settings.notice_details(
            self.site.name, self.site.controller, self.site.contact, lang
        )
        return load_notice(kind, lang, details)

    # ------------------------------------------------------------ enrolment

    def start_enrolment(
        self, resident_id: int, channel: str, by: str, lang: str | None = None
    ) -> EnrolmentTicket:
        """The resident asks to enrol (at the gate, or with the admin present)."""
        if channel not in ("gate", "admin_present"):
            raise EnrolmentError("enrolment is started by the resident at the gate or in person")
        try:
            require_assessment(self.storage.db)
        except AssessmentError as exc:
            raise EnrolmentError(str(exc)) from None
        resident = self._resident(resident_id)
        if not resident.active:
            raise EnrolmentError(f"resident {resident_id} is disabled")
        problem = self.parity(resident) if self.parity is not None else None
        if problem:  # face may never become someone's only way in (requirement 1)
            self._log("face_enrolment_refused", resident_id=resident_id, channel=channel,
                      by=by, reason="no_face_free_way")  # fmt: skip
            raise EnrolmentError(f"resident {resident_id} at door {self.door!r} {problem}")
        ticket = EnrolmentTicket(resident_id, channel, self.notice("consent", lang), self.clock())
        self._log("face_enrolment_started", resident_id=resident_id, channel=channel, by=by,
                  notice_version=ticket.notice.version)  # fmt: skip
        return ticket

    def consent(
        self,
        ticket: EnrolmentTicket,
        confirmed_by: str,
        *,
        retention_days: int | None = None,
        minor: bool = False,
        guardian: str | None = None,
        share_site_gates: bool = False,
    ) -> ConsentRecord:
        """Record the resident's consent on the notice the ticket showed.

        A new consent supersedes the old one; a template made under the old
        consent is shredded now (the resident re-enrols under the new terms).
        """
        resident = self._resident(ticket.resident_id)
        had_template = self.vault.info(resident.pseudonym) is not None
        ticket.consent = self.consents.record(
            resident,
            ticket.notice,
            now=self.clock(),
            confirmed_by=confirmed_by,
            channel=ticket.channel,
            retention_days=self.settings.retention_days
            if retention_days is None
            else retention_days,
            max_retention_days=self.settings.max_retention_days,
            minor=minor,
            guardian=guardian,
            share_site_gates=share_site_gates,
            allow_site_sharing=self.settings.allow_site_sharing,
        )
        if had_template:  # the database trigger removed it with the old consent
            self.vault.purge()
            self._log("face_template_deleted", resident_id=resident.id,
                      reason="consent_superseded", by="system")  # fmt: skip
        return ticket.consent

    def enrol(self, resident_id: int, embedding: np.ndarray) -> int:
        """Store the template captured after consent (in memory until encrypted)."""
        if self.settings.template_storage == "card":
            raise EnrolmentError("templates live on the residents' cards here (see oncard)")
        resident = self._resident(resident_id)
        now = self.clock()
        rec = self.consents.live(resident.pseudonym, now)
        if rec is None:
            raise EnrolmentError(f"resident {resident_id} has no live face consent")
        expires = rec.retention_end
        if resident.valid_until is not None:
            expires = min(expires, resident.valid_until)
        tid = self.vault.store(resident.pseudonym, embedding, rec.id, expires)
        self._log("face_enrolled", resident_id=resident_id, consent_id=rec.id, expires=expires)
        return tid

    # ------------------------------------------------------------ refusal, withdrawal

    def refuse(self, resident_id: int, by: str) -> None:
        """Remember a 'no': the gate never offers face to this resident again."""
        resident = self._resident(resident_id)
        if self.consents.live(resident.pseudonym, self.clock()) or self.vault.info(
            resident.pseudonym
        ):
            self.withdraw(resident_id, by=by, channel="refusal")
        self.storage.residents.update(resident_id, self.clock(), face_refused=True)
        self._log("face_refused", resident_id=resident_id, by=by)

    def may_offer(self, resident_id: int) -> bool:
        """May the gate offer face enrolment to this resident unprompted? Never
        after a refusal, never when already enrolled."""
        r = self.storage.residents.get(resident_id)
        if r is None or r.face_refused or not r.active:
            return False
        return self.consents.live(r.pseudonym, self.clock()) is None

    def withdraw(self, resident_id: int, by: str, channel: str) -> bool:
        """Withdraw consent: matching stops now and the template is shredded.
        True if there was a consent or a template to withdraw."""
        resident = self._resident(resident_id)
        now = self.clock()
        # Template first: the row goes before the consent update commits.
        had_template = self.vault.delete(resident.pseudonym, "withdrawn", by=by, purge=False)
        n = self.consents.withdraw(resident.pseudonym, now, by)
        self.vault.purge()
        self._log("face_consent_withdrawn", resident_id=resident_id, by=by, channel=channel,
                  consents=n, template_deleted=had_template)  # fmt: skip
        return bool(n or had_template)

    def forget_resident(self, resident_id: int, by: str) -> None:
        """Before a resident is removed: withdraw and shred (the trigger would
        delete the row anyway; this logs it and purges the WAL)."""
        resident = self.storage.residents.get(resident_id)
        if resident is not None:
            self.withdraw(resident_id, by=by, channel="resident_removed")

    # ------------------------------------------------------------ template on card

    def enrol_on_card(self, resident_id: int, embedding: np.ndarray, transmit: Transmit) -> None:
        """Write the template, sealed for this site, to the resident's own card
        (on the reader now); the device keeps nothing but the consent record."""
        from doorpi.privacy.oncard import TemplateCard, seal
        from doorpi.store.credentials import card_hash

        resident = self._resident(resident_id)
        now = self.clock()
        rec = self.consents.live(resident.pseudonym, now)
        if rec is None:
            raise EnrolmentError(f"resident {resident_id} has no live face consent")
        card = TemplateCard(transmit)
        uid = card.uid()
        owner = self.storage.residents.by_card_hash(card_hash(self.storage.secrets, uid))
        if owner is None or owner.id != resident_id:
            raise EnrolmentError("that card does not belong to this resident")
        expires = rec.retention_end
        if resident.valid_until is not None:
            expires = min(expires, resident.valid_until)
        keys = self.card_keyring().sealing
        gate = self.gate.fingerprint if self.gate is not None else ""
        card.write(seal(keys, uid, embedding, rec.id, expires, gate))
        self._log("face_card_written", resident_id=resident_id, consent_id=rec.id, expires=expires)

    def card_keyring(self) -> CardKeyring:
        """The site's card key once the sync brought it (doorpi.sync), else this
        device's own; cards sealed under any key this gate has held stay readable."""
        from doorpi.privacy.oncard import CardKeyring, SiteCardKeys

        adopted: tuple[bytes, ...] = ()
        if self.gate is not None:
            from doorpi.sync.importer import adopted_card_keys

            adopted = tuple(adopted_card_keys(self.storage.db, self.gate))
        if self._keyring is None or self._keyring[0] != adopted:  # keys derive once
            own = SiteCardKeys.from_secrets(self.storage.secrets)
            site = [SiteCardKeys(k) for k in adopted]
            ring = CardKeyring(site[0], (*site[1:], own)) if site else CardKeyring(own)
            self._keyring = (adopted, ring)
        return self._keyring[1]

    def consent_covers(self, resident_id: int, card: CardTemplate) -> bool:
        """Is the consent a card names a live consent of this (active) resident now?

        The card names the gate that enrolled it: this gate's own consent id,
        or the id at another gate of the site, whose record came here with the
        sync (doorpi.privacy.share)."""
        r = self.storage.residents.get(resident_id)
        if r is None or not r.active:
            return False
        now = self.clock()
        if r.valid_until is not None and r.valid_until <= now:
            return False
        here = self.gate is None or not card.gate or self.gate.fingerprint.startswith(card.gate)
        if here:
            rec = self.consents.get(card.consent_id)
            if rec is not None and rec.origin_gate is not None:
                return False
        else:
            rec = self.consents.received(r.pseudonym, card.gate, card.consent_id)
        return bool(rec and rec.pseudonym == r.pseudonym and rec.live and rec.retention_end > now)

    def verify_card_face(
        self, card_uid: bytes, blob: bytes, probe: np.ndarray, threshold: float
    ) -> tuple[int | None, str]:
        """Card tap + face, 1:1: (resident id, "ok") or (None, reason)."""
        from doorpi.privacy.oncard import verify_on_card
        from doorpi.store.credentials import card_hash

        owner = self.storage.residents.by_card_hash(card_hash(self.storage.secrets, card_uid))
        if owner is None:
            return None, "unknown_card"
        res = verify_on_card(
            self.card_keyring(), card_uid, blob, probe, threshold,
            lambda card: self.consent_covers(owner.id, card), self.clock(),
        )  # fmt: skip
        if res.reason not in ("ok", "no_match"):
            self._log("face_card_rejected", resident_id=owner.id, reason=res.reason)
        return (owner.id, "ok") if res.matched else (None, res.reason)

    # ------------------------------------------------------------ matching

    def identify(self, probe: np.ndarray, threshold: float, margin: float = 0.0) -> int | None:
        """Resident id for a live probe (1:N), or None. For the gate's face path."""
        m: VaultMatch = self.vault.identify(probe)
        if not m.accepted(threshold, margin) or m.pseudonym is None:
            return None
        row = self.storage.db.execute(
            "SELECT id FROM residents WHERE pseudonym = ? AND active = 1", [m.pseudonym]
        ).fetchone()
        return int(row[0]) if row else None


# ---------------------------------------------------------------- keypad menu


@dataclass(frozen=True)
class MenuAction:
    """What the gate should do after a key (or tap) the menu consumed.

    ``kind``: armed (``#`` on an idle keypad: the next tap is for the menu),
    typing, pin_needed, wrong_pin, menu, ask_consent (``detail``: the notice
    version the consent will name), ask_share, ask_withdraw, capture (start
    the camera for enrolment), withdrawn, refused, cancelled, error
    (``detail`` says why), or release: the menu gave up and ``detail`` holds
    the keys it had taken, which the gate must replay to its keypad handling
    (so somebody else typing their number is never swallowed).
    ``resident_id`` is None only while armed (nobody has tapped yet).
    """

    kind: str
    resident_id: int | None
    detail: str = ""

    @property
    def pattern(self) -> str:
        """The feedback pattern (doorpi.hardware.feedback.PATTERNS) for this step."""
        return MENU_PATTERNS.get(self.kind, "done")


#: Menu step -> feedback pattern. The gate has no display: each step the
#: resident must answer has its own pattern, and the sign says the keys.
MENU_PATTERNS = {
    "armed": "card_needed", "typing": "key", "pin_needed": "pin_needed",
    "wrong_pin": "denied", "menu": "face_menu", "ask_consent": "face_question",
    "ask_share": "face_question", "ask_withdraw": "face_question",
    "capture": "face_needed", "error": "see_office",
}  # fmt: skip


@dataclass
class _MenuState:
    resident_id: int | None
    opened: float
    stage: str = "armed"  # "armed" | "pin" | "menu" | "enrol" | "share" | "withdraw"
    typed: str = ""
    ticket: EnrolmentTicket | None = None


@dataclass
class GateFaceMenu:
    """Face enrolment and withdrawal at the keypad, a deliberate act that never
    opens the door.

    The same keys on every door: ``#`` on an idle keypad arms the menu (the
    `ARM_SECONDS` that follow), the resident taps their card (the gate hands
    the tap to `take_card` instead of deciding entry: the door stays locked),
    types their PIN and ``#`` (checked with ``verify_pin``, failures count in
    the gate's lockout). Then ``7 #`` asks the consent question on the form
    posted at the gate (the gate has no display; the consent records that
    notice's version) and ``1 #`` agrees (capture starts) or ``0 #`` says no
    (remembered, never offered again); ``9 #`` then ``1 #`` withdraws (``0 #``
    cancels). Enrolment and withdrawal take the same keys. Where the site lets
    templates move between its gates (``allow_site_sharing``), agreeing asks
    the form's second, separate choice before capture: ``1 #`` the other gates
    too, ``0 #`` this gate only. ``*`` leaves; a tap leaves the menu and is
    handled as a normal tap; any other key releases the keys to the gate.

    Why not after a grant (as before): on a card-only door the tap that
    entered the menu also opened the door, and a menu left open after
    somebody's grant could be answered by the next person at the keypad.
    """

    privacy: FacePrivacy
    verify_pin: Callable[[int, str], bool] | None = None
    window: float = 20.0
    state: _MenuState | None = field(default=None)
    #: Resident whose enrolment capture runs now (set by the gate, see `capture_*`).
    capturing: int | None = None

    ENROL = "7"
    WITHDRAW = "9"
    YES = "1"
    NO = "0"
    ARM_SECONDS = 10.0  # from '#' to the tap: long enough to find the card, short for a slip

    def arm(self, now: float) -> MenuAction:
        """``#`` on an idle keypad: the next card tap is for the menu."""
        self.state = _MenuState(None, now)
        return MenuAction("armed", None)

    def take_card(self, resident_id: int | None, now: float) -> MenuAction | None:
        """A card was read (``resident_id`` None: not a resident's). While armed,
        the menu takes the tap and asks for the PIN; otherwise any menu ends
        and None tells the gate to handle the tap as usual."""
        armed = self.active(now) and self.state is not None and self.state.stage == "armed"
        self.state = None
        if not armed or resident_id is None:
            return None
        self.state = _MenuState(resident_id, now, stage="pin")
        return MenuAction("pin_needed", resident_id)

    def capture_started(self, resident_id: int) -> None:
        """The gate started an enrolment capture (this menu's or the admin's)."""
        self.capturing = resident_id

    def capture_over(self) -> int | None:
        """A capture outcome arrived: the resident whose enrolment capture it
        ends, or None (it ends a face attempt at the door instead)."""
        rid, self.capturing = self.capturing, None
        return rid

    def active(self, now: float) -> bool:
        if self.state is not None:
            limit = self.ARM_SECONDS if self.state.stage == "armed" else self.window
            if now - self.state.opened > limit:
                self.state = None
        return self.state is not None

    def _release(self, st: _MenuState, key: str) -> MenuAction:
        self.state = None
        typed = "" if st.stage == "pin" else st.typed  # never replay a PIN
        return MenuAction("release", st.resident_id, typed + key)

    def feed(self, key: str, now: float) -> MenuAction | None:
        """A key press; None means the menu is not active (the gate handles it)."""
        if not self.active(now):
            return None
        st = self.state
        assert st is not None
        rid = st.resident_id
        if st.stage == "armed":
            if key == "#":
                return self.arm(now)  # pressed twice: still armed, from now
            return self._release(st, key)
        if key == "*":
            self.state = None
            return MenuAction("cancelled", rid)
        if key != "#":
            if not key.isdigit():
                return self._release(st, key)
            st.typed += key
            if st.stage != "pin" and len(st.typed) > 1:
                return self._release(st, "")  # a menu code is one digit
            return MenuAction("typing", rid)
        code, st.typed = st.typed, ""
        st.opened = now  # each step renews the window
        try:
            return self._step(st, code)
        except (EnrolmentError, ConsentError) as exc:
            self.state = None
            return MenuAction("error", rid, str(exc))

    def _step(self, st: _MenuState, code: str) -> MenuAction:
        rid = st.resident_id
        assert rid is not None
        if st.stage == "pin":
            if not code:  # '#' before the PIN out of habit: still waiting for it
                return MenuAction("pin_needed", rid)
            if self.verify_pin is not None and code and self.verify_pin(rid, code):
                st.stage = "menu"
                return MenuAction("menu", rid)
            self.state = None
            return MenuAction("wrong_pin", rid)
        if st.stage == "menu":
            if code == self.ENROL:
                st.ticket = self.privacy.start_enrolment(rid, "gate", by="resident")
                st.stage = "enrol"
                notice = st.ticket.notice
                return MenuAction("ask_consent", rid, f"{notice.lang} {notice.version}")
            if code == self.WITHDRAW:
                st.stage = "withdraw"
                return MenuAction("ask_withdraw", rid)
            return self._release(st, code + "#")
        self.state = None
        if st.stage == "enrol" and st.ticket is not None:
            if code == self.YES and self.privacy.settings.allow_site_sharing:
                self.state, st.stage = st, "share"
                return MenuAction("ask_share", rid)
            if code == self.YES:
                self.privacy.consent(st.ticket, confirmed_by="resident:card+pin")
                return MenuAction("capture", rid)
            if code == self.NO:
                self.privacy.refuse(rid, by="resident")
                return MenuAction("refused", rid)
        elif st.stage == "share" and st.ticket is not None and code in (self.YES, self.NO):
            self.privacy.consent(st.ticket, confirmed_by="resident:card+pin",
                                 share_site_gates=code == self.YES)  # fmt: skip
            return MenuAction("capture", rid)
        elif st.stage == "withdraw" and code == self.YES:
            self.privacy.withdraw(rid, by="resident", channel="gate")
            return MenuAction("withdrawn", rid)
        return MenuAction("cancelled", rid)


def build_face_privacy(
    cfg: Any, storage: Storage, clock: Callable[[], float] | None = None
) -> FacePrivacy:
    """The facade for a loaded `Config` and open `Storage` (CLI and gate)."""
    from doorpi.privacy.settings import privacy_settings
    from doorpi.sync.keys import GateIdentity, KeyFileError

    settings = replace(privacy_settings(cfg.face.settings), trigger=cfg.face.trigger)
    keys_dir = cfg.site.data_dir / "keys"
    vault = TemplateVault(storage.db, keys_dir, storage.audit, clock=clock)
    site = SiteIdentity(cfg.site.name, cfg.site.controller, cfg.site.contact)
    try:
        gate = GateIdentity.load(keys_dir, cfg.door.name) if GateIdentity.exists(keys_dir) else None
    except KeyFileError:
        gate = None  # `doorpi status` and the sync say what is wrong with the keys
    from doorpi.privacy.parity import ParityCheck

    privacy = FacePrivacy(storage, vault, settings, site, clock=clock, gate=gate)
    privacy.parity = ParityCheck(cfg, storage).problem
    privacy.door = cfg.door.name
    return privacy


def face_enable_problem(cfg: Any, db: Any) -> str | None:
    """Why face may not be switched on with this config and database, or None.

    For `doorpi config check` and the gate's start-up: face needs valid
    privacy settings, the operator's name and contact for the notices, and a
    stored impact assessment (PIPL 55-56).
    """
    if not cfg.face.enabled:
        return None
    from doorpi.privacy.settings import privacy_settings

    try:
        privacy_settings(cfg.face.settings)
    except ValueError as exc:
        return str(exc)
    for key in ("controller", "contact"):
        if not str(getattr(cfg.site, key)).strip():
            return f"site.{key}: face.enabled needs it for the notices and consent form"
    from doorpi.settings import placeholder_problem

    problem = placeholder_problem(cfg)
    if problem:
        return problem
    try:
        require_assessment(db)
    except AssessmentError as exc:
        return str(exc)
    return None


__all__ = [
    "EnrolmentError",
    "EnrolmentTicket",
    "FacePrivacy",
    "GateFaceMenu",
    "MenuAction",
    "SiteIdentity",
    "build_face_privacy",
    "face_enable_problem",
]
