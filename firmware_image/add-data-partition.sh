#!/bin/bash
# add-data-partition.sh IMAGE [SIZE_MIB]: append the doorpi data partition to a pi-gen
# image and make the boot command line match the read-only design.
#
#  - grows IMAGE by SIZE_MIB (default 512) and adds partition 3 (Linux) after the root
#    partition: ext4, label "doorpi-data", with data journalling as its default mount
#    option (fstab says data=journal too), mounted on /var/lib/doorpi;
#  - in the boot partition's cmdline.txt: adds overlayroot=tmpfs:recurse=0 if missing
#    and removes Raspberry Pi OS's first-boot root resize (root is no longer the last
#    partition; the read-only root needs no room to grow).
#
# Works on the image file itself, without loop devices or root (the file system is
# made in a scratch file and copied in at the partition's offset; cmdline.txt is edited
# with mtools), so tests run it on a small synthetic image.
set -euo pipefail

IMG="${1:?usage: add-data-partition.sh IMAGE [SIZE_MIB]}"
SIZE_MIB="${2:-512}"
LABEL="doorpi-data"
for tool in sfdisk mkfs.ext4 tune2fs mtype mcopy; do
	command -v "$tool" >/dev/null || {
		echo "add-data-partition: missing $tool (apt-get install fdisk e2fsprogs mtools)" >&2
		exit 1
	}
done

# "start size" in sectors of partition N, from sfdisk's dump.
part() {
	sfdisk --dump "$IMG" | awk -v p="${IMG}$1" '$1 == p {
		gsub(",", "")
		for (i = 1; i <= NF; i++) { if ($i == "start=") s = $(i + 1); if ($i == "size=") n = $(i + 1) }
		print s, n
	}'
}

[[ -z "$(part 3)" ]] || { echo "add-data-partition: $IMG already has a partition 3" >&2; exit 1; }
read -r BOOT_START _ < <(part 1)
[[ -n "${BOOT_START:-}" ]] || { echo "add-data-partition: $IMG has no boot partition" >&2; exit 1; }

truncate -s "+${SIZE_MIB}M" "$IMG"
echo ',,L' | sfdisk --append --quiet "$IMG" >/dev/null
read -r START SECTORS < <(part 3)

SCRATCH="$(mktemp)"
trap 'rm -f "$SCRATCH"' EXIT
truncate -s "$((SECTORS * 512))" "$SCRATCH"
mkfs.ext4 -q -F -b 4096 -L "$LABEL" "$SCRATCH"  # 4 KiB blocks: SQLite's page, the SD card's page; never mke2fs's 1 KiB "small" type
tune2fs -o journal_data "$SCRATCH" >/dev/null
dd if="$SCRATCH" of="$IMG" bs=512 seek="$START" conv=notrunc,sparse status=none

BOOT="$IMG@@$((BOOT_START * 512))"
CMDLINE="$(mtype -i "$BOOT" ::cmdline.txt | tr -d '\r\n')"
CMDLINE="${CMDLINE// init=\/usr\/lib\/raspberrypi-sys-mods\/firstboot/}"
[[ "$CMDLINE" == *overlayroot=* ]] || CMDLINE="overlayroot=tmpfs:recurse=0 $CMDLINE"
printf '%s\n' "$CMDLINE" > "$SCRATCH"
mcopy -o -i "$BOOT" "$SCRATCH" ::cmdline.txt
echo "add-data-partition: $IMG: partition 3 '$LABEL' ($((SECTORS / 2048)) MiB, data=journal); cmdline: $CMDLINE"
