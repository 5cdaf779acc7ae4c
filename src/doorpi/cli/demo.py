"""`doorpi demo`: the gate on simulated hardware.

Interactive (what `make demo` runs): a seeded site, a live status line, and
commands typed at the prompt (card, keys, open, close, exit, tamper, fire, lockdown, wait).
Headless: ``--scenario FILE`` runs a scripted scenario in virtual time and
prints one JSON object per event.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from doorpi.cli import CliError

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
  open | close      door contact        exit      press the exit button
  tamper on|off     enclosure switch    status    show the door state
  fire on|off       fire panel contact  lockdown on|off   the lockdown key switch
  help              this text           quit      stop the gate"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the gate on simulated hardware")
    p.add_argument("--scenario", help="run a scenario file headless, JSON lines out")
    p.add_argument("--check", action="store_true", help="with --scenario: exit 1 unless the "
                   "events match the scenario's expect list")  # fmt: skip
    p.add_argument("--data-dir", help="keep the demo database here (default: a temp dir)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.scenario:
        return run_scenario(args)
    return interactive(args)


def run_scenario(args: argparse.Namespace) -> int:
    from pathlib import Path

    from doorpi.sim.scenario import Scenario, ScenarioError, iter_lines, run

    try:
        scenario = Scenario.load(args.scenario)
        result = run(scenario, Path(args.data_dir) if args.data_dir else None)
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    for line in iter_lines(result):
        print(line)
    if args.check:
        if scenario.expect is None:
            raise CliError(f"{args.scenario}: has no expect list to check")
        problem = result.mismatch(scenario.expect)
        if problem:
            print(f"doorpi: {args.scenario}: {problem}", file=sys.stderr)
            return 1
    return 0


def interactive(args: argparse.Namespace) -> int:
    from pathlib import Path

    from doorpi.clocks import SystemClock
    from doorpi.core.events import Tick
    from doorpi.sim.site import SimulatedSite, sim_config, temp_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else temp_data_dir()
    cfg = sim_config({"gpio": {"fire_alarm": 9, "lockdown_switch": 10}}, data_dir)
    lines: list[str] = []

    def show(rec: dict[str, Any]) -> None:
        if rec["event"] in ("feedback", "key_pressed"):
            return
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        print(f"  {lines[-1]}", flush=True)

    site = SimulatedSite(cfg, SystemClock(cfg.site.tz), observers=[show])
    fresh = not site.storage.residents.all()
    if fresh:
        for spec in DEMO_RESIDENTS:
            site.add_resident(spec)
    stop = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(site, stop, Tick), daemon=True)
    ticker.start()
    print(f"doorpi demo: simulated gate '{cfg.door.name}', data in {data_dir}")
    print(HELP)
    try:
        while True:
            print(f"[{_status(site)}] > ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            if not _command(site, line.split()):
                break
    finally:
        stop.set()
        ticker.join(timeout=2)
        site.close()
    return 0


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
        if cmd in ("quit", "q", "exit!"):
            return False
        if cmd == "card" and rest:
            site.card(rest[0])
        elif cmd == "keys" and rest:
            for k in rest[0]:
                site.key(k.upper())
                time.sleep(0.05)
        elif cmd in ("open", "close"):
            site.door(cmd == "open")
        elif cmd == "exit":
            site.press_exit()
        elif cmd == "tamper" and rest:
            site.tamper(rest[0] == "on")
        elif cmd == "fire" and rest:
            site.fire(rest[0] == "on")
        elif cmd == "lockdown" and rest:
            site.lockdown_switch(rest[0] == "on")
        elif cmd == "status":
            print(f"  {_status(site)}")
        else:
            print(HELP)
    except ValueError as exc:
        print(f"  error: {exc}")
    return True
