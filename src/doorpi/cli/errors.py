"""The last line of defence between an exception and a person: one line, never a traceback.

`doorpi.cli.main` hands every exception a command did not turn into a
`CliError` to `report`, which prints one line naming what failed and where
(the innermost doorpi source line, or the file for an OS error) and returns
the exit code. ``DOORPI_DEBUG=1`` prints the full traceback instead, for
developers. `quiet_broken_pipe` makes ``doorpi log | head`` end quietly.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from pathlib import Path

from doorpi.validation import safe_text

#: Exit code for an unexpected error. Not 2: systemd's RestartPreventExitStatus=2
#: is kept for mistakes a restart cannot fix (a bad config), and an unexpected
#: fault may be transient.
EXIT_UNEXPECTED = 1
#: What a shell reports for a process ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


#: Largest row number SQLite stores (a signed 64-bit integer).
SQLITE_INT_MAX = 2**63 - 1


def row_number(text: str) -> int:
    """argparse type for ids and counts: an int SQLite can hold (>= 0)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= SQLITE_INT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0 to {SQLITE_INT_MAX})")
    return value


def bound_int_arguments(parser: object) -> None:
    """Give every ``type=int`` argument in the tree the `row_number` type, so a
    new command's ids cannot overflow SQLite (``OverflowError``) either."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    for action in parser._actions:
        if action.type is int:
            action.type = row_number
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                bound_int_arguments(child)


def _where(exc: BaseException) -> str:
    """``module.py:LINE`` of the innermost frame in doorpi's own code."""
    root = Path(__file__).resolve().parent.parent
    spot = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            rel = Path(frame.filename).resolve().relative_to(root.parent)
        except ValueError:
            continue
        spot = f"{rel}:{frame.lineno}"
    return spot


def describe(exc: BaseException) -> str:
    """One line for a person: what failed, and where."""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return "database busy: another process holds the write lock; try again in a moment"
    if isinstance(exc, sqlite3.DatabaseError):
        what = f"database error: {exc}"
    elif isinstance(exc, OSError) and exc.strerror:
        name = exc.filename if exc.filename is not None else ""
        what = f"{name}: {exc.strerror}" if name else exc.strerror
    elif isinstance(exc, MemoryError):
        what = "out of memory"
    else:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    where = _where(exc)
    return f"{what} (at {where})" if where else what


def known(exc: BaseException) -> str | None:
    """The one-line message for faults of the environment, not of doorpi; else None."""
    if isinstance(exc, EOFError):
        return "standard input ended before the answer was read"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return None


def report(exc: BaseException, command: str | None) -> int:
    """Print ``exc`` as one line on stderr (or the traceback with DOORPI_DEBUG=1)."""
    prefix = f"doorpi {command}" if command else "doorpi"
    if os.environ.get("DOORPI_DEBUG"):
        traceback.print_exception(exc)
    elif (message := known(exc)) is not None:
        print(f"{prefix}: {safe_text(message)}", file=sys.stderr)
    else:
        line = " ".join(safe_text(describe(exc)).split())
        print(f"{prefix}: unexpected error: {line}; DOORPI_DEBUG=1 shows the details",
              file=sys.stderr)  # fmt: skip
    return EXIT_UNEXPECTED


def quiet_broken_pipe() -> int:
    """The reader of our output went away (``| head``): stop without a word.

    Points stdout at /dev/null so the interpreter's final flush cannot raise
    again (the recipe in the Python docs, "Note on SIGPIPE").
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE
