#!/bin/bash
# check-layer.sh: check meta-ota against the Yocto release it supports, offline.
#
#   scripts/check-layer.sh [--full] [--setup-only] [--build DIR] [--machine MACHINE] [--conf LINE]... [--layer DIR]...
#
# Unpacks bitbake, openembedded-core, meta-raspberrypi and meta-freescale from the snapshots
# in $OTA_SOURCES (default: shared/sources beside the repository or one of its parents) into
# $OTA_CACHE/yocto/src (default ~/.cache/ota-tests/yocto; again only when a tarball changes),
# writes the build directory (default $OTA_CACHE/yocto/check-layer, MACHINE qemuarm64) with
# those layers and meta-ota, offline (BB_NO_NETWORK), Go recipes built with the host's Go,
# and IMAGE_CLASSES += "ota"; then
#   - checks what yocto-check-layer requires of the README, SECURITY.md and layer.conf;
#   - runs bitbake -p: it fails on an error, or a warning naming a file of meta-ota.
# --full runs yocto-check-layer as well, in a build directory of its own (it adds and removes
# layers itself); it takes 15 to 35 minutes on 2 cores.
# --setup-only writes the build directory and stops (the tests use it). --conf adds a line to
# local.conf, --layer a layer to bblayers.conf. The parse cache stays in the build directory: a rerun parses nothing new.
# bitbake refuses root: run it as an ordinary user with an en_US.UTF-8 locale and the host
# tools of the Yocto manual (.ci/run installs them).
set -euo pipefail

die() { echo "check-layer.sh: $*" >&2; exit 1; }

layer=$(cd "$(dirname "$0")/.." && pwd)
repo=$(dirname "$layer")
full=0 setup_only=0 build='' machine=qemuarm64 conf=() layers=()
while [ $# -gt 0 ]; do
	case $1 in
	--full) full=1 ;;
	--setup-only) setup_only=1 ;;
	--build) build=$2; shift ;;
	--machine) machine=$2; shift ;;
	--conf) conf+=("$2"); shift ;;
	--layer) layers+=("$(cd "$2" && pwd)"); shift ;;
	*) die "unknown argument $1 (usage: check-layer.sh [--full] [--setup-only] [--build DIR] [--machine MACHINE] [--conf LINE]... [--layer DIR]...)" ;;
	esac
	shift
done
[ "$(id -u)" != 0 ] || die "bitbake refuses to run as root: run this as an ordinary user"

sources=${OTA_SOURCES:-}
if [ -z "$sources" ]; then
	dir=$(dirname "$repo")
	while :; do
		if [ -e "$dir/shared/sources/bitbake-2.18.0.tar.xz" ]; then sources=$dir/shared/sources; break; fi
		[ "$dir" != / ] || die "no shared/sources/bitbake-2.18.0.tar.xz beside $repo or its parents: set OTA_SOURCES"
		dir=$(dirname "$dir")
	done
fi
cache=${OTA_CACHE:+$OTA_CACHE/yocto}
cache=${cache:-$HOME/.cache/ota-tests/yocto}
build=${build:-$cache/check-layer}

