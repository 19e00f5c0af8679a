# ota.bbclass: signed OSTree commits, static deltas, bundles and flash-ready disk images
# from image recipes, with ota-build; ota-client on the device.
#
# Enable it for every image with IMAGE_CLASSES += "ota" (local.conf or distro), or in one
# image recipe. It adds two image types to IMAGE_FSTYPES (OTA_FSTYPES):
#   ota     commits IMAGE_ROOTFS to OTA_BRANCH of the repository OTA_REPO (signed with
#           OTA_SIGN_KEY), writes the deltas of OTA_DELTA_FROM and, with OTA_BUNDLE = "1",
#           a bundle;
#   otaimg  writes the flash-ready image of that commit for OTA_BOARD (derived from MACHINE
#           for the boards meta-ota supports), with .bmap and .zst.
# README.md lists every variable with its default.

require conf/include/ota-settings.inc

# Images the class leaves alone: initramfs images (INITRAMFS_IMAGE, OTA_INITRAMFS).
OTA_ENABLED ?= "${@'0' if d.getVar('PN') in (d.getVar('INITRAMFS_IMAGE') or '').split() + (d.getVar('OTA_INITRAMFS') or '').split() else '1'}"

OTA_REPO ?= "${DEPLOY_DIR_IMAGE}/ota-repo"
OTA_VERSION ?= "${DISTRO_VERSION}"
OTA_SUBJECT ?= "${PN} ${OTA_VERSION} for ${MACHINE}"
# Commit time (Unix seconds or RFC 3339); empty: when the image is built.
OTA_TIMESTAMP ?= ""
OTA_BOOTABLE ?= "1"
OTA_COMMIT_ARGS ?= ""
OTA_DELTA_FROM ?= "previous"
# 1 (default): the deltas also carry zstd parts (ota-build delta --zstd-parts), which
# ota-client downloads instead of the xz parts (no larger, decoded faster); needs
# zstd-native. 0: xz parts only.
OTA_DELTA_ZSTD ?= "1"
OTA_BUNDLE ?= "0"
OTA_BUNDLE_FROM ?= "empty"
OTA_BUNDLE_FILE ?= "${IMGDEPLOYDIR}/${IMAGE_NAME}.otabundle"
OTA_COMMIT_FILE ?= "${IMGDEPLOYDIR}/${IMAGE_NAME}.otacommit"
# ota-build image --json of the flash-ready image: partitions, kernel arguments (the wic
# plugin otaimage reads it).
OTA_IMAGE_REPORT ?= "${IMGDEPLOYDIR}/${IMAGE_NAME}.otaimg.json"

# Packages the commit needs: the kernel and device trees (--bootable moves them to
# /usr/lib/modules/KVER) and the client, with its update daemon when OTA_DAEMON = "1".
OTA_KERNEL_PACKAGES ?= "kernel-image kernel-devicetree"
OTA_CLIENT_PACKAGES ?= "ota-client ${@'ota-client-daemon' if bb.utils.to_boolean(d.getVar('OTA_DAEMON')) else ''}"
# An initramfs image (e.g. ota-initramfs) to boot through; empty: the kernel mounts the root
# partition and starts ota-client as /usr/lib/ostree/ostree-prepare-root (init=).
OTA_INITRAMFS ?= ""

OTA_BOARD ?= "${@ota_board(d)}"
OTA_LAYOUT ?= ""
OTA_BOOT_FILES ?= "${@ota_boot_files(d)}"
OTA_BOOT_DEPENDS ?= "${@ota_boot_depends(d)}"
OTA_RAW ?= "${@ota_raw(d)}"
OTA_IMAGE_SIZE ?= "auto"
OTA_KARGS ?= ""
OTA_OS ?= ""
OTA_IMAGE_ZSTD ?= "1"
OTA_IMAGE_ARGS ?= ""
OTA_FSTYPES ?= "ota ${@'otaimg' if d.getVar('OTA_BOARD') or d.getVar('OTA_LAYOUT') else ''}"

