#!/usr/bin/env bash
# Quickstart: build ota-build, make a signing key, then build two releases of the example
# system with `ota-build build -f examples/quickstart/ota.yaml`: signed commits, static
# deltas, an offline bundle, a signed summary and a qemu-aarch64 disk image each. The root
# filesystem is generated from rootfs/ plus a fake kernel and initramfs (no downloads).
# Output goes to $OUT (default: a new directory under /tmp); nothing is written inside the
# source tree. Running it again with the same $OUT makes nothing new.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export OUT=${OUT:-$(mktemp -d /tmp/ota-quickstart.XXXXXX)}
mkdir -p "$OUT"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

(cd "$top" && go build -o "$OUT/ota-build" ./cmd/ota-build)
ota="$OUT/ota-build"
[ -f "$OUT/release.key" ] || "$ota" keygen -o "$OUT/release" >/dev/null

# make_rootfs VERSION: the example tree with that version and a boot directory as a Yocto or
# Buildroot build leaves it (kernel, initramfs, device tree).
make_rootfs() {
	local v=$1 r="$OUT/rootfs"
	rm -rf "$r"
	cp -a "$here/rootfs" "$r"
	sed -i "s/^VERSION_ID=.*/VERSION_ID=$v/" "$r/etc/os-release"
	mkdir -p "$r/boot" "$r/usr/share/quickstart"
	echo "$v" >"$r/usr/share/quickstart/release"
	# Not bootable code: stand-ins with the names and rough sizes of the real files.
	for i in $(seq 1 2000); do echo "fake arm64 kernel 6.1.0-quickstart, line $i"; done >"$r/boot/vmlinuz-6.1.0-quickstart"
	echo "fake initramfs" >"$r/boot/initramfs-6.1.0-quickstart.img"
	echo "fake device tree" >"$r/boot/qemu-virt.dtb"
}

for v in 1.0 2.0; do
	make_rootfs "$v"
	"$ota" build -f "$here/ota.yaml" --version "$v" --json >"$OUT/report-$v.json"
	echo "release $v: commit $(sed -n 's/^    "checksum": "\(.*\)",/\1/p' "$OUT/report-$v.json")"
done
"$ota" verify --repo "$OUT/repo" --pubkey "$OUT/release.pub" quickstart/aarch64/stable
"$ota" fsck --repo "$OUT/repo"
"$ota" log --repo "$OUT/repo" quickstart/aarch64/stable
cat <<EOT
Built in $OUT:
  repo/                     signed commits, static deltas, signed summary (serve it:
                            $ota serve --repo $OUT/repo)
  quickstart-2.0.img        qemu-aarch64 disk image (+ .bmap, .zst); its kernel is a
                            stand-in, so it stops at U-Boot: examples/qemu-aarch64/e2e.sh
                            builds one that boots
  quickstart-2.0.bundle     offline update from 1.0 to 2.0
  report-2.0.json           everything the last build produced
EOT
