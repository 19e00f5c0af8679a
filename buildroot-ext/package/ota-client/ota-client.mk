################################################################################
#
# ota-client
#
################################################################################

# The source tarball is BR2_OTA_SOURCE_TARBALL (see external.mk), shared
# with host-ota-build; its Go modules are vendored.
OTA_CLIENT_VERSION = $(OTA_SOURCE_VERSION)
OTA_CLIENT_SOURCE = $(OTA_SOURCE_NAME)
OTA_CLIENT_SITE = $(OTA_SOURCE_SITE)
OTA_CLIENT_DL_SUBDIR = ota
OTA_CLIENT_LICENSE = Apache-2.0, MIT, BSD-2-Clause
OTA_CLIENT_LICENSE_FILES = LICENSE delta/bsdiff/NOTICE
OTA_CLIENT_GOMOD = github.com/otakit/ota
OTA_CLIENT_BUILD_TARGETS = cmd/ota-client
OTA_CLIENT_LDFLAGS = \
	-X $(OTA_CLIENT_GOMOD)/internal/cli.Version=$(OTA_CLIENT_VERSION)

OTA_CLIENT_PRE_DOWNLOAD_HOOKS += OTA_SOURCE_CHECK

OTA_CLIENT_URL = $(call qstrip,$(BR2_PACKAGE_OTA_CLIENT_URL))
OTA_CLIENT_REF = $(call qstrip,$(BR2_PACKAGE_OTA_CLIENT_REF))
OTA_CLIENT_TRUSTED_KEY = $(call qstrip,$(BR2_PACKAGE_OTA_CLIENT_TRUSTED_KEY))

# Without an initramfs, boot entries start the deployment through
# init=.../usr/lib/ostree/ostree-prepare-root: under that name, ota-client
# runs prepare-root. The helpers of the start scripts: ota-mount-boot mounts
# the boot partition (the boot counter), ota-tmpfiles recreates /var entries
# where systemd-tmpfiles does not run.
define OTA_CLIENT_INSTALL_HELPERS
	mkdir -p $(TARGET_DIR)/usr/lib/ostree
	ln -sf ../../bin/ota-client \
		$(TARGET_DIR)/usr/lib/ostree/ostree-prepare-root
	$(INSTALL) -D -m 0755 $(OTA_CLIENT_PKGDIR)/ota-mount-boot \
		$(TARGET_DIR)/usr/libexec/ota-client/ota-mount-boot
	$(INSTALL) -D -m 0755 $(OTA_CLIENT_PKGDIR)/ota-tmpfiles \
		$(TARGET_DIR)/usr/libexec/ota-client/ota-tmpfiles
endef
OTA_CLIENT_POST_INSTALL_TARGET_HOOKS += OTA_CLIENT_INSTALL_HELPERS

# Always written: mark-good, run at every boot, needs a configuration (the
# boot counter's path) and would otherwise look for an ostree remote.
define OTA_CLIENT_INSTALL_CONFIG
	mkdir -p $(TARGET_DIR)/etc/ota
	{ \
		echo '# Written by Buildroot from BR2_PACKAGE_OTA_CLIENT_*'; \
		$(if $(OTA_CLIENT_URL),echo 'url: "$(OTA_CLIENT_URL)"';) \
		$(if $(OTA_CLIENT_REF),echo 'ref: "$(OTA_CLIENT_REF)"';) \
		echo 'boot-counter: /boot/firmware/ota-state.txt'; \
	} > $(TARGET_DIR)/etc/ota/client.yaml
endef
OTA_CLIENT_POST_INSTALL_TARGET_HOOKS += OTA_CLIENT_INSTALL_CONFIG

ifneq ($(OTA_CLIENT_TRUSTED_KEY),)
define OTA_CLIENT_INSTALL_TRUSTED_KEY
	$(INSTALL) -D -m 0644 $(OTA_CLIENT_TRUSTED_KEY) \
		$(TARGET_DIR)/etc/ostree/trusted.ed25519.d/ota.pub
endef
OTA_CLIENT_POST_INSTALL_TARGET_HOOKS += OTA_CLIENT_INSTALL_TRUSTED_KEY
endif

define OTA_CLIENT_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(OTA_CLIENT_PKGDIR)/S01ota-tmpfiles \
		$(TARGET_DIR)/etc/init.d/S01ota-tmpfiles
	$(INSTALL) -D -m 0755 $(OTA_CLIENT_PKGDIR)/S99ota-client \
		$(TARGET_DIR)/etc/init.d/S99ota-client
endef

define OTA_CLIENT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(OTA_CLIENT_PKGDIR)/ota-client-mark-good.service \
		$(TARGET_DIR)/usr/lib/systemd/system/ota-client-mark-good.service
	$(INSTALL) -D -m 0644 $(OTA_CLIENT_PKGDIR)/80-ota-client.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/80-ota-client.preset
endef

$(eval $(golang-package))

# The tarball's own .hash, written next to it by make-release-tarball.sh.
OTA_CLIENT_HASH_FILES += $(OTA_SOURCE_HASH_FILE)
