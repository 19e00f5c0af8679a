#!/bin/sh
# Post-image script of configs/ota_qemu_aarch64_virt_defconfig: the disk image
# for QEMU's virt machine (ota-build image --board qemu-aarch64), and
# images/start-qemu.sh, which boots it with the U-Boot this build made.
set -eu

"$(dirname "$0")/../common/post-image.sh" qemu-aarch64 "$@"
# shellcheck disable=SC1091 # written by fs/ota
. "$BINARIES_DIR/rootfs.ota"
cat > "$BINARIES_DIR/start-qemu.sh" <<EOT
#!/bin/sh
cd "\$(dirname "\$0")"
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -m 1024 -smp 2 -nographic \\
	-bios u-boot.bin \\
	-drive file=${OTA_IMAGE##*/},if=none,format=raw,id=hd0 \\
	-device virtio-blk-device,drive=hd0 \\
	-netdev user,id=eth0 -device virtio-net-device,netdev=eth0 "\$@"
EOT
chmod +x "$BINARIES_DIR/start-qemu.sh"
