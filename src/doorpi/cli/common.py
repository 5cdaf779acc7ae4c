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
from datetime import tzinfo
from typing import Any as Any

from doorpi.cli import CliError
from doorpi.config import Config as Config
from doorpi.config import ConfigError, load_config
from doorpi.sitetime import DEFAULT_TIMEZONE, parse_local, show, zone
from doorpi.store import Storage as Storage
from doorpi.store.db import DatabaseError, StorageUnavailable
from doorpi.store.secrets import KeyError_
from doorpi.validation import safe_text

safe = safe_text  # text from people or files, made safe to print

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
    """The config file ``--config`` names (default: $DOORPI_CONFIG, else
    /etc/doorpi/doorpi.toml), or the CLI's one-line error naming that file."""
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        from doorpi.cli import DEFAULT_CONFIG

        if str(args.config) == DEFAULT_CONFIG and "no such file" in str(exc):
            raise CliError(f"{exc}; the default file: --config FILE names another") from None
        raise CliError(str(exc)) from None
    _site_tz[0] = cfg.site.tz  # every time this command shows or reads is site-local
    return cfg


def storage(
    cfg: Config, degrade: bool = False, busy_ms: int | None = None, *, create: bool = True
) -> Storage:
    """The store, or the CLI's one-line error (exit 75 when the partition may come back).
    ``degrade``: a read-only or full partition opens the database read-only.
    ``create=False`` (commands that only look): a missing data directory is an error
    naming ``site.data_dir``, never silently made."""
    from doorpi.store.db import BUSY_TIMEOUT_MS

    where = f"site.data_dir = {cfg.site.data_dir} (in {cfg.path})"
    if not create and not cfg.site.data_dir.exists():
        raise CliError(f"{where}: no such folder (the gate creates it when it first starts)")
    if cfg.site.data_dir.exists() and not cfg.site.data_dir.is_dir():
        raise CliError(f"{where}: a file, not a folder")
    from doorpi.store import DB_NAME, KEYS_DIR

    if not create and not any((cfg.site.data_dir / n).exists() for n in (DB_NAME, KEYS_DIR)):
        # An empty folder: looking must not make a store (a lost one would look new).
        raise CliError(
            f"{where}: no gate store here yet (the gate creates it when it first starts)"
        )
    try:
        return Storage.open(cfg.site.data_dir, degrade=degrade, busy_ms=busy_ms or BUSY_TIMEOUT_MS)
    except StorageUnavailable as exc:
        err = CliError(str(exc))
        err.code = EXIT_TRANSIENT  # type: ignore[attr-defined]
        raise err from None
    except (DatabaseError, KeyError_) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{where}: {exc.strerror or exc}") from None


def resident(store: Storage, rid: int) -> Any:
    """The resident with this id, or the CLI's one-line error."""
    r = store.residents.get(rid)
    if r is None:
        raise CliError(f"no resident {rid} here (`doorpi resident list` shows who is)")
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


def who_is(r: Any) -> str:
    """A resident as a person names them in a message: "Alice Wang (resident 3)"."""
    return f"{safe(r.name)} (resident {r.id})"


KEYPAD_DIGITS = "only the digits 0-9 a keypad has"


def new_pin(args: argparse.Namespace, cfg: Config, what: str = "PIN", whom: str = "") -> str:
    """A new PIN from stdin (``--stdin``) or typed twice without echo, as keypad
    digits (full-width read as 0-9) and within the keypad's PIN rules.

    ``whom`` (`who_is`) names the resident in every message. Raises `CliError`
    (one line: what, for whom, what was wrong) when the two typings differ or the
    PIN breaks a rule.
    """
    import getpass

    from doorpi import validation
    from doorpi.store.credentials import PinPolicyError, check_pin_rules

    where = f"{what} for {whom}" if whom else what
    if args.stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = getpass.getpass(f"new {where}: ")
        if getpass.getpass("again: ") != pin:
            raise CliError(f"{where}: the two typings differ; nothing changed")
    try:
        pin = validation.pin_digits(pin)
        check_pin_rules(pin, cfg.keypad.pin_min_length, cfg.keypad.pin_max_length)
    except (validation.InputError, PinPolicyError) as exc:
        why = KEYPAD_DIGITS if "digits 0-9 only" in str(exc) else str(exc)
        raise CliError(f"{where}: {why}; nothing changed") from None
    return pin


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


_operator: list[str | None] = [None]


def set_operator(label: str | None) -> None:
    """The operator signed in for this command (`doorpi.cli.operator.authorise`)."""
    _operator[0] = label


def who() -> str:
    """Who runs this admin action: ``operator:NAME`` once signed in, else
    ``unauthenticated:uid=N`` (the real uid; never $LOGNAME, which anyone can set)."""
    import os

    return _operator[0] or f"unauthenticated:uid={os.getuid()}"


def audit_admin(store: Storage, what: str, **detail: Any) -> None:
    """Every admin change goes into the audit log, with who ran it (`who`)."""
    import time

    store.audit.append("admin", {"action": what, "by": who(), **detail}, ts=time.time())


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
