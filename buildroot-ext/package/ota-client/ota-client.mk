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
	$(OTA_CLIENT_DAEMON_CHECK)
	mkdir -p $(TARGET_DIR)/etc/ota
	{ \
		echo '# Written by Buildroot from BR2_PACKAGE_OTA_CLIENT_*'; \
		$(if $(OTA_CLIENT_URL),echo 'url: "$(OTA_CLIENT_URL)"';) \
		$(if $(OTA_CLIENT_REF),echo 'ref: "$(OTA_CLIENT_REF)"';) \
		echo 'boot-counter: /boot/firmware/ota-state.txt'; \
		$(OTA_CLIENT_DAEMON_CONFIG) \
	} > $(TARGET_DIR)/etc/ota/client.yaml
endef
OTA_CLIENT_POST_INSTALL_TARGET_HOOKS += OTA_CLIENT_INSTALL_CONFIG

# The update daemon: its policy in client.yaml's daemon mapping, the bus policy
# (org.otakit.OtaClient1.conf is what "ota-client daemon --print-dbus-policy"
# prints for the group ota; another group replaces it, none removes its
# <policy>), the group, and a start script. The boot is marked good by
# S99ota-client or ota-client-mark-good.service, as without the daemon.
ifeq ($(BR2_PACKAGE_OTA_CLIENT_DAEMON),y)
OTA_CLIENT_DAEMON_INTERVAL = $(call qstrip,$(BR2_PACKAGE_OTA_CLIENT_DAEMON_INTERVAL))
OTA_CLIENT_DAEMON_WINDOW = $(call qstrip,$(BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW))
OTA_CLIENT_DAEMON_GROUP = $(call qstrip,$(BR2_PACKAGE_OTA_CLIENT_DAEMON_GROUP))
OTA_CLIENT_DAEMON_REBOOT = $(strip \
	$(if $(BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_IMMEDIATELY),immediately) \
	$(if $(BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_WINDOW),window) \
	$(if $(BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_NEVER),never))

OTA_CLIENT_DAEMON_CONFIG = \
	echo 'daemon:'; \
	$(if $(OTA_CLIENT_DAEMON_INTERVAL),echo '  interval: "$(OTA_CLIENT_DAEMON_INTERVAL)"';) \
	echo '  download: $(if $(BR2_PACKAGE_OTA_CLIENT_DAEMON_DOWNLOAD),auto,manual)'; \
	echo '  install: $(if $(BR2_PACKAGE_OTA_CLIENT_DAEMON_INSTALL),auto,manual)'; \
	echo '  reboot: $(OTA_CLIENT_DAEMON_REBOOT)'; \
	$(if $(OTA_CLIENT_DAEMON_WINDOW),echo '  maintenance-window: "$(OTA_CLIENT_DAEMON_WINDOW)"';) \
	echo '  group: "$(OTA_CLIENT_DAEMON_GROUP)"';

# client.yaml is read strictly: a bad value would stop every ota-client
# command, mark-good included. The options are checked before it is written.
OTA_CLIENT_DAEMON_HHMM = ([01][0-9]|2[0-3]):[0-5][0-9]
define OTA_CLIENT_DAEMON_CHECK
	printf '%s\n' '$(OTA_CLIENT_DAEMON_INTERVAL)' | \
		grep -Eqx '|0|([0-9]+(\.[0-9]*)?(ns|us|ms|s|m|h))+' || { \
		echo 'BR2_PACKAGE_OTA_CLIENT_DAEMON_INTERVAL="$(OTA_CLIENT_DAEMON_INTERVAL)": want a duration such as 30m or 6h' >&2; \
		exit 1; }
	w='$(OTA_CLIENT_DAEMON_WINDOW)'; \
	printf '%s\n' "$$w" | \
		grep -Eqx '|$(OTA_CLIENT_DAEMON_HHMM)-$(OTA_CLIENT_DAEMON_HHMM)' && \
		[ -z "$$w" -o "$${w%-*}" != "$${w#*-}" ] || { \
		echo "BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW=\"$$w\": want HH:MM-HH:MM, not empty" >&2; \
		exit 1; }
	printf '%s\n' '$(OTA_CLIENT_DAEMON_GROUP)' | \
		grep -Eqx '|[A-Za-z_][A-Za-z0-9_.-]*' || { \
		echo 'BR2_PACKAGE_OTA_CLIENT_DAEMON_GROUP="$(OTA_CLIENT_DAEMON_GROUP)": want a group name, or empty' >&2; \
		exit 1; }
endef

OTA_CLIENT_DAEMON_POLICY_SED = \
	$(if $(OTA_CLIENT_DAEMON_GROUP),\
	's/<policy group="ota">/<policy group="$(OTA_CLIENT_DAEMON_GROUP)">/',\
	'/<policy group="ota">/$(comma)/<\/policy>/d')

define OTA_CLIENT_INSTALL_DAEMON
	mkdir -p $(TARGET_DIR)/usr/share/dbus-1/system.d
	sed -e $(OTA_CLIENT_DAEMON_POLICY_SED) \
		$(OTA_CLIENT_PKGDIR)/org.otakit.OtaClient1.conf \
		> $(TARGET_DIR)/usr/share/dbus-1/system.d/org.otakit.OtaClient1.conf
endef
OTA_CLIENT_POST_INSTALL_TARGET_HOOKS += OTA_CLIENT_INSTALL_DAEMON

ifneq ($(OTA_CLIENT_DAEMON_GROUP),)
define OTA_CLIENT_USERS
	- - $(OTA_CLIENT_DAEMON_GROUP) -1 * - - - ota-client daemon D-Bus users
endef
endif

define OTA_CLIENT_INSTALL_DAEMON_INIT_SYSV
	$(INSTALL) -D -m 0755 $(OTA_CLIENT_PKGDIR)/S99ota-client-daemon \
		$(TARGET_DIR)/etc/init.d/S99ota-client-daemon
endef

define OTA_CLIENT_INSTALL_DAEMON_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(OTA_CLIENT_PKGDIR)/ota-client-daemon.service \
		$(TARGET_DIR)/usr/lib/systemd/system/ota-client-daemon.service
	echo 'enable ota-client-daemon.service' \
		>> $(TARGET_DIR)/usr/lib/systemd/system-preset/80-ota-client.preset
endef
endif

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
	$(OTA_CLIENT_INSTALL_DAEMON_INIT_SYSV)
endef

define OTA_CLIENT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(OTA_CLIENT_PKGDIR)/ota-client-mark-good.service \
		$(TARGET_DIR)/usr/lib/systemd/system/ota-client-mark-good.service
	$(INSTALL) -D -m 0644 $(OTA_CLIENT_PKGDIR)/80-ota-client.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/80-ota-client.preset
	$(OTA_CLIENT_INSTALL_DAEMON_INIT_SYSTEMD)
endef

$(eval $(golang-package))

# The tarball's own .hash, written next to it by make-release-tarball.sh.
OTA_CLIENT_HASH_FILES += $(OTA_SOURCE_HASH_FILE)
