"""`doorpi demo` as a newcomer types it: never a gate's store, the door of --config,
feedback shown, `exit` leaves and `rex` is the exit button."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_CASE = Path(__file__).parents[2] / "examples" / "scenarios" / "card-granted.toml"


def doorpi(*args: str, stdin: str = "", cfg: Path | None = None) -> subprocess.CompletedProcess:
    pre = ["--config", str(cfg)] if cfg else []
    return subprocess.run([sys.executable, "-m", "doorpi", *pre, *args], input=stdin,
                          capture_output=True, text=True, timeout=90)  # fmt: skip


@pytest.fixture
def gate_cfg(tmp_path: Path) -> Path:
    cfg = tmp_path / "doorpi.toml"
    cfg.write_text(
        f'[site]\ndata_dir = "{tmp_path / "gate"}"\n[door]\naccess = ["card+pin"]\n'
        "[pin]\nopslimit = 1\nmemlimit_kib = 8192\n"
    )
    return cfg


def _records(out: str) -> list[dict]:
    recs = []
    for line in out.splitlines():
        i = line.find('{"t"')
        if i >= 0:
            recs.append(json.loads(line[i:]))
    return recs


def test_demo_refuses_a_gates_data_dir(gate_cfg: Path) -> None:
    gate = gate_cfg.parent / "gate"
    p = doorpi("resident", "add", "Real Resident", "--keypad-id", "101", cfg=gate_cfg)
    assert p.returncode == 0, p.stderr
    db = sorted(gate.glob("*.db*"))
    before = {f: f.read_bytes() for f in db}
    for args in (["demo", "--data-dir", str(gate)],
                 ["demo", "--scenario", str(SHARED_CASE), "--data-dir", str(gate)]):  # fmt: skip
        p = doorpi(*args, stdin="card 04a1b2c3d4e5f6\nexit\n")
        assert p.returncode == 2, p.stdout + p.stderr
        assert p.stderr.startswith(f"doorpi: --data-dir {gate}: holds data the demo did not make")
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert {f: f.read_bytes() for f in db} == before
    listing = doorpi("resident", "list", cfg=gate_cfg).stdout
    assert "Alice" not in listing and "Real Resident" in listing
    # A directory the demo made is its own to reuse.
    mine = gate_cfg.parent / "demo"
    for _ in range(2):
        p = doorpi("demo", "--data-dir", str(mine), stdin="exit\n")
        assert p.returncode == 0, p.stderr


def test_demo_follows_config_shows_feedback_and_exit_leaves(gate_cfg: Path) -> None:
    p = doorpi("demo", stdin="card 04a1b2c3d4e5f6\nexit\nrex\n", cfg=gate_cfg)
    assert p.returncode == 0, p.stderr
    recs = _records(p.stdout)
    kinds = [r["event"] for r in recs]
    # card+PIN door: the card alone asks for the PIN; it does not open
    assert "factor_needed" in kinds and "relay_on" not in kinds and "access" not in kinds
    assert "feedback: pin_needed: green light blinking" in p.stdout
    # `exit` left the demo: the exit button was never pressed, `rex` never read
    assert "exit_request" not in p.stdout
    assert not [r for r in recs if r["event"] == "relay_on"]


def test_rex_is_the_exit_button(tmp_path: Path) -> None:
    p = doorpi("demo", "--data-dir", str(tmp_path / "d"), stdin="rex\nquit\n")
    assert p.returncode == 0, p.stderr
    recs = _records(p.stdout)
    assert {"granted": True, "reason": "exit_request"}.items() <= next(
        r for r in recs if r["event"] == "access"
    ).items()
    assert any(r["event"] == "relay_on" for r in recs)
    assert "feedback: granted: green light (while the door is open)" not in p.stdout  # REX: no beep


def test_a_card_that_is_not_hex_is_named_and_the_demo_goes_on(tmp_path: Path) -> None:
    """Found by a newcomer: `card zz` printed Python's fromhex() wording."""
    p = doorpi("demo", "--data-dir", str(tmp_path / "d"), stdin="card zz\nrex\nquit\n")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "card 'zz': a card UID is hex digits" in out
    assert "fromhex" not in out and "Traceback" not in out
    assert any(r["event"] == "access" for r in _records(p.stdout))  # the next command ran


def _demo_env(tmp: Path) -> dict[str, str]:
    import os

    tmp.mkdir()
    return {**os.environ, "TMPDIR": str(tmp)}


