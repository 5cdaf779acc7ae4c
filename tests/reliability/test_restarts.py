"""Hundreds of gate lives ending every way a process ends (issue #18): the strike
pin's full history, across all of them, rises once per grant and never otherwise.

Each life is a real process (restart_child.py) on one data directory; the mock
pins of every life append to one log. A life killed mid-unlock leaves the line
high, as a Pi's GPIO keeps its last level (hardware/strike.py); each life's pins
start de-energised (the next life drives the line low first), so rises are counted
per life (the pin log names the process).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from reliability_support import report, scale

CHILD = Path(__file__).with_name("restart_child.py")
ENDS = ["clean", "kill", "abort", "exit", "hang"]
TAPS = ["none", "known", "unknown"]


def test_restarts_strike_rises_only_on_grants(tmp_path: Path) -> None:
    pin_log = tmp_path / "pins.log"
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "DOORPI_PIN_LOG": str(pin_log)}
    rnd = random.Random(18)
    lives = scale(10, 300)  # short: each way of ending twice
    grants, ends = 0, Counter()
    for i in range(lives):
        end, tap = ENDS[i % len(ENDS)], rnd.choice(TAPS) if i % 3 else "known"
        proc = subprocess.Popen([sys.executable, str(CHILD), str(tmp_path / "data"), end, tap],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)  # fmt: skip
        assert proc.stdout is not None
        out = []
        for line in proc.stdout:
            out.append(line.strip())
            if line.strip() == "hung":  # the watchdog: SIGABRT, then SIGKILL
                proc.send_signal(signal.SIGABRT if i % 2 else signal.SIGKILL)
        rc = proc.wait(timeout=60)
        err = proc.stderr.read() if proc.stderr else ""
        assert "started" in out, f"life {i} ({end}) did not start: {err.strip()[-800:]}"
        if end == "clean":
            assert rc == 0 and "closed" in out, err
        grants += out.count("grant")
        ends[end] += 1
    lines = [ln.split() for ln in pin_log.read_text().splitlines()]
    by_life: dict[str, list[int]] = {}
    for w in lines:
        if w[2] == "GPIO17":
            by_life.setdefault(w[1], []).append(int(w[3]))
    # Each life's own pin starts de-energised (initial_value=False): count its rises.
    rises = sum(1 for levels in by_life.values()
                for a, b in zip([0, *levels], levels, strict=False) if (a, b) == (0, 1))  # fmt: skip
    died_released = sum(1 for levels in by_life.values() if levels[-1] == 1)
    report("restarts", {"lives": lives, "ends": dict(ends), "grants": grants,
                        "strike_rises": rises, "lives_ended_with_strike_released": died_released,
                        "pin_changes": sum(map(len, by_life.values()))})  # fmt: skip
    assert grants >= lives // 4
    assert rises == grants, f"{rises} strike pulses for {grants} grants"
