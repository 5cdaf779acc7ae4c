"""The gate process for the watchdog tests: `doorpi --config CONFIG run --sim --json-events`
with the real PC/SC reader and a keypad on stdin.

Usage: ``python watchdog_child.py CONFIG STALE_SECONDS`` (run by test_watchdog.py with
NOTIFY_SOCKET, WATCHDOG_USEC and PCSCLITE_CSOCK_NAME, the test session's pcscd, set).

What differs from `doorpi run --sim` (everything else is the real code path,
`doorpi.cli.main`): the card reader is a real `PcscReader` on ``reader.name`` (the
simulated one has no thread to freeze), `doorpi.cli.run.STALE_AFTER` is
``STALE_SECONDS`` (the test knob: seconds, not the shipped 30), and stdin lines are
commands, each answered on stdout by ``ok <command>``:

* ``key DIGITS``: each character a `KeyPressed` (the keypad double: MockFactory pins
  cannot be driven from the test's process).
* ``kill-reader``: the reader thread dies (its loop raises a BaseException, which the
  loop does not catch, as a bug in our code past ``except Exception`` would).
* ``wedge-reader``: the reader thread blocks forever in our own code (not in a PC/SC
  call), as a deadlock of ours would.

Gate events are JSON lines on stdout (``--json-events``).
"""

from __future__ import annotations

import sys
import threading
from typing import Any


class ReaderThreadKilled(BaseException):
    """Raised inside the reader thread to end it (not an Exception: the loop lets it out)."""


def main() -> int:
    config, stale = sys.argv[1], float(sys.argv[2])

    import doorpi.cli.run as run
    import doorpi.device as device
    from doorpi.cards import UidCard
    from doorpi.hardware.reader import PcscReader

    run.STALE_AFTER = stale

    def make_reader(cfg: Any, sim: bool) -> PcscReader:
        return PcscReader(cfg.reader.name, UidCard(), poll_seconds=0.3, backoff_max=0.5)

    device._make_reader = make_reader
    original_start = device.Devices.start

    def start(self: Any, emit: Any, cfg: Any, sim: bool) -> None:
        original_start(self, emit, cfg, sim)
        threading.Thread(target=commands, args=(self, emit), daemon=True).start()

    device.Devices.start = start  # type: ignore[method-assign]

    def thread_died(args: threading.ExceptHookArgs) -> None:
        print(f"thread {args.thread.name if args.thread else '?'} ended: "
              f"{args.exc_type.__name__}", file=sys.stderr, flush=True)  # fmt: skip

    threading.excepthook = thread_died
    from doorpi.cli import main as cli_main

    return cli_main(["--config", config, "run", "--sim", "--json-events"])


def commands(devices: Any, emit: Any) -> None:
    from doorpi.core.events import KeyPressed

    reader = devices.reader
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "key":
            for k in arg:
                emit(KeyPressed(k))
        elif cmd == "kill-reader":

            def die() -> None:
                raise ReaderThreadKilled("killed by the test")

            reader._poll_once = die
        elif cmd == "wedge-reader":
            reader._poll_once = lambda: threading.Event().wait()
        else:
            print(f"unknown command {cmd!r}", flush=True)
            continue
        print(f"ok {cmd}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