def test_the_demos_temp_data_dir_is_removed_on_exit_error_and_ctrl_c(tmp_path: Path) -> None:
    """Without --data-dir the demo works in a fresh doorpi-sim-* folder under $TMPDIR:
    gone after `exit`, end of input, a scenario run, a scenario that fails, and Ctrl-C."""
    import signal

    env = _demo_env(tmp_path / "tmp")
    run = [sys.executable, "-m", "doorpi", "demo"]
    ok = subprocess.run(run, input="card 04a1b2c3d4e5f6\nexit\n", env=env,
                        capture_output=True, text=True, timeout=90)  # fmt: skip
    assert ok.returncode == 0 and "data in " + str(tmp_path / "tmp") in ok.stdout, ok.stdout
    eof = subprocess.run(run, input="rex\n", env=env, capture_output=True, text=True, timeout=90)
    assert eof.returncode == 0, eof.stderr
    case = subprocess.run([*run, "--scenario", str(SHARED_CASE), "--check"], env=env,
                          capture_output=True, text=True, timeout=90)  # fmt: skip
    assert case.returncode == 0, case.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[config.door]\naccess = ["nonsense"]\n[[steps]]\ncard = "04"\n')
    err = subprocess.run([*run, "--scenario", str(bad)], env=env,
                         capture_output=True, text=True, timeout=90)  # fmt: skip
    assert err.returncode == 2 and "Traceback" not in err.stderr, err.stderr
    assert list((tmp_path / "tmp").iterdir()) == []
    # Ctrl-C at the prompt: SIGINT to the demo while it waits for a command.
    with _demo(run, env) as p:
        p.stdin.write("card 04a1b2c3d4e5f6\n")
        p.stdin.flush()
        _read_until(p, '"granted":true')  # the card was handled
        _read_until(p, "granted 1,")  # and the demo is back at its prompt
        assert [d.name[:11] for d in (tmp_path / "tmp").iterdir()] == ["doorpi-sim-"]
        p.send_signal(signal.SIGINT)
        stderr = _wait(p)
    assert p.returncode == 130 and "Traceback" not in stderr, stderr
    assert list((tmp_path / "tmp").iterdir()) == []