# MACHINE (or an override of it) -> ota-build board preset, first match wins.
OTA_BOARD_MAP ?= " \
    raspberrypi5:raspberrypi5 raspberrypi4-64:raspberrypi4-64 raspberrypi3-64:raspberrypi3-64 \
    mx8mm-generic-bsp:imx8mm mx8mn-generic-bsp:imx8mn mx8mp-generic-bsp:imx8mp mx8mq-generic-bsp:imx8mq \
    mx6-generic-bsp:imx6 qemuarm64:qemu-aarch64 \
"

def ota_board(d):
    overrides = (d.getVar('MACHINEOVERRIDES') or '').split(':') + [d.getVar('MACHINE')]
    for entry in (d.getVar('OTA_BOARD_MAP') or '').split():
        override, board = entry.split(':', 1)
        if override in overrides:
            return board
    return ''

# The files of DEPLOY_DIR_IMAGE the board's boot partition and raw areas take, as
# IMAGE_BOOT_FILES entries (SOURCE or SOURCE;DEST, globs allowed). The Raspberry Pi's are
# meta-raspberrypi's IMAGE_BOOT_FILES (firmware, config.txt, cmdline.txt, device trees,
# overlays) with U-Boot under its own name (the preset names it for the firmware), without
# the kernel (it is in the commit) and without rpi-u-boot-scr's boot.scr (ota-build writes the
# boot script); on i.MX, the boot container or SPL and U-Boot, and the device trees.
def ota_boot_files(d):
    board = d.getVar('OTA_BOARD') or ''
    kernel = (d.getVar('KERNEL_IMAGETYPE') or '').split()
    files = []
    if board.startswith('raspberrypi') or board.startswith('imx'):
        for entry in (d.getVar('IMAGE_BOOT_FILES') or '').split():
            src = entry.split(';')[0]
            if src in kernel or src == 'boot.scr' or src.startswith('extlinux'):
                continue
            files.append(src if src in ('u-boot.bin',) else entry)
    if board in ('imx8mm', 'imx8mn', 'imx8mp', 'imx8mq'):
        files.append('imx-boot')
    elif board == 'imx6':
        files += [f for f in (os.path.basename(d.getVar('SPL_BINARY') or ''), d.getVar('UBOOT_BINARY') or '') if f]
    return ' '.join(files)

# Raw blobs (FILE@OFFSET) replacing the preset's: the i.MX boot ROM reads the boot container
# at IMX_BOOT_SEEK KiB, or SPL at 1 KiB and U-Boot at 69 KiB (u-boot-imx: u-boot.imx at 1 KiB).
def ota_raw(d):
    board = d.getVar('OTA_BOARD') or ''
    if board in ('imx8mm', 'imx8mn', 'imx8mp', 'imx8mq'):
        seek = d.getVar('IMX_BOOT_SEEK') or ('33' if board in ('imx8mm', 'imx8mq') else '32')
        return 'imx-boot@%sKiB' % seek
    if board == 'imx6':
        spl, uboot = os.path.basename(d.getVar('SPL_BINARY') or ''), d.getVar('UBOOT_BINARY') or 'u-boot.img'
        return '%s@1KiB %s@69KiB' % (spl, uboot) if spl else '%s@1KiB' % uboot
    return ''

# The deploy tasks that put OTA_BOOT_FILES in DEPLOY_DIR_IMAGE.
def ota_boot_depends(d):
    board = d.getVar('OTA_BOARD') or ''
    if board.startswith('raspberrypi'):
        return 'rpi-bootfiles:do_deploy virtual/bootloader:do_deploy virtual/kernel:do_deploy'
    if board in ('imx8mm', 'imx8mn', 'imx8mp', 'imx8mq'):
        container = 'imx-boot' if d.getVar('UBOOT_PROVIDES_BOOT_CONTAINER') == '0' else 'virtual/bootloader'
        return container + ':do_deploy virtual/kernel:do_deploy'
    if board == 'imx6':
        return 'virtual/bootloader:do_deploy virtual/kernel:do_deploy'
    return ''

