"""`doorpi --help` is for the installer and the admin: what doorpi is in one
line, the commands grouped by who uses them (every command in exactly one
group), where the docs are. Real `doorpi` subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from doorpi.cli import build_parser
from doorpi.cli.helptext import GROUPS, OTHER

REPO = Path(__file__).resolve().parents[1]


def _help() -> str:
    p = subprocess.run([sys.executable, "-m", "doorpi", "--help"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0 and not p.stderr, p.stderr
    return p.stdout


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return list(sub.choices)


def test_help_says_what_doorpi_is_not_how_the_code_is_laid_out() -> None:
    out = _help()
    intro = out.split("\n\n")[1]
    assert intro.startswith("doorpi: the door controller of a residential gate")
    assert "module" not in out and "sub-command group" not in out
    assert max(len(ln) for ln in out.splitlines()) <= 80


def test_every_command_is_listed_once_under_who_uses_it() -> None:
    out = _help()
    commands = _commands()
    listed = re.findall(r"^  ([a-z][a-z-]*)  ", out, flags=re.M)
    assert sorted(listed) == sorted(commands)  # each exactly once
    assert f"\n{OTHER}:" not in out  # every command has its group
    for title, names in GROUPS:
        block = out.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
        assert re.findall(r"^  ([a-z][a-z-]*)  ", block, flags=re.M) == list(names)
    assert "Installer" in out and "Management office" in out and "Admin" in out


def test_help_names_docs_that_exist() -> None:
    out = " ".join(_help().split())  # the docs line is wrapped
    docs = re.findall(r"docs/[a-z-]+\.md", out)
    assert {"docs/install.md", "docs/admin.md"} <= set(docs)
    for d in docs:
        assert (REPO / d).is_file(), d
    assert "`doorpi COMMAND --help`" in out
