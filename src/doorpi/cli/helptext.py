"""What `doorpi --help` shows an installer or admin: what doorpi is, the
commands grouped by who uses them, and where the docs are."""

from __future__ import annotations

import argparse
import textwrap

INTRO = (
    "doorpi: the door controller of a residential gate on a Raspberry Pi "
    "(card, PIN, and face only for residents who choose it)."
)
USAGE = "doorpi [--config FILE] [--operator NAME] COMMAND ..."

# (who, what for) -> commands, in the order a person meets them.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("Installer: set up and check a gate",
     ("config", "selftest", "clock", "keys", "notice", "strike-safe", "pcscd-watch",
      "run")),
    ("Management office: residents and their cards, PINs and face consent",
     ("resident", "card", "pin", "duress", "responder", "consent")),
    ("Admin at the gate: state, records, USB sync, lockdown",
     ("status", "log", "audit", "sync", "lockdown", "operator", "pia")),
    ("Admin's laptop: site key, gates, roster, bundles", ("admin",)),
    ("Trying and measuring (simulated hardware, developers)", ("demo", "bench", "eval")),
]  # fmt: skip
OTHER = "Other"
DOCS = (
    "Docs: docs/install.md (installing and configuring a gate), docs/admin.md (the "
    "commands at the gate), docs/ in the doorpi source for the rest. "
    "`doorpi COMMAND --help` lists one command's options."
)


def command_helps(sub: argparse._SubParsersAction) -> dict[str, str]:
    """Each registered command's one-line help, by name."""
    return {a.dest: a.help or "" for a in sub._choices_actions}


WIDTH = 79  # the columns the text is wrapped to (a plain 80-column terminal)


def overview(helps: dict[str, str]) -> str:
    """The intro and the grouped command list (the parser's description).
    A command in no group is listed under "Other", never left out."""
    width = max(len(name) for name in helps) + 2
    out: list[str] = [textwrap.fill(INTRO, WIDTH)]
    grouped = {name for _, names in GROUPS for name in names}
    groups = [*GROUPS, (OTHER, tuple(n for n in helps if n not in grouped))]
    for title, names in groups:
        shown = [n for n in names if n in helps]
        if not shown:
            continue
        out += ["", f"{title}:"]
        out += [
            textwrap.fill(helps[n], WIDTH, initial_indent=f"  {n:<{width}}",
                          subsequent_indent=" " * (width + 2))
            for n in shown
        ]  # fmt: skip
    return "\n".join(out)


def apply(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """Give ``parser`` the installer's help: intro and grouped commands, the
    options, the docs line (call once every command is registered)."""
    parser.description = overview(command_helps(sub))
    parser.usage = USAGE
    parser.epilog = textwrap.fill(DOCS, WIDTH)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub.help = argparse.SUPPRESS  # listed by group in the epilog instead


__all__ = ["DOCS", "GROUPS", "INTRO", "apply", "command_helps", "overview"]
