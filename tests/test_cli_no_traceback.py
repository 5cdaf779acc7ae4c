"""No traceback reaches a person: every `doorpi` command, run on broken inputs.

The commands come from the argparse tree itself (`doorpi.cli.build_parser`),
so a new command is swept without editing this file. Each runs as a real
process (tests/cli_sweep_runner.py forks them from one interpreter that has
imported doorpi, see there) against each broken input below; any
"Traceback" or "Exception ignored" in its output, a death by signal or a
hang fails the test. Runtime here: about 25 s for ~50 commands x 12 inputs
on 2 busy cores (measured 2026-11-30; see the report printed with -s).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.cli import build_parser
from doorpi.cli.errors import row_number

RUNNER = Path(__file__).with_name("cli_sweep_runner.py")
GOOD = '[site]\ndata_dir = "{data}"\n[pin]\nopslimit = 1\nmemlimit_kib = 8192\n'


def commands() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """Every runnable command line prefix in the tree: leaves, and groups that run by themselves."""
    found: list[tuple[list[str], argparse.ArgumentParser]] = []

    def walk(p: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if path and (not subs or not subs[0].required):
            found.append((path, p))
        for action in subs:
            for name, child in action.choices.items():
                walk(child, [*path, name])

    walk(build_parser(), [])
    return found


def args_for(parser: argparse.ArgumentParser, files: dict[str, Path], bad: bool) -> list[str]:
    """Positional and required arguments; ``bad`` gives hostile values of the right shape."""
    out: list[str] = []
    for a in parser._actions:
        if a.option_strings and not a.required:
            continue
        if isinstance(a, argparse._SubParsersAction | argparse._HelpAction):
            continue
        dest = a.dest
        if a.type in (int, row_number):
            value = "99999999999999999999999" if bad else "1"
        elif dest == "dir":
            value = str(files["faces"])
        elif dest == "roster":
            value = str(files["gbk"] if bad else files["bom_roster"])
        elif a.type is Path or dest in ("file", "path", "stick"):
            value = str(files["garbage"])
        else:
            value = "x\u202eevil\nrow" if bad else "abcdefgh"
        out += [*a.option_strings[:1], value]
    return out


EXTRA = {  # keep commands that would wait from waiting
    ("card", "enroll"): ["--timeout", "0.5"],
    ("admin", "console"): ["--no-browser", "--exit-after", "0.5"],
}
# Commands that do seconds of real work whatever the input (a benchmark that
# falls back to defaults without a config) run with a few of the inputs only,
# and may take longer than the others on a loaded machine (seconds).
SLOW = {("bench", "core"): {"output into a closed pipe"}}
SLOW_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("sweep")
    f: dict[str, Path] = {}

    def cfg(name: str, text: str | bytes) -> Path:
        p = tmp / f"{name}.toml"
        (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        f[name] = p
        return p

    cfg("missing", "").unlink()
    cfg("garbage", b"\x00\xff\xfe[[[ = \n\x80")
    cfg("utf16", ("\ufeff" + GOOD.format(data=tmp / "d16")).encode("utf-16-le"))
    cfg("bom", b"\xef\xbb\xbf" + GOOD.format(data=tmp / "dbom").encode())
    cfg("gbk", ('[site]\nname = "王小明的门"\n' + GOOD.format(data=tmp / "dgbk")[7:]).encode("gbk"))
    cfg("no_data_dir", GOOD.format(data=tmp / "missing" / "data"))
    (tmp / "a_file").write_text("not a directory")
    cfg("data_is_file", GOOD.format(data=tmp / "a_file"))
    cfg("bad_value", '[door]\nunlock_seconds = "five"\n[site]\ndata_dir = "x"\n')
    for table in ("residents", "audit"):
        data = tmp / f"damaged_{table}"
        p = cfg(f"damaged_{table}", GOOD.format(data=data))
        _run_doorpi(p, "resident", "add", "Alice", "--keypad-id", "101")
        with sqlite3.connect(data / "doorpi.db") as db:
            db.execute(f"DROP TABLE {table}")
    f["populated"] = cfg("populated", GOOD.format(data=tmp / "populated"))
    _run_doorpi(f["populated"], "resident", "add", "Alice", "--keypad-id", "101")
    cfg("fresh", GOOD.format(data=tmp / "fresh"))
    f["garbage_file"] = f["garbage"]
    garbage = tmp / "garbage.bin"
    garbage.write_bytes(b"\x00\xffnot what you expected\n" * 10)
    f["garbage"] = garbage
    f["gbk"] = tmp / "roster-gbk.toml"
    f["gbk"].write_bytes('[[residents]]\nkey = "a-1"\nname = "王小明"\n'.encode("gbk"))
    f["bom_roster"] = tmp / "roster-bom.toml"
    f["bom_roster"].write_bytes(b'\xef\xbb\xbf[[residents]]\nkey = "a-1"\nname = "A"\n')
    faces = tmp / "faces"
    (faces / "alice").mkdir(parents=True)
    (faces / "bob").mkdir()
    (faces / "alice" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (faces / "bob" / "not-an-image.jpg").write_text("hello")
    f["faces"] = faces
    f["home"] = tmp / "home"
    f["home"].mkdir()
    return f


def _run_doorpi(cfg: Path, *argv: str) -> None:
    subprocess.run([sys.executable, "-m", "doorpi", "--config", str(cfg), *argv],
                   check=True, capture_output=True, timeout=60)  # fmt: skip


# name -> (config key in `inputs`, bad arguments?, stdout into a closed pipe?)
CASES = {
    "missing config": ("missing", False, False),
    "garbage config": ("garbage_file", False, False),
    "UTF-16 config": ("utf16", False, False),
    "GBK config": ("gbk", False, False),
    "config with a bad value": ("bad_value", False, False),
    "BOM config, fresh data dir": ("bom", False, False),
    "data dir missing": ("no_data_dir", False, False),
    "data dir is a file": ("data_is_file", False, False),
    "damaged schema (residents dropped)": ("damaged_residents", False, False),
    "damaged schema (audit dropped)": ("damaged_audit", False, False),
    "bad arguments": ("fresh", True, False),
    "output into a closed pipe": ("populated", False, True),
}


def test_no_command_shows_a_traceback(inputs: dict[str, Path], tmp_path: Path) -> None:
    jobs, meta = [], {}
    for case, (cfg_key, bad, closed) in CASES.items():
        for path, parser in commands():
            if case not in SLOW.get(tuple(path), {case}):
                continue
            argv = ["--config", str(inputs[cfg_key]), *path,
                    *args_for(parser, inputs, bad), *EXTRA.get(tuple(path), [])]  # fmt: skip
            n = len(jobs)
            jobs.append({
                "id": n, "argv": argv, "closed_pipe": closed, "cwd": str(tmp_path),
                "timeout": SLOW_TIMEOUT if tuple(path) in SLOW else None,
                "stdout": str(tmp_path / f"{n}.out"), "stderr": str(tmp_path / f"{n}.err"),
                "env": {"HOME": str(inputs["home"]), "DOORPI_ADMIN_DIR": str(inputs["home"] / "adm"),
                        "PYTHONWARNINGS": "ignore", "DOORPI_DEBUG": ""},
            })  # fmt: skip
            meta[n] = (case, " ".join(path))
    assert len({m[1] for m in meta.values()}) >= 45, "the argparse walk found too few commands"
    env = {k: v for k, v in os.environ.items() if k != "DOORPI_DEBUG"}
    proc = subprocess.run([sys.executable, str(RUNNER)], input="\n".join(map(json.dumps, jobs)),
                          capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(jobs)
    problems = []
    unexpected = 0
    for res in results:
        n = res["id"]
        out = (
            (tmp_path / f"{n}.out").read_text(errors="replace")
            if not jobs[n]["closed_pipe"]
            else ""
        )
        err = (tmp_path / f"{n}.err").read_text(errors="replace")
        case, cmd = meta[n]
        unexpected += "unexpected error" in err
        if res["timeout"]:
            problems.append(f"{case}: doorpi {cmd}: still running after the timeout")
        elif res["rc"] < 0:
            problems.append(f"{case}: doorpi {cmd}: killed by signal {-res['rc']}")
        elif "Traceback" in out + err or "Exception ignored" in err:
            problems.append(f"{case}: doorpi {cmd}: {err.strip().splitlines()[-1:]}")
        elif "Broken pipe" in err or "BrokenPipe" in err:  # `| head` is not an error
            problems.append(f"{case}: doorpi {cmd}: {err.strip()}")
        elif res["rc"] != 0 and not (out + err).strip() and not jobs[n]["closed_pipe"]:
            problems.append(f"{case}: doorpi {cmd}: exit {res['rc']} without a word")
    by_cmd: dict[str, float] = {}
    for res in results:
        by_cmd[meta[res["id"]][1]] = by_cmd.get(meta[res["id"]][1], 0) + res["seconds"]
    print(sorted(by_cmd.items(), key=lambda kv: -kv[1])[:12])
    slowest = max(results, key=lambda r: r["seconds"])
    print(f"\n{len(jobs)} runs, {unexpected} ended in 'unexpected error' (one line), "
          f"slowest {slowest['seconds']} s: {meta[slowest['id']]}")  # fmt: skip
    assert not problems, "\n".join(problems)


def test_the_sweep_sees_a_traceback(tmp_path: Path) -> None:
    """The sweep's own detector works: a command that crashes is caught."""
    job = {"id": 0, "argv": ["--version"], "stdout": str(tmp_path / "o"),
           "stderr": str(tmp_path / "e"), "env": {"DOORPI_DEBUG": "1"}}  # fmt: skip
    runner = tmp_path / "runner.py"
    crash = "doorpi.cli.build_parser = lambda: 1 / 0  #"
    runner.write_text(RUNNER.read_text().replace("doorpi.cli.build_parser()", crash))
    subprocess.run([sys.executable, str(runner)], input=json.dumps(job), text=True,
                   capture_output=True, timeout=60, check=True)  # fmt: skip
    assert "Traceback" in (tmp_path / "e").read_text()  # DOORPI_DEBUG=1 shows it, by design
