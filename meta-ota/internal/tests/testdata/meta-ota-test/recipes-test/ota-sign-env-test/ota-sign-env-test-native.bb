SUMMARY = "Test of ota_sign_env: a task signs with an env:// key from bitbake's environment"
DESCRIPTION = "do_compile derives the public half of OTA_SIGN_KEY = env://OTA_TEST_SIGN_KEY \
with ota-build pubkey, as ota-client's do_install does; the key comes from the environment \
bitbake was started in, through ota_sign_env, and must appear in no task script or log."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

require conf/include/ota-settings.inc
inherit native

OTA_SIGN_KEY = "env://OTA_TEST_SIGN_KEY"
DEPENDS = "ota-build-native"
S = "${UNPACKDIR}"
B = "${WORKDIR}/build"

do_compile[prefuncs] += "ota_sign_env"
do_compile[nostamp] = "1"
do_compile() {
	ota-build pubkey --sign-key ${OTA_SIGN_KEY} >${B}/ota.pub
}

do_install() {
	install -D -m 0644 ${B}/ota.pub ${D}${datadir}/ota-test/ota.pub
}
