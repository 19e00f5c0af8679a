#!/usr/bin/env bash
# bench/image.sh: time `ota-build image` (commit -> flash-ready disk image, as a non-root user)
# against the stock pipeline a Yocto user runs today (as root): `ostree admin init-fs`,
# `ostree admin os-init`, `ostree pull-local`, `ostree admin deploy --sysroot`, then
# `genimage` writing an MBR image with a FAT boot partition and an ext4 root partition made
# by `mke2fs -d`. Both start from the same bootable commit in the same archive repo.
#
# Usage (from anywhere):  sudo bash bench/image.sh
#
# Environment:
#   TREE         the benchmark tree: debian (default), minbase or tiny (see lib.sh and
#                bench/README.md); BENCH_DIR and COMMIT_DIR default to per-tree directories
#   BENCH_DIR    scratch directory (default /tmp/ota-bench-image, plus -minbase or -tiny for those
#                trees): the bootable rootfs, the
#                repo, the sysroot, genimage's directories, the images and the logs live here
#   COMMIT_DIR   bench/commit.sh's BENCH_DIR (default /tmp/ota-bench, with the tree's suffix): its rootfs is reused,
#                and prepared there the same way when missing
#   RUNS         timed runs per pipeline (default 3), taken round-robin; the best time and the
#                largest RSS are shown
#   NICE         niceness of the timed commands (default -20 as root, else 0), with the
#                session's autogroup too (lib.sh prioritize)
#   OTA_BUILD    ota-build binary to measure (default: built from this checkout with
#                `go build -o $BENCH_DIR/ota-build ./cmd/ota-build`); it also makes the commit.
#                When it has no `image` subcommand, only the stock pipeline is measured
#   DROP_CACHES  1 (default) runs `sync; echo 3 > /proc/sys/vm/drop_caches` before every timed
#                run (both pipelines start with a cold page cache); 0 leaves the cache alone
#   OTA_TMPDIR   TMPDIR of `ota-build image`, where it stages the sysroot's metadata, /etc
#                and kernel (default: not set, so ota-build picks /dev/shm)
#   OTA_SIZE     the --size argument given to `ota-build image` (default: the image size
#                below in MiB with an "M" suffix, e.g. 923M)
#
# The tree: bench/commit.sh's rootfs (188 Debian bookworm arm64 packages, ~420 MiB in ~11,000
# regular files) hard-linked into $BENCH_DIR/rootfs, plus a stand-in kernel (10 MiB of random
# bytes as /boot/vmlinuz-6.1.0-bench) and initramfs (/boot/initrd.img-6.1.0-bench, 4 MiB),
# since no package in it is a kernel. It is committed once, untimed, with
# `ota-build commit --bootable` to the branch "bench" of a fresh archive repo.
#
# The images have the same total size. Stock: MBR, partition 1 FAT 64 MiB at 1 MiB holding a
# boot.scr-like file and three small .dtb files, partition 2 ext4 of (du of the tree) * 1.3
# + 256 MiB (rounded up to MiB) made by genimage with `mke2fs -d` from a `cp -a` of the
# sysroot. Ours: `ota-build image --board qemu-aarch64 --size TOTAL` (that board's layout:
# GPT, a 64 MiB FAT partition with ota-build's own boot.scr, the sysroot partition filling
# the rest), with an empty --boot-files directory (the board needs no firmware files).
#
# The last run's images are checked (untimed): `sfdisk --verify`; for the last partition
# (root) `e2fsck -fn`, its ext4 size against the partition's (`dumpe2fs -h`) and the
# deployment directory /ostree/deploy/benchos/deploy/COMMIT.0 (`debugfs`); for the first
# partition (boot) `mdir`. Reported sizes: the image file's size and its allocated blocks
# (`du --block-size=1`, = `stat -c %b` * 512; less than the size where the image is sparse).
#
# Progress goes to stderr only on a terminal; the output of every tool goes to
# $BENCH_DIR/logs/. The final table goes to stdout.
set -euo pipefail

# The rootfs packages (ARM64_PKGS, ALL_PKGS) and shared helpers are in lib.sh.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
select_tree
BENCH_DIR=${BENCH_DIR:-/tmp/ota-bench-image$TREE_SUFFIX}
COMMIT_DIR=${COMMIT_DIR:-/tmp/ota-bench$TREE_SUFFIX}
RUNS=${RUNS:-3}
NICE=${NICE:-}
DROP_CACHES=${DROP_CACHES:-1}
OTA_BUILD=${OTA_BUILD:-}
OTA_SIZE=${OTA_SIZE:-}
BASE_ROOT=$COMMIT_DIR/rootfs
DEBS=$COMMIT_DIR/debs
ROOTFS=$BENCH_DIR/rootfs
KERNEL_DIR=$BENCH_DIR/kernel
LOGS=$BENCH_DIR/logs
REPO=$BENCH_DIR/repo
STOCK=$BENCH_DIR/stock # sysroot/, genimage's tmp/, input/, output/; stock.img
OURS=$BENCH_DIR/ours   # boot-files/, tmp/; ours.img (owned by the unprivileged user)
# ota-build's TMPDIR when OTA_TMPDIR is set (e.g. $BENCH_DIR/ours/tmp to stage on the disk).
OURS_TMP=${OTA_TMPDIR:-$OURS/tmp}
KVER=6.1.0-bench
OS_NAME=benchos
BRANCH=bench
BOARD=qemu-aarch64
KARG=root=/dev/mmcblk0p2
NOBODY=65534
BOOT_MIB=64
BOOT_OFFSET_MIB=1
TIMESTAMP=1704067200 # fixed commit timestamp (2024-01-01 UTC), Unix seconds
STAGES=(init-fs os-init pull-local deploy genimage)

# bench/commit.sh's rootfs, prepared the same way when missing.
prepare_base() { prepare_debian_rootfs "$BASE_ROOT" bench/image.sh; }