@contextlib.contextmanager
def _demo(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """The demo as a person at a terminal runs it (stdin, stdout and stderr piped,
    text); killed and reaped if still running when the block ends."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert p.stdin is not None and p.stdout is not None
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _read_until(p: subprocess.Popen[str], text: str, seconds: float = 60) -> str:
    """Demo output up to the first line holding ``text`` (the prompt ends no line:
    it is read with the output that follows it)."""
    import time

    assert p.stdout is not None
    seen, deadline = [], time.monotonic() + seconds
    while text not in (line := p.stdout.readline()):
        seen.append(line)
        assert line and time.monotonic() < deadline, f"no {text!r} in {''.join(seen)[-2000:]}"
    return "".join([*seen, line])


def _wait(p: subprocess.Popen[str]) -> str:
    """Wait for the demo to end with its stdin still open (a person at a terminal
    presses Ctrl-C; nobody closes the terminal), then return its stderr."""
    p.wait(timeout=30)
    assert p.stderr is not None
    return p.stderr.read()


def test_ctrl_c_during_a_command_lets_it_finish_then_ends_the_demo(tmp_path: Path) -> None:
    """Ctrl-C while a command runs (a PIN typed key by key, 50 ms apart) does not cut
    it off at a random line: the PIN is decided and recorded, then the demo exits 130."""
    import signal
    import time

    env = _demo_env(tmp_path / "tmp")
    with _demo([sys.executable, "-m", "doorpi", "demo"], env) as p:
        # A moved-out resident's card (denied at once, printed), then a PIN of nine keys
        # 50 ms apart (about 0.45 s, nothing printed before its '#'): Ctrl-C 0.15 s
        # after the denial falls inside the PIN.
        p.stdin.write("card 04c0c0c0c0c0c0\nkeys 101#2468#\n")
        p.stdin.flush()
        _read_until(p, '"granted":false')
        time.sleep(0.15)
        p.send_signal(signal.SIGINT)
        rest = p.stdout.read()
        stderr = _wait(p)
    assert p.returncode == 130 and "Traceback" not in stderr, stderr
    assert '"granted":true' in rest and '"factors":["pin"]' in rest, rest
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_kill_or_a_closed_terminal_ends_the_demo_cleanly(tmp_path: Path, sig: str) -> None:
    """`kill` (SIGTERM) and a closed terminal (SIGHUP) end the demo as Ctrl-C does: the
    strike goes to its safe state (relay_off shutdown), the temporary folder is removed,
    one line says why, exit 128 + the signal's number. Seen in a newcomer's trial: both
    used to kill it where it stood, leaving /tmp/doorpi-sim-* behind."""
    import signal

    signum = getattr(signal, sig)
    env = _demo_env(tmp_path / "tmp")
    with _demo([sys.executable, "-m", "doorpi", "demo"], env) as p:
        p.stdin.write("card 04a1b2c3d4e5f6\n")
        p.stdin.flush()
        _read_until(p, '"granted":true')  # the strike is released for 5 s from here
        assert [d.name[:11] for d in (tmp_path / "tmp").iterdir()] == ["doorpi-sim-"]
        p.send_signal(signum)
        rest = p.stdout.read()
        stderr = _wait(p)
    assert p.returncode == 128 + signum, (p.returncode, stderr)
    assert "Traceback" not in stderr and f"doorpi demo: ended by {sig}" in stderr, stderr
    assert '"event":"relay_off","reason":"shutdown"' in rest, rest
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_data_dir_the_user_gave_is_kept(tmp_path: Path) -> None:
    env = _demo_env(tmp_path / "tmp")
    mine = tmp_path / "mine"
    p = subprocess.run([sys.executable, "-m", "doorpi", "demo", "--data-dir", str(mine)],
                       input="exit\n", env=env, capture_output=True, text=True, timeout=90)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert (mine / ".doorpi-demo").exists() and any(mine.glob("*.db"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_unknown_command_is_named_then_the_help(tmp_path: Path) -> None:
    """A typo at the prompt says which word was not understood (escaped: a pasted
    control or bidi character cannot garble the terminal), then the commands; `help`
    shows them without a complaint; the demo goes on."""
    typed = "XyZ\nfoo\u202ebar\x1b[2J\nhelp\ncard\n" + "w" * 100 + "\nrex\nquit\n"
    p = doorpi("demo", "--data-dir", str(tmp_path / "d"), stdin=typed)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    lines = [ln.split("> ")[-1] for ln in p.stdout.splitlines()]
    said = [(i, ln.strip()) for i, ln in enumerate(lines) if ln.startswith("  unknown") or
            ln.startswith("  'card'")]  # fmt: skip
    assert [s for _, s in said] == [
        "unknown command 'XyZ'",
        "unknown command 'foo\\u202ebar\\x1b[2J'",
        "'card' needs a card UID",
        f"unknown command '{'w' * 37}...'",
    ], said
    for i, _ in said:  # each followed by the commands
        assert lines[i + 1] == "commands:", lines[i : i + 2]
    assert p.stdout.count("commands:") == 1 + len(said) + 1  # at start, after each, for help
    assert "\u202e" not in p.stdout and "\x1b" not in p.stdout
    access = [r for r in _records(p.stdout) if r["event"] == "access"]
    assert [a["reason"] for a in access] == ["exit_request"], access  # it went on after them


def test_values_the_demo_cannot_mean_are_refused_not_guessed(tmp_path: Path) -> None:
    """Seen in a newcomer's trial: `tamper maybe` meant off, `open now` opened, a
    5,000-key `keys` held the prompt for minutes, and keys in other scripts vanished.
    Each is now one line and the demo goes on; the refused keys typed nothing (the
    only decision is the full-width PIN's grant)."""
    typed = ("tamper maybe\nfire yes please\nopen now\nrex x\nkeys " + "1" * 65 + "\n"
             "keys \u0661\u0660\u0661#\nkeys \uff11\uff10\uff11#2468#\nquit\n")  # fmt: skip
    p = doorpi("demo", "--data-dir", str(tmp_path / "d"), stdin=typed)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    said = [ln.split("> ")[-1].strip() for ln in p.stdout.splitlines()]
    for line in (
        "error: tamper takes on or off, got 'maybe'",
        "error: fire takes on or off, got 'yes please'",
        "'open' takes nothing after it, got 'now'",
        "'rex' takes nothing after it, got 'x'",
        "error: keys: at most 64 keys at a time",
        "error: key '\u0661': not a keypad key (digits 0-9, * clears, # submits, F or A "
        "asks for face)",
    ):
        assert line in said, (line, said)
    access = [r for r in _records(p.stdout) if r["event"] == "access"]
    assert [(a["granted"], a["reason"]) for a in access] == [(True, "granted")], access


def test_demo_check_without_a_scenario_is_refused(tmp_path: Path) -> None:
    """--check has nothing to check without --scenario: not a silent interactive demo."""
    p = doorpi("demo", "--check", "--data-dir", str(tmp_path / "demo"), stdin="exit\n")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doorpi: demo --check checks a scenario")
    assert "--scenario FILE" in lines[0]
    assert not (tmp_path / "demo").exists()
