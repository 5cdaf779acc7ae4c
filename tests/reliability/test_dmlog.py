"""Known answers for the dm-log-writes reader (dmlog.py) and the guest's initramfs
pieces (dmvm.py), built by hand from the documented layout. That the real kernel's
log reads back is test_powercut.py's part: its replay equals the guest's disk."""

from __future__ import annotations

import gzip
import lzma
import re
import struct
from pathlib import Path

import pytest
from dmlog import DISCARD, FLUSH, FUA, MAGIC, MARK, METADATA, LogError, Write, parse, replay
from dmvm import VMError, cpio, module_order


def entry(ss: int, sector: int, nr: int, flags: int, text: bytes = b"") -> bytes:
    block = struct.pack("<QQQQ", sector, nr, flags, len(text)) + text
    return block + bytes(ss - len(block))


def log_file(path: Path, ss: int, entries: list[bytes], count: int | None = None,
             magic: int = MAGIC, version: int = 1) -> Path:  # fmt: skip
    n = sum(1 for e in entries if len(e) == ss) if count is None else count
    head = struct.pack("<QQQI", magic, version, n, ss)
    path.write_bytes(head + bytes(ss - len(head)) + b"".join(entries))
    return path


def sample(path: Path, ss: int = 512) -> Path:
    """write A (2 sectors at 8), flush, mark, FUA metadata write B at 2, discard at 8,
    flush+FUA write C at 4, mark."""
    return log_file(path, ss, [
        entry(ss, 8, 2, 0), b"A" * 2 * ss,
        entry(ss, 0, 0, FLUSH),
        entry(ss, 0, 0, MARK, b"ack:audit:0"),
        entry(ss, 2, 1, FUA | METADATA), b"B" * ss,
        entry(ss, 8, 1, DISCARD),
        entry(ss, 4, 1, FLUSH | FUA), b"C" * ss,
        entry(ss, 0, 0, MARK, b"dm-log-writes-end"),
    ], count=7)  # fmt: skip


@pytest.mark.parametrize("ss", [512, 4096])
def test_entries_become_the_rigs_stream(tmp_path: Path, ss: int) -> None:
    s = parse(sample(tmp_path / "log", ss))
    data = ss * 2  # super block, then the first entry block
    assert s.sectorsize == ss and s.log_entries == 7
    assert s.writes == [
        Write(b"W", 8 * ss, 2 * ss, data),
        Write(b"F", 0, 0, 0),
        Write(b"W", 2 * ss, ss, data + 2 * ss + 3 * ss),  # after A, flush, mark, its entry
        Write(b"F", 0, 0, 0),  # FUA: the write, then a flush
        Write(b"W", 8 * ss, ss, -1),  # discard: zeroes
        Write(b"F", 0, 0, 0),  # REQ_PREFLUSH: earlier writes are on the medium first
        Write(b"W", 4 * ss, ss, data + 2 * ss + 3 * ss + ss + 2 * ss),
        Write(b"F", 0, 0, 0),
    ]
    assert s.marks == [("ack:audit:0", 2), ("dm-log-writes-end", 8)]
    assert s.flushes == 4
    assert s.flags == {"flush": 2, "fua": 2, "discard": 1, "mark": 2, "metadata": 1}


def test_only_the_entries_the_super_block_counts(tmp_path: Path) -> None:
    log = sample(tmp_path / "log")
    raw = bytearray(log.read_bytes())
    raw[16:24] = struct.pack("<Q", 2)  # nr_entries: the write and the flush
    log.write_bytes(raw)
    s = parse(log)
    assert [w.kind for w in s.writes] == [b"W", b"F"] and s.marks == []


def test_replay_of_a_prefix(tmp_path: Path) -> None:
    log = sample(tmp_path / "log")
    s = parse(log)
    base = tmp_path / "base.img"
    base.write_bytes(b"\xee" * 8192)
    out = tmp_path / "out.img"
    replay(base, log, s, out, 1)
    img = out.read_bytes()
    assert img[4096:5120] == b"A" * 1024 and img[:4096] == b"\xee" * 4096
    assert img[5120:] == b"\xee" * 3072
    replay(base, log, s, out, 1, drop={0})  # the write lost from the cache
    assert out.read_bytes() == base.read_bytes()
    replay(base, log, s, out, len(s.writes))
    img = out.read_bytes()
    assert img[4096:4608] == bytes(512) and img[4608:5120] == b"A" * 512  # discarded: zeroes
    assert img[1024:1536] == b"B" * 512 and img[2048:2560] == b"C" * 512
    assert len(img) == 8192


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"magic": 0x1234}, "magic 0x1234 at byte 0, not dm-log-writes"),
        ({"version": 2}, "dm-log-writes version 2"),
        ({"count": 9}, "entry 6 of 9 at byte 6656 is past the end"),
    ],
)
def test_bad_logs_are_named_in_one_line(tmp_path: Path, change: dict, words: str) -> None:
    log = log_file(tmp_path / "log", 512, [entry(512, 8, 2, 0), b"A" * 1024,
                                           entry(512, 0, 0, FLUSH)] * 3 + [b"x"],
                   **change)  # fmt: skip
    with pytest.raises(LogError) as e:
        parse(log)
    assert words in str(e.value) and str(log) in str(e.value) and "\n" not in str(e.value)


