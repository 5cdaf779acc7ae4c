"""The gate: one thread that turns events into decisions, commands and records.

Adapters (reader, keypad, door inputs, face path) call `submit()` from their
own threads; `run()` takes events off the queue one at a time, so decisions
never race. For each event the order is fixed: decide (pure core), act
(strike and feedback first, so latency does not include disk), then record
(audit log and observers).

An *attempt* is one person's interaction: a card tap or a keypad number
identifies a resident, further factors (PIN, face) are collected until the
door's access rule is met, refused, or the attempt times out.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from doorpi.cards.policy import WEAK_METHODS
from doorpi.clocks import Clock
from doorpi.config import Config
from doorpi.core.door import DoorMachine, DoorTiming
from doorpi.core.events import (
    Alarm,
    CardPresented,
    CardReadFailed,
    CardRemoved,
    Command,
    Decision,
    DeviceStatus,
    DoorContactChanged,
    Event,
    ExitReleased,
    ExitRequested,
    FaceEnrolled,
    FaceHint,
    FaceMatched,
    FaceRejected,
    Feedback,
    FireAlarmChanged,
    KeyPressed,
    Lock,
    LockdownSwitchChanged,
    Notice,
    ReaderStatus,
    TamperChanged,
    Tick,
    Unlock,
    as_record,
)
from doorpi.core.inputs import InputFilter, Settled
from doorpi.core.lockout import CardPacer, Lockout, LockoutPolicy, PacePolicy
from doorpi.core.parity import face_free_next
from doorpi.core.pinpad import PadAction, PinPad, keypad_number_habit
from doorpi.core.policy import LACKING_REASON, Moment, Reason, decide, deny_pattern, lacking
from doorpi.core.uid import is_random_uid
from doorpi.devicewatch import face_off_reason
from doorpi.doormodes import DoorModes
from doorpi.eventqueue import EventQueue
from doorpi.faults import FaultBoard
from doorpi.hardware.feedback import FACE_HINT_PATTERNS, Indicator
from doorpi.hardware.strike import Strike
from doorpi.lockstate import StoredLockout
from doorpi.privacy.capture import CaptureWatcher
from doorpi.store import Storage
from doorpi.store.changes import CredentialsWatch
from doorpi.store.credentials import card_hash, check_pin, decoy_hash, verify_pin
from doorpi.store.residents import Resident
from doorpi.sync.importer import SyncSignalWatcher
from doorpi.timekeeper import Timekeeper

log = logging.getLogger("doorpi.gate")

Observer = Callable[[dict[str, Any]], None]

# Record kinds kept only for live observers (demo, tests), not in the audit log.
NOT_AUDITED = frozenset({"feedback", "key_pressed", "card_removed", "tick", "face_hint"})

FACE_PAUSE_AFTER = 5
FACE_PAUSE_SECONDS = 30.0


@dataclass
class Attempt:
    """One person's interaction at the gate, until granted, refused or timed out."""

    resident: Resident | None
    factors: set[str] = field(default_factory=set)
    via: str = "card"  # what identified them: card, keypad, face
    last: float = 0.0
    card_id: bytes | None = None  # in memory only: the template-on-card face step needs it
    awaiting: str = ""  # "pin", "card", "face" or ""
    number_typed: bool = False  # their own keypad number typed once after the card


