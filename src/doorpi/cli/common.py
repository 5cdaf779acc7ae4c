"""Helpers shared by the command modules: loading config and storage, printing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import tzinfo
from typing import Any as Any

from doorpi.cli import CliError
from doorpi.config import Config as Config
from doorpi.config import ConfigError, load_config
from doorpi.sitetime import DEFAULT_TIMEZONE, parse_local, show, zone
from doorpi.store import Storage as Storage
from doorpi.store.db import DatabaseError, StorageUnavailable
from doorpi.store.secrets import KeyError_

# EX_TEMPFAIL (sysexits.h): the data partition may come back (space freed, remounted),
# so systemd restarts the gate; exit 2 (RestartPreventExitStatus) is for faults a
# restart cannot fix.
EXIT_TRANSIENT = 75


@contextmanager
def as_cli_error(*kinds: type[Exception]) -> Iterator[None]:
    """The domain's own errors (each already one line naming what and where)
    become the CLI's: printed as they are, exit 2."""
    try:
        yield
    except kinds as exc:
        raise CliError(str(exc)) from None


_site_tz: list[tzinfo] = [zone(DEFAULT_TIMEZONE)]


def site_tz() -> tzinfo:
    """The zone of the config this command loaded (site.timezone)."""
    return _site_tz[0]


def config(args: argparse.Namespace) -> Config:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    _site_tz[0] = cfg.site.tz  # every time this command shows or reads is site-local
    return cfg


def storage(cfg: Config, degrade: bool = False, busy_ms: int | None = None) -> Storage:
    """The store, or the CLI's one-line error (exit 75 when the partition may come back).
    ``degrade``: a read-only or full partition opens the database read-only."""
    from doorpi.store.db import BUSY_TIMEOUT_MS

    try:
        return Storage.open(cfg.site.data_dir, degrade=degrade, busy_ms=busy_ms or BUSY_TIMEOUT_MS)
    except StorageUnavailable as exc:
        err = CliError(str(exc))
        err.code = EXIT_TRANSIENT  # type: ignore[attr-defined]
        raise err from None
    except (DatabaseError, KeyError_, OSError) as exc:
        raise CliError(str(exc)) from None


def resident(store: Storage, rid: int) -> Any:
    """The resident with this id, or the CLI's one-line error."""
    r = store.residents.get(rid)
    if r is None:
        raise CliError(f"no resident {rid}")
    return r


def when(epoch: float | None, until: bool = False) -> str:
    """Site-local time for people; ``until`` shows an end-of-day bound as "24:00"."""
    return show(epoch, site_tz(), until=until)


def parse_date(text: str | None, flag: str, until: bool = False) -> float | None:
    """A date typed at the device, in the site's zone (see `doorpi.sitetime`):
    a bare date with ``until`` means through that local day."""
    if not text:
        return None
    try:
        return parse_local(text, site_tz(), until=until)
    except ValueError:
        raise CliError(
            f"{flag}: {text!r} is not a date like 2027-06-30 or 2027-06-30T18:00"
        ) from None


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
