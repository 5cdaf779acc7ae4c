"""The shipped data partition, as the tests make it: one place for the power-cut rig
(tests/reliability/harness.py) and the forensic tests (tests/privacy/tpm_support.py).

firmware_image/add-data-partition.sh makes it (``mkfs.ext4`` with 4 KiB blocks, then
``tune2fs -o journal_data``); the image's fstab fragment gives its mount options. Both
are read from the files, so the tests follow them; `check_shipped_mkfs` fails a test
when the script no longer makes the partition the way `MKFS` and `TUNE` do.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE_SCRIPT = ROOT / "firmware_image" / "add-data-partition.sh"
FSTAB = ROOT / "firmware_image" / "stage-doorpi" / "00-system" / "files" / "fstab-doorpi"
MKFS = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "doorpi-data"]
TUNE = ["tune2fs", "-o", "journal_data"]


def shipped_mount_options() -> str:
    """The data partition's mount options in the image's fstab (``defaults`` dropped:
    it is mount's own default). Raises AssertionError naming the file without one."""
    for line in FSTAB.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "LABEL=doorpi-data":
            return ",".join(o for o in fields[3].split(",") if o != "defaults")
    raise AssertionError(f"{FSTAB}: no LABEL=doorpi-data line")


def check_shipped_mkfs() -> None:
    """The image script still makes the partition the way `MKFS` and `TUNE` do.
    Raises AssertionError naming the command it lacks."""
    script = MAKE_SCRIPT.read_text()
    for cmd in (" ".join(MKFS[:-1]) + ' "$LABEL"', " ".join(TUNE)):
        if cmd not in script:
            raise AssertionError(
                f"{MAKE_SCRIPT}: no `{cmd}`: the shipped partition changed, update {__file__}"
            )
