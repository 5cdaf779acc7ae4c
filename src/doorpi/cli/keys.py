"""`doorpi keys init|show|export|trust-site`: the gate's identity for USB sync."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from doorpi.cli import CliError, common
from doorpi.fsutil import write_atomic
from doorpi.store.db import set_state
from doorpi.store.secrets import DeviceSecrets
from doorpi.sync.importer import (
    SITE_CARD,
    STICK_DIR,
    BundleImporter,
    GateRules,
    export_identity,
)
from doorpi.sync.keys import (
    GateIdentity,
    KeyFileError,
    PublicIdentity,
    fingerprint_matches,
    pretty,
)
from doorpi.sync.rules import RULES_SUFFIX, signed_rules


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("keys", help="the gate's keys for signed, encrypted USB sync")
    ks = k.add_subparsers(dest="action", required=True)
    from doorpi.cli.consent import add_rotate

    add_rotate(ks)  # `keys rotate [--revoke]`: the face vault key (doorpi.privacy)
    init = ks.add_parser("init", help="create the gate's key pairs (once)")
    init.add_argument("--tpm", metavar="TCTI", nargs="?", const="device:/dev/tpmrm0",
                      help="make the device master and vault key in a TPM 2.0, never on the "
                           "SD card (default TCTI device:/dev/tpmrm0)")  # fmt: skip
    init.add_argument("--tpm-if-present", metavar="DEVICE", type=Path,
                      help="the image's first boot: --tpm device:DEVICE when DEVICE exists "
                           "(e.g. /dev/tpmrm0), else the keys on the SD card")  # fmt: skip
    init.set_defaults(func=cmd_init)
    tpm = ks.add_parser("use-tpm", help="move the device key and face vault key into a TPM 2.0")
    tpm.add_argument("--tcti", default="device:/dev/tpmrm0", help="TPM access (tpm2-tss TCTI)")
    tpm.set_defaults(func=cmd_use_tpm)
    show = ks.add_parser("show", help="fingerprint, trusted site, last bundle")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    ex = ks.add_parser("export", help="write the gate's public key to a stick or a file")
    ex.add_argument("path", type=Path, help="the stick's mount point, or a file name")
    ex.set_defaults(func=cmd_export)
    tr = ks.add_parser("trust-site", help="pin the site's public key (pairing)")
    tr.add_argument("path", type=Path, help="site.pub, or a stick holding doorpi/site.pub")
    tr.add_argument("--fingerprint", help="the fingerprint `doorpi admin init` showed")
    tr.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    tr.add_argument("--replace", action="store_true", help="replace a different trusted site")
    tr.set_defaults(func=cmd_trust_site)


def identity(cfg: common.Config) -> GateIdentity:
    """The gate's keys, named as pairing shows it (`doorpi.settings.gate_name`)."""
    from doorpi.settings import gate_name

    try:
        gate = GateIdentity.load(cfg.keys_dir, cfg.door.name)
    except KeyFileError as exc:
        raise CliError(f"{exc} (run `doorpi keys init` first)") from None
    return replace(gate, name=gate_name(cfg, gate.fingerprint))


