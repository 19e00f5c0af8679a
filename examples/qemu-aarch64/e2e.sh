#!/usr/bin/env bash
# End-to-end proof on an emulated board: a small BusyBox system on Debian's arm64 kernel,
# released as v1, v2 and a deliberately broken v3 with ota-build, flashed as the
# qemu-aarch64 image `ota-build image` writes, booted by U-Boot in QEMU's virt machine, and
# updated over the air by ota-client through QEMU's user-mode network from `ota-build serve`
# on the host's loopback. The scenario (scenario/main.go) drives the serial console: boot v1,
# power cuts in the middle of the download and of the deploy, update to v2, update to v3,
# which fails its health check until the boot script falls back to v2. See README.md.
#
# Run as root, which it needs to install its Debian packages: sudo examples/qemu-aarch64/e2e.sh
# Environment: E2E_WORK (default /tmp/ota-e2e; downloaded packages are kept in
# E2E_WORK/debs, everything else is made anew), E2E_PORT (default 8480, the port of
# ota-build serve on 127.0.0.1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
WORK=${E2E_WORK:-/tmp/ota-e2e}
PORT=${E2E_PORT:-8480}
export E2E_OUT=$WORK/out
LOGS=$WORK/logs
DEBS=$WORK/debs
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

# Host packages: QEMU and U-Boot for the board, kmod (modinfo) and cpio for the initramfs.
HOST_PKGS=(qemu-system-arm u-boot-qemu kmod cpio)
UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
# Kernel modules the initramfs loads (with their dependencies): the virtio-mmio transport,
# disk and network of QEMU's virt machine, ext4 for the sysroot (crc32c_generic for its
# checksums, which the kernel would otherwise ask modprobe for) and FAT for the boot
# partition.
MODULES=(virtio_mmio virtio_blk virtio_net crc32c_generic ext4 vfat nls_cp437 nls_ascii)
# BusyBox applets the systems use, as symbolic links to busybox beside them.
APPLETS=(sh ash awk basename cat chmod cp cut date dd df dirname dmesg du echo env expr false
	find free grep halt head hexdump hostname id insmod ip kill less ln ls lsmod mkdir mknod
	mount mv od poweroff printf ps readlink reboot rm rmdir sed seq sleep sort stat stty sync
	tail tee test touch tr true umount uname vi wc wget xargs init switch_root)

die() {
	printf 'e2e.sh: error: %s\n' "$*" >&2
	exit 1
}

# run LOG CMD...: runs CMD with its output in $LOGS/LOG; on failure shows its tail.
run() {
	local log=$LOGS/$1
	shift
	printf '+ %s\n' "$*" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "failed: $* (log: $log)"
	fi
}

# Phase timing: phase NAME ends the running phase (its time goes to PHASES) and starts
# NAME; an empty NAME only ends the running one.
PHASES=()
phase_name='' phase_start=0
phase() {
	local now=$EPOCHREALTIME
	if [[ -n $phase_name ]]; then
		PHASES+=("$(awk -v n="$phase_name" -v a="$phase_start" -v b="$now" 'BEGIN { printf "%-44s %7.1f s", n, b - a }')")
	fi
	phase_name=$1 phase_start=$now
	[[ -z $1 ]] || printf '\n==> %s\n' "$1"
}

# as_root LOG CMD...: run, which needs root.
as_root() {
	[[ $(id -u) -eq 0 ]] || die "run as root: '${*:2}' is needed (it installs ${HOST_PKGS[*]} and enables arm64 packages)"
	run "$@"
}

