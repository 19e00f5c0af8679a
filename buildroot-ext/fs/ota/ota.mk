################################################################################
#
# Commit the target filesystem to an OSTree repository with ota-build
#
################################################################################

ROOTFS_OTA_DEPENDENCIES = host-ota-build $(BR2_TAR_HOST_DEPENDENCY)

ifeq ($(BR2_TARGET_ROOTFS_OTA_DELTA_ZSTD),y)
ROOTFS_OTA_DEPENDENCIES += host-zstd
endif

ROOTFS_OTA_REPO = $(call qstrip,$(BR2_TARGET_ROOTFS_OTA_REPO))
ROOTFS_OTA_BRANCH = $(call qstrip,$(BR2_TARGET_ROOTFS_OTA_BRANCH))
ROOTFS_OTA_VERSION = $(or $(call qstrip,$(BR2_TARGET_ROOTFS_OTA_VERSION)),$(OTA_VERSION))
ROOTFS_OTA_IMAGE = $(BINARIES_DIR)/$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_IMAGE_NAME))
ROOTFS_OTA_BUNDLE = $(if $(BR2_TARGET_ROOTFS_OTA_BUNDLE),$(BINARIES_DIR)/rootfs.ota.bundle)

# The settings ota-rootfs.sh reads. The description it writes
# (images/rootfs.ota) is named explicitly rather than as $@, so that
# "make printvars VARS=ROOTFS_OTA_CMD" shows the complete command.
ROOTFS_OTA_ENV = \
	OTA_BUILD="$(HOST_DIR)/bin/ota-build" \
	TAR="$(TAR)" \
	OTA_REPO="$(ROOTFS_OTA_REPO)" \
	OTA_BRANCH="$(ROOTFS_OTA_BRANCH)" \
	OTA_VERSION="$(ROOTFS_OTA_VERSION)" \
	OTA_SIGN_KEYS="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_SIGN_KEYS))" \
	OTA_BOOTABLE="$(BR2_TARGET_ROOTFS_OTA_BOOTABLE)" \
	OTA_KERNEL_VERSION="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_KERNEL_VERSION))" \
	OTA_COMMIT_OPTIONS="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_COMMIT_OPTIONS))" \
	OTA_DELTA_FROM="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_DELTA_FROM))" \
	OTA_DELTA_ZSTD="$(if $(BR2_TARGET_ROOTFS_OTA_DELTA_ZSTD),$(HOST_DIR)/bin/zstd)" \
	OTA_BUNDLE="$(ROOTFS_OTA_BUNDLE)" \
	OTA_BUNDLE_FROM="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_BUNDLE_FROM))" \
	OTA_IMAGE="$(ROOTFS_OTA_IMAGE)" \
	OTA_IMAGE_SIZE="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_IMAGE_SIZE))" \
	OTA_KARGS="$(call qstrip,$(BR2_TARGET_ROOTFS_OTA_KARGS))"

# Under fakeroot: tar streams the tree, with the owners, modes and xattrs
# fakeroot reports, into ota-build commit --tree tar=-.
define ROOTFS_OTA_CMD
	$(ROOTFS_OTA_ENV) $(BR2_EXTERNAL_OTA_PATH)/fs/ota/ota-rootfs.sh \
		commit $(TARGET_DIR) $(BINARIES_DIR)/rootfs.ota
endef

# Then, outside fakeroot: the static deltas, the bundle, the signed summary.
define ROOTFS_OTA_RELEASE
	$(ROOTFS_OTA_ENV) $(BR2_EXTERNAL_OTA_PATH)/fs/ota/ota-rootfs.sh \
		release $(BINARIES_DIR)/rootfs.ota
endef
ROOTFS_OTA_POST_GEN_HOOKS += ROOTFS_OTA_RELEASE

$(eval $(rootfs))
