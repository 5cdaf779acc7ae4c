"""`doorpi demo`: the gate on simulated hardware.

Interactive (what `make demo` runs): a seeded site, a live status line, and
commands typed at the prompt (card, keys, open, close, rex, tamper, fire,
lockdown; exit or quit leaves). The door follows ``--config`` where that file exists (its door
policy, schedules, timings; never its data dir or real GPIO); every feedback
pattern is printed with what the resident would see and hear.
The demo only ever uses a fresh temp dir (removed when the demo ends, also on
Ctrl-C or an error), an empty ``--data-dir`` or one it made itself (marked,
kept): never a gate's store, where its residents, whose card and PIN the
README prints, would be a backdoor.
Headless: ``--scenario FILE`` runs a scripted scenario in virtual time and
prints one JSON object per event.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doorpi.cli import CliError, common

DEMO_RESIDENTS: list[dict[str, Any]] = [
    {"name": "Alice Wang", "unit": "3-101", "keypad_id": "101", "cards": ["04a1b2c3d4e5f6"],
     "pin": "2468"},
    {"name": "Bo Chen", "unit": "5-202", "keypad_id": "202", "cards": ["04b0b0b0b0b0b0"],
     "schedule": "daytime"},
    {"name": "Chen Li (moved out)", "unit": "2-303", "cards": ["04c0c0c0c0c0c0"],
     "valid_until": "2024-01-31"},
]  # fmt: skip

HELP = """commands:
  card UID          tap a card (alice: 04a1b2c3d4e5f6, bo: 04b0b0b0b0b0b0,
                    moved out: 04c0c0c0c0c0c0, anything else is unknown)
  keys 101#2468#    type on the keypad (resident number # PIN #; * clears)
  open | close      door contact        rex       press the exit button (REX)
  tamper on|off     enclosure switch    status    show the door state
  fire on|off       fire panel contact  lockdown on|off   the lockdown key switch
  help              this text           exit      leave the demo (also quit)"""
LEAVE = ("exit", "quit", "q", "exit!")
EXIT_BUTTON = ("rex", "exit-button")
# The demo's fire panel contact and lockdown key switch (simulated pins).
DEMO_MODE_INPUTS = {"fire_alarm": 9, "lockdown_switch": 10}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the gate on simulated hardware")
    p.add_argument("--scenario", help="run a scenario file headless, JSON lines out")
    p.add_argument("--check", action="store_true", help="with --scenario: exit 1 unless the "
                   "events match the scenario's expect list")  # fmt: skip
    p.add_argument("--data-dir", help="keep the demo database here (default: a temp dir)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.check and not args.scenario:
        raise CliError("demo --check checks a scenario's events: give --scenario FILE "
                       "(docs/scenarios.md); without --check the demo is interactive")  # fmt: skip
    if args.scenario:
        return run_scenario(args)
    return interactive(args)


def _data_dir(args: argparse.Namespace) -> Path | None:
    from doorpi.sim.site import NotADemoDir, demo_data_dir

    if not args.data_dir:
        return None
    with common.as_cli_error(NotADemoDir):
        return demo_data_dir(Path(args.data_dir))


def _config_doc(args: argparse.Namespace) -> dict[str, Any]:
    """The door settings of ``--config`` (validated in full), or {} for the shipped defaults."""
    import tomllib

    from doorpi.cli import DEFAULT_CONFIG

    path = Path(args.config) if getattr(args, "config", None) else None
    if path is None or not path.exists():
        if path is not None and str(path) != DEFAULT_CONFIG:
            print(f"doorpi demo: no config at {path}: the shipped defaults apply")
        return {}
    common.config(args)  # every error as one line naming the file and key
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc.pop("gpio", None)  # the simulated pins of the shipped defaults
    doc.setdefault("keypad", {})["kind"] = "matrix"  # typed at the prompt, not on a USB pad
    return doc


def _feedback_line(pattern: str, factors: frozenset[str]) -> str:
    """What the resident sees and hears, from the gate's own table; the "more is
    needed" prompt names only ``factors``, what this door and its devices take."""
    from doorpi.entrysign import describe
    from doorpi.hardware.feedback import MORE_NEEDED, PATTERNS, more_needed

    p = more_needed(factors) if pattern in MORE_NEEDED else PATTERNS.get(pattern)
    if p is None:
        return f"feedback: {pattern}"
    return f"feedback: {pattern}: {describe(p, 'en')} ({p.meaning['en']})"