# unpack NAME: the snapshot NAME.tar.xz under $cache/src/NAME, stamped with its size and time.
unpack() {
	local tarball=$sources/$1.tar.xz dir=$cache/src/$1 stamp
	[ -e "$tarball" ] || die "$tarball is missing"
	stamp="$(stat -c '%s %Y' "$tarball")"
	if [ "$(cat "$dir/.ota-unpacked" 2>/dev/null)" != "$stamp" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		tar -xJf "$tarball" -C "$dir"
		printf '%s' "$stamp" >"$dir/.ota-unpacked"
	fi
	echo "$dir"
}
# One unpacker at a time (the tests of two packages may start together).
mkdir -p "$cache"
exec 9>"$cache/.unpack.lock"
flock 9
bitbake_dir=$(unpack bitbake-2.18.0)
oe=$(unpack openembedded-core-wrynose)
rpi=$(unpack meta-raspberrypi-wrynose)
fsl=$(unpack meta-freescale-wrynose)
flock -u 9
export PATH="$bitbake_dir/bin:$PATH" LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8

# The layer is named through a link in the cache: another checkout of the repository (CI
# clones it anew) then keeps the configuration, and with it the parse cache of every recipe
# that does not use meta-ota's files.
mkdir -p "$cache/layers"
ln -sfn "$layer" "$cache/layers/meta-ota"
conf_layer=$cache/layers/meta-ota

goroot=$(go env GOROOT)
gotooldir=$(go env GOTOOLDIR)
# write FILE TEXT: only when it changes, so bitbake's parse cache stays valid.
write() { if [ "$(cat "$1" 2>/dev/null)" != "$2" ]; then printf '%s\n' "$2" >"$1"; fi; }
mkdir -p "$build/conf"
write "$build/conf/bblayers.conf" "# Written by meta-ota/scripts/check-layer.sh.
BBPATH = \"\${TOPDIR}\"
BBFILES ?= \"\"
BBLAYERS = \"$oe/meta $rpi $fsl $conf_layer${layers[*]:+ ${layers[*]}}\""
local="# Written by meta-ota/scripts/check-layer.sh.
MACHINE = \"$machine\"
DISTRO = \"nodistro\"
CONF_VERSION = \"2\"
BB_NO_NETWORK = \"1\"
# Downloads are shared; sstate and the hash equivalence database stay in each build
# directory (the tests run bitbake in two of them at once).
DL_DIR = \"$cache/downloads\"
BB_DISKMON_DIRS = \"\"
USER_CLASSES = \"\"
PATCHRESOLVE = \"noop\"
# The BSP layers: Raspberry Pi through U-Boot, NXP's EULA for i.MX firmware.
RPI_USE_U_BOOT = \"1\"
ACCEPT_FSL_EULA = \"1\"
# Go recipes build with the host's Go (ASSUME_PROVIDED go-native); quilt, which applies
# patches, is not needed by recipes without any and cannot be downloaded offline.
ASSUME_PROVIDED += \"go-native quilt-native\"
HOSTTOOLS += \"go\"
GOROOT:forcevariable = \"$goroot\"
GOTOOLDIR:forcevariable = \"$gotooldir\"
# Its tarball cannot be downloaded offline.
INHERIT_DISTRO:remove = \"uninative\"
IMAGE_CLASSES += \"ota\""
for line in "${conf[@]}"; do local+=$'\n'"$line"; done
write "$build/conf/local.conf" "$local"
echo "check-layer.sh: build directory $build (MACHINE $machine)"
# bitbake keeps a 60 MB parse cache per configuration it saw: keep the last one only.
if cur=$(readlink "$build/tmp/cache/bb_cache.dat" 2>/dev/null); then
	find "$build/tmp/cache" -maxdepth 1 -name 'bb_cache.dat.*' ! -name "$cur" -delete
fi
[ "$setup_only" = 0 ] || exit 0

# What yocto-check-layer's test_readme, test_security and test_layerseries_compat demand.
readme=$layer/README.md
# (A README that mentions another README makes yocto-check-layer skip the next checks.)
! grep -qi readme "$readme" || die "$readme mentions a README: yocto-check-layer would skip its checks"
grep -qi maintainer "$readme" || die "$readme names no maintainer"
grep -qi patch "$readme" || die "$readme says nothing of patches"
grep -q '[^@][^@]*@[^@][^@]*' "$readme" || die "$readme has no address with @"
[ -s "$layer/SECURITY.md" ] || die "$layer/SECURITY.md is missing or empty"
grep -q '^LAYERSERIES_COMPAT_ota = "wrynose"' "$layer/conf/layer.conf" || die "layer.conf: LAYERSERIES_COMPAT_ota is not wrynose"

log=$build/bitbake-p.log
(cd "$build" && BBPATH=$build BUILDDIR=$build bitbake -p) >"$log" 2>&1 || { tail -40 "$log" >&2; die "bitbake -p failed (log: $log)"; }
if grep -E '^ERROR:' "$log" >&2; then die "bitbake -p reported errors (log: $log)"; fi
if grep -E '^WARNING:.*(meta-ota|ota\.bbclass|ota-build|ota-client|ota-initramfs|ota-u-boot)' "$log" >&2; then
	die "bitbake -p warned about meta-ota (log: $log)"
fi
grep -E '^Parsing of|^Loaded [0-9]+ entries from dependency cache' "$log" || true
echo "check-layer.sh: bitbake -p: meta-ota parses with no error and no warning"
[ "$full" = 1 ] || exit 0

# yocto-check-layer: in a build directory of its own, with openembedded-core only (it adds
# the layer under test and its dependencies itself, and removes them again).
ycl=$cache/yocto-check-layer
mkdir -p "$ycl/conf"
write "$ycl/conf/bblayers.conf" "# Written by meta-ota/scripts/check-layer.sh.
BBPATH = \"\${TOPDIR}\"
BBFILES ?= \"\"
BBLAYERS = \"$oe/meta\""
write "$ycl/conf/local.conf" "# Written by meta-ota/scripts/check-layer.sh.
MACHINE = \"qemux86-64\"
DISTRO = \"nodistro\"
CONF_VERSION = \"2\"
BB_NO_NETWORK = \"1\"
DL_DIR = \"$cache/downloads\"
BB_DISKMON_DIRS = \"\"
USER_CLASSES = \"\"
INHERIT_DISTRO:remove = \"uninative\""
cd "$ycl"
export BBPATH=$ycl BUILDDIR=$ycl
log=$ycl/yocto-check-layer.log
echo "check-layer.sh: yocto-check-layer $layer (log: $log; 15-35 minutes on 2 cores)"
start=$(date +%s)
status=0
# --no-auto: internal/tests/testdata holds a layer for the tests, not one to check.
"$oe/scripts/yocto-check-layer" --no-auto --no-auto-dependency "$layer" 2>&1 | tee "$log" || status=$?
echo "check-layer.sh: yocto-check-layer exited $status after $(($(date +%s) - start)) s"
exit "$status"
