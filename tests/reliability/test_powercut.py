"""Power cuts at the block layer during audit writes, enrolment, sync import and a
retention sweep (issue #18), the write stream recorded by dm-log-writes in a KVM
guest: see harness.py, dmvm.py, dmlog.py and powercut_child.py for the rig."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from dmlog import replay
from harness import loops_left
from reliability_support import report, scale

from datapart import FSTAB, check_shipped_mkfs, shipped_mount_options


def test_shipped_options_are_the_image_builds() -> None:
    opts = shipped_mount_options().split(",")
    assert "data=journal" in opts and "commit=5" in opts, FSTAB
    build = (FSTAB.parents[3] / "add-data-partition.sh").read_text()
    assert "tune2fs -o journal_data" in build
    # The same block size as the rig's image (harness.PowerCutRig.setup): 4 KiB, not the
    # 1 KiB mke2fs picks for a small file system, which would make every write smaller.
    assert "mkfs.ext4 -q -F -b 4096 " in build
    check_shipped_mkfs()  # and the rig makes its image with that command (datapart.MKFS)


def test_power_cuts_lose_nothing_acknowledged(powercut_rig, tmp_path: Path) -> None:
    rig = powercut_rig
    rig.setup()
    rig.record()
    phases = [name for name, _ in rig.phases]
    assert phases == ["audit", "enrol", "import", "audit2", "sweep", "audit3"], phases
    stream = rig.stream
    assert stream is not None and rig.guest is not None
    # The real kernel's log, read back: the whole stream replayed onto the starting
    # image is the guest's data disk byte for byte; every line the workload printed
    # has its mark, in order, and the target's own last mark closes the log.
    whole = tmp_path / "whole.img"
    replay(rig.base, rig.log, stream, whole, len(stream.writes))
    assert whole.read_bytes() == rig.live.read_bytes(), "replayed log differs from the disk"
    whole.unlink()
    texts = [t for t, _ in stream.marks]
    assert texts[0] == "phase:audit" and texts[-1] == "dm-log-writes-end", texts[:3]
    assert len(texts) == rig.guest_result["marks"] + 1 and stream.log_entries > len(texts)
    assert [b for _, b in stream.marks] == sorted(b for _, b in stream.marks)
    cuts = rig.plan(scale(6, 240), seed=20261130)
    failures = [f"cut at write {c.entries} ({c.phase}, {c.dropped} dropped): {p}"
                for c in cuts if (p := rig.check(c))]  # fmt: skip
    # The rig itself: the whole stream replayed gives the finished state.
    final = rig.plan(1, seed=1)[0]
    final.entries, final._drop = len(stream.writes), set()  # type: ignore[attr-defined]
    assert not rig.check(final), final.result
    assert '"templates": 0' in final.result and '"sequence": "2"' in final.result
    report(
        "powercut",
        {
            "cuts": len(cuts),
            "cuts_by_phase": dict(Counter(c.phase for c in cuts)),
            "cuts_with_lost_unflushed_writes": sum(1 for c in cuts if c.dropped),
            "log_writes": len(stream.writes) - stream.flushes,
            "log_flushes": stream.flushes,
            "acknowledged_writes": len(rig.acks),
            "workload_seconds": round(rig.workload_seconds, 2),
            "recorder": f"dm-log-writes, kernel {rig.guest_result['guest_kernel']}, "
            f"qemu {rig.guest.accel}",
            "guest_boot_seconds": round(rig.guest.boot_seconds, 2),
            "guest_seconds": round(rig.guest.total_seconds, 2),
            "log_entries": stream.log_entries,
            "log_flags": stream.flags,
            "failures": failures,
        },
    )
    rig.close()
    # A loop device detached while something still holds it is freed later (autoclear).
    deadline = time.monotonic() + 30
    while left := loops_left(tmp_path):
        assert time.monotonic() < deadline, f"loop devices left attached: {left}"
        time.sleep(0.5)
    assert not failures, "\n".join(failures)
