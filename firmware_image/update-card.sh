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

usage() {
	echo "usage: update-card.sh NEW_IMAGE CARD   (e.g. sudo update-card.sh deploy/doorpi.img /dev/sdX)" >&2
	exit 2
}
fail() {
	echo "update-card: $*" >&2
	exit 1
}
[[ $# -eq 2 && -n "$1" && -n "$2" ]] || usage
NEW="$1"
CARD="$2"

# Each check has its own message: a mistyped device, a missing sudo or a card the
# reader cannot read must never end in "flash the full image", which wipes the gate's
# keys, database and audit log.
[[ -e "$NEW" ]] || fail "image $NEW does not exist"
[[ -f "$NEW" && -r "$NEW" ]] || fail "image $NEW is not a readable image file"
[[ -e "$CARD" ]] || fail "card $CARD does not exist (lsblk lists the card readers' devices)"
[[ -b "$CARD" || -f "$CARD" ]] || fail "card $CARD is not a block device (such as /dev/sdX) or an image file"
if [[ -b "$CARD" && $EUID -ne 0 ]]; then
	fail "writing card $CARD needs root: run it with sudo"
fi
NEW_DUMP="$(sfdisk --dump "$NEW" 2>&1)" ||
	fail "sfdisk cannot read the partition table of image $NEW: $(head -n 1 <<<"$NEW_DUMP")"
CARD_DUMP="$(sfdisk --dump "$CARD" 2>&1)" ||
	fail "sfdisk cannot read the partition table of card $CARD: $(head -n 1 <<<"$CARD_DUMP") (card not changed)"

# "start size" in sectors of partition N of the sfdisk dump $1 (empty if there is none).
part() {
	awk -v n="$2" '$1 ~ ("[^0-9]" n "$") && $2 == ":" {
		gsub(",", "")
		for (i = 1; i <= NF; i++) { if ($i == "start=") s = $(i + 1); if ($i == "size=") z = $(i + 1) }
		print s, z
	}' <<<"$1"
}

read -r DATA_START _ < <(part "$CARD_DUMP" 3) || true
if [[ -z "${DATA_START:-}" ]]; then
	fail "card $CARD has no data partition 3, so it holds no gate data to keep (card not changed)." \
		"Only if this is really a doorpi card you mean to reset: flashing the full image erases the gate's" \
		"keys, database and audit log, and every admin must pair again"
fi
for n in 1 2; do
	read -r new_start new_size < <(part "$NEW_DUMP" "$n") || fail "image $NEW has no partition $n"
	read -r card_start card_size < <(part "$CARD_DUMP" "$n") || fail "card $CARD has no partition $n (card not changed)"
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
	read -r start size < <(part "$NEW_DUMP" "$n")
	echo "update-card: writing partition $n ($((size / 2048)) MiB)"
	dd if="$NEW" of="$CARD" bs=512 skip="$start" seek="$start" count="$size" conv=notrunc,fsync status=none
done
DISK_ID="$(sfdisk --disk-id "$NEW")"
sfdisk --disk-id "$CARD" "$DISK_ID" >/dev/null
sync
echo "update-card: done; data partition kept, disk id $DISK_ID"
