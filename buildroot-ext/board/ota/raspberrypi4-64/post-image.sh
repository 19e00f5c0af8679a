#!/bin/sh
# Post-image script of configs/ota_raspberrypi4_64_defconfig: the disk image of
# the Raspberry Pi 4 (ota-build image --board raspberrypi4-64).
exec "$(dirname "$0")/../common/post-image.sh" raspberrypi4-64 "$@"
