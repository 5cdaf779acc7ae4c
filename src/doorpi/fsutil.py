"""Small file helpers shared by the store, sync, selftest and vision modules."""

from __future__ import annotations

import hashlib
import os
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