def ota_enabled(d, value):
    return value if d.getVar('OTA_ENABLED') == '1' else ''

IMAGE_FSTYPES:append = " ${@ota_enabled(d, d.getVar('OTA_FSTYPES'))}"
IMAGE_INSTALL:append = " ${@ota_enabled(d, d.getVar('OTA_KERNEL_PACKAGES') + ' ' + d.getVar('OTA_CLIENT_PACKAGES'))}"
IMAGE_TYPES += "ota otaimg"
IMAGE_TYPEDEP:otaimg = "ota"
# Deployed beside each type's file, with IMAGE_LINK_NAME links.
do_image_ota[subimages] += "otacommit otabundle"
do_image_otaimg[subimages] += "otaimg.bmap otaimg.zst otaimg.json"
# A .wks may take partitions of the flash-ready image (wic source plugin otaimage).
IMAGE_TYPEDEP:wic:append = "${@ota_enabled(d, ' otaimg' if 'otaimg' in d.getVar('OTA_FSTYPES').split() else '')}"
WICVARS:append = " OTA_IMAGE_REPORT"

do_image_ota[depends] += "ota-build-native:do_populate_sysroot ${@'zstd-native:do_populate_sysroot' if bb.utils.to_boolean(d.getVar('OTA_DELTA_ZSTD')) else ''}"
do_image_otaimg[depends] += "ota-build-native:do_populate_sysroot ${OTA_BOOT_DEPENDS}"
do_rootfs[depends] += "${@ota_enabled(d, '%s:do_image_complete' % d.getVar('OTA_INITRAMFS') if d.getVar('OTA_INITRAMFS') else '')}"
# One image task at a time writes or reads the shared repository.
do_image_ota[lockfiles] += "${OTA_REPO}.lock"
do_image_otaimg[lockfiles] += "${OTA_REPO}.lock"
do_image_ota[file-checksums] += "${OTA_LAYERDIR}/scripts/ota-commit-rootfs:True"
do_image_ota[prefuncs] += "ota_sign_env"
# ota-build (not run through pseudo) writes the repository.
PSEUDO_IGNORE_PATHS .= ",${OTA_REPO}"

IMAGE_CMD:ota () {
	OTA_ROOTFS="${IMAGE_ROOTFS}" OTA_REPO="${OTA_REPO}" OTA_BRANCH="${OTA_BRANCH}" \
	OTA_VERSION="${OTA_VERSION}" OTA_SUBJECT="${OTA_SUBJECT}" OTA_SIGN_KEY="${OTA_SIGN_KEY}" \
	OTA_BOOTABLE="${OTA_BOOTABLE}" OTA_TIMESTAMP="${OTA_TIMESTAMP}" OTA_COMMIT_ARGS="${OTA_COMMIT_ARGS}" \
	OTA_DELTA_FROM="${OTA_DELTA_FROM}" OTA_DELTA_ZSTD="${@'1' if bb.utils.to_boolean(d.getVar('OTA_DELTA_ZSTD')) else '0'}" OTA_BUNDLE="${OTA_BUNDLE}" OTA_BUNDLE_FROM="${OTA_BUNDLE_FROM}" \
	OTA_BUNDLE_FILE="${OTA_BUNDLE_FILE}" OTA_COMMIT_FILE="${OTA_COMMIT_FILE}" OTA_BUILD=ota-build \
		bash "${OTA_LAYERDIR}/scripts/ota-commit-rootfs"
}

