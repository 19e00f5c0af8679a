SUMMARY = "Build signed OSTree commits, static deltas, bundles and flash-ready images"
DESCRIPTION = "ota-build turns root filesystems into signed OSTree commits, static deltas, \
offline bundles and flash-ready disk images. The ota image class runs ota-build-native."

require recipes-ota/ota-source.inc
require ${BPN}-licenses.inc
require ${BPN}-go-mods.inc

GO_INSTALL = "${GO_IMPORT}/cmd/ota-build"

BBCLASSEXTEND = "native nativesdk"
