#!/bin/bash
# update-card.sh NEW_IMAGE CARD: update a doorpi SD card to a new image while keeping
# its data partition (keys, database: partition 3) untouched.
#
# Flashing a whole image would wipe partition 3, and with it the gate's keys (every
# admin would have to pair again) and the audit log. This writes only the boot and root
# partitions of NEW_IMAGE onto CARD (a block device such as /dev/sdX, or an image file)
# and gives CARD the new image's disk identifier, because cmdline.txt and fstab name
# the partitions by PARTUUID (<disk id>-01, -02). Refuses when the new partitions do
# not start at the same place or do not fit: then back up partition 3 and reflash.
#
# Run on a PC with the card in a reader (as root for a device):
#   sudo firmware_image/update-card.sh deploy/2026-11-28-doorpi.img /dev/sdX
set -euo pipefail

NEW="${1:?usage: update-card.sh NEW_IMAGE CARD}"
CARD="${2:?usage: update-card.sh NEW_IMAGE CARD}"

# "start size" in sectors of partition N of a disk or image.
part() {
	sfdisk --dump "$1" | awk -v n="$2" '$1 ~ ("[^0-9]" n "$") && $2 == ":" {
		gsub(",", "")
		for (i = 1; i <= NF; i++) { if ($i == "start=") s = $(i + 1); if ($i == "size=") z = $(i + 1) }
		print s, z
	}'
}

read -r DATA_START _ < <(part "$CARD" 3) || true
[[ -n "${DATA_START:-}" ]] || { echo "update-card: $CARD has no data partition 3: flash the full image instead" >&2; exit 1; }
for n in 1 2; do
	read -r new_start new_size < <(part "$NEW" "$n")
	read -r card_start card_size < <(part "$CARD" "$n")
	if [[ "$new_start" != "$card_start" ]]; then
		echo "update-card: partition $n starts at $new_start in the image, $card_start on the card" >&2
		exit 1
	fi
	if ((new_size > card_size)); then
		echo "update-card: partition $n of the image ($new_size sectors) does not fit ($card_size)" >&2
		exit 1
	fi
done

for n in 1 2; do
	read -r start size < <(part "$NEW" "$n")
	echo "update-card: writing partition $n ($((size / 2048)) MiB)"
	dd if="$NEW" of="$CARD" bs=512 skip="$start" seek="$start" count="$size" conv=notrunc,fsync status=none
done
DISK_ID="$(sfdisk --disk-id "$NEW")"
sfdisk --disk-id "$CARD" "$DISK_ID" >/dev/null
sync
echo "update-card: done; data partition kept, disk id $DISK_ID"
