"""Runs many `doorpi` command lines as real processes, cheaply: a fork server.

Started as ``python tests/cli_sweep_runner.py`` by tests/test_cli_no_traceback.py.
It imports doorpi once, then for each job (one JSON object per stdin line:
``{"id", "argv", "stdin", "stdout", "stderr", "closed_pipe", "env"}``) forks a
child that points its fds 0/1/2 at the given files (or fd 1 at a pipe whose
reading end is closed) and runs the package as ``python -m doorpi`` does (`runpy`,
``sys.exit(main())``), ending as the interpreter does (atexit handlers, the
final flush of stdout/stderr whose failure CPython reports as "Exception
ignored"; only the slow teardown of every module is skipped, `run_child`). Each child is a real process with real file descriptors and a
real exit status; only the import of doorpi is shared, which turns ~0.4 s of
start-up per command into a few milliseconds. Results are JSON lines on
stdout: ``{"id", "rc", "seconds", "timeout"}`` (rc negative: killed by that signal).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

import doorpi.cli

doorpi.cli.build_parser()  # imports every command module once
# What most commands import lazily, imported once here (no threads start on import).
for _name in ("numpy", "PIL.Image", "sqlite_utils", "nacl.public", "gpiozero",
              "doorpi.store", "doorpi.gate", "doorpi.sim.site", "doorpi.privacy.enrolment"):  # fmt: skip
    __import__(_name)

PARALLEL = int(os.environ.get("SWEEP_PARALLEL", "4"))
TIMEOUT = float(os.environ.get("SWEEP_TIMEOUT", "30"))


def child(job: dict) -> None:
    import runpy

    os.setsid()
    fd = os.open(job.get("stdin") or os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    if job.get("closed_pipe"):
        r, w = os.pipe()
        os.close(r)  # the reader went away, as when `| head` has exited
        os.dup2(w, 1)
    else:
        os.dup2(os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.dup2(os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    os.environ.update(job.get("env", {}))
    if job.get("cwd"):
        os.chdir(job["cwd"])
    sys.argv = ["doorpi", *job["argv"]]
    runpy.run_module("doorpi", run_name="__main__", alter_sys=True)


def run_child(job: dict) -> int:
    """Run one job and end the way the interpreter does, minus tearing down
    every module (the slow part): atexit handlers, then the final flush of
    stdout and stderr, whose failure CPython reports as "Exception ignored"
    and exit status 120."""
    import atexit
    import traceback

    try:
        child(job)
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # what CPython prints for an uncaught exception
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception as exc:
            os.write(2, f"Exception ignored in: {stream!r}\n{type(exc).__name__}: {exc}\n".encode())
            code = 120
    return code


def main() -> None:
    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    running: dict[int, tuple[dict, float]] = {}
    out = sys.stdout
    sys.stdout.flush()

    def reap(block: bool) -> None:
        for pid, (job, t0) in list(running.items()):
            timed_out = time.monotonic() - t0 > (job.get("timeout") or TIMEOUT)
            if timed_out:
                os.killpg(pid, signal.SIGKILL)
            got, status = os.waitpid(pid, 0 if timed_out else os.WNOHANG)
            if got:
                del running[pid]
                rc = os.waitstatus_to_exitcode(status)
                res = {"id": job["id"], "rc": rc, "seconds": round(time.monotonic() - t0, 2),
                       "timeout": timed_out}  # fmt: skip
                out.write(json.dumps(res) + "\n")
                out.flush()
        if block and running:
            select.select([], [], [], 0.01)

    for job in jobs:
        while len(running) >= PARALLEL:
            reap(block=True)
        pid = os.fork()
        if pid == 0:
            os._exit(run_child(job))
        running[pid] = (job, time.monotonic())
    while running:
        reap(block=True)


if __name__ == "__main__":
    main()
