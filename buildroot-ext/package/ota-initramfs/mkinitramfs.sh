#!/usr/bin/env bash
# Assembles the OTA initramfs from a Buildroot target directory:
#   mkinitramfs.sh TARGET_DIR INIT OUTPUT
# BusyBox and ota-client with the shared libraries and dynamic loader they
# need (found with $READELF), stripped with $STRIP, the BusyBox applets /init
# uses, and INIT as /init; written to OUTPUT as a gzip-compressed newc cpio
# archive owned by root.
set -euo pipefail

target=$1 init=$2 output=$3
readelf=${READELF:-readelf}
strip=${STRIP:-true}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,sysroot,run,tmp,usr/bin,lib}

# add PATH copies the target's PATH (symlinks resolved) to the same path.
add() {
	if [ ! -e "$target/$1" ]; then
		echo "mkinitramfs: $target/$1 is missing" >&2
		exit 1
	fi
	mkdir -p "$(dirname "$root/$1")"
	cp -L "$target/$1" "$root/$1"
}

# add_elf PATH adds an ELF file with its interpreter and, recursively, the
# libraries it needs (from /lib or /usr/lib).
add_elf() {
	local f=$1 interp lib dir
	[ -e "$root/$f" ] && return 0
	add "$f"
	# shellcheck disable=SC2086 # $STRIP is a command with its options
	$strip "$root/$f" 2>/dev/null || true
	interp=$("$readelf" -lW "$target/$f" |
		sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
	if [ -n "$interp" ]; then
		add_elf "${interp#/}"
	fi
	for lib in $("$readelf" -dW "$target/$f" |
		sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		for dir in lib usr/lib lib64 usr/lib64; do
			if [ -e "$target/$dir/$lib" ]; then
				add_elf "$dir/$lib"
				continue 2
			fi
		done
		echo "mkinitramfs: $f needs $lib, which is not in $target" >&2
		exit 1
	done
}

add_elf bin/busybox
add_elf usr/bin/ota-client
for applet in sh mount umount sleep cat tr grep readlink basename hexdump blkid \
	switch_root; do
	ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$init" "$root/init"

mkdir -p "$(dirname "$output")"
(cd "$root" && find . -mindepth 1 -print | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) |
	gzip -9 -n > "$output.tmp"
mv "$output.tmp" "$output"
