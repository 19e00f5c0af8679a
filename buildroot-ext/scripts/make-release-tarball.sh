#!/usr/bin/env bash
# Makes the source tarball of ota that Buildroot's ota-build and ota-client
# packages build from (BR2_OTA_SOURCE_TARBALL), with the Go modules vendored,
# so that the build needs neither network nor module proxy (Buildroot builds
# with GOFLAGS=-mod=vendor GOPROXY=off):
#   make-release-tarball.sh [-o OUTDIR] [VERSION]
# writes OUTDIR/ota-VERSION.tar.gz (top directory ota-VERSION/: the files of
# this checkout that git tracks or would track, and vendor/ from
# "go mod vendor") and OUTDIR/ota-VERSION.tar.gz.hash (its sha256, in
# Buildroot's .hash format), and prints the tarball's path. VERSION defaults
# to "git describe --tags --always --dirty" without a leading v; OUTDIR to
# the current directory. "go mod vendor" fetches the modules through the Go
# module proxy (GOPROXY) unless the module cache has them. The archive is
# reproducible: sorted, owned by 0:0, dated $SOURCE_DATE_EPOCH (default: the
# last commit's time).
set -euo pipefail

die() {
	echo "make-release-tarball: $*" >&2
	exit 1
}

out=.
while getopts o: opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) die "usage: $0 [-o OUTDIR] [VERSION]" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || die "usage: $0 [-o OUTDIR] [VERSION]"

src=$(cd "$(dirname "$0")/../.." && pwd)
grep -qx 'module github.com/otakit/ota' "$src/go.mod" ||
	die "$src/go.mod is not the module github.com/otakit/ota"
if [ $# = 1 ]; then
	version=$1
else
	version=$(git -C "$src" describe --tags --always --dirty 2>/dev/null) ||
		die "$src is not a git checkout: give the VERSION"
	version=${version#v}
fi
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] ||
	die "version \"$version\": use letters, digits and . _ + -"
: "${SOURCE_DATE_EPOCH:=$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}"

mkdir -p "$out"
out=$(cd "$out" && pwd)
name=ota-$version
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/$name"

# The checkout's files: what git tracks or would track (not what .gitignore
# leaves out), as they are in the working tree.
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] && [ "${f%%/*}" != vendor ] && printf '%s\0' "$f"
		done | tar --null --files-from=- --create --file=-) |
		tar --extract --file=- --directory="$work/$name"
else
	(cd "$src" && tar --exclude=./vendor --exclude=.git --create --file=- .) |
		tar --extract --file=- --directory="$work/$name"
fi

(cd "$work/$name" && GOFLAGS=-mod=mod go mod vendor) ||
	die "go mod vendor failed"

tarball=$out/$name.tar.gz
tar --create --file=- --directory="$work" --sort=name --format=gnu \
	--owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
	--mode='u+rw,go-w,a+rX' "$name" |
	gzip -9 -n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
{
	echo "# Locally calculated by make-release-tarball.sh"
	echo "sha256  $(sha256sum "$tarball" | cut -d' ' -f1)  $name.tar.gz"
} >"$tarball.hash"
echo "$tarball"