install_packages() {
	export DEBIAN_FRONTEND=noninteractive
	# apt waits (bounded) for another apt to finish rather than failing at once.
	local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		as_root apt.log dpkg --add-architecture arm64
	fi
	# The package lists are updated when they lack the arm64 packages or a host package is
	# missing; host packages are installed when missing.
	if ! dpkg -s "${HOST_PKGS[@]}" >/dev/null 2>&1 || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
		as_root apt.log "${apt[@]}" update
		as_root apt.log "${apt[@]}" install -y --no-install-recommends "${HOST_PKGS[@]}"
	fi
	[[ -f $UBOOT ]] || die "$UBOOT is missing after installing u-boot-qemu"

	# The kernel package linux-image-arm64 depends on, e.g. linux-image-6.1.0-57-arm64.
	KPKG=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -n1)
	[[ -n $KPKG ]] || die "cannot tell which kernel package linux-image-arm64:arm64 depends on"
	mkdir -p "$DEBS"
	chown _apt "$DEBS" 2>/dev/null || true # apt downloads as _apt
	local want=() pkg
	for pkg in "$KPKG" busybox-static; do
		compgen -G "$DEBS/${pkg}_*_arm64.deb" >/dev/null || want+=("$pkg:arm64")
	done
	if ((${#want[@]})); then
		(cd "$DEBS" && run apt.log "${apt[@]}" download "${want[@]}")
	fi
	echo "kernel package: $KPKG"
}

build_binaries() {
	cd "$top"
	run build.log go build -o "$WORK/ota-build" ./cmd/ota-build
	run build.log go build -o "$WORK/scenario" ./examples/qemu-aarch64/scenario
	# The device's client: static, stripped, for arm64.
	run build.log env CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags='-s -w' -o "$WORK/ota-client" ./cmd/ota-client
	cd - >/dev/null
	echo "ota-client for arm64: $(stat -c %s "$WORK/ota-client") bytes"
}

# busybox_links DIR: the applet links in DIR to DIR/busybox.
busybox_links() {
	local a
	for a in "${APPLETS[@]}"; do
		ln -sf busybox "$1/$a"
	done
}

# make_initramfs: the kernel, its modules, and the initramfs with BusyBox, ota-client, the
# modules and initramfs-init.
make_initramfs() {
	local kx=$WORK/kernel bb=$WORK/busybox ir=$WORK/initramfs
	rm -rf "$kx" "$bb" "$ir"
	run system.log dpkg-deb -x "$(compgen -G "$DEBS/${KPKG}_*_arm64.deb" | head -n1)" "$kx"
	run system.log dpkg-deb -x "$(compgen -G "$DEBS/busybox-static_*_arm64.deb" | head -n1)" "$bb"
	KVER=$(basename "$(compgen -G "$kx/lib/modules/*" | head -n1)")
	KERNEL=$kx/boot/vmlinuz-$KVER
	[[ -f $KERNEL ]] || die "$KPKG has no /boot/vmlinuz-$KVER"

	mkdir -p "$ir"/{bin,dev,proc,sys,sysroot,etc,lib/modules}
	cp "$bb/bin/busybox" "$WORK/ota-client" "$ir/bin/"
	busybox_links "$ir/bin"
	cp "$here/initramfs-init" "$ir/init"
	# Each module after its dependencies (modinfo's depends=), once.
	declare -A loaded=()
	local mods=$kx/lib/modules/$KVER
	add_module() {
		local f dep
		[[ -z ${loaded[$1]:-} ]] || return 0
		loaded[$1]=1
		f=$(find "$mods" -name "$1.ko" -o -name "${1//_/-}.ko" | head -n1)
		[[ -n $f ]] || die "module $1 is not in $KPKG"
		for dep in $(modinfo -F depends "$f" | tr , ' '); do
			add_module "$dep"
		done
		cp "$f" "$ir/lib/modules/"
		echo "${f##*/}" >>"$ir/etc/modules"
	}
	local m
	for m in "${MODULES[@]}"; do
		add_module "$m"
	done
	(cd "$ir" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 --reproducible) | gzip -9n >"$WORK/initramfs.img"
	echo "kernel $KVER; initramfs $(stat -c %s "$WORK/initramfs.img") bytes, modules: $(tr '\n' ' ' <"$ir/etc/modules")"
}

# make_rootfs VERSION: the root filesystem of release VERSION in $E2E_OUT/rootfs-VERSION.
# Release 2 and later carry an 8 MiB file that does not compress, so that the download of
# the delta takes long enough to be cut in the middle (the client's max-rate is 1 MiB/s);
# release 3's health check fails.
make_rootfs() {
	local v=$1 r=$E2E_OUT/rootfs-$1
	rm -rf "$r"
	cp -a "$here/rootfs" "$r"
	mkdir -p "$r/usr/bin" "$r/boot" "$r/etc/ota" "$r/etc/ostree/trusted.ed25519.d" "$r"/{dev,proc,sys,run,tmp,var}
	ln -s usr/bin "$r/bin"
	ln -s usr/bin "$r/sbin"
	ln -s bin "$r/usr/sbin"
	cp "$WORK/busybox/bin/busybox" "$WORK/ota-client" "$r/usr/bin/"
	busybox_links "$r/usr/bin"
	cp "$E2E_OUT/release.pub" "$r/etc/ostree/trusted.ed25519.d/release.pub"
	cat >"$r/etc/os-release" <<-EOT
		NAME="OTA e2e"
		ID=ota-e2e
		PRETTY_NAME="OTA e2e $v"
		VERSION_ID=$v
	EOT
	cat >"$r/etc/ota/client.yaml" <<-EOT
		url: http://10.0.2.2:$PORT/
		ref: e2e/aarch64/stable
		max-rate: 1MiB
	EOT
	cp "$KERNEL" "$r/boot/vmlinuz-$KVER"
	cp "$WORK/initramfs.img" "$r/boot/initramfs-$KVER.img"
	if ((v >= 2)); then
		mkdir -p "$r/usr/share/e2e"
		cp "$WORK/payload" "$r/usr/share/e2e/payload"
	fi
	if ((v == 3)); then
		cat >"$r/usr/libexec/e2e/health-check" <<-'EOT'
			#!/bin/sh
			# Release 3 is broken on purpose: its health check always fails.
			echo "health: release 3 is deliberately broken"
			exit 1
		EOT
	fi
}

main() {
	local start=$EPOCHREALTIME
	mkdir -p "$WORK"
	rm -rf "$E2E_OUT" "$LOGS" "$WORK/disk.img"
	mkdir -p "$E2E_OUT" "$LOGS"
	# The port must be free before anything is baked into the releases' client.yaml.
	if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
		die "127.0.0.1:$PORT is in use: set E2E_PORT to a free port"
	fi

	phase "packages"
	install_packages
	phase "build ota-build, ota-client (arm64), scenario"
	build_binaries
	phase "kernel and initramfs"
	make_initramfs
	phase "releases 1, 2, 3 and the v1 image"
	run release.log "$WORK/ota-build" keygen -o "$E2E_OUT/release"
	head -c 8M /dev/urandom >"$WORK/payload"
	local v
	for v in 1 2 3; do
		make_rootfs "$v"
	done
	run release.log "$WORK/ota-build" build -f "$here/ota.yaml" --version 1
	# The factory image: release 1 deployed, with the boot script and its boot counter.
	run release.log "$WORK/ota-build" image --repo "$E2E_OUT/repo" --board qemu-aarch64 --size 512MiB \
		--bmap=false -o "$WORK/disk.img" e2e/aarch64/stable
	run release.log "$WORK/ota-build" build -f "$here/ota.yaml" --version 2
	# Release 3 is published by the scenario, once the device runs release 2.
	phase ""
	printf '\n==> build times\n'
	printf '%s\n' "${PHASES[@]}"

	local rc=0
	"$WORK/scenario" -image "$WORK/disk.img" -uboot "$UBOOT" -repo "$E2E_OUT/repo" -port "$PORT" \
		-logs "$LOGS" -ota-build "$WORK/ota-build" -manifest "$here/ota.yaml" || rc=$?
	awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%-44s %7.1f s\n", "e2e.sh total (build and scenario)", b - a }'
	echo "logs: $LOGS"
	return "$rc"
}

main "$@"
