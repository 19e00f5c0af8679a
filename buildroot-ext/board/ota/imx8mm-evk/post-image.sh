#!/bin/sh
# Post-image script of configs/ota_imx8mm_evk_defconfig: the disk image of
# the i.MX 8M Mini EVK (ota-build image --board imx8mm).
exec "$(dirname "$0")/../common/post-image.sh" imx8mm "$@"
