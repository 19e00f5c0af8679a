SUMMARY = "/init of ota-initramfs: mount root= on /sysroot, then ota-client prepare-root"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

SRC_URI = "file://init"
S = "${UNPACKDIR}"

do_install() {
	install -m 0755 ${S}/init ${D}/init
	install -d ${D}/dev ${D}/proc ${D}/sys ${D}/sysroot
}

FILES:${PN} = "/init /dev /proc /sys /sysroot"
RDEPENDS:${PN} = "ota-client busybox util-linux-findfs"