class Gate:
    def __init__(
        self,
        cfg: Config,
        storage: Storage,
        strike: Strike,
        feedback: Indicator,
        clock: Clock,
        observers: list[Observer] | None = None,
    ) -> None:
        self.cfg = cfg
        self.storage = storage
        self.strike = strike
        self.feedback = feedback
        self.clock = clock
        self.observers: list[Observer] = list(observers or [])
        self._outbox: list[tuple[float, float, dict[str, Any]]] = []
        self.queue: EventQueue = EventQueue()  # fire input first (doorpi.eventqueue)
        self.door = DoorMachine(
            DoorTiming(
                cfg.door.unlock_seconds,
                cfg.door.held_open_seconds,
                cfg.door.relock_on_open,
                has_contact=cfg.gpio.door_contact != 0,
                close_confirm_seconds=cfg.gpio.close_confirm_seconds,
            )
        )
        lk = cfg.lockout
        self.lockout = StoredLockout(
            LockoutPolicy(lk.threshold, lk.base_seconds, lk.max_seconds, lk.window_seconds),
            storage.db, clock.mono, clock.wall,
        )  # fmt: skip
        # Unknown cards slow the reader down; they never lock residents out.
        self.card_pacer = CardPacer(
            PacePolicy(lk.threshold, lk.window_seconds, lk.unknown_card_pause_seconds)
        )
        self.inputs = InputFilter(
            cfg.gpio.settle_seconds,
            {"exit_button": cfg.gpio.exit_stuck_seconds},
            report_glitches=frozenset({"door_contact", "tamper"}),  # restart a confirmation
        )
        self.faults = FaultBoard(storage.db)
        if self.lockout.problem:
            self._fault("lockout_state", True, self.lockout.problem)
        self.modes = DoorModes(cfg, storage)  # fire release, lockdown, unlock windows, duress
        if self.modes.problem:
            self._fault("lockdown_state", True, self.modes.problem)
        self.face_lockout = Lockout(
            LockoutPolicy(FACE_PAUSE_AFTER, FACE_PAUSE_SECONDS, FACE_PAUSE_SECONDS, 3600.0)
        )
        self.pinpad = PinPad(cfg.keypad.entry_timeout_seconds, max_digits=12)
        self.time = Timekeeper(clock, storage.db, cfg.site.tz)  # the one clock service
        self.clock_guard = self.time.guard
        self.attempt: Attempt | None = None
        self.readers: dict[str, bool] = {}
        self.started_mono = clock.mono()
        self.stats = {"granted": 0, "denied": 0}
        # The face path's trigger: called with the resident to verify (1:1) or None (1:N).
        self.on_face_request: Callable[[int | None], None] | None = None
        # Enrolment capture after consent at the gate (set with the camera path).
        self.on_face_enrol: Callable[[int], None] | None = None
        self.moment = self.now()  # observe the clock at once: the floor starts here
        self._mode(self.modes.startup_notices(clock.wall()))
        # Retention jobs (face templates ...) called hourly with the effective epoch.
        self.sweepers: list[Callable[[float], None]] = []
        self._last_sweep = float("-inf")
        self.face_privacy: Any = None
        self.face_menu: Any = None
        self.face_engine: Any = None  # set by doorpi.facebuild when a camera path exists
        # Template-on-card mode: the reader's OnCardTemplateProtocol (holds tapped blobs).
        self.card_templates: Any = None
        self.face_problem = ""
        # A USB import runs in its own process; it leaves a signal for us to show.
        self.sync_watch = SyncSignalWatcher(storage.db)
        self._sync_polled = float("-inf")
        # `doorpi consent capture` (admin present) asks this process to use the camera.
        self.capture_watch = CaptureWatcher(storage.db)
        # `doorpi pin clear`, `card remove`, ... (other processes): face parity again.
        self.credentials_watch = CredentialsWatch(storage.db)
        decoy_hash(cfg.pin.opslimit, cfg.pin.memlimit_kib)  # made now, not at the first guess
        if cfg.face.enabled:
            self._start_face_privacy()

    def _start_face_privacy(self) -> None:
        """Face needs valid privacy settings and a stored impact assessment;
        without them the gate runs with face off and card and PIN unchanged."""
        from doorpi.config import parity_problems
        from doorpi.privacy.enrolment import (
            GateFaceMenu,
            build_face_privacy,
            face_enable_problem,
        )
        from doorpi.privacy.retention import RetentionSweeper
        from doorpi.privacy.vault import VaultError

        problem = face_enable_problem(self.cfg, self.storage.db) or "; ".join(
            parity_problems(self.cfg)  # never a face path that would be the only way in
        )
        if problem:
            self.face_problem = problem
            log.error("face stays off: %s", problem)
            return
        # Vouched time, not the raw wall clock: an RTC reading 2040 must not shred templates.
        vouched = self.time.vouched
        try:
            self.face_privacy = build_face_privacy(self.cfg, self.storage, clock=vouched)
        except VaultError as exc:  # vault key lost or unreadable: face off, card/PIN unchanged
            self.face_problem = f"face vault: {exc}"
            log.error("face stays off: %s", self.face_problem)
            return
        from doorpi.privacy.speech import build_speaker

        self.face_menu = GateFaceMenu(self.face_privacy, verify_pin=self._menu_verify_pin,
                                      speaker=build_speaker(self.face_privacy.settings.spoken_prompts))  # fmt: skip
        sweeper = RetentionSweeper(self.storage, self.face_privacy.vault, vouched)
        self.sweepers.append(lambda _now: sweeper.sweep())
        from doorpi.privacy.parity import clear_device_templates

        try:
            clear_device_templates(self.face_privacy, vouched())  # templates on cards: none here
        except Exception as exc:  # face must not run on templates this mode may not hold
            self.face_problem = (
                f"cannot delete the device's templates (template_storage card): {exc}"
            )
            log.error("face stays off: %s", self.face_problem)
            self.face_privacy = self.face_menu = None
            self.sweepers.clear()
            return
        self.check_face_parity()

    def check_face_parity(self) -> None:
        """Who could be asked for face here with no face-free way to finish:
        an audit notice each and a standing fault for `doorpi status`."""
        from doorpi.privacy.parity import FAULT, gate_dependents

        try:
            found, summary = gate_dependents(self.cfg, self.storage, self.face_privacy,
                                             self.time.vouched())  # fmt: skip
        except Exception as exc:  # a check that fails must not stop the door
            log.error("face parity check failed: %s", exc)
            return
        for d in found:
            log.warning("%s", d.line(self.cfg.door.name))
            self._record(Notice("face_parity", {"resident_id": d.resident_id,
                                                "problem": d.problem}))  # fmt: skip
        self._fault(FAULT, bool(found), summary)
        self._flush()

    def _menu_verify_pin(self, rid: int, pin: str) -> bool:
        """The face menu's PIN check: the same lockout as the door's."""
        mono = self.clock.mono()
        subject = f"resident:{rid}"
        if self.lockout.locked_for(subject, mono):
            return False
        stored = self.storage.residents.pin_hash(rid)
        if stored is not None and verify_pin(self.storage.secrets, stored, pin):
            self.lockout.success(subject)
            return True
        started = self.lockout.failure(subject, mono)
        if started:
            self._lockout_notice(subject, started)
        return False

    # ------------------------------------------------------------ plumbing

    def submit(self, event: Event) -> None:
        """Thread-safe: adapters call this from their own threads."""
        self.queue.put(event)

    def now(self) -> Moment:
        moment, notices = self.time.now()
        for notice in notices:
            self._record(notice)
        return moment

    def _record(self, item: Any, **extra: Any) -> None:
        """Queue a record; `_flush` writes them after the actuators have acted."""
        rec = as_record(item)
        rec.update(extra)
        if getattr(self, "_weak_card", False):  # a UID-only card: cloneable (doorpi.cards.policy)
            rec["weak_card"] = True
        self._outbox.append((self.clock.wall(), self.clock.mono(), rec))

    def _flush(self, wait: bool = True) -> None:
        """Write queued records: audit in one transaction (``wait``: in this thread;
        else by the audit writer thread, AuditQueue.put), then the observers."""
        self._weak_card = False
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        audited = [
            (rec["event"], {k: v for k, v in rec.items() if k != "event"}, wall)
            for wall, _, rec in batch
            if rec["event"] not in NOT_AUDITED
        ]
        if audited:  # never waits on the disk: busy, full or read-only, records queue
            self.storage.audit_queue.put(audited, wait=wait)
        for _, mono, rec in batch:
            out = {"t": round(mono - self.started_mono, 3), **rec}
            for obs in self.observers:
                obs(out)

    def note(self, what: str, **detail: Any) -> None:
        """Record a notice (start, stop, sync ...) in the audit log and for observers."""
        self._record(Notice(what, detail))
        self._flush()

    def _apply(self, outputs: list[Any]) -> None:
        """Carry out commands first, then record everything."""
        for item in outputs:
            if isinstance(item, Unlock):
                self.strike.release()
            elif isinstance(item, Lock):
                self.strike.secure()
            elif isinstance(item, Feedback):
                self.feedback.show(item.pattern)
            elif isinstance(item, Alarm):
                self.feedback.alarm(item.active)
        for item in outputs:
            self._record(item)

    def _mode(self, notices: list[Notice]) -> None:
        """Record mode notices; a change of mode holds or frees the strike (doorpi.doormodes)."""
        self._apply(self.modes.with_hold(notices, self.door, self.clock.mono(), self.clock.wall()))

    def _say(self, pattern: str) -> Feedback:
        return Feedback(pattern)

    # ------------------------------------------------------------ main loop

    def process_pending(self) -> int:
        """Handle every queued event (tests and the scenario runner call this)."""
        n = 0
        while True:
            try:
                event = self.queue.get_nowait()
            except queue.Empty:
                return n
            self.handle(event)
            n += 1

    def run(self, stop: threading.Event, heartbeat: Callable[[], None] | None = None) -> None:
        """Serve until ``stop`` is set; ``heartbeat`` is called at least every second."""
        while not stop.is_set():
            timers = (self.door.next_deadline, self.inputs.next_deadline, self.modes.next_deadline)
            deadlines = [d for d in timers if d is not None]
            deadline = min(deadlines) if deadlines else None
            wait = 0.5
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - self.clock.mono()))
            try:
                event = self.queue.get(timeout=wait)
            except queue.Empty:
                event = Tick()
            self.handle(event)
            if heartbeat is not None:
                heartbeat()

    def shutdown(self) -> None:
        self._apply(self.door.shutdown())
        self.strike.secure()
        self.time.persist(force=True)
        self._flush()

    # ------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        try:
            self._handle(event)
        except Exception:  # one bad event must never stop the gate
            log.exception("error while handling %s", type(event).__name__)
            if not self.door.strike_released:
                self.strike.secure()
        self._tick()
        # A face rejection's records (several a second with face on) are written by the
        # audit writer thread: the next card must not wait for their commit.
        self._flush(wait=not isinstance(event, FaceRejected))

    def _handle(self, event: Event) -> None:
        if isinstance(event, Tick):
            return
        if isinstance(event, CardPresented):
            self._on_card(event)
        elif isinstance(event, KeyPressed):
            self._on_key(event)
        elif isinstance(event, DoorContactChanged | ExitRequested | ExitReleased | TamperChanged):
            name, active = _raw_input(event)
            for settled in self.inputs.feed(name, active, self.clock.mono()):
                self._on_input(settled)
        elif isinstance(event, FireAlarmChanged | LockdownSwitchChanged):
            self._mode(self.modes.on_event(event, self.clock.mono()))
        elif isinstance(event, FaceMatched):
            self._on_face_match(event)
        elif isinstance(event, FaceRejected):
            self._capture_outcome(event)
            if self.face_menu is not None and self.face_menu.capture_over() is not None:
                # An enrolment capture, not a way in: its own pattern, no fallback.
                self._apply([Notice("face_not_captured", {"reason": event.reason}),
                             self._say("face_not_captured")])  # fmt: skip
            else:
                self._on_face_reject(event)
        elif isinstance(event, FaceEnrolled):
            self._capture_outcome(event)
            if self.face_menu is not None:
                self.face_menu.capture_over()
            self._apply([Notice("face_enrolled", {"resident_id": event.resident_id}),
                         self._say("done")])  # fmt: skip
        elif isinstance(event, FaceHint):
            prompt = FACE_HINT_PATTERNS.get(event.hint, "face_needed")
            self._apply([Notice("face_hint", {"hint": event.hint}), self._say(prompt)])
        elif isinstance(event, CardReadFailed):
            self._apply([event, self._say("denied")])
        elif isinstance(event, ReaderStatus):
            if self.readers.get(event.reader) != event.present:
                self.readers[event.reader] = event.present
                self._record(event)
                self._fault(f"reader {event.reader}", not event.present, event.reason)
        elif isinstance(event, DeviceStatus):
            self._record(event)
            self._fault(event.device, not event.present, event.reason)
        elif isinstance(event, CardRemoved):
            self._record(event)

    def _tick(self) -> None:
        self.moment = self.now()
        mono = self.clock.mono()
        for settled in self.inputs.poll(mono):
            self._on_input(settled)
        self._mode(self.modes.tick(self.moment, mono))
        out: list[Any] = list(self.door.tick(mono))
        a = self.attempt
        if a is not None and mono - a.last > self.cfg.keypad.entry_timeout_seconds:
            self.attempt = None
            self.pinpad.reset()
            rid = a.resident.id if a.resident else None
            out.append(Decision(False, Reason.INCOMPLETE, rid, tuple(sorted(a.factors))))
            self.stats["denied"] += 1
        if out:
            self._apply(out)
        self.time.persist()
        self._sweep(mono)
        if mono - self._sync_polled >= 1.0:
            self._sync_polled = mono
            self._poll_sync()
            self._poll_credentials()
            self._poll_capture()
            self._mode(self.modes.poll_stored())
            self._apply(self.time.poll_repair())

    def _poll_sync(self) -> None:
        try:
            sig = self.sync_watch.poll()
        except Exception as exc:
            log.error("sync signal: %s", exc)
            return
        if sig is not None:
            pattern, floor = sig
            self.credentials_watch.poll()  # the roster's changes: checked here, once
            if self.face_privacy is not None:
                self.check_face_parity()  # the roster may have changed PINs and cards
            self._apply([*self.time.offer(floor, "bundle"), Notice("sync_finished",
                         {"result": pattern}), self._say(pattern)])  # fmt: skip

    def _poll_credentials(self) -> None:
        """A PIN, card or resident changed by another process: the same face-parity
        check as after a sync (doorpi.store.changes)."""
        try:
            changed = self.credentials_watch.poll()
        except Exception as exc:
            log.error("credentials signal: %s", exc)
            return
        if changed and self.face_privacy is not None:
            self.check_face_parity()

    def _poll_capture(self) -> None:
        """Start a face capture the admin asked for from the CLI, or say why not."""
        try:
            req = self.capture_watch.poll(self.clock.wall())
        except Exception as exc:
            log.error("face capture request: %s", exc)
            return
        if req is None:
            return
        why = self._capture_problem(req.resident_id)
        status = "failed" if why else "capturing"
        self.capture_watch.answer(req, status, why)
        data = {"resident_id": req.resident_id, "by": req.by, "status": status}
        self._apply([Notice("face_capture", {**data, "reason": why} if why else data),
                     self._say("denied" if why else "face_needed")])  # fmt: skip
        if not why:
            self._enrol_capture(req.resident_id)

    def _capture_problem(self, resident_id: int) -> str:
        if self.face_privacy is None:
            return f"face is off on this gate ({self.face_problem or 'face.enabled = false'})"
        if self.on_face_enrol is None:
            return f"the camera is not running here ({self.face_problem or 'no camera path'})"
        r = self.storage.residents.get(resident_id)
        if r is None or not r.active:
            return f"resident {resident_id} is unknown or disabled"
        if self.face_privacy.consents.live(r.pseudonym, self.time.vouched()) is None:
            return f"resident {resident_id} has no live face consent"
        return ""

    def _capture_outcome(self, event: Any) -> None:
        """The first enrolment outcome after an admin's capture request answers it."""
        req = self.capture_watch.current
        if req is None:
            return
        if isinstance(event, FaceEnrolled) and event.resident_id == req.resident_id:
            self.capture_watch.answer(req, "enrolled")
        elif isinstance(event, FaceRejected):
            self.capture_watch.answer(req, "failed", event.reason)

    def _sweep(self, mono: float, every: float = 3600.0) -> None:
        """Hourly: drop audit records past retention, run registered sweepers."""
        if mono - self._last_sweep < every:
            return
        self._last_sweep = mono
        cutoff = self.moment.epoch - self.cfg.audit.retention_days * 86400
        try:
            keep = self.moment.epoch - self.cfg.audit.governance_retention_days * 86400
            n = self.storage.audit.prune(cutoff, governance_older_than=keep,
                                         now=self.moment.epoch)  # fmt: skip
            if n:
                log.info("audit retention: pruned %d records", n)
        except Exception as exc:
            log.error("audit retention failed: %s", exc)
        for sweeper in self.sweepers:
            try:
                sweeper(self.moment.epoch)
            except Exception as exc:
                log.error("retention sweeper failed: %s", exc)

    # ------------------------------------------------------------ credentials

    def _on_card(self, ev: CardPresented) -> None:
        self._weak_card = ev.method in WEAK_METHODS
        mono = self.clock.mono()
        h = card_hash(self.storage.secrets, ev.card_id)
        self._record(
            Notice("credential_presented", {"factor": "card", "reader": ev.reader, "card": h[:8]})
        )
        # A random ID (08xxxxxx) is new on every read: never a guess, never paced.
        random_id = self._weak_card and is_random_uid(ev.card_id)
        wait = 0.0 if random_id else self.card_pacer.wait(mono, ev.card_id)
        if wait:  # unchecked: during a slow-down no tap near a guess is checked
            self._deny(Decision(False, Reason.RATE_LIMITED, None, ("card",), f"{wait:.1f}s"))
            return
        resident = self.storage.residents.by_card_hash(h)
        rid = resident.id if resident is not None else None
        menu = self.face_menu.take_card(rid, mono) if self.face_menu is not None else None
        if menu is not None:  # '#' armed the face menu: this tap identifies, never opens
            self._on_menu(menu, "")
            return
        if resident is None and random_id:
            self._deny(Decision(False, Reason.UNKNOWN_CARD, None, ("card",), "random UID"))
            return
        if resident is None:
            paused = self.card_pacer.unknown(mono, ev.card_id)
            detail = f"slow_down {self.card_pacer.policy.pause:g}s" if paused else ""
            self._deny(Decision(False, Reason.UNKNOWN_CARD, None, ("card",), detail))
            return
        if (
            self.attempt is None
            or self.attempt.resident is None
            or (self.attempt.resident.id != resident.id)
        ):
            self.attempt = Attempt(resident, via="card")
            self.pinpad.reset()
        self.attempt.factors.add("card")
        self.attempt.card_id = ev.card_id
        self.attempt.last = mono
        self._evaluate()

    def _on_key(self, ev: KeyPressed) -> None:
        if self.face_menu is not None:
            action = self.face_menu.feed(ev.key, self.clock.mono())
            if action is not None:
                self._on_menu(action, ev.keypad)
                return
        self._on_pad_key(ev)

    def _on_menu(self, action: Any, keypad: str) -> None:
        """The face enrolment/withdrawal menu took the key or tap (never logs digits)."""
        if action.kind == "release":
            for key in action.detail:
                self._on_pad_key(KeyPressed(key, keypad))
            return
        out: list[Any] = [self._say(action.pattern)]
        if action.kind != "typing":
            detail = {"action": action.kind, "resident_id": action.resident_id}
            if action.kind in ("error", "ask_consent"):
                detail["reason" if action.kind == "error" else "notice"] = action.detail
            out.insert(0, Notice("face_menu", detail))
        self._apply(out)
        if action.kind == "capture":
            self._enrol_capture(action.resident_id)

    def _enrol_capture(self, resident_id: int) -> None:
        if self.on_face_enrol is not None:
            self.face_menu.capture_started(resident_id)
            self.on_face_enrol(resident_id)

    def _on_pad_key(self, ev: KeyPressed) -> None:
        mono = self.clock.mono()
        result = self.pinpad.press(ev.key, mono)
        if result.action is PadAction.TYPING or result.action is PadAction.TIMED_OUT:
            if self.attempt is not None:
                self.attempt.last = mono
            self._apply([self._say("key")])
            return
        if result.action is PadAction.CLEAR:
            self._apply([self._say("key")])
            return
        if result.action is PadAction.CANCEL:
            if self.attempt is not None:
                self.attempt = None
                self._record(Notice("attempt_cancelled"))
            return
        if result.action is PadAction.FACE:
            self._face_requested()
            return
        if result.action is not PadAction.SUBMIT:
            return
        digits = result.digits
        keypad_subject = f"keypad:{ev.keypad}"
        a = self.attempt
        if a is not None and a.awaiting == "pin":
            a.last = mono
            if not digits:
                return  # a bare '#' before the PIN: the same key sequence on every door
            self._check_pin(a, digits, keypad_subject)
            return
        # No attempt waiting for a PIN: the digits are a resident's keypad number.
        if not digits:
            if a is None and self.face_menu is not None:  # '#' alone: the face menu's key
                self._on_menu(self.face_menu.arm(mono), ev.keypad)
            return
        if self.lockout.locked_for(keypad_subject, mono):
            self._deny(Decision(False, Reason.LOCKED_OUT, None, (), "keypad"))
            return
        resident = self.storage.residents.by_keypad_id(digits)
        # An unknown number still asks for a PIN, so numbers cannot be enumerated.
        self.attempt = Attempt(resident, via="keypad", last=mono, awaiting="pin")
        self._apply([self._say("pin_needed")])

    def _check_pin(self, a: Attempt, pin: str, keypad_subject: str) -> None:
        mono = self.clock.mono()
        rid = a.resident.id if a.resident else None
        self._record(
            Notice("credential_presented", {"factor": "pin", "keypad": keypad_subject[7:]})
        )
        subjects = [keypad_subject] + ([f"resident:{rid}"] if rid is not None else [])
        # The keypad-wide counter stops one PIN tried over many keypad numbers; after a
        # card has named the resident only their own counter may hold them back, or
        # strangers' wrong PINs would lock card holders out (case 04's kind).
        named = rid is not None and "card" in a.factors
        checked = [f"resident:{rid}"] if named else subjects
        locked = max(self.lockout.locked_for(s, mono) for s in checked)
        if locked:
            self.attempt = None
            self._deny(Decision(False, Reason.LOCKED_OUT, rid, ("pin",), f"{locked:.0f}s left"))
            return
        stored = self.storage.residents.pin_hash(rid) if rid is not None else None
        p = self.cfg.pin  # an unknown number costs a hash too: no timing oracle
        ok = check_pin(self.storage.secrets, stored, pin, p.opslimit, p.memlimit_kib)
        if self.modes.duress_pin(rid, pin, ok):  # opens as the PIN does; the alarm is silent
            ok = True
            self._apply(self.modes.duress(rid))  # type: ignore[arg-type]
        if not ok and keypad_number_habit(a.resident, a.factors, pin, a.number_typed):
            a.number_typed = True  # `101#2468#` after the tap: the number, then the PIN
            self._apply([self._say("pin_needed")])
            return
        if not ok:
            self.attempt = None
            if a.resident is None:
                reason = Reason.UNKNOWN_RESIDENT
            elif stored is None:
                reason = Reason.NO_PIN_SET
            else:
                reason = Reason.WRONG_PIN
            started = 0.0
            for s in subjects:
                started = max(started, self.lockout.failure(s, mono))
            self._deny(Decision(False, reason, rid, tuple(sorted(a.factors | {"pin"}))))
            if started:
                for s in subjects:
                    if self.lockout.locked_for(s, mono):
                        self._lockout_notice(s, self.lockout.locked_for(s, mono))
            return
        a.factors.add("pin")
        a.awaiting = ""
        self._evaluate()
        if rid is not None:  # only this resident's counter: the keypad's keeps counting.
            self.lockout.success(f"resident:{rid}")  # after the strike: it may write

    def _lockout_notice(self, subject: str, seconds: float) -> None:
        self._apply(
            [
                Notice("lockout_started", {"subject": subject, "seconds": round(seconds, 1)}),
                self._say("locked_out"),
            ]
        )

    def _on_input(self, s: Settled) -> None:
        """A settled change (or stuck report) of a contact input."""
        if s.name == "door_contact":
            self._apply(self.door.contact(s.active, self.clock.mono()))
        elif s.name == "tamper":
            self._apply(self.door.tamper(s.active, self.clock.mono()))
        elif s.stuck:  # the exit button, held far longer than a press
            limit = self.cfg.gpio.exit_stuck_seconds
            self._fault("exit_button", True, f"pressed for over {limit:g} s (stuck?)")
        elif s.active:
            self._on_exit()
        else:
            self._fault("exit_button", False, "released")

    def _fault(self, device: str, active: bool, detail: str) -> None:
        """Raise or clear a device fault: status shows it, the audit keeps it."""
        board = self.faults
        changed = board.set(device, detail, self.clock.wall()) if active else board.clear(device)
        if changed:
            (log.error if active else log.info)("fault %s %s: %s", device,
                                                 "raised" if active else "cleared", detail)  # fmt: skip
            self._record(Notice("fault", {"device": device, "active": active, "detail": detail}))

    def _on_exit(self) -> None:
        if not self.cfg.door.exit_button_unlocks:  # mechanical egress: shunt the forced alarm
            self.door.request_exit(self.clock.mono())
            self._record(Notice("exit_requested", {"unlocks": False}))
            return
        repeat, out = self.door.exit(self.clock.mono())  # a repeat press: the same request
        self._apply(out if repeat else [Decision(True, Reason.EXIT), *out])

    # ------------------------------------------------------------ face

    def _face_requested(self) -> None:
        mono = self.clock.mono()
        if not self.cfg.face.enabled:
            self._face_unavailable("face_disabled")
            return
        if self.face_lockout.locked_for("face", mono):
            self._face_unavailable(Reason.FACE_PAUSED)
            return
        a = self.attempt
        target = a.resident.id if a is not None and a.resident is not None else None
        self._record(Notice("face_requested", {"one_to_one": target is not None}))
        if self.on_face_request is None:
            self._face_unavailable("no_camera")
            return
        if why := face_off_reason(self.faults.active):  # camera or face models: PIN now
            self._face_unavailable(why)
            return
        if a is not None and a.resident is not None and not self._face_ready(a.resident):
            self._face_unavailable("no_face_template")  # no camera on someone not enrolled
            return
        self.on_face_request(target)

    def _face_unavailable(self, reason: str) -> None:
        self._apply([Notice("face_unavailable", {"reason": reason}), *self._fallback_from_face()])

    def _fallback_from_face(self) -> list[Any]:
        """Face failed or is unavailable: whoever is mid-attempt may finish by PIN."""
        a = self.attempt
        if a is not None and a.resident is not None and a.awaiting == "face":
            from doorpi.privacy.parity import holds

            rule = self.cfg.door.policy.rule_at(self.moment.local, self.cfg.schedules)
            have = frozenset(a.factors)
            fresh = self.storage.residents.get(a.resident.id) or a.resident  # PIN may be new
            nxt = face_free_next(rule, have, holds(self.storage, fresh), self.cfg.devices)
            if nxt is None:  # asked for face, holds nothing else: refuse now, never hang
                self.attempt = None
                self.stats["denied"] += 1
                decision = Decision(False, Reason.NO_FACE_FREE_WAY, a.resident.id,
                                    tuple(sorted(have)))  # fmt: skip
                return [decision, self._say("denied")]
            a.awaiting = nxt
            a.last = self.clock.mono()
            return [self._say(f"{nxt}_needed")]
        return [self._say("card_needed")]

    def face_paused(self) -> bool:
        return bool(self.face_lockout.locked_for("face", self.clock.mono()))

    def _on_face_match(self, ev: FaceMatched) -> None:
        mono = self.clock.mono()
        if self.face_lockout.locked_for("face", mono):
            self._apply([Notice("face_ignored", {"reason": Reason.FACE_PAUSED})])
            return
        resident = self.storage.residents.get(ev.resident_id)
        if resident is None:
            self._on_face_reject(FaceRejected("no_match"))
            return
        self.face_lockout.success("face")
        self._record(
            Notice("credential_presented", {"factor": "face", "score": round(ev.score, 3)})
        )
        if (
            self.attempt is None
            or self.attempt.resident is None
            or (self.attempt.resident.id != resident.id)
        ):
            self.attempt = Attempt(resident, via="face")
        self.attempt.factors.add("face")
        self.attempt.last = mono
        self._evaluate()

    def _on_face_reject(self, ev: FaceRejected) -> None:
        """Every face failure falls back to card/PIN; 5 in a row pause face for 30 s."""
        mono = self.clock.mono()
        started = self.face_lockout.failure("face", mono)
        out: list[Any] = [
            Notice("face_rejected", {"reason": ev.reason}),
            *self._fallback_from_face(),
        ]
        if started:
            out.append(Notice("face_paused", {"seconds": started}))
        self._apply(out)

    # ------------------------------------------------------------ decisions

    def _evaluate(self) -> None:
        a = self.attempt
        assert a is not None and a.resident is not None
        # Re-read the resident: the admin may have changed them since the attempt began.
        fresh = self.storage.residents.get(a.resident.id)
        if fresh is None:
            self.attempt = None
            self._deny(Decision(False, Reason.UNKNOWN_RESIDENT, None, tuple(sorted(a.factors))))
            return
        at = self.now()
        rule = self.cfg.door.policy.rule_at(at.local, self.cfg.schedules)
        decision = decide(rule, fresh.view(), frozenset(a.factors), at, self.cfg.schedules,
                          self.modes.holidays)  # fmt: skip
        if decision is not None:
            decision = self.modes.admit(decision)  # lockdown: responders only
        if decision is None:
            face_ready = self._face_ready(fresh)
            holds = self._holds(fresh, face_ready)
            have = frozenset(a.factors)
            lack = lacking(rule, have, holds)  # a card or PIN that can never come: say so now
            if lack in ("pin", "card"):
                self.attempt = None
                self._deny(Decision(False, LACKING_REASON[lack], fresh.id, tuple(sorted(have)),
                                    f"holds no {lack}"))  # fmt: skip
                return
            # Only face is missing: the face path asks and says why it fails, if it does.
            reachable = tuple(c for c in rule if c <= have | holds) if lack is None else rule
            missing = _next_factor(reachable, have, face_ready)
            a.awaiting = missing
            a.last = self.clock.mono()
            self._apply([Notice("factor_needed", {"factor": missing, "resident_id": fresh.id}),
                         self._say(f"{missing}_needed")])  # fmt: skip
            if missing == "face":
                self._face_requested()
            return
        self.attempt = None
        self.pinpad.reset()
        if decision.granted:
            self.stats["granted"] += 1
            self._apply([decision, *self.door.grant(self.clock.mono()), self._say("granted")])
            self._mode(self.modes.entered(decision))  # first-person-in
        else:
            self._deny(decision)

    def _holds(self, resident: Resident, face_ready: bool) -> frozenset[str]:
        """What this resident can show: a bound card, a PIN, face if it can be asked."""
        from doorpi.privacy.parity import holds

        return holds(self.storage, resident) | ({"face"} if face_ready else frozenset())

    def _face_ready(self, resident: Resident) -> bool:
        """Would asking this resident for their face make sense right now?"""
        if self.face_privacy is None or self.on_face_request is None or self.face_paused():
            return False
        if face_off_reason(self.faults.active):  # camera or face models (doorpi.devicewatch)
            return False
        if self.card_templates is not None:  # template on card: the card just read says
            return self.card_template_waiting(resident.id)
        return self.face_privacy.vault.info(resident.pseudonym) is not None

    def card_template_waiting(self, resident_id: int) -> bool:
        a = self.attempt
        return (
            a is not None and a.resident is not None and a.resident.id == resident_id
            and a.card_id is not None and self.card_templates.peek(a.card_id)
        )  # fmt: skip

    def take_card_template(self, resident_id: int) -> tuple[bytes, bytes] | None:
        """(card UID, sealed template) read at this resident's tap, handed over once."""
        a = self.attempt
        if a is None or a.resident is None or a.resident.id != resident_id or a.card_id is None:
            return None
        blob = self.card_templates.take(a.card_id) if self.card_templates is not None else None
        return (a.card_id, blob) if blob is not None else None

    def _deny(self, decision: Decision) -> None:
        self.stats["denied"] += 1
        self._apply([decision, self._say(deny_pattern(decision.reason))])


def _next_factor(
    rule: tuple[frozenset[str], ...], have: frozenset[str], face_ready: bool = False
) -> str:
    """The cheapest factor that brings the attempt closer to a combination:
    face for a resident who enrolled (PIN stays the fallback), else PIN."""
    options = sorted((len(c - have), sorted(c - have)) for c in rule if have < c)
    fewest = options[0][0]
    missing = {f for n, fs in options if n == fewest for f in fs}
    order = ("face", "pin", "card") if face_ready else ("pin", "card", "face")
    return next(f for f in order if f in missing)


def _raw_input(event: Event) -> tuple[str, bool]:
    """A contact input's raw edge as (input name, active level)."""
    if isinstance(event, DoorContactChanged):
        return "door_contact", event.is_open
    if isinstance(event, TamperChanged):
        return "tamper", event.active
    return "exit_button", isinstance(event, ExitRequested)


def dump(rec: dict[str, Any]) -> str:
    return json.dumps(rec, sort_keys=False, separators=(",", ":"))


__all__ = ["Attempt", "Command", "Gate", "dump"]
