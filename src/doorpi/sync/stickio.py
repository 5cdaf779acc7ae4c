"""The USB stick's side of an import, run as its own user (issue #15).

A stick is anyone's input. ``doorpi-usb-sync`` (systemd/doorpi-usb-sync) mounts it
owned by the system user ``doorpi-stick``, which has no access to the gate's data
(/var/lib/doorpi is 0700 doorpi), and splits the import into three processes:

1. ``fetch`` as doorpi-stick: read ``<stick>/doorpi/<gate>.bundle`` (a regular file,
   not a symlink, at most ``MAX_BUNDLE_BYTES``, unchanged while read:
   `doorpi.sync.bundle.read_stable`), check its header (magic, version, length,
   addressed to this gate: `doorpi.sync.bundle.read_header`), and write its bytes to
   standard output. Only this process opens anything on the stick's file system.
2. ``doorpi sync import --staged`` as the gate's user doorpi: the bundle from
   standard input, checked, decrypted, verified and applied in a private folder;
   what goes back to the stick (report, public key and limits, outbox) as a tar
   stream on a file descriptor (`stage_out`).
3. ``deliver`` as doorpi-stick: write those files onto the stick, only names of
   the stick layout (docs/sync.md), regular files, bounded sizes; outbox files of
   this gate that the import no longer wrote are removed, as a direct import does.

The root part of the script only mounts and passes file descriptors between the
steps; neither doorpi-stick nor doorpi gains anything from the other.
Run as ``python -m doorpi.sync.stickio fetch|deliver STICK FINGERPRINT``.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

from doorpi.fsutil import write_atomic
from doorpi.sync.bundle import MAX_BUNDLE_BYTES, BundleError, read_header, read_stable

STICK_DIR = "doorpi"  # the same as doorpi.sync.importer.STICK_DIR (kept import-light)
_FP = r"[0-9a-f]{32}"
# What an import writes on a stick (docs/sync.md, "What is on the stick"), relative to it.
OUT_NAME = re.compile(
    rf"{STICK_DIR}/(?:{_FP}\.report|gates/{_FP}\.(?:pub|rules)|"
    rf"outbox/{_FP}/{_FP}\.(?:templates|cardkey))"
)
MAX_OUT_FILES = 1024  # outbox files: one or two per other gate of the site
MAX_OUT_BYTES = 4 * MAX_BUNDLE_BYTES  # the whole stream back to the stick


class StickError(ValueError):
    """A stick or a staged stream that the stick side refuses; the message is one line."""


def fetch(stick: Path, fingerprint: str, out: BinaryIO) -> bool:
    """Copy this gate's bundle from ``stick`` to ``out`` after the checks above.

    Returns False when the stick holds no bundle for this gate (a pairing visit).
    Raises BundleError (too large, not regular, changed while read, bad header,
    addressed to another gate) with the reason.
    """
    if not re.fullmatch(_FP, fingerprint):
        raise StickError(f"'{fingerprint}': not a gate fingerprint (32 hex digits)")
    path = stick / STICK_DIR / f"{fingerprint}.bundle"
    if not os.path.lexists(path):
        return False
    data = read_stable(path)
    _, recipient, _ = read_header(data)
    if recipient != fingerprint:
        raise BundleError("wrong_gate", f"{path.name}: addressed to gate {recipient[:12]}")
    out.write(data)
    out.flush()
    return True


def stage_out(folder: Path, out: BinaryIO, skip: set[str]) -> int:
    """Write the stick files an import left in ``folder`` (a staged stick) to ``out``
    as an uncompressed tar stream; returns how many. ``skip``: relative names left out
    (the bundle itself)."""
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if name in skip or not path.is_file() or path.is_symlink():
                continue
            if not OUT_NAME.fullmatch(name):
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
            count += 1
    return count


def deliver(stream: BinaryIO, stick: Path, fingerprint: str) -> list[str]:
    """Write the files of a `stage_out` stream onto ``stick``; returns their names.

    Only regular files whose names fit the stick layout (OUT_NAME) and at most
    MAX_OUT_FILES / MAX_OUT_BYTES; anything else raises StickError and nothing more
    is written. Afterwards this gate's outbox files that the stream did not carry
    are removed (the import withdrew them).
    """
    written: list[str] = []
    total = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name
            if not member.isreg() or not OUT_NAME.fullmatch(name):
                raise StickError(f"'{name}': not a file an import writes on a stick")
            total += member.size
            if len(written) >= MAX_OUT_FILES or total > MAX_OUT_BYTES:
                raise StickError(f"more than {MAX_OUT_FILES} files or {MAX_OUT_BYTES} bytes")
            src = tar.extractfile(member)
            if src is None:
                raise StickError(f"'{name}': unreadable in the stream")
            write_atomic(stick / name, src.read())
            written.append(name)
    outbox = stick / STICK_DIR / "outbox"
    if outbox.is_dir() and not outbox.is_symlink():
        for dest in outbox.iterdir():
            for suffix in (".templates", ".cardkey"):
                mine = dest / f"{fingerprint}{suffix}"
                name = mine.relative_to(stick).as_posix()
                if name not in written and not dest.is_symlink() and mine.is_file():
                    mine.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    """``fetch STICK FP`` (bundle to stdout; exit 0, 2 none, 1 refused) or
    ``deliver STICK FP`` (tar stream from stdin; exit 0 or 1). One line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ("fetch", "deliver"):
        print("usage: python -m doorpi.sync.stickio fetch|deliver STICK FINGERPRINT",
              file=sys.stderr)  # fmt: skip
        return 64
    action, stick, fp = args[0], Path(args[1]), args[2]
    try:
        if action == "fetch":
            return 0 if fetch(stick, fp, sys.stdout.buffer) else 2
        names = deliver(sys.stdin.buffer, stick, fp)
        print(f"doorpi-stick: {len(names)} file(s) written to the stick", file=sys.stderr)
        return 0
    except (BundleError, StickError, tarfile.TarError) as exc:
        print(f"doorpi-stick: {stick}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"doorpi-stick: {exc.filename or stick}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
