"""Helpers shared by the command modules: loading config and storage, printing.

Text that came from people or files (names, units, labels, paths) goes
through `safe` before it is printed: see `doorpi.validation.safe_text`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any as Any

from doorpi.cli import CliError
from doorpi.config import Config as Config
from doorpi.config import ConfigError, load_config
from doorpi.store import Storage as Storage
from doorpi.store.db import DatabaseError
from doorpi.store.secrets import KeyError_
from doorpi.validation import safe_text

safe = safe_text  # text from people or files, made safe to print


@contextmanager
def as_cli_error(*kinds: type[Exception]) -> Iterator[None]:
    """The domain's own errors (each already one line naming what and where)
    become the CLI's: printed as they are, exit 2."""
    try:
        yield
    except kinds as exc:
        raise CliError(str(exc)) from None


def config(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def storage(cfg: Config, *, create: bool = True) -> Storage:
    """The gate's storage; with ``create=False`` (commands that only look) a missing
    data directory is an error naming ``site.data_dir``, never silently made."""
    where = f"site.data_dir ({cfg.site.data_dir}, set in {cfg.path})"
    if not create and not cfg.site.data_dir.exists():
        raise CliError(f"{where}: no such directory (the gate creates it when it first starts)")
    if cfg.site.data_dir.exists() and not cfg.site.data_dir.is_dir():
        raise CliError(f"{where}: is not a directory")
    try:
        return Storage.open(cfg.site.data_dir)
    except (DatabaseError, KeyError_) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{where}: {exc.strerror or exc}") from None


def resident(store: Storage, rid: int) -> Any:
    """The resident with this id, or the CLI's one-line error."""
    r = store.residents.get(rid)
    if r is None:
        raise CliError(f"no resident {rid}")
    return r


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


def parse_date(text: str | None, flag: str) -> float | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    raise CliError(f"{flag}: {text!r} is not a date like 2027-06-30 or 2027-06-30T18:00")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def audit_admin(store: Storage, what: str, **detail: Any) -> None:
    """Every admin change goes into the audit log, with who ran it."""
    import getpass
    import time

    try:
        who = getpass.getuser()
    except Exception:
        who = "unknown"
    store.audit.append("admin", {"action": what, "by": who, **detail}, ts=time.time())


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; "y" or "yes" (any case) is yes.

    Every prompt uses this, so `keys trust-site` and `consent record` accept
    the same answers. Anything else, or end of input, is no.
    """
    import unicodedata

    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return unicodedata.normalize("NFKC", answer).strip().lower() in ("y", "yes")
