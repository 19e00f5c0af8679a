SUMMARY = "OSTree update client: update, roll back, boot counter, prepare-root"
DESCRIPTION = "ota-client updates the device's OSTree sysroot from the repository ota-build \
publishes (by static delta or objects, verified), rolls back, resets the boot counter of the \
boot script after a good boot (ota-mark-good), and mounts the deployment at boot \
(/usr/lib/ostree/ostree-prepare-root). The package ota-client-daemon runs ota-client daemon: \
background updates and the D-Bus interface org.otakit.OtaClient1."

require recipes-ota/ota-source.inc
require conf/include/ota-settings.inc
require ${BPN}-licenses.inc
require ${BPN}-go-mods.inc

GO_INSTALL = "${GO_IMPORT}/cmd/ota-client"

SRC_URI += " \
    file://ota-mark-good.service \
    file://ota-mark-good.init \
    file://ota-mount-boot \
    file://ota-client-daemon.service \
    file://ota-client-daemon.init \
    file://org.otakit.OtaClient1.conf \
"

inherit systemd update-rc.d ${@'useradd' if d.getVar('OTA_DAEMON_GROUP') else ''}

# The configuration and trusted keys come from OTA_SERVER_URL, OTA_BRANCH and OTA_SIGN_KEY.
PACKAGE_ARCH = "${MACHINE_ARCH}"
DEPENDS += "${@'ota-build-native' if d.getVar('OTA_SIGN_KEY') else ''}"

SYSTEMD_SERVICE:${PN} = "ota-mark-good.service"
INITSCRIPT_NAME = "ota-mark-good"
INITSCRIPT_PARAMS = "start 99 2 3 4 5 ."

# The update daemon, installed by the ota class with OTA_DAEMON = "1": its unit or SysV
# script, and the bus policy (org.otakit.OtaClient1.conf is what "ota-client daemon
# --print-dbus-policy" prints for the group ota; OTA_DAEMON_GROUP replaces the group, or
# an empty one removes its <policy>). Its policy is client.yaml's daemon mapping. The boot
# is marked good by ota-mark-good (above), never by the daemon.
PACKAGES =+ "${PN}-daemon"
SUMMARY:${PN}-daemon = "OSTree update daemon: background updates, D-Bus interface org.otakit.OtaClient1"
FILES:${PN}-daemon = "${datadir}/dbus-1/system.d/org.otakit.OtaClient1.conf \
    ${systemd_system_unitdir}/ota-client-daemon.service ${sysconfdir}/init.d/ota-client-daemon"
RDEPENDS:${PN}-daemon = "${PN} dbus"
SYSTEMD_PACKAGES = "${PN} ${PN}-daemon"
SYSTEMD_SERVICE:${PN}-daemon = "ota-client-daemon.service"
INITSCRIPT_PACKAGES = "${PN} ${PN}-daemon"
INITSCRIPT_NAME:${PN}-daemon = "ota-client-daemon"
INITSCRIPT_PARAMS:${PN}-daemon = "start 99 2 3 4 5 . stop 20 0 1 6 ."
USERADD_PACKAGES = "${PN}-daemon"
GROUPADD_PARAM:${PN}-daemon = "--system ${OTA_DAEMON_GROUP}"

