"""The dm-log-writes log, read into the power-cut rig's write stream, and its replay.

Layout (kernel Documentation/admin-guide/device-mapper/log-writes.rst and
drivers/md/dm-log-writes.c, target version 1.1), all little-endian:

- the super block at byte 0: ``magic`` u64 (0x6a736677736872), ``version`` u64 (1),
  ``nr_entries`` u64, ``sectorsize`` u32 (the data device's logical block size);
- entries from byte ``sectorsize`` on, each a ``sectorsize`` block holding
  ``sector`` u64, ``nr_sectors`` u64 (both in ``sectorsize`` units), ``flags`` u64
  (FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16), ``data_len`` u64; a mark's text
  (``data_len`` bytes) follows in the same block; a write's ``nr_sectors`` blocks of
  data follow the entry block (a discard carries none).

The kernel logs a write once it is on the medium: plain writes when the next flush
completes (just before that flush), FUA writes when they complete, a mark when it is
asked for. Into the rig's stream (``W`` write, ``F`` flush, as before) that becomes:
a write is W; a flush with no data is F; a flush carrying data (REQ_PREFLUSH) is F then
W; a FUA write is W then F (write plus flush); a discard is W of zeroes (what a cut
can leave is then either the old bytes or zeroes; ext4 here is mounted without
``discard``, so none is expected); a mark is no entry, it records how many stream
entries came before it. The super block's ``nr_entries`` is rewritten at each FUA
write and mark, so it counts every entry up to the last of those.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = 0x6A736677736872
VERSION = 1
SUPER = struct.Struct("<QQQI")
ENTRY = struct.Struct("<QQQQ")
FLUSH, FUA, DISCARD, MARK, METADATA = 1, 2, 4, 8, 16


class LogError(ValueError):
    """The log is not a dm-log-writes log, or is cut short (one line, naming where)."""


@dataclass(frozen=True)
class Write:
    kind: bytes  # b"W" or b"F"
    offset: int  # bytes into the device
    length: int  # bytes
    at: int  # where the data starts in the log file; -1: zeroes (a discard); F: unused


@dataclass
class Stream:
    sectorsize: int
    writes: list[Write] = field(default_factory=list)
    marks: list[tuple[str, int]] = field(default_factory=list)  # (text, writes before it)
    log_entries: int = 0  # entries in the kernel's log (super block's nr_entries)
    flags: dict[str, int] = field(default_factory=dict)  # kernel entries by flag

    @property
    def flushes(self) -> int:
        return sum(1 for w in self.writes if w.kind == b"F")


def parse(log: Path) -> Stream:
    """Every entry the super block counts, as the rig's stream (see the module text)."""
    with log.open("rb") as f:
        head = f.read(SUPER.size)
        if len(head) < SUPER.size:
            raise LogError(f"{log}: {len(head)} bytes, no dm-log-writes super block")
        magic, version, count, sectorsize = SUPER.unpack(head)
        if magic != MAGIC:
            raise LogError(f"{log}: magic {magic:#x} at byte 0, not dm-log-writes ({MAGIC:#x})")
        if version != VERSION:
            raise LogError(f"{log}: dm-log-writes version {version}, this reads {VERSION}")
        if sectorsize < 512 or sectorsize & (sectorsize - 1):
            raise LogError(f"{log}: sector size {sectorsize} in the super block")
        size = log.stat().st_size
        stream = Stream(sectorsize, log_entries=count)
        names = {FLUSH: "flush", FUA: "fua", DISCARD: "discard", MARK: "mark",
                 METADATA: "metadata"}  # fmt: skip
        pos = sectorsize
        for i in range(count):
            f.seek(pos)
            raw = f.read(sectorsize)
            if len(raw) < sectorsize:
                raise LogError(f"{log}: entry {i} of {count} at byte {pos} is past the end")
            sector, nr, flags, data_len = ENTRY.unpack_from(raw)
            for bit, name in names.items():
                if flags & bit:
                    stream.flags[name] = stream.flags.get(name, 0) + 1
            if flags & ~(FLUSH | FUA | DISCARD | MARK | METADATA):
                raise LogError(f"{log}: entry {i} at byte {pos}: unknown flags {flags:#x}")
            data = pos + sectorsize
            offset, length = sector * sectorsize, nr * sectorsize
            if flags & MARK:
                if data_len > sectorsize - ENTRY.size:
                    raise LogError(f"{log}: entry {i} at byte {pos}: mark of {data_len} bytes")
                text = raw[ENTRY.size : ENTRY.size + data_len].decode("utf-8", "replace")
                stream.marks.append((text, len(stream.writes)))
            elif flags & DISCARD:
                stream.writes.append(Write(b"W", offset, length, -1))
            else:
                if data_len:
                    raise LogError(f"{log}: entry {i} at byte {pos}: inline data (DAX) not read")
                if data + length > size:
                    raise LogError(f"{log}: entry {i}'s data ({length} bytes at {data}) "
                                   f"is past the end ({size})")  # fmt: skip
                if flags & FLUSH:
                    stream.writes.append(Write(b"F", 0, 0, 0))
                if length:
                    stream.writes.append(Write(b"W", offset, length, data))
                if flags & FUA and length:
                    stream.writes.append(Write(b"F", 0, 0, 0))
            pos = data + (0 if flags & DISCARD else length)
        return stream


def replay(base: Path, log: Path, stream: Stream, out: Path, n: int,
           drop: set[int] | None = None) -> None:  # fmt: skip
    """Write ``base`` plus the first ``n`` stream entries (minus the ``drop`` ones) to ``out``."""
    with base.open("rb") as src, out.open("wb") as dst, log.open("rb") as lg:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        for i, w in enumerate(stream.writes[:n]):
            if w.kind != b"W" or (drop and i in drop):
                continue
            dst.seek(w.offset)
            if w.at < 0:
                dst.write(bytes(w.length))
            else:
                lg.seek(w.at)
                dst.write(lg.read(w.length))