def test_short_data_and_unknown_flags_are_refused(tmp_path: Path) -> None:
    short = log_file(tmp_path / "short", 512, [entry(512, 8, 2, 0), b"A" * 600], count=1)
    with pytest.raises(
        LogError, match=re.escape("entry 0's data (1024 bytes at 1024) is past the end")
    ):
        parse(short)
    odd = log_file(tmp_path / "odd", 512, [entry(512, 0, 0, 64)])
    with pytest.raises(LogError, match="unknown flags 0x40"):
        parse(odd)
    with pytest.raises(LogError, match="no dm-log-writes super block"):
        parse(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    p = tmp_path / "empty"
    p.write_bytes(b"\0" * 10)
    return p


def fake_module(path: Path, depends: str) -> None:
    body = b"\x7fELF....\x00license=GPL\x00depends=" + depends.encode() + b"\x00name=x\x00"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(body) if path.name.endswith(".xz") else body)


def test_modules_load_after_what_they_depend_on(tmp_path: Path) -> None:
    k = tmp_path / "kernel"
    fake_module(k / "fs/ext4/ext4.ko.xz", "jbd2,mbcache,crc16")
    fake_module(k / "fs/jbd2/jbd2.ko", "")
    fake_module(k / "fs/mbcache.ko", "")
    fake_module(k / "lib/crc16.ko.xz", "")
    fake_module(k / "drivers/md/dm-log-writes.ko", "dm-mod")
    fake_module(k / "drivers/md/dm-mod.ko", "")
    order = [n for n, _ in module_order(tmp_path, ("dm_log_writes", "ext4"))]
    assert order == ["dm_mod", "dm_log_writes", "jbd2", "mbcache", "crc16", "ext4"]
    fake_module(k / "drivers/md/dm-mod.ko", "dm-log-writes")
    with pytest.raises(VMError, match="dependency loop dm_log_writes -> dm_mod -> dm_log"):
        module_order(tmp_path, ("dm_log_writes",))
    with pytest.raises(VMError, match="no module virtio_blk in this kernel package"):
        module_order(tmp_path, ("virtio_blk",))


def test_initramfs_is_a_newc_archive(tmp_path: Path) -> None:
    raw = cpio([("bin", 0o40755, b""), ("init", 0o100755, b"#!/bin/sh\n")])
    pos, seen = 0, []
    while True:
        assert raw[pos : pos + 6] == b"070701", pos
        fields = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = raw[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        data = raw[pos : pos + size]
        pos += size + (-size % 4)
        seen.append((name, mode, data))
        if name == "TRAILER!!!":
            break
    assert seen == [("bin", 0o40755, b""), ("init", 0o100755, b"#!/bin/sh\n"),
                    ("TRAILER!!!", 0, b"")]  # fmt: skip
    assert pos == len(raw) and len(gzip.compress(raw)) > 0


def test_a_missing_tool_is_named_with_its_package(monkeypatch) -> None:
    import dmvm
    from harness import missing_precondition

    real = dmvm.shutil.which
    monkeypatch.setattr(dmvm.shutil, "which",
                        lambda t: None if t == "qemu-system-x86_64" else real(t))  # fmt: skip
    assert dmvm.missing_tools() == (
        "power-cut tests need qemu-system-x86_64 (apt package qemu-system-x86; "
        "scripts/system-deps.sh)"
    )
    if missing_precondition().startswith("power-cut tests need root"):
        return  # not root: that is named first
    assert "qemu-system-x86" in missing_precondition()


def test_a_bad_accelerator_choice_is_refused(monkeypatch, tmp_path: Path) -> None:
    import dmvm

    monkeypatch.setenv("DOORPI_VM_ACCEL", "hvf")
    k = dmvm.Kernel("6.1", "x.deb", tmp_path / "vmlinuz", tmp_path / "initrd.gz")
    with pytest.raises(VMError, match=r"^DOORPI_VM_ACCEL=hvf: expected kvm or tcg$"):
        dmvm.run_guest(k, tmp_path, [])
