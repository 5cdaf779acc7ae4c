"""Small file helpers shared by the store, sync, selftest and vision modules."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temporary file, fsync, rename, fsync the folder: a power cut or
    a pulled stick leaves the old file or the new one, never half of one. The
    file is created with ``mode`` (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # some file systems (vfat sticks) refuse a directory fsync
    finally:
        os.close(dfd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


SHARED_ENV = "DOORPI_SHARED_DIR"


def find_shared_dir(*starts: Path, need: str = "") -> Path | None:
    """The project's shared data folder (photos, field cases), or None.

    Looks in ``$DOORPI_SHARED_DIR`` first, then for a folder named ``shared``
    in each of ``starts`` and every folder above them (the clone's parent
    holds it in development and CI). ``need`` names a path that must exist
    inside it (``"faces"``, ``"faces/X/1.jpg"``). No fixed absolute path is
    ever tried: a machine without the folder gets None and says so.
    """
    candidates: list[Path] = []
    if os.environ.get(SHARED_ENV):
        candidates.append(Path(os.environ[SHARED_ENV]))
    for start in starts:
        here = start.resolve()
        candidates += [p / "shared" for p in (here, *here.parents)]
    for base in candidates:
        if (base / need).exists() if need else base.is_dir():
            return base
    return None


def _unescape_mount_field(field: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) undone."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_only_layer(path: Path, mountinfo: str | None = None) -> str:
    """Which layer makes ``path`` read-only: "file system", "mount" or "".

    "file system": the file system itself is read-only (its superblock options say
    ``ro``: mounted read-only, or remounted so after errors), so nothing can write it.
    "mount": only the mount this process sees is read-only (a read-only bind mount, such
    as systemd's ``ReadOnlyPaths=``/``ProtectSystem=strict`` for one service); the
    partition is writable for the processes that mount it read-write. "": writable at
    both layers (permissions aside).

    Read from /proc/self/mountinfo (proc(5): field 6 is the mount's options, and after
    the " - " separator the file system type, its source and the superblock options);
    ``mountinfo`` is that text, for tests. The mount is the one whose mount point is the
    longest prefix of ``path`` resolved (symbolic links followed); no match gives ""."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    target = os.path.realpath(path)
    best, layer = -1, ""
    for line in text.splitlines():
        fields = line.split(" ")
        if " - " not in line or len(fields) < 10:
            continue
        point = _unescape_mount_field(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if not inside or len(point) < best:
            continue
        sep = fields.index("-", 6)
        mount_ro = "ro" in fields[5].split(",")
        super_ro = "ro" in fields[sep + 3].split(",") if len(fields) > sep + 3 else False
        best = len(point)
        layer = "file system" if super_ro else "mount" if mount_ro else ""
    return layer
