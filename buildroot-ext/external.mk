# The source both packages build from: a tarball with the Go modules
# vendored, made by scripts/make-release-tarball.sh (Buildroot vendors Go
# modules only when it downloads a package, and builds with
# GOFLAGS=-mod=vendor GOPROXY=off). Its hash is in the .hash file next to it.
OTA_SOURCE_TARBALL = $(call qstrip,$(BR2_OTA_SOURCE_TARBALL))
OTA_SOURCE_NAME = $(notdir $(OTA_SOURCE_TARBALL))
OTA_SOURCE_VERSION = $(patsubst ota-%.tar.gz,%,$(OTA_SOURCE_NAME))
OTA_SOURCE_SITE = $(if $(OTA_SOURCE_TARBALL),file://$(patsubst %/,%,$(dir $(abspath $(OTA_SOURCE_TARBALL)))))
OTA_SOURCE_HASH_FILE = $(if $(OTA_SOURCE_TARBALL),$(abspath $(OTA_SOURCE_TARBALL)).hash)

# Without the tarball, downloading either package fails saying so (a source
# directory given with <PKG>_OVERRIDE_SRCDIR is not downloaded).
OTA_SOURCE_MISSING = BR2_OTA_SOURCE_TARBALL is empty: make the tarball with \
	$(BR2_EXTERNAL_OTA_PATH)/scripts/make-release-tarball.sh and set the option to its path
define OTA_SOURCE_CHECK
	$(if $(OTA_SOURCE_TARBALL),,@echo "$(OTA_SOURCE_MISSING)" >&2; exit 1)
endef

include $(sort $(wildcard $(BR2_EXTERNAL_OTA_PATH)/package/*/*.mk))
include $(sort $(wildcard $(BR2_EXTERNAL_OTA_PATH)/fs/*/*.mk))