# ensure_image_tools installs genimage, mtools and dosfstools when missing (as root).
ensure_image_tools() {
	local missing=() tool pkg
	for tool in genimage:genimage mcopy:mtools mkdosfs:dosfstools mke2fs:e2fsprogs \
		debugfs:e2fsprogs sfdisk:fdisk setpriv:util-linux; do
		pkg=${tool#*:}
		command -v "${tool%%:*}" >/dev/null || missing+=("$pkg")
	done
	if ((${#missing[@]})); then
		is_root || die "missing packages ${missing[*]}: run as root (sudo bash bench/${0##*/}) to install them, or install them yourself"
		log "installing packages ${missing[*]}"
		run "$LOGS/apt.log" apt-get update -q
		run "$LOGS/apt.log" apt-get install -y -q "${missing[@]}"
	fi
}

# The bootable tree: the base rootfs hard-linked (nothing writes to its files) plus the
# stand-in kernel and initramfs, made once and kept in $KERNEL_DIR.
prepare_rootfs() {
	if [[ ! -s $KERNEL_DIR/vmlinuz-$KVER || ! -s $KERNEL_DIR/initrd.img-$KVER ]]; then
		log "writing a stand-in kernel and initramfs to $KERNEL_DIR"
		mkdir -p "$KERNEL_DIR"
		head -c $((10 << 20)) /dev/urandom >"$KERNEL_DIR/vmlinuz-$KVER"
		head -c $((4 << 20)) /dev/urandom >"$KERNEL_DIR/initrd.img-$KVER"
	fi
	log "linking the rootfs into $ROOTFS"
	rm -rf "$ROOTFS"
	if ! cp -al "$BASE_ROOT" "$ROOTFS" 2>>"$LOGS/prepare.log"; then
		rm -rf "$ROOTFS"
		run "$LOGS/prepare.log" cp -a "$BASE_ROOT" "$ROOTFS"
	fi
	rm -f "$ROOTFS/.bench-complete"
	mkdir -p "$ROOTFS/boot"
	cp "$KERNEL_DIR/vmlinuz-$KVER" "$KERNEL_DIR/initrd.img-$KVER" "$ROOTFS/boot/"
	[[ -e $ROOTFS/etc/os-release || -e $ROOTFS/usr/lib/os-release ]] || die "$ROOTFS has no os-release"
}

# Commits the tree (untimed) to a fresh archive repo that the unprivileged user may lock and
# read; sets COMMIT.
make_repo() {
	log "committing $ROOTFS (bootable) to $REPO"
	rm -rf "$REPO"
	: >"$LOGS/commit.log"
	run "$LOGS/commit.log" "$OTA" init --repo "$REPO"
	run "$LOGS/commit.log" "$OTA" commit --repo "$REPO" --branch "$BRANCH" --tree "dir=$ROOTFS" \
		--bootable --timestamp "$TIMESTAMP" --subject "image benchmark"
	COMMIT=$(ostree rev-parse --repo="$REPO" "$BRANCH" 2>>"$LOGS/commit.log") || die "no branch $BRANCH in $REPO"
	ostree ls --repo="$REPO" "$COMMIT" "/usr/lib/modules/$KVER/vmlinuz" >>"$LOGS/commit.log" 2>&1 ||
		die "commit $COMMIT has no /usr/lib/modules/$KVER/vmlinuz (log: $LOGS/commit.log)"
	# ota-build takes the repo's lock file read-write even to read.
	chown -R "$NOBODY:$NOBODY" "$REPO"
}

# The stock pipeline's fixed inputs: genimage's config and the boot partition's files.
write_stock_inputs() {
	mkdir -p "$STOCK/input"
	local f
	# shellcheck disable=SC2016 # U-Boot variables, not shell ones
	{
		printf '# boot.scr stand-in\n'
		printf 'setenv bootargs "%s rw rootwait"\n' "$KARG"
		printf 'load mmc 0:2 ${kernel_addr_r} /boot/ostree/%s/vmlinuz-%s\n' "$OS_NAME" "$KVER"
		printf 'booti ${kernel_addr_r} - ${fdt_addr_r}\n'
	} >"$STOCK/input/boot.scr"
	for f in board-a.dtb board-b.dtb board-c.dtb; do
		head -c $((48 << 10)) /dev/urandom >"$STOCK/input/$f"
	done
	cat >"$STOCK/genimage.cfg" <<EOF
image boot.vfat {
	vfat {
		files = { "boot.scr", "board-a.dtb", "board-b.dtb", "board-c.dtb" }
	}
	size = ${BOOT_MIB}M
}

image root.ext4 {
	ext4 {
		use-mke2fs = true
		label = "otaroot"
	}
	size = ${ROOT_MIB}M
}

image stock.img {
	hdimage {
		partition-table-type = "mbr"
	}
	size = ${IMAGE_MIB}M
	partition boot {
		partition-type = 0xC
		bootable = true
		offset = ${BOOT_OFFSET_MIB}M
		image = "boot.vfat"
	}
	partition root {
		partition-type = 0x83
		image = "root.ext4"
	}
}
EOF
}

# The stock pipeline, written to $BENCH_DIR/stock-pipeline.sh and run by bash under
# /usr/bin/time; writes "STAGE SECONDS" lines to the file STAGES_OUT.
stock_pipeline() {
	local repo=$1 commit=$2 dir=$3 os=$4 karg=$5 stages_out=$6
	local sysroot=$dir/sysroot t s=()
	set -euo pipefail
	: >"$stages_out"
	t=$EPOCHREALTIME
	mkdir -p "$sysroot"
	ostree admin init-fs "$sysroot"
	s+=("init-fs $t $EPOCHREALTIME")
	t=$EPOCHREALTIME
	ostree admin os-init --sysroot="$sysroot" "$os"
	ostree --repo="$sysroot/ostree/repo" config set sysroot.bootloader none
	s+=("os-init $t $EPOCHREALTIME")
	t=$EPOCHREALTIME
	ostree --repo="$sysroot/ostree/repo" pull-local "$repo" "$commit"
	s+=("pull-local $t $EPOCHREALTIME")
	t=$EPOCHREALTIME
	ostree admin deploy --sysroot="$sysroot" --os="$os" --karg="$karg" "$commit"
	s+=("deploy $t $EPOCHREALTIME")
	t=$EPOCHREALTIME
	genimage --config "$dir/genimage.cfg" --rootpath "$sysroot" --tmppath "$dir/tmp" \
		--inputpath "$dir/input" --outputpath "$dir/output"
	s+=("genimage $t $EPOCHREALTIME")
	printf '%s\n' "${s[@]}" | awk '{printf "%s %.3f\n", $1, $3 - $2}' >"$stages_out"
}

# Deletes the stock pipeline's output; ostree makes deployment directories immutable.
clean_stock() {
	if [[ -d $STOCK/sysroot/ostree/deploy ]]; then
		find "$STOCK/sysroot/ostree/deploy" -mindepth 3 -maxdepth 3 -type d -name '*.[0-9]*' \
			-exec chattr -i {} + 2>/dev/null || true
	fi
	rm -rf "$STOCK/sysroot" "$STOCK/tmp" "$STOCK/output" "$STOCK/stock.img"
	mkdir -p "$STOCK/output"
}

clean_ours() {
	rm -rf "$OURS_TMP" "$OURS/out" "$OURS/ours.img"
	mkdir -p "$OURS_TMP" "$OURS/out" "$OURS/boot-files"
	chown "$NOBODY:$NOBODY" "$OURS_TMP" "$OURS/out"
	chmod 0755 "$OURS" "$OURS/boot-files"
}

DROPPED=unknown
drop_caches() {
	sync
	((DROP_CACHES)) || {
		DROPPED=no
		return
	}
	if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
		[[ $DROPPED == failed ]] || DROPPED=yes
	else
		DROPPED=failed
	fi
}

# Results per label are lib.sh's BEST_SECS, BEST_CPU, BEST_USER, BEST_SYS, ALL_SECS,
# MAX_RSS_KB and FAILED (timed, record_run and fail_run are in lib.sh too); the stock
# pipeline's stages are here.
declare -A STAGE_ALL=() STAGE_OF_BEST=()

stock_once() {
	local i=$1 stages_out=$BENCH_DIR/stages.out stage secs
	clean_stock
	drop_caches
	log "stock: run $i/$RUNS"
	if ! timed stock nice -n "$NICE" bash "$BENCH_DIR/stock-pipeline.sh" \
		"$REPO" "$COMMIT" "$STOCK" "$OS_NAME" "$KARG" "$stages_out"; then
		fail_run stock "$i"
		return
	fi
	local is_best=0
	if record_run stock "$i"; then
		is_best=1
	fi
	while read -r stage secs; do
		printf 'run %d: stage %s %s s\n' "$i" "$stage" "$secs" >>"$LOGS/stock.log"
		STAGE_ALL[$stage]="${STAGE_ALL[$stage]:+${STAGE_ALL[$stage]} }$secs"
		if ((is_best)); then
			STAGE_OF_BEST[$stage]=$secs
		fi
	done <"$stages_out"
	if [[ -f $STOCK/output/stock.img ]]; then
		mv "$STOCK/output/stock.img" "$STOCK/stock.img"
	else
		printf 'no %s\n' "$STOCK/output/stock.img" >>"$LOGS/stock.log"
	fi
}

ours_once() {
	local i=$1
	clean_ours
	drop_caches
	log "ours: run $i/$RUNS"
	if ! timed ours nice -n "$NICE" setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups \
		env ${OTA_TMPDIR:+TMPDIR="$OURS_TMP"} HOME="$OURS_TMP" \
		"$OTA" image --repo "$REPO" --board "$BOARD" --boot-files "$OURS/boot-files" \
		-o "$OURS/out/ours.img" --size "$OTA_SIZE" --os "$OS_NAME" --bmap=false "$BRANCH"; then
		fail_run ours "$i"
		return
	fi
	record_run ours "$i" || true
	if [[ -f $OURS/out/ours.img ]]; then
		mv "$OURS/out/ours.img" "$OURS/ours.img"
	else
		printf 'no %s\n' "$OURS/out/ours.img" >>"$LOGS/ours.log"
	fi
}

# check_image LABEL IMAGE: sets CHECK[LABEL], SIZES[LABEL] (apparent bytes) and
# ONDISK[LABEL] (allocated bytes).
declare -A CHECK=() SIZES=() ONDISK=()
check_image() {
	local label=$1 img=$2 log=$LOGS/check-$1.log problems=() start size root_off="" boot_off="" root_bytes=0 fs_bytes
	: >"$log"
	if [[ ! -f $img ]]; then
		CHECK[$label]="no image"
		return
	fi
	SIZES[$label]=$(stat -c %s "$img")
	ONDISK[$label]=$(du --block-size=1 "$img" | cut -f1)
	printf '+ sfdisk --verify %s\n' "$img" >>"$log"
	sfdisk --verify "$img" >>"$log" 2>&1 || problems+=("sfdisk --verify")
	# The boot partition is the first one, the root partition the last one (MBR or GPT).
	while read -r start size; do
		[[ -n $boot_off ]] || boot_off=$((start * 512))
		root_off=$((start * 512))
		root_bytes=$((size * 512))
	done < <(sfdisk --dump "$img" 2>>"$log" | sed -n 's/.*: *start= *\([0-9]*\), *size= *\([0-9]*\),.*/\1 \2/p')
	if [[ $boot_off == "$root_off" ]]; then
		problems+=("fewer than 2 partitions")
		root_off=""
	fi
	if [[ -z $root_off ]]; then
		problems+=("no root partition")
	else
		printf '+ e2fsck -fn %s?offset=%s\n' "$img" "$root_off" >>"$log"
		e2fsck -fn "$img?offset=$root_off" >>"$log" 2>&1 || problems+=("e2fsck")
		fs_bytes=$(dumpe2fs -h "$img?offset=$root_off" 2>>"$log" |
			awk -F': *' '/^Block count:/{c = $2} /^Block size:/{b = $2} END{printf "%d", c * b}')
		printf 'root partition %s bytes, ext4 %s bytes\n' "$root_bytes" "$fs_bytes" >>"$log"
		((fs_bytes > 0 && fs_bytes <= root_bytes)) || problems+=("ext4 of $fs_bytes bytes in a partition of $root_bytes")
		printf '+ debugfs -R "ls /ostree/deploy/%s/deploy" %s?offset=%s\n' "$OS_NAME" "$img" "$root_off" >>"$log"
		debugfs -R "ls -p /ostree/deploy/$OS_NAME/deploy" "$img?offset=$root_off" >>"$log" 2>&1 || true
		grep -q "/$COMMIT\.0/" "$log" || problems+=("no deployment $COMMIT.0")
	fi
	if [[ -z $boot_off ]]; then
		problems+=("no boot partition")
	else
		printf '+ mdir -i %s@@%s ::\n' "$img" "$boot_off" >>"$log"
		MTOOLS_SKIP_CHECK=1 mdir -i "$img@@$boot_off" :: >>"$log" 2>&1 || problems+=("mdir")
	fi
	if ((${#problems[@]})); then
		CHECK[$label]="FAILED: ${problems[*]} (see $log)"
	else
		CHECK[$label]=ok
	fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

row() {
	local name=$1 label=$2
	if [[ -z ${BEST_SECS[$label]:-} ]]; then
		printf '%-34s %7s %6s %7s %6s %13s   %s\n' "$name" FAILED - - - - "${ALL_SECS[$label]:-}"
		return
	fi
	printf '%-34s %7.2f %6s %7.2f %6.2f %13s   %s\n' "$name" "${BEST_SECS[$label]}" "${BEST_CPU[$label]}" \
		"${BEST_USER[$label]}" "${BEST_SYS[$label]}" "$(kib_mib "${MAX_RSS_KB[$label]}")" "${ALL_SECS[$label]}"
}

main() {
	local load_start
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	check_number RUNS "$RUNS"
	is_root || die "run as root (sudo bash bench/${0##*/}): the stock pipeline needs root, and ours runs as uid $NOBODY via setpriv"
	mkdir -p "$BENCH_DIR" "$LOGS"
	chmod 0755 "$BENCH_DIR"
	# Two copies sharing BENCH_DIR would delete each other's sysroots and images.
	exec 9>"$BENCH_DIR/.lock"
	flock -n 9 || die "another bench/image.sh is running with BENCH_DIR=$BENCH_DIR; wait for it or set another BENCH_DIR"
	ensure_tools
	prioritize
	ensure_image_tools
	prepare_base
	OTA=$(ota_binary)
	"$OTA" commit --help >/dev/null 2>&1 || die "$OTA has no working 'commit' subcommand ('$OTA commit --help' fails)"
	local have_ours=1
	if ! "$OTA" image --help >"$LOGS/ours-help.log" 2>&1; then
		have_ours=0
		log "ours: not available yet ('$OTA image --help' fails)"
	fi
	prepare_rootfs
	make_repo

	# Sizes: root partition = du * 1.3 + 256 MiB; the image adds the boot partition and the
	# 1 MiB before it.
	local du_kib files dirs links in_bytes
	du_kib=$(du -sk "$ROOTFS" | cut -f1)
	ROOT_MIB=$(awk -v k="$du_kib" 'BEGIN{m = k * 1.3 / 1024 + 256; printf "%d", (m == int(m)) ? m : int(m) + 1}')
	IMAGE_MIB=$((BOOT_OFFSET_MIB + BOOT_MIB + ROOT_MIB))
	OTA_SIZE=${OTA_SIZE:-${IMAGE_MIB}M}
	files=$(find "$ROOTFS" -type f | wc -l)
	dirs=$(find "$ROOTFS" -type d | wc -l)
	links=$(find "$ROOTFS" -type l | wc -l)
	in_bytes=$(find "$ROOTFS" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
	write_stock_inputs
	# shellcheck disable=SC2016 # written to the script as is
	{
		printf '# written by bench/image.sh\n'
		declare -f stock_pipeline
		printf 'stock_pipeline "$@"\n'
	} >"$BENCH_DIR/stock-pipeline.sh"

	local i
	: >"$LOGS/stock.log"
	: >"$LOGS/ours.log"
	rm -f "$STOCK/stock.img" "$OURS/ours.img"
	mkdir -p "$OURS"
	# Round-robin, so that load from other users of the machine that comes and goes hits both.
	for ((i = 1; i <= RUNS; i++)); do
		stock_once "$i"
		if ((have_ours)); then
			ours_once "$i"
		fi
	done
	log "checking the images"
	check_image stock "$STOCK/stock.img"
	if ((have_ours)); then
		check_image ours "$OURS/ours.img"
	fi

	# The table.
	local cpu load_end stage
	load_end=$(cut -d' ' -f1-3 /proc/loadavg)
	cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
	printf 'image benchmark, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'machine: %s CPUs, %s, %s GiB RAM, ostree %s, genimage %s, e2fsprogs %s; load average at start %s, at end %s\n' \
		"$(nproc)" "${cpu:-unknown CPU}" "$(awk '/^MemTotal:/{printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
		"$(ostree --version | awk -F"'" '/Version:/{print $2; exit}')" \
		"$(dpkg-query -W -f '${Version}' genimage 2>/dev/null || echo '?')" \
		"$(dpkg-query -W -f '${Version}' e2fsprogs 2>/dev/null || echo '?')" "$load_start" "$load_end"
	printf 'rootfs: %s (%s packages, arm64, + %s MiB stand-in kernel and initramfs): %s files, %s dirs, %s symlinks; %s MiB in regular files (du %s MiB)\n' \
		"$ROOTFS" "$((${#ARM64_PKGS[@]} + ${#ALL_PKGS[@]}))" 14 "$files" "$dirs" "$links" "$(mib "$in_bytes")" "$(kib_mib "$du_kib")"
	printf 'commit: %s (ota-build commit --bootable, branch %s of archive repo %s)\n' "$COMMIT" "$BRANCH" "$REPO"
	printf 'images: stock = MBR, FAT %s MiB at %s MiB + ext4 root %s MiB = %s MiB (root = du * 1.3 + 256 MiB); ours = --board %s layout, --size %s\n' \
		"$BOOT_MIB" "$BOOT_OFFSET_MIB" "$ROOT_MIB" "$IMAGE_MIB" "$BOARD" "$OTA_SIZE"
	printf 'runs: %s per pipeline, round-robin, at nice %s%s, page cache dropped before each: %s; wall s = best run (CPU %%, user s, sys s of that run; stage rows: that run'"'"'s stages), peak RSS = largest single process of all runs; no timed sync after either pipeline\n\n' \
		"$RUNS" "$NICE" "$AUTOGROUP" "$DROPPED"
	printf '%-34s %7s %6s %7s %6s %13s   %s\n' pipeline 'wall s' 'CPU %' 'user s' 'sys s' 'peak RSS MiB' 'all runs (wall s)'
	row 'stock (ostree admin + genimage)' stock
	local -A stage_name=([init-fs]='ostree admin init-fs' [os-init]='ostree admin os-init, config set'
		[pull-local]='ostree pull-local' [deploy]='ostree admin deploy' [genimage]='genimage (cp -a, FAT, mke2fs -d)')
	for stage in "${STAGES[@]}"; do
		printf '  %-32s %7s %6s %7s %6s %13s   %s\n' "${stage_name[$stage]}" "${STAGE_OF_BEST[$stage]:--}" '' '' '' '' "${STAGE_ALL[$stage]:-}"
	done
	if ((have_ours)); then
		row "ota-build image (uid $NOBODY)" ours
	else
		printf '%-34s %s\n' 'ota-build image' "ours: not available yet ('ota-build image --help' fails)"
	fi
	printf '\n'
	printf '%-6s %14s %15s %15s   %s\n' image 'size MiB' 'on-disk MiB' 'on-disk bytes' 'check (sfdisk --verify, e2fsck -fn root, mdir boot, deployment)'
	for i in stock ours; do
		[[ $i == stock ]] || ((have_ours)) || continue
		if [[ -n ${SIZES[$i]:-} ]]; then
			printf '%-6s %14s %15s %15s   %s\n' "$i" "$(mib "${SIZES[$i]}")" "$(mib "${ONDISK[$i]}")" "${ONDISK[$i]}" "${CHECK[$i]}"
		else
			printf '%-6s %14s %15s %15s   %s\n' "$i" - - - "${CHECK[$i]:-no image}"
		fi
	done
	printf '\n'
	if ((have_ours)); then
		local r
		r=$(ratio "${BEST_SECS[stock]:-0}" "${BEST_SECS[ours]:-0}")
		printf 'speedup stock_time / ours_time:  %s (target >= 2: %s)%s\n' "$r" \
			"$(awk -v r="$r" 'BEGIN{ if (r == "n/a") print "n/a"; else print (r >= 2) ? "met" : "NOT met" }')" \
			"$([[ ${CHECK[ours]:-} == ok ]] || printf "; but ours' image failed its check")"
	else
		printf 'ours: not available yet\n'
	fi
	if ((${#FAILED[@]})); then
		for i in "${!FAILED[@]}"; do
			printf 'FAILED: %s run(s) %s (log: %s)\n' "$i" "${FAILED[$i]}" "$LOGS/$i.log"
		done
	fi
}

main "$@"