def run_scenario(args: argparse.Namespace) -> int:
    from doorpi.sim.scenario import Scenario, ScenarioError, iter_lines, run

    data_dir = _data_dir(args)
    try:
        scenario = Scenario.load(args.scenario)
        result = run(scenario, data_dir)
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    for line in iter_lines(result):
        print(line)
    if args.check:
        # Without an expect list only the strike's safety rules are checked.
        problem = result.safety_problem()
        if problem is None and scenario.expect is not None:
            problem = result.mismatch(scenario.expect)
        if problem:
            print(f"doorpi: {args.scenario}: {problem}", file=sys.stderr)
            return 1
    return 0


def interactive(args: argparse.Namespace) -> int:
    from doorpi.sim.site import scratch_data_dir

    # A temp data dir (no --data-dir) goes when the demo ends: exit, Ctrl-C or an error.
    with scratch_data_dir(_data_dir(args)) as data_dir:
        return _interactive(args, data_dir)


def _interactive(args: argparse.Namespace, data_dir: Path) -> int:
    from doorpi.clocks import SystemClock
    from doorpi.core.events import Tick
    from doorpi.sim.site import SimulatedSite, sim_config

    doc = _config_doc(args)
    doc.setdefault("gpio", {}).update(DEMO_MODE_INPUTS)
    cfg = sim_config(doc, data_dir)
    from doorpi.hardware.feedback import door_factors

    factors = door_factors([rule for _, rule in cfg.rules()], cfg.devices.factors)
    lines: list[str] = []

    def show(rec: dict[str, Any]) -> None:
        if rec["event"] == "key_pressed" or rec.get("pattern") == "key":
            return
        if rec["event"] == "feedback":
            print(f"  {_feedback_line(rec['pattern'], factors)}", flush=True)
            return
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        print(f"  {lines[-1]}", flush=True)

    site = SimulatedSite(cfg, SystemClock(cfg.site.tz), observers=[show])
    fresh = not site.storage.residents.all()
    if fresh:
        for spec in DEMO_RESIDENTS:
            if spec.get("schedule") not in (None, *cfg.schedules):
                spec = {k: v for k, v in spec.items() if k != "schedule"}
            site.add_resident(spec)
    stop = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(site, stop, Tick), daemon=True)
    ticker.start()
    access = " or ".join("+".join(sorted(c)) for c in cfg.door.policy.default)
    print(f"doorpi demo: simulated gate '{cfg.door.name}' ({access}), data in {data_dir}")
    print(HELP)
    ctrl_c = CtrlC()
    try:
        with ctrl_c:
            while not ctrl_c.pressed:
                print(f"[{_status(site)}] > ", end="", flush=True)
                with ctrl_c.at_prompt():
                    line = sys.stdin.readline()
                if not line or not _command(site, line.split()):
                    break
    except KeyboardInterrupt:
        if ctrl_c.signum == signal.SIGINT:
            raise
    finally:
        stop.set()
        ticker.join(timeout=2)
        site.close()
    if ctrl_c.signum == signal.SIGINT:
        raise KeyboardInterrupt  # `doorpi` exits 130, as for Ctrl-C anywhere else
    if ctrl_c.signum:  # SIGTERM, SIGHUP (terminal closed): the same clean end
        print(f"doorpi demo: ended by {signal.Signals(ctrl_c.signum).name}", file=sys.stderr)
        return 128 + ctrl_c.signum
    return 0


