#!/bin/sh
# Post-image script of configs/ota_raspberrypi5_defconfig: the disk image of
# the Raspberry Pi 5 (ota-build image --board raspberrypi5).
exec "$(dirname "$0")/../common/post-image.sh" raspberrypi5 "$@"
