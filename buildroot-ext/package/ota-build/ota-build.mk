################################################################################
#
# host-ota-build
#
################################################################################

# The source tarball is BR2_OTA_SOURCE_TARBALL (see external.mk), shared
# with ota-client; its Go modules are vendored.
HOST_OTA_BUILD_VERSION = $(OTA_SOURCE_VERSION)
HOST_OTA_BUILD_SOURCE = $(OTA_SOURCE_NAME)
HOST_OTA_BUILD_SITE = $(OTA_SOURCE_SITE)
HOST_OTA_BUILD_DL_SUBDIR = ota
HOST_OTA_BUILD_LICENSE = Apache-2.0, MIT, BSD-2-Clause
HOST_OTA_BUILD_LICENSE_FILES = LICENSE delta/bsdiff/NOTICE
HOST_OTA_BUILD_GOMOD = github.com/otakit/ota
HOST_OTA_BUILD_BUILD_TARGETS = cmd/ota-build
HOST_OTA_BUILD_LDFLAGS = \
	-X $(HOST_OTA_BUILD_GOMOD)/internal/cli.Version=$(HOST_OTA_BUILD_VERSION)

HOST_OTA_BUILD_PRE_DOWNLOAD_HOOKS += OTA_SOURCE_CHECK

$(eval $(host-golang-package))

# The tarball's own .hash, written next to it by make-release-tarball.sh.
HOST_OTA_BUILD_HASH_FILES += $(OTA_SOURCE_HASH_FILE)