# The daemon's settings, checked here: client.yaml is read strictly, and a bad value would
# stop every ota-client command on the device, mark-good included.
python () {
    import re
    duration = r'0|([0-9]+(\.[0-9]*)?(ns|us|ms|s|m|h))+'
    hhmm = r'([01][0-9]|2[0-3]):[0-5][0-9]'
    for var, pattern, want in (
            ('OTA_DAEMON_INTERVAL', duration, 'a duration such as 30m or 6h'),
            ('OTA_DAEMON_DOWNLOAD', 'auto|manual', 'auto or manual'),
            ('OTA_DAEMON_INSTALL', 'auto|manual', 'auto or manual'),
            ('OTA_DAEMON_REBOOT', 'never|immediately|window', 'never, immediately or window'),
            ('OTA_DAEMON_MAINTENANCE_WINDOW', '|%s-%s' % (hhmm, hhmm), 'HH:MM-HH:MM, or empty'),
            ('OTA_DAEMON_GROUP', r'|[A-Za-z_][A-Za-z0-9_.-]*', 'a group name, or empty')):
        value = d.getVar(var) or ''
        if not re.fullmatch(pattern, value):
            bb.fatal('%s = "%s": want %s' % (var, value, want))
    window = d.getVar('OTA_DAEMON_MAINTENANCE_WINDOW')
    if d.getVar('OTA_DAEMON_REBOOT') == 'window' and not window:
        bb.fatal('OTA_DAEMON_REBOOT = "window" needs OTA_DAEMON_MAINTENANCE_WINDOW')
    if window and window[:5] == window[6:]:
        bb.fatal('OTA_DAEMON_MAINTENANCE_WINDOW = "%s" is empty' % window)
}

# The sed expression that gives the bus policy OTA_DAEMON_GROUP's group, or none.
def ota_daemon_policy_sed(d):
    group = d.getVar('OTA_DAEMON_GROUP')
    if group:
        return "'s/<policy group=\"ota\">/<policy group=\"%s\">/'" % group
    return "'/<policy group=\"ota\">/,/<\\/policy>/d'"

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
		sed 's|@LIBEXECDIR@|${libexecdir}|; s|@BINDIR@|${bindir}|' ${UNPACKDIR}/ota-client-daemon.service \
			>${D}${systemd_system_unitdir}/ota-client-daemon.service
	fi
	if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
		install -d ${D}${sysconfdir}/init.d
		sed 's|@LIBEXECDIR@|${libexecdir}|; s|@BINDIR@|${bindir}|' ${UNPACKDIR}/ota-mark-good.init \
			>${D}${sysconfdir}/init.d/ota-mark-good
		chmod 0755 ${D}${sysconfdir}/init.d/ota-mark-good
		sed 's|@LIBEXECDIR@|${libexecdir}|; s|@BINDIR@|${bindir}|' ${UNPACKDIR}/ota-client-daemon.init \
			>${D}${sysconfdir}/init.d/ota-client-daemon
		chmod 0755 ${D}${sysconfdir}/init.d/ota-client-daemon
	fi
	install -d ${D}${datadir}/dbus-1/system.d
	sed -e ${@ota_daemon_policy_sed(d)} ${UNPACKDIR}/org.otakit.OtaClient1.conf \
		>${D}${datadir}/dbus-1/system.d/org.otakit.OtaClient1.conf

	if [ -n "${OTA_SERVER_URL}" ] || ${@'true' if bb.utils.to_boolean(d.getVar('OTA_DAEMON')) else 'false'}; then
		install -d ${D}${sysconfdir}/ota
		{
			echo '# Written by meta-ota from OTA_SERVER_URL, OTA_BRANCH and OTA_DAEMON_* (docs/client.md).'
			if [ -n "${OTA_SERVER_URL}" ]; then
				printf 'url: %s\nref: %s\n' "${OTA_SERVER_URL}" "${OTA_BRANCH}"
			fi
			printf 'daemon:\n  interval: "%s"\n  download: %s\n  install: %s\n  reboot: %s\n' \
				"${OTA_DAEMON_INTERVAL}" "${OTA_DAEMON_DOWNLOAD}" "${OTA_DAEMON_INSTALL}" "${OTA_DAEMON_REBOOT}"
			if [ -n "${OTA_DAEMON_MAINTENANCE_WINDOW}" ]; then
				printf '  maintenance-window: "%s"\n' "${OTA_DAEMON_MAINTENANCE_WINDOW}"
			fi
			printf '  group: "%s"\n' "${OTA_DAEMON_GROUP}"
		} >${D}${sysconfdir}/ota/client.yaml
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
