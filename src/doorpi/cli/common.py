"""Helpers shared by the command modules: loading config and storage, printing."""

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


def storage(cfg: Config) -> Storage:
    try:
        return Storage.open(cfg.site.data_dir)
    except (DatabaseError, KeyError_, OSError) as exc:
        raise CliError(str(exc)) from None


def resident(store: Storage, rid: int) -> Any:
    """The resident with this id, or the CLI's one-line error."""
    r = store.residents.get(rid)
    if r is None:
        raise CliError(f"no resident {rid}")
    return r


def when(epoch: float | None) -> str:
    """Local date and time for people (`doorpi.cli.human.when`)."""
    from doorpi.cli.human import when as local_when

    return local_when(epoch)


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