class CtrlC:
    """Ctrl-C in the demo: at the prompt it ends the demo at once; during a command
    it lets the command finish (a card decision, its audit records, the strike), then
    ends the demo, instead of raising KeyboardInterrupt at whatever line was running,
    where a callback called from C (SQLite, a weakref, a thread's hook) would print
    and drop it and the demo would carry on (seen: exit 0 instead of 130 once).
    SIGTERM (`kill`) and SIGHUP (the terminal closed) end it the same way, so the
    strike is released to its safe state and a temporary data folder removed (they
    used to kill the demo where it stood, leaving /tmp/doorpi-sim-*). ``signum``: the
    signal that ended it, 0 while none has. The main thread only: signal handlers run
    there (Python's signal module)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum = 0
        self._prompt = False
        self._previous: dict[int, Any] = {}

    @property
    def pressed(self) -> bool:
        return bool(self.signum)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        if self._prompt:
            raise KeyboardInterrupt

    def __enter__(self) -> CtrlC:
        self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)

    @contextlib.contextmanager
    def at_prompt(self) -> Iterator[None]:
        """While waiting for a command line: Ctrl-C raises KeyboardInterrupt here."""
        self._prompt = True
        try:
            if self.pressed:  # pressed just before the prompt
                raise KeyboardInterrupt
            yield
        finally:
            self._prompt = False


def _ticker(site: Any, stop: threading.Event, tick: Any) -> None:
    while not stop.wait(0.1):
        site.gate.submit(tick())
        site.gate.process_pending()


def _status(site: Any) -> str:
    g = site.gate
    relay = "RELEASED" if site.devices.strike.released else "locked"
    return f"{g.modes.core.mode.value}, door {g.door.state.value}, strike {relay}, granted {g.stats['granted']}, denied {g.stats['denied']}"


def _command(site: Any, words: list[str]) -> bool:
    if not words:
        return True
    cmd, rest = words[0].lower(), words[1:]
    try:
        if cmd in LEAVE:
            return False
        if cmd == "card" and rest:
            site.card(rest[0])
        elif cmd == "keys" and rest:
            if len(rest[0]) > MAX_KEYS:  # 50 ms a key: 5,000 keys held the prompt 250 s
                raise ValueError(f"keys: at most {MAX_KEYS} keys at a time")
            for k in rest[0]:
                site.key(k.upper())
                time.sleep(0.05)
        elif cmd in ("open", "close") and not rest:
            site.door(cmd == "open")
        elif cmd in EXIT_BUTTON and not rest:
            site.press_exit()
        elif cmd == "tamper" and rest:
            site.tamper(_on_off(cmd, rest))
        elif cmd == "fire" and rest:
            site.fire(_on_off(cmd, rest))
        elif cmd == "lockdown" and rest:
            site.lockdown_switch(_on_off(cmd, rest))
        elif cmd == "status":
            print(f"  {_status(site)}")
        elif cmd == "help":
            print(HELP)
        else:  # say what was wrong, then the commands
            print(f"  {_unknown(words[0], rest)}")
            print(HELP)
    except ValueError as exc:
        print(f"  error: {exc}")
    return True


# The most keys one `keys` command types (a resident number, a PIN and the '#'s are
# under 25; typing takes 50 ms a key).
MAX_KEYS = 64


def _on_off(cmd: str, rest: list[str]) -> bool:
    """``on`` or ``off`` (one word), else ValueError: `tamper maybe` meant nothing."""
    if len(rest) == 1 and rest[0].lower() in ("on", "off"):
        return rest[0].lower() == "on"
    from doorpi.validation import safe_repr

    raise ValueError(f"{cmd} takes on or off, got {safe_repr(' '.join(rest))}")


NEEDS_VALUE = {"card": "a card UID", "keys": "the keys to type", "tamper": "on or off",
               "fire": "on or off", "lockdown": "on or off"}  # fmt: skip


def _unknown(cmd: str, rest: list[str]) -> str:
    """One line on a command the demo did not take: ``cmd`` shown safely (control and
    bidi characters escaped, cut at 40 characters)."""
    from doorpi.validation import safe_repr, safe_text

    if cmd.lower() in NEEDS_VALUE and not rest:
        return f"'{cmd.lower()}' needs {NEEDS_VALUE[cmd.lower()]}"
    if cmd.lower() in ("open", "close", *EXIT_BUTTON) and rest:
        return f"'{cmd.lower()}' takes nothing after it, got {safe_repr(' '.join(rest))}"
    shown = safe_text(cmd)
    return f"unknown command '{shown if len(shown) <= 40 else shown[:37] + '...'}'"
