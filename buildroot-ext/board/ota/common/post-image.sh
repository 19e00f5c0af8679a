#!/usr/bin/env bash
# Writes the flash-ready disk image of this build's OTA commit with
# "ota-build image" for a board preset:
#   post-image.sh PRESET [the post-image script arguments]
# Buildroot sets BINARIES_DIR, BUILD_DIR and HOST_DIR. images/rootfs.ota
# (written by the OTA commit filesystem) names the repository, branch and
# image settings. The boot files go to BUILD_DIR/ota-boot-files (files as
# symbolic links, directories such as overlays/ as directories of links):
# u-boot.bin, flash.bin and the device trees of images/, and
# images/rpi-firmware/ without its config.txt and cmdline.txt (the preset
# writes the config.txt that starts U-Boot).
set -euo pipefail

preset=${1:?usage: post-image.sh PRESET}
desc=$BINARIES_DIR/rootfs.ota
if [ ! -f "$desc" ]; then
	echo "post-image: $desc is missing: enable BR2_TARGET_ROOTFS_OTA" >&2
	exit 1
fi
# shellcheck disable=SC1090 # written by fs/ota
. "$desc"

boot=$BUILD_DIR/ota-boot-files
rm -rf "$boot"
mkdir -p "$boot"
for f in "$BINARIES_DIR"/rpi-firmware/* "$BINARIES_DIR"/u-boot.bin \
	"$BINARIES_DIR"/flash.bin "$BINARIES_DIR"/*.dtb; do
	[ -e "$f" ] || continue
	case ${f##*/} in
	config.txt|cmdline.txt) continue ;;
	esac
	cp -R -s "$f" "$boot/"
done

args=(image --repo "$OTA_REPO" --board "$preset" --boot-files "$boot"
	--size "$OTA_IMAGE_SIZE" --output "$OTA_IMAGE")
for karg in $OTA_KARGS; do
	args+=(--karg "$karg")
done
"$HOST_DIR/bin/ota-build" --progress=plain "${args[@]}" "$OTA_BRANCH"
