SUMMARY = "OSTree update client: update, roll back, boot counter, prepare-root"
DESCRIPTION = "ota-client updates the device's OSTree sysroot from the repository ota-build \
publishes (by static delta or objects, verified), rolls back, resets the boot counter of the \
boot script after a good boot (ota-mark-good), and mounts the deployment at boot \
(/usr/lib/ostree/ostree-prepare-root)."

require recipes-ota/ota-source.inc
require conf/include/ota-settings.inc
require ${BPN}-licenses.inc
require ${BPN}-go-mods.inc

GO_INSTALL = "${GO_IMPORT}/cmd/ota-client"

SRC_URI += " \
    file://ota-mark-good.service \
    file://ota-mark-good.init \
    file://ota-mount-boot \
"

inherit systemd update-rc.d

# The configuration and trusted keys come from OTA_SERVER_URL, OTA_BRANCH and OTA_SIGN_KEY.
PACKAGE_ARCH = "${MACHINE_ARCH}"
DEPENDS += "${@'ota-build-native' if d.getVar('OTA_SIGN_KEY') else ''}"

SYSTEMD_SERVICE:${PN} = "ota-mark-good.service"
INITSCRIPT_NAME = "ota-mark-good"
INITSCRIPT_PARAMS = "start 99 2 3 4 5 ."

do_install:append() {
	# Started as ostree-prepare-root (init= of boot entries without an initramfs), ota-client
	# runs prepare-root; the link is resolved on the physical root.
	install -d ${D}${nonarch_libdir}/ostree
	ln -sf ../../bin/ota-client ${D}${nonarch_libdir}/ostree/ostree-prepare-root

	install -d ${D}${libexecdir}/ota
	install -m 0755 ${UNPACKDIR}/ota-mount-boot ${D}${libexecdir}/ota/ota-mount-boot
	if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
		install -d ${D}${systemd_system_unitdir}
		sed 's|@LIBEXECDIR@|${libexecdir}|; s|@BINDIR@|${bindir}|' ${UNPACKDIR}/ota-mark-good.service \
			>${D}${systemd_system_unitdir}/ota-mark-good.service
	fi
	if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
		install -d ${D}${sysconfdir}/init.d
		sed 's|@LIBEXECDIR@|${libexecdir}|; s|@BINDIR@|${bindir}|' ${UNPACKDIR}/ota-mark-good.init \
			>${D}${sysconfdir}/init.d/ota-mark-good
		chmod 0755 ${D}${sysconfdir}/init.d/ota-mark-good
	fi

	if [ -n "${OTA_SERVER_URL}" ]; then
		install -d ${D}${sysconfdir}/ota
		printf '# Written by meta-ota from OTA_SERVER_URL and OTA_BRANCH (docs/client.md).\nurl: %s\nref: %s\n' \
			"${OTA_SERVER_URL}" "${OTA_BRANCH}" >${D}${sysconfdir}/ota/client.yaml
	fi
	keys="${D}${sysconfdir}/ostree/trusted.ed25519.d"
	if [ -n "${OTA_SIGN_KEY}" ]; then
		install -d "$keys"
		set --
		for k in ${OTA_SIGN_KEY}; do set -- "$@" --sign-key "$k"; done
		ota-build pubkey "$@" >"$keys/ota"
	fi
	for f in ${OTA_TRUSTED_KEYS}; do
		install -d "$keys"
		install -m 0644 "$f" "$keys/"
	done
}
# ota-build pubkey reads keys as ota-build commit does (env://NAME, Vault).
do_install[prefuncs] += "ota_sign_env"

FILES:${PN} += "${nonarch_libdir}/ostree ${libexecdir}/ota"
CONFFILES:${PN} = "${sysconfdir}/ota/client.yaml"
