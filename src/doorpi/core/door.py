"""The door as a state machine: locked, unlocked, open, held open, forced.

Inputs are grants, door-contact changes and the passage of time; outputs are
commands (Unlock, Lock, Alarm) and notices (door_opened, door_closed). The
strike is relocked as soon as the door opens (anti-tailgating) unless
``relock_on_open`` is off. A door mode (`doorpi.core.modes`: fire release,
unlock window) can *hold* the strike released: no relock on open or timeout,
no held-open or forced alarm, until the hold ends. An exit request that does
not release the strike (mechanical egress, ``door.exit_button_unlocks =
false``) *shunts* the forced-open alarm for one opening within
``unlock_seconds`` of the press, as a request-to-exit input bypasses the door
position switch on access panels ("REX shunt time"); the held-open timer still
runs.

A door is *closed* only once its contact has stayed closed for
``close_confirm_seconds`` (close confirmation, `CLOSE_CONFIRM_SECONDS`): a
closed blip shorter than that (a door slipping from the hand as it is pulled
open, a slammed door bouncing back) is part of the same opening. No second
``door_opened``, no forced-open alarm on the reopening, the held-open time
keeps counting from the first opening (a blip never resets it) and an alarm
already on stays on instead of flickering off and on. ``door_closed`` is
emitted at the confirmation, with ``confirmed_after``: the seconds the contact
had been closed by then (the contact closed that long before the record). An
opening after a confirmed close, with no grant, REX shunt or mode hold, is
forced at once (as soon as the settled contact says open). A grant while a
close is being confirmed confirms it at once: the next opening is a new one
(relock on open applies to it). None of this moves the strike.

The tamper switch is confirmed the same way: the tamper alarm is raised as
soon as the settled switch says the lid is off, and cleared only once the lid
has stayed on for ``close_confirm_seconds`` (a lid switch chattering as the
enclosure is opened or jolted by a slammed door raises one alarm, never a
string of alarms on and off). Pure: time is monotonic seconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from doorpi.core.events import Alarm, Command, Lock, Notice, Unlock


class DoorState(Enum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    OPEN = "open"
    HELD = "held_open"
    FORCED = "forced"


# Close confirmation: the door contact must stay closed this long before the
# door counts as closed (re-armed for a forced-open alarm): a slammed door bouncing
# open, a door slipping shut for a moment as a person pulls it. Door contacts are
# commonly debounced for hundreds of milliseconds to a second (Rinho's tracker
# docs, command IT: a door input at 1.0 s / 0.3 s; Hubitat's "Debounce contact"
# example app: 1000 ms by default). Here only the closing waits: an opening of a
# locked door must raise the forced-open alarm within the settle time. 1 s is longer
# than any closed blip in our field reports (20-200 ms, cases/01 "open/closed/open
# within a second") and short against a person walking up to a locked door.
# Settable as ``gpio.close_confirm_seconds`` (0 turns it off: closed on the
# settled edge).
CLOSE_CONFIRM_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DoorTiming:
    unlock_seconds: float = 5.0
    held_open_seconds: float = 30.0
    relock_on_open: bool = True
    has_contact: bool = True
    close_confirm_seconds: float = CLOSE_CONFIRM_SECONDS


Output = Command | Notice


@dataclass(slots=True)
class Confirmation:
    """A level that counts only once it has held ``seconds`` without interruption:
    the door contact closed (close confirmation), the tamper lid back on. ``since``:
    monotonic seconds it began holding, None while nothing is being confirmed."""

    seconds: float
    since: float | None = None

    @property
    def pending(self) -> bool:
        return self.since is not None

    def due(self, now: float) -> bool:
        """It has held ``seconds`` by ``now``."""
        return self.since is not None and now >= self.since + self.seconds

    def deadline(self) -> float | None:
        return None if self.since is None else self.since + self.seconds


class DoorMachine:
    def __init__(self, timing: DoorTiming, door_open: bool = False) -> None:
        self.timing = timing
        self.state = DoorState.OPEN if door_open else DoorState.LOCKED
        self.strike_released = False
        self._relock_at = 0.0
        self._held_at = 0.0
        self._tamper = False  # the tamper alarm is on
        confirm = self.timing.close_confirm_seconds
        self._lid_on = Confirmation(confirm)  # lid back on, not yet confirmed
        self._shunt_until = float("-inf")  # REX shunt: an opening before this is egress
        self._closed = Confirmation(confirm)  # contact closed, close not yet confirmed
        self._exit_release = False  # the strike is released for an exit press
        self.held = False  # a door mode holds the strike released

    def _lock(self, reason: str) -> list[Output]:
        if not self.strike_released or self.held:
            return []
        self.strike_released = False
        self._exit_release = False
        return [Lock(reason)]

    @property
    def closing(self) -> bool:
        """The contact is closed but the close is not confirmed yet."""
        return self._closed.pending

    def _confirm_closed(self, now: float) -> list[Output]:
        """The door is closed: ``door_closed`` (with how long the contact had been
        closed), the held-open or forced-open alarm cleared."""
        since = now if self._closed.since is None else self._closed.since
        self._closed.since = None
        out: list[Output] = [Notice("door_closed", {"confirmed_after": round(now - since, 3)})]
        if self.state is DoorState.HELD:
            out.append(Alarm("held", False))
        elif self.state is DoorState.FORCED:
            out.append(Alarm("forced", False))
        self.state = DoorState.UNLOCKED if self.strike_released else DoorState.LOCKED
        return out

    def grant(self, now: float) -> list[Output]:
        """Release the strike for the configured time (extends a running unlock).
        A close being confirmed is confirmed now: the next opening is a new one."""
        out: list[Output] = self._confirm_closed(now) if self.closing else []
        self._exit_release = False  # a resident's grant: the next exit press is new
        self._relock_at = now + self.timing.unlock_seconds
        if not self.strike_released:
            self.strike_released = True
            out.append(Unlock(self.timing.unlock_seconds))
        if self.state is DoorState.LOCKED:
            self.state = DoorState.UNLOCKED
        return out

    def exit(self, now: float) -> tuple[bool, list[Output]]:
        """An exit press that releases the strike (``door.exit_button_unlocks``): a
        grant. Returns (``repeat``, outputs): ``repeat`` when the strike is still
        released for an earlier exit press: a REX pressed twice, or bouncing longer
        than the settle time, is one request (the release runs from this press, but
        the caller records no second exit grant)."""
        repeat = self.strike_released and self._exit_release
        out = self.grant(now)
        self._exit_release = True
        return repeat, out

    def request_exit(self, now: float) -> None:
        """A request-to-exit (REX) that does not release the strike: the door may
        open, once, within ``unlock_seconds`` of ``now`` (monotonic s) without a
        forced-open alarm; that opening is egress and its held-open time runs.
        A press while a shunt runs does not lengthen it: a bouncing, chattering
        or fished REX line shunts at most ``unlock_seconds`` from its first
        press. The shunt time is the grant window (``unlock_seconds``): both
        are the time a person has to open the door once allowed to."""
        if now >= self._shunt_until:
            self._shunt_until = now + self.timing.unlock_seconds

    def hold(self, on: bool, now: float, reason: str, relock_at_once: bool = False) -> list[Output]:
        """Hold the strike released (``on``) or end the hold. An unlock of 0 s
        means "until the hold ends". Ending it relocks at once unless a timed
        grant is still running; ``relock_at_once`` cuts that grant too
        (lockdown). A door open when the hold ends starts its held-open time."""
        out: list[Output] = []
        if on:
            if not self.held:
                self.held = True
                if not self.strike_released:
                    self.strike_released = True
                    out.append(Unlock(0.0))
                if self.state is DoorState.LOCKED:
                    self.state = DoorState.UNLOCKED
            return out
        if relock_at_once:
            self._relock_at = min(self._relock_at, now)
        if self.held:
            self.held = False
            if self.state in (DoorState.OPEN, DoorState.HELD, DoorState.FORCED):
                self._held_at = now + self.timing.held_open_seconds
                self.state = DoorState.OPEN
        if self.strike_released and (now >= self._relock_at or self.state is DoorState.OPEN):
            out += self._lock(reason)
            if self.state is DoorState.UNLOCKED:
                self.state = DoorState.LOCKED
        return out

    def contact(self, is_open: bool, now: float) -> list[Output]:
        """A settled change of the door contact (``is_open``) at ``now``."""
        out: list[Output] = []
        if self._closed.due(now):
            out += self._confirm_closed(now)  # confirmed before this change (no tick between)
        if is_open:
            if self.closing:  # reopened before the close was confirmed: the same opening
                self._closed.since = None
                # Past the held-open time, a bounce must not flick the alarm on and off
                # (it would close again at once): held only if it stays open a while.
                self._held_at = max(self._held_at, now + self.timing.close_confirm_seconds)
                return out
            if self.state in (DoorState.OPEN, DoorState.HELD, DoorState.FORCED):
                return out
            egress = self.state is DoorState.LOCKED and now < self._shunt_until
            self._shunt_until = float("-inf")  # one REX, one opening
            out.append(Notice("door_opened", {"egress": True} if egress else {}))
            if egress:
                self.state = DoorState.OPEN
                self._held_at = now + self.timing.held_open_seconds
            elif self.state is DoorState.UNLOCKED:
                self.state = DoorState.OPEN
                self._held_at = now + self.timing.held_open_seconds
                if self.timing.relock_on_open:
                    out += self._lock("door_opened")  # not while a mode holds it
            else:
                self.state = DoorState.FORCED
                out.append(Alarm("forced", True))
            return out
        if self.state in (DoorState.LOCKED, DoorState.UNLOCKED):
            return out
        # Closed (or, while closing, closed again after a glitch too short to settle:
        # `InputFilter.report_glitches`): the confirmation counts from now.
        self._closed.since = now
        if self.timing.close_confirm_seconds <= 0:
            return self._confirm_closed(now)
        return out

    def tick(self, now: float) -> list[Output]:
        out: list[Output] = self._tamper_restored(now)
        if self.strike_released and not self.held and now >= self._relock_at:
            out += self._lock("timeout")
            if self.state is DoorState.UNLOCKED:
                self.state = DoorState.LOCKED
        if self._closed.pending:
            if self._closed.due(now):
                out += self._confirm_closed(now)
            return out  # a door shut, or shutting, is not held open
        if self.state is DoorState.OPEN and now >= self._held_at and not self.held:
            self.state = DoorState.HELD
            out.append(Alarm("held", True))
        return out

    def tamper(self, active: bool, now: float) -> list[Output]:
        """A settled change of the tamper switch (``active``: lid off) at ``now``:
        the alarm at once; its end once the lid stayed on ``close_confirm_seconds``
        (a lid on again after a glitch too short to settle restarts the count)."""
        if active:
            self._lid_on.since = None
            if self._tamper:
                return []  # still the same alarm: chatter never flicks it off and on
            self._tamper = True
            return [Alarm("tamper", True)]
        if not self._tamper:
            return []
        self._lid_on.since = now
        return self._tamper_restored(now)

    def _tamper_restored(self, now: float) -> list[Output]:
        if not self._lid_on.due(now):
            return []
        self._tamper, self._lid_on.since = False, None
        return [Alarm("tamper", False)]

    def shutdown(self) -> list[Output]:
        """Process is stopping: the strike goes back to its safe state."""
        self.held = False
        out = self._lock("shutdown")
        if self.state is DoorState.UNLOCKED:
            self.state = DoorState.LOCKED
        return out

    @property
    def next_deadline(self) -> float | None:
        """Monotonic time of the next timer, so the loop knows when to tick."""
        times = [t for t in (self._lid_on.deadline(), self._closed.deadline()) if t is not None]
        if self.strike_released and not self.held:
            times.append(self._relock_at)
        if not self._closed.pending and self.state is DoorState.OPEN and not self.held:
            times.append(self._held_at)
        return min(times) if times else None
