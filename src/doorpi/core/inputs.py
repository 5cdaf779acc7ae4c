"""Settle time for contact inputs (door contact, exit button, tamper): chatter in, one clean change out.

A mechanical contact does not change once: a reed switch on a swinging door
or a slammed door bounces open/closed/open within tens of milliseconds, and
a push button bounces on press and release. `InputFilter` accepts a new level
only after the raw line has *held* it for ``settle_seconds`` (trailing-edge
debounce): a burst of edges restarts the wait, a glitch that returns to the
old level is dropped, and the door state machine sees one transition.

For lines named in ``report_glitches`` (the door contact) a glitch is not
silent: when the line returns to its accepted level before the settle time, a
`Settled` with ``glitch`` set repeats that level at that moment. The door
machine's close confirmation (`doorpi.core.door`) counts "closed without
interruption" from there, so a 10 ms open blip in the middle of a closed
blip does not merge two short closed spells into one long enough to confirm.

It also watches for an input stuck active (an exit button jammed in for
minutes): a ``stuck`` report once the input has been active longer than its
limit, so the gate reports a fault instead of treating it as a long press.

Pure: no clock reads, no threads. ``now`` is monotonic seconds passed in;
raw levels come from the adapters' edges (`doorpi.hardware.inputs`).
The default settle time, 0.05 s, lives in `doorpi.config.GpioConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settled:
    """One clean change of an input (``active`` = door open / button pressed /
    lid off), or with ``stuck`` set: the input has been active too long
    (``active`` stays True), reported once per activation; or with ``glitch``
    set (``report_glitches`` lines only): no change, the line left ``active``
    for less than the settle time and is back at it ``at`` this moment."""

    name: str
    active: bool
    at: float
    stuck: bool = False
    glitch: bool = False


@dataclass(slots=True)
class _Line:
    stable: bool | None = None  # the accepted level (None until the first settle)
    pending: bool | None = None  # a raw level waiting to hold for the settle time
    pending_since: float = 0.0
    active_since: float = 0.0
    stuck_reported: bool = False


class InputFilter:
    """Debounce named contact inputs; report inputs stuck active.

    ``settle_seconds`` (>= 0; 0 passes every edge through at once),
    ``stuck_after``: input name -> seconds of continuous activity after
    which a `Settled(stuck=True)` is reported, and ``report_glitches``: input
    names whose returns to the accepted level are reported (`Settled.glitch`).
    """

    def __init__(
        self,
        settle_seconds: float,
        stuck_after: dict[str, float] | None = None,
        report_glitches: frozenset[str] = frozenset(),
    ) -> None:
        if settle_seconds < 0:
            raise ValueError("settle_seconds must be >= 0")
        self.settle = settle_seconds
        self.stuck_after = dict(stuck_after or {})
        self.report_glitches = frozenset(report_glitches)
        self._lines: dict[str, _Line] = {}

    def feed(self, name: str, active: bool, now: float) -> list[Settled]:
        """A raw edge: the line now reads ``active``. Returns what settled already
        (a level that had held for the settle time before this edge first)."""
        out = self.poll(now)
        line = self._lines.setdefault(name, _Line())
        if active == line.stable:
            if line.pending is not None and name in self.report_glitches:
                out.append(Settled(name, active, now, glitch=True))
            line.pending = None  # back to the accepted level: chatter, not a change
        elif active != line.pending:
            line.pending = active
            line.pending_since = now
        return out + self.poll(now)

    def poll(self, now: float) -> list[Settled]:
        """Changes that have held for the settle time by ``now``, then stuck reports."""
        out: list[Settled] = []
        for name, line in self._lines.items():
            if line.pending is not None and now - line.pending_since >= self.settle:
                at = line.pending_since + self.settle
                line.stable, line.pending = line.pending, None
                if line.stable:
                    line.active_since = line.pending_since
                    line.stuck_reported = False
                out.append(Settled(name, line.stable, at))
            limit = self.stuck_after.get(name)
            if (
                limit is not None
                and line.stable
                and not line.stuck_reported
                and now - line.active_since >= limit
            ):
                line.stuck_reported = True
                out.append(Settled(name, True, line.active_since + limit, stuck=True))
        return out

    def level(self, name: str) -> bool | None:
        """The accepted level of ``name`` (None before its first settled reading)."""
        line = self._lines.get(name)
        return line.stable if line else None

    def stuck(self, name: str) -> bool:
        line = self._lines.get(name)
        return bool(line and line.stable and line.stuck_reported)

    @property
    def next_deadline(self) -> float | None:
        """Monotonic time when `poll` next has something to report, if any."""
        times: list[float] = []
        for name, line in self._lines.items():
            if line.pending is not None:
                times.append(line.pending_since + self.settle)
            limit = self.stuck_after.get(name)
            if limit is not None and line.stable and not line.stuck_reported:
                times.append(line.active_since + limit)
        return min(times) if times else None
