#!/usr/bin/env bash
# boot-files.sh: gather the Raspberry Pi boot files of a Yocto (meta-raspberrypi) build into
# the one directory the raspberrypi4-64 board preset reads ($OTA_OUT/boot-files, the
# manifest's image.boot-files):
#
#   start4*.elf fixup4*.dat config.txt   from $DEPLOY_DIR_IMAGE/bootfiles/ (bcm2835-bootfiles/
#                                        before Yocto 3.2)
#   u-boot.bin                           from $DEPLOY_DIR_IMAGE (ota-build installs it as
#                                        kernel8.img, the name the firmware loads)
#   bcm2711-rpi-*.dtb                    from $DEPLOY_DIR_IMAGE, without the versioned copies
#                                        (<name>-<version>-<machine>.dtb, <name>-<machine>.dtb)
#   overlays/*.dtbo, overlay_map.dtb     from $DEPLOY_DIR_IMAGE/*.dtbo (or overlays/ if your
#                                        release deploys that directory)
#
# This is what meta-raspberrypi's IMAGE_BOOT_FILES puts on the card, minus cmdline.txt (U-Boot's
# boot.scr, which ota-build writes, sets the kernel command line) and boot.scr (ota-build's own).
# Timestamps are kept, so running it again after an unchanged Yocto build leaves the image
# stamp alone and `ota-build build` does not rewrite the image.
#
# Usage: DEPLOY_DIR_IMAGE=... OTA_OUT=... examples/raspberrypi4/boot-files.sh
set -euo pipefail
deploy=${DEPLOY_DIR_IMAGE:?set DEPLOY_DIR_IMAGE (e.g. \$BUILDDIR/tmp/deploy/images/raspberrypi4-64)}
out=${OTA_OUT:?set OTA_OUT (where ota-build writes; e.g. \$BUILDDIR/ota)}/boot-files
machine=${MACHINE:-raspberrypi4-64}

fw=
for d in "$deploy/bootfiles" "$deploy/bcm2835-bootfiles"; do
	if [ -d "$d" ]; then fw=$d; break; fi
done
[ -n "$fw" ] || { echo "boot-files.sh: no bootfiles/ in $deploy (is rpi-bootfiles built?)" >&2; exit 1; }
[ -e "$deploy/u-boot.bin" ] || { echo "boot-files.sh: no u-boot.bin in $deploy (set RPI_USE_U_BOOT = \"1\")" >&2; exit 1; }

mkdir -p "$OTA_OUT"
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
copy() { cp -L --preserve=timestamps "$@"; }

copy "$fw"/start4*.elf "$fw"/fixup4*.dat "$tmp/"
if [ -f "$fw/config.txt" ]; then
	copy "$fw/config.txt" "$tmp/"
	# meta-raspberrypi leaves kernel= unset: the firmware then loads kernel8.img, which is
	# where ota-build puts U-Boot. Another kernel= would skip U-Boot.
	if grep -Eq '^[[:space:]]*kernel=' "$tmp/config.txt" && ! grep -Eq '^[[:space:]]*kernel=kernel8\.img' "$tmp/config.txt"; then
		echo "boot-files.sh: warning: $fw/config.txt sets kernel= to something other than kernel8.img" >&2
	fi
fi
copy "$deploy/u-boot.bin" "$tmp/"

# Device trees and overlays: skip Yocto's versioned names, which all contain -<machine>.
unversioned() { case $(basename "$1") in *-"$machine"*) return 1 ;; esac; }
for f in "$deploy"/bcm2711-rpi-*.dtb; do
	if [ -e "$f" ] && unversioned "$f"; then copy "$f" "$tmp/"; fi
done
mkdir -p "$tmp/overlays"
if [ -d "$deploy/overlays" ]; then
	copy -r "$deploy/overlays/." "$tmp/overlays/"
else
	for f in "$deploy"/*.dtbo "$deploy/overlay_map.dtb" "$deploy/hat_map.dtb"; do
		if [ -e "$f" ] && unversioned "$f"; then copy "$f" "$tmp/overlays/"; fi
	done
fi
ls "$tmp"/bcm2711-rpi-*.dtb >/dev/null 2>&1 || { echo "boot-files.sh: no bcm2711-rpi-*.dtb in $deploy" >&2; exit 1; }

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "boot files in $out: $(cd "$out" && echo *) ($(find "$out/overlays" -type f | wc -l) overlays)"
