SUMMARY = "Initramfs that boots an OSTree deployment with ota-client prepare-root"
DESCRIPTION = "Mounts the root partition named by root= on /sysroot, then runs \
ota-client prepare-root, which makes the deployment named by ostree= the root and starts \
its init. Use it with OTA_INITRAMFS = \"ota-initramfs\"."
LICENSE = "MIT"

PACKAGE_INSTALL = "ota-initramfs-init ota-client busybox util-linux-findfs base-passwd"
IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""
IMAGE_NAME_SUFFIX ?= ""
IMAGE_FSTYPES = "${INITRAMFS_FSTYPES}"
IMAGE_ROOTFS_SIZE = "8192"
IMAGE_ROOTFS_EXTRA_SPACE = "0"
# An initramfs is not committed: the ota image class leaves it alone.
OTA_ENABLED = "0"

inherit core-image