IMAGE_CMD:otaimg () {
	[ -s "${OTA_COMMIT_FILE}" ] || bbfatal "otaimg: ${OTA_COMMIT_FILE} is missing: the ota image type makes it"
	commit=$(cat "${OTA_COMMIT_FILE}")
	if [ -z "${OTA_BOARD}" ] && [ -z "${OTA_LAYOUT}" ]; then
		bbfatal "otaimg: OTA_BOARD is empty for MACHINE ${MACHINE}: set OTA_BOARD to an ota-build board preset, or OTA_LAYOUT to a layout file"
	fi

	# The boot files, under the names the layout takes.
	boot="${WORKDIR}/ota-boot-files"
	rm -rf "$boot"
	mkdir -p "$boot"
	entries='${OTA_BOOT_FILES}'
	for entry in $entries; do
		src=${entry%%;*}
		dst=${entry#*;}
		[ "$dst" != "$entry" ] || dst=
		found=
		for f in "${DEPLOY_DIR_IMAGE}"/$src; do
			[ -e "$f" ] || continue
			found=1
			if [ -z "$dst" ]; then
				cp -rL "$f" "$boot/"
			else
				case $dst in */) mkdir -p "$boot/$dst" ;; *) mkdir -p "$(dirname "$boot/$dst")" ;; esac
				cp -rL "$f" "$boot/$dst"
			fi
		done
		[ -n "$found" ] || bbfatal "otaimg: OTA_BOOT_FILES: $src is not in ${DEPLOY_DIR_IMAGE}"
	done

	layout="${OTA_LAYOUT}"
	if [ -z "$layout" ]; then
		layout="${WORKDIR}/ota-layout.yaml"
		echo "board: ${OTA_BOARD}" >"$layout"
		raw='${OTA_RAW}'
		if [ -n "$raw" ]; then
			echo "raw:" >>"$layout"
			for r in $raw; do
				echo "  - {source: \"${r%@*}\", offset: \"${r##*@}\"}" >>"$layout"
			done
		fi
	fi

	set -- --repo "${OTA_REPO}" --layout "$layout" --boot-files "$boot" --size "${OTA_IMAGE_SIZE}" \
		-o "${IMGDEPLOYDIR}/${IMAGE_NAME}.otaimg"
	for k in ${OTA_KARGS}; do set -- "$@" --karg "$k"; done
	[ -z "${OTA_OS}" ] || set -- "$@" --os "${OTA_OS}"
	[ "${OTA_IMAGE_ZSTD}" != 1 ] || set -- "$@" --zstd
	ota-build -q image --json "$@" ${OTA_IMAGE_ARGS} "$commit" >"${OTA_IMAGE_REPORT}"
}

# The configuration of ota-client follows this image's branch (OTA_BRANCH may be set per
# image), and the initramfs goes where ota-build commit --bootable finds it.
ROOTFS_POSTPROCESS_COMMAND += "${@ota_enabled(d, 'ota_rootfs_postprocess')}"
ota_rootfs_postprocess () {
	if [ -f ${IMAGE_ROOTFS}${sysconfdir}/ota/client.yaml ]; then
		sed -i 's|^ref:.*|ref: ${OTA_BRANCH}|' ${IMAGE_ROOTFS}${sysconfdir}/ota/client.yaml
	fi
	if [ -n "${OTA_INITRAMFS}" ]; then
		for f in ${DEPLOY_DIR_IMAGE}/${OTA_INITRAMFS}-${MACHINE}.cpio.gz ${DEPLOY_DIR_IMAGE}/${OTA_INITRAMFS}-${MACHINE}.rootfs.cpio.gz; do
			if [ -e "$f" ]; then
				install -d ${IMAGE_ROOTFS}/boot
				cp -L "$f" ${IMAGE_ROOTFS}/boot/initramfs.img
				return 0
			fi
		done
		bbfatal "OTA_INITRAMFS: no ${OTA_INITRAMFS}-${MACHINE}.cpio.gz in ${DEPLOY_DIR_IMAGE}"
	fi
}
