"""`doorpi sync import PATH`: apply the admin's bundle from a stick (or a file).

Run by hand or by doorpi-sync@.service when a stick is plugged in. Prints one
line for the journal; exit 0 when applied (entries the gate's limits refused
are named in the report), 1 when refused (the report on the stick and the audit
log say why), 2 when there is nothing to import (a pairing visit).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from doorpi.cli import CliError, common
from doorpi.cli.keys import identity
from doorpi.sync.importer import (
    STICK_DIR,
    BundleImporter,
    GateRules,
    TemplateSink,
    TemplateSource,
)
from doorpi.sync.keys import GateIdentity
from doorpi.sync.report import SyncReport
from doorpi.sync.templates import unseal_for_vault

if TYPE_CHECKING:
    from doorpi.privacy.enrolment import FacePrivacy


# What doorpi.sync.importer really does (BundleImporter._screen, _apply, _upsert and
# bundle.check_consistency): keep in step with it.
IMPORT_DESCRIPTION = """\
Apply the admin's bundle and write the signed report (onto the stick).

Skipped, the rest applies: a resident entry past this gate's own limits
(a schedule it does not have, a PIN too short, too long or too weak) is named in
the report; a resident the gate already holds keeps the previous entry, a new
one is not added. Face templates the gate cannot take (face off, no impact
assessment) are counted as skipped.

Refused whole, nothing changes: a bad signature, another gate's bundle, an old
or replayed sequence, a malformed bundle, a key, keypad number or card given
twice in it, a keypad number or card already used by another resident on this
gate, a face template without consent to sharing, a sealed part that does
not open, settings this gate refuses.

Exit 0 applied, 1 refused (the report and `doorpi log` say why), 2 nothing to
import (a pairing visit)."""


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sync", help="import the admin's bundle from a USB stick")
    ss = s.add_subparsers(dest="action", required=True)
    im = ss.add_parser(
        "import",
        help="apply a bundle and write a report (an entry past this gate's limits is named "
        "and skipped; a conflict refuses the whole bundle)",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    im.add_argument(
        "path", type=Path, help="the stick's mount point, a .bundle file, or - (see --tar-fd)"
    )
    im.add_argument(
        "--tar-fd", type=int, metavar="FD",
        help="with path -: the bundle on standard input (empty: none), and the files for "
        "the stick as a tar stream to this file descriptor (doorpi-usb-sync; doorpi.sync.stickio)",
    )  # fmt: skip
    im.add_argument("--json", action="store_true", help="print the report (without audit)")
    im.set_defaults(func=cmd_import)


def _face_privacy(cfg: common.Config, store: common.Storage) -> FacePrivacy | None:
    """The face facade, or None while face is off."""
    if not cfg.face.enabled:
        return None
    from doorpi.privacy.enrolment import build_face_privacy

    return build_face_privacy(cfg, store)


def template_sink(
    cfg: common.Config, store: common.Storage, gate: GateIdentity
) -> TemplateSink | None:
    """The face vault that receives templates from other gates; None while face is off."""
    privacy = _face_privacy(cfg, store)
    if privacy is None:
        return None
    from doorpi.privacy.share import SiteTemplateSink

    return SiteTemplateSink(privacy, lambda sealed: unseal_for_vault(sealed, gate))


def template_source(cfg: common.Config, store: common.Storage) -> TemplateSource | None:
    """The face vault that gives this gate's templates to share; None while face is off."""
    privacy = _face_privacy(cfg, store)
    if privacy is None or not privacy.settings.allow_site_sharing:
        return None
    from doorpi.privacy.share import SiteTemplateSource

    return SiteTemplateSource(privacy)


def _import_staged(
    imp: BundleImporter, gate: GateIdentity, tar_fd: int | None
) -> tuple[SyncReport, Path | None]:
    """The gate's step of doorpi-usb-sync: the stick itself is read and written by
    user doorpi-stick (doorpi.sync.stickio); here a private folder stands in for it."""
    import os
    import sys
    import tempfile

    from doorpi.fsutil import write_atomic
    from doorpi.sync.bundle import MAX_BUNDLE_BYTES
    from doorpi.sync.stickio import stage_out

    if tar_fd is None:
        raise CliError("sync import -: needs --tar-fd FD for the files that go to the stick")
    data = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)  # one byte over: refused as too large
    with tempfile.TemporaryDirectory(prefix="doorpi-stage-") as tmp:
        folder = Path(tmp)
        (folder / STICK_DIR).mkdir()
        bundle = f"{STICK_DIR}/{gate.fingerprint}.bundle"
        if data:
            write_atomic(folder / bundle, data)
        report, out = imp.import_stick(folder)
        with os.fdopen(tar_fd, "wb") as stream:
            stage_out(folder, stream, {bundle})
    return report, (Path("<stick>") / STICK_DIR / out.name) if out else None


def cmd_import(args: argparse.Namespace) -> int:
    from doorpi.config import ConfigError
    from doorpi.settings import Layers

    cfg = common.config(args)
    gate = identity(cfg)
    store = common.storage(cfg)
    with common.as_cli_error(ConfigError):
        layers = Layers.load(Path(args.config))
    imp = BundleImporter(
        store,
        gate,
        GateRules.from_config(cfg),
        sink=template_sink(cfg, store, gate),
        source=template_source(cfg, store),
        layers=layers,
    )
    path: Path = args.path
    out: Path | None
    if str(path) == "-":
        report, out = _import_staged(imp, gate, args.tar_fd)
    elif path.is_dir():
        if not (path / STICK_DIR).is_dir():
            raise CliError(f"{path}: no {STICK_DIR}/ folder: not an admin stick")
        report, out = imp.import_stick(path)
    else:
        if not path.exists():
            raise CliError(f"{path}: no such file or directory")
        report = imp.import_file(path)
        # Named after this gate, never after the file: another gate's bundle imported
        # here by mistake must not overwrite that gate's unread report.
        out = path.parent / f"{gate.fingerprint}.report"
        try:
            imp.write_report(report, out)
        except OSError:
            out = None
    if args.json:
        doc = dict(vars(report))
        doc.pop("audit")
        common.print_json(doc)
    else:
        where = f"report: {out}" if out else "report NOT written: stick read-only or removed"
        print(f"doorpi sync: {report.summary()} ({where})")
        if report.changes.get("settings_changed"):
            print("doorpi sync: the admin's settings changed: they apply when the gate restarts")
    return {"applied": 0, "current": 0, "waiting": 2}.get(report.result, 1)
