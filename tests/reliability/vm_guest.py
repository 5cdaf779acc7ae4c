"""Runs inside the power-cut guest (dmvm.py): the workload on a dm-log-writes target.

Usage: ``python vm_guest.py JOB.json``. The job names the data disk and the log disk
(virtio, /dev/vda and /dev/vdb), the mount point and options, the workload's argv and
environment. This creates ``log-writes`` over the data disk logging to the log disk
(``dmsetup create --noudevsync``: no udev in the guest), mounts it, runs the workload
with POWERCUT_SYNC_ACKS=1 and, for each ``phase NAME`` and ``ack KIND ID`` line it
prints, inserts a mark (``dmsetup message NAME 0 mark TEXT``) before letting it go on:
the workload waits for the mark, so every write it made before the line (committed and
fsynced: flushed, so already in the log) is before the mark and none it makes after is.
Then it unmounts, removes the target (which logs the unflushed tail and a last mark)
and writes JOB's ``result`` file: the workload's exit status, stderr tail, seconds, the
target's status line. Exits 0 when it got that far.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET = "doorpi-lw"


def sh(*cmd: str) -> str:
    # No udev in the guest: libdevmapper makes the /dev/mapper nodes itself.
    env = {**os.environ, "DM_DISABLE_UDEV": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    result: dict[str, object] = {"guest_kernel": sh("uname", "-r")}
    out = Path(job["result"])
    try:
        sectors = int(Path(f"/sys/block/{Path(job['data']).name}/size").read_text())
        table = f"0 {sectors} log-writes {job['data']} {job['log']}"
        sh("dmsetup", "create", TARGET, "--noudevsync", "--table", table)
        try:
            dev = "/dev/" + sh("dmsetup", "info", "-c", "--noheadings", "-o", "blkdevname", TARGET)
            sh("mount", "-t", "ext4", "-o", job["options"], dev, job["mnt"])
            try:
                result.update(workload(job))
            finally:
                sh("umount", job["mnt"])
            result["status"] = sh("dmsetup", "status", TARGET)
        finally:
            sh("dmsetup", "remove", "--noudevsync", TARGET)
    except SystemExit as exc:
        result["error"] = str(exc.code)
    out.write_text(json.dumps(result))


def workload(job: dict) -> dict[str, object]:
    t = time.monotonic()
    proc = subprocess.Popen(
        job["argv"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**job["env"], "POWERCUT_SYNC_ACKS": "1", "TMPDIR": "/run/tmp"},
    )  # fmt: skip
    assert proc.stdin and proc.stdout and proc.stderr
    marks = 0
    for line in proc.stdout:
        words = line.split()
        if words[:1] in (["ack"], ["phase"]):
            sh("dmsetup", "message", TARGET, "0", "mark", ":".join(words))
            marks += 1
            proc.stdin.write("\n")
            proc.stdin.flush()
    err = proc.stderr.read()
    rc = proc.wait(timeout=300)
    return {"rc": rc, "stderr": err[-2000:], "marks": marks,
            "workload_seconds": time.monotonic() - t}  # fmt: skip


if __name__ == "__main__":
    main()
