################################################################################
#
# ota-initramfs
#
################################################################################

# No source: the initramfs is assembled from the target directory once every
# package is installed, before target-finalize strips it (so its copies are
# stripped here).
OTA_INITRAMFS_DEPENDENCIES = busybox ota-client
OTA_INITRAMFS_LICENSE = Apache-2.0

define OTA_INITRAMFS_BUILD
	READELF="$(TARGET_READELF)" STRIP="$(STRIPCMD)" \
		$(OTA_INITRAMFS_PKGDIR)/mkinitramfs.sh $(TARGET_DIR) \
		$(OTA_INITRAMFS_PKGDIR)/init $(TARGET_DIR)/boot/initramfs.cpio.gz
endef
OTA_INITRAMFS_TARGET_FINALIZE_HOOKS += OTA_INITRAMFS_BUILD

$(eval $(generic-package))