def cmd_init(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    tcti = getattr(args, "tpm", None)
    device = getattr(args, "tpm_if_present", None)
    if tcti and device:
        raise CliError("keys init: --tpm and --tpm-if-present exclude each other")
    if device is not None and device.exists():
        # A TPM that is there but fails is an error, never a silent fall back to the card.
        tcti = f"device:{device}"
    if tcti:
        _root_in_tpm(cfg, tcti)
    try:
        gate = GateIdentity.create(cfg.keys_dir, cfg.door.name)
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    DeviceSecrets.load_or_create(cfg.keys_dir)
    from doorpi.settings import gate_name
    from doorpi.store.keyroot import open_root

    print(f"key root: {open_root(cfg.keys_dir).holds()}")  # before the fingerprint, kept last
    print(f"gate {gate_name(cfg, gate.fingerprint)!r}: keys created in {cfg.keys_dir}")
    print(f"gate fingerprint: {pretty(gate.fingerprint)}")
    return 0


def _root_in_tpm(cfg: common.Config, tcti: str) -> None:
    """First boot with a TPM: the key root goes to the TPM before any key exists, so
    the device master is made there and never written to the SD card."""
    from doorpi.store.keyroot import MASTER_FILE, KeyRootError, move_to_tpm, open_root

    try:
        if (cfg.keys_dir / MASTER_FILE).exists() or open_root(cfg.keys_dir).kind == "tpm":
            raise CliError(f"{cfg.keys_dir}: keys exist already; `doorpi keys use-tpm` moves them")
        move_to_tpm(cfg.keys_dir, tcti)  # no master on file: nothing to move or wipe
    except KeyRootError as exc:
        raise CliError(str(exc)) from None


def cmd_use_tpm(args: argparse.Namespace) -> int:
    """Move the key root into the TPM (doorpi.store.keyroot.move_to_tpm). Run with
    the gate stopped; the vault is opened first so an earlier version's key file is
    recorded for conversion."""
    from doorpi.privacy.vault import TemplateVault, VaultError
    from doorpi.store.keyroot import KeyRootError, move_to_tpm

    cfg = common.config(args)
    store = common.storage(cfg)
    try:
        TemplateVault(store.db, cfg.keys_dir, store.audit)
        root = move_to_tpm(cfg.keys_dir, args.tcti)
    except (KeyRootError, VaultError) as exc:
        raise CliError(str(exc)) from None
    common.audit_admin(store, "keys_use_tpm", tcti=args.tcti)
    print(f"key root: {root.holds()}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    gate = identity(cfg)
    store = common.storage(cfg)
    imp = BundleImporter(store, gate, GateRules.from_config(cfg))
    site = imp.trusted_site()
    info = {
        "gate": gate.name,
        "fingerprint": gate.fingerprint,
        "site": site.fingerprint if site else None,
        "site_name": site.name if site else None,
        "last_sequence": imp.last_sequence(),
    }
    if args.json:
        common.print_json(info)
        return 0
    print(f"gate:        {gate.name}")
    print(f"fingerprint: {pretty(gate.fingerprint)}")
    if site:
        print(f"site:        {site.name} {pretty(site.fingerprint)}")
    else:
        print("site:        none trusted yet (`doorpi keys trust-site`)")
    print(f"last bundle: {info['last_sequence'] or 'none'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    gate = identity(cfg)
    dest: Path = args.path
    try:
        if dest.is_dir():  # with the gate's signed limits, for `doorpi admin check`
            dest = export_identity(gate, GateRules.from_config(cfg), dest / STICK_DIR / "gates")
        else:  # the signed limits beside it, where `doorpi admin gate add FILE` looks
            write_atomic(dest, (gate.public.to_json() + "\n").encode())
            rules = signed_rules(gate.signing, gate.fingerprint, GateRules.from_config(cfg))
            write_atomic(dest.with_suffix(RULES_SUFFIX), rules)
    except OSError as exc:
        raise CliError(f"{dest}: cannot write: {exc.strerror}") from None
    print(f"public key of gate {gate.name!r} written to {dest}")
    print(f"gate fingerprint: {pretty(gate.fingerprint)}")
    site_card = args.path / STICK_DIR / SITE_CARD
    if args.path.is_dir() and site_card.exists():
        print(
            f"the stick carries a site key; trust it with `doorpi keys trust-site {args.path} "
            "--fingerprint FP` (FP as `doorpi admin init` showed it)"
        )
    return 0


def cmd_trust_site(args: argparse.Namespace) -> int:
    cfg = common.config(args)
    gate = identity(cfg)
    path: Path = args.path
    if path.is_dir():
        path = path / STICK_DIR / SITE_CARD
    try:
        site = PublicIdentity.read(path, "site")
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    if args.fingerprint is not None:
        if not fingerprint_matches(site.fingerprint, args.fingerprint):
            raise CliError(
                f"site key fingerprint {pretty(site.fingerprint)} does not match --fingerprint "
                "(give all 32 hex digits `doorpi admin init` showed)"
            )
    elif not args.yes:
        print(f"site {site.name!r} fingerprint: {pretty(site.fingerprint)}")
        if not sys.stdin.isatty():
            raise CliError(
                "confirm with --fingerprint (the one `doorpi admin init` showed) or --yes"
            )
        if not common.confirm("is this the fingerprint on the admin's screen?"):
            raise CliError(
                f"site {site.name!r}: not trusted: the fingerprint was not confirmed; nothing changed"
            )
    store = common.storage(cfg)
    imp = BundleImporter(store, gate, GateRules.from_config(cfg))
    old = imp.trusted_site()
    if old is not None and old.fingerprint != site.fingerprint:
        if not args.replace:
            raise CliError(
                f"this gate already trusts site {pretty(old.fingerprint)}; use --replace to re-pair"
            )
        set_state(store.db, "sync_sequence", "0")  # the new site counts from 1
    imp.trust_site(site)
    common.audit_admin(store, "site_trusted", site=site.fingerprint)
    print(f"gate {gate.name!r} now accepts bundles signed by site {pretty(site.fingerprint)}")
    return 0
