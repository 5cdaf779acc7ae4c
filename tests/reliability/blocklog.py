"""A block device that records its write stream: the userspace stand-in for dm-log-writes.

The kernels these tests run on (CI's and the developers') are built without the
device mapper (no /dev/mapper/control, no modules to load), so `dm-log-writes`
and `dm-flakey` cannot be used. This FUSE filesystem exposes one file,
``disk.img``, backed by an image file; a loop device is put on top of it and the
shipped filesystem mounted there. Every write the loop device sends (offset and
bytes, in completion order) and every flush (fsync, which the loop driver issues
for REQ_PREFLUSH and FUA) is appended to a log before the write is acknowledged,
so replaying any prefix of the log onto the starting image gives the disk as a
power cut at that moment would leave it (a device that writes in order; a cache
that loses or reorders unflushed writes is modelled by `replay(..., drop=...)`).

The log format, one entry after another: ``kind`` (1 byte: b"W" write, b"F" flush),
``offset`` (8 bytes, little-endian), ``length`` (4 bytes), then ``length`` bytes.

Usage (as root): ``python blocklog.py IMAGE LOG MOUNTPOINT`` (runs in the foreground,
single-threaded so the log is in the order the kernel completed the requests).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<cQI")
NAME = "disk.img"


def entries(log: Path, upto: int | None = None) -> Iterator[tuple[bytes, int, bytes]]:
    """The complete entries in the first ``upto`` bytes of ``log``: (kind, offset, data)."""
    raw = log.read_bytes()
    end = len(raw) if upto is None else min(upto, len(raw))
    pos = 0
    while pos + HEADER.size <= end:
        kind, offset, length = HEADER.unpack_from(raw, pos)
        if pos + HEADER.size + length > end:
            return
        yield kind, offset, raw[pos + HEADER.size : pos + HEADER.size + length]
        pos += HEADER.size + length


def replay(base: Path, log: Path, out: Path, n: int, drop: set[int] | None = None) -> None:
    """Write ``base`` plus the first ``n`` log entries (minus the ``drop`` ones) to ``out``."""
    with base.open("rb") as src, out.open("wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        for i, (kind, offset, data) in enumerate(entries(log)):
            if i >= n:
                break
            if kind == b"W" and not (drop and i in drop):
                dst.seek(offset)
                dst.write(data)


def main() -> None:
    import mfusepy as fuse

    image, log_path, mountpoint = sys.argv[1], sys.argv[2], sys.argv[3]
    img = os.open(image, os.O_RDWR)
    size = os.fstat(img).st_size
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    class Recorder(fuse.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            if path == "/" + NAME:
                return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": size}
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: Any) -> list[str]:
            return [".", "..", NAME]

        def open(self, path: str, flags: int) -> int:
            return 0

        def read(self, path: str, length: int, offset: int, fh: Any) -> bytes:
            return os.pread(img, length, offset)

        def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
            if offset + len(data) > size:
                raise fuse.FuseOSError(errno.ENOSPC)
            os.write(log, HEADER.pack(b"W", offset, len(data)) + bytes(data))
            os.pwrite(img, data, offset)
            return len(data)

        def fsync(self, path: str, datasync: int, fh: Any) -> int:
            os.write(log, HEADER.pack(b"F", 0, 0))
            return 0

        def flush(self, path: str, fh: Any) -> int:
            return 0

        def truncate(self, path: str, length: int, fh: Any = None) -> int:
            return 0

    Path(log_path + ".ready").touch()
    fuse.FUSE(Recorder(), mountpoint, foreground=True, nothreads=True)


if __name__ == "__main__":
    main()
