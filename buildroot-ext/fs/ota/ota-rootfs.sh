#!/usr/bin/env bash
# The OTA commit filesystem type (fs/ota/ota.mk):
#
#   ota-rootfs.sh commit TARGET_DIR DESCRIPTION
#     (under fakeroot) streams TARGET_DIR with tar into "ota-build commit
#     --tree tar=-", so the commit gets the owners, modes and xattrs fakeroot
#     reports, and writes DESCRIPTION (images/rootfs.ota): shell variables
#     naming the repository, branch, commit and the disk image settings, for
#     the post-image scripts.
#   ota-rootfs.sh release DESCRIPTION
#     makes the static deltas and the bundle to that commit, and signs the
#     summary.
#
# Settings come from the environment (ROOTFS_OTA_ENV): OTA_BUILD, TAR,
# OTA_REPO, OTA_BRANCH, OTA_VERSION, OTA_SIGN_KEYS, OTA_BOOTABLE,
# OTA_KERNEL_VERSION, OTA_COMMIT_OPTIONS, OTA_DELTA_FROM, OTA_DELTA_ZSTD (the
# zstd command that gives the deltas zstd parts; empty: none), OTA_BUNDLE,
# OTA_BUNDLE_FROM, OTA_IMAGE, OTA_IMAGE_SIZE, OTA_KARGS.
set -euo pipefail

die() {
	echo "ota-rootfs: $*" >&2
	exit 1
}

ota_build() {
	"${OTA_BUILD:?}" --progress=plain "$@"
}

# sign_args sets the array sign to a --sign-key option per key of
# OTA_SIGN_KEYS.
sign_args() {
	local key
	sign=()
	for key in ${OTA_SIGN_KEYS:-}; do
		sign+=(--sign-key "$key")
	done
}

commit() {
	local target=$1 out=$2 args csum
	[ -d "$target" ] || die "$target is not a directory"
	[ -n "${OTA_REPO:-}" ] || die "OTA_REPO (BR2_TARGET_ROOTFS_OTA_REPO) is empty"
	[ -n "${OTA_BRANCH:-}" ] || die "OTA_BRANCH (BR2_TARGET_ROOTFS_OTA_BRANCH) is empty"
	if [ ! -e "$OTA_REPO/config" ]; then
		ota_build init --repo "$OTA_REPO"
	fi
	sign_args
	# Device nodes of static /dev tables cannot be stored in OSTree; an
	# unchanged tree makes no new commit (every make runs this).
	args=(commit --repo "$OTA_REPO" --branch "$OTA_BRANCH" --tree tar=-
		--skip-special --skip-if-unchanged "${sign[@]}")
	if [ -n "${OTA_VERSION:-}" ]; then
		args+=(--version "$OTA_VERSION" --subject "$OTA_BRANCH $OTA_VERSION")
	fi
	if [ "${OTA_BOOTABLE:-}" = y ]; then
		args+=(--bootable)
		if [ -n "${OTA_KERNEL_VERSION:-}" ]; then
			args+=(--kernel-version "$OTA_KERNEL_VERSION")
		fi
	fi
	# shellcheck disable=SC2206 # the options are words
	args+=(${OTA_COMMIT_OPTIONS:-})

	csum=$(cd "$target" && find . -print0 | LC_ALL=C sort -z |
		"${TAR:-tar}" --create --file=- --null --no-recursion --files-from=- \
			--numeric-owner --format=posix --xattrs --xattrs-include='*' |
		ota_build "${args[@]}" | tail -n 1)
	[[ $csum =~ ^[0-9a-f]{64}$ ]] || die "ota-build commit printed no checksum: $csum"

	{
		printf '# The OTA commit of this build (fs/ota), for post-image scripts.\n'
		printf "%s='%s'\n" \
			OTA_REPO "$OTA_REPO" OTA_BRANCH "$OTA_BRANCH" OTA_COMMIT "$csum" \
			OTA_VERSION "${OTA_VERSION:-}" OTA_IMAGE "${OTA_IMAGE:-}" \
			OTA_IMAGE_SIZE "${OTA_IMAGE_SIZE:-auto}" OTA_KARGS "${OTA_KARGS:-}"
	} > "$out.tmp"
	# Keep the file (and its time) when nothing changed: the bundle is
	# remade only when it is older.
	if cmp -s "$out.tmp" "$out"; then
		rm -f "$out.tmp"
	else
		mv "$out.tmp" "$out"
	fi
}

# parent_of COMMIT prints COMMIT's parent, if the repository has it.
parent_of() {
	local parent
	parent=$(ota_build log --repo "$OTA_REPO" "$1" |
		awk 'NR == 2 && $1 == "Parent:" { print $2 }')
	if [ -n "$parent" ] && ota_build log --repo "$OTA_REPO" "$parent" >/dev/null 2>&1; then
		echo "$parent"
	fi
}

# resolve FROM prints the base commit of a delta to OTA_COMMIT: "empty" for
# scratch, nothing for a previous commit that does not exist.
resolve() {
	local c
	case $1 in
	scratch)
		echo empty ;;
	previous)
		parent_of "$OTA_COMMIT" ;;
	*)
		if [[ $1 =~ ^[0-9a-f]{64}$ ]]; then
			echo "$1"
			return
		fi
		c=$(ota_build log --repo "$OTA_REPO" "$OTA_BRANCH" | awk -v v="$1" '
			$1 == "commit" { c = $2 }
			$1 == "Version:" && substr($0, 10) == v { print c; exit }')
		[ -n "$c" ] || die "delta from $1: no commit of version $1 on $OTA_BRANCH in $OTA_REPO"
		echo "$c" ;;
	esac
}

release() {
	local desc=$1 from base name deltas zstd=(--zstd-parts=false)
	[ -f "$desc" ] || die "$desc is missing: the commit step did not run"
	# shellcheck disable=SC1090 # written by the commit step
	. "$desc"
	sign_args
	if [ -n "${OTA_DELTA_ZSTD:-}" ]; then
		zstd=(--zstd-parts --zstd "$OTA_DELTA_ZSTD")
	fi
	deltas=$(ota_build delta list --repo "$OTA_REPO")
	for from in ${OTA_DELTA_FROM:-}; do
		base=$(resolve "$from")
		if [ -z "$base" ]; then
			echo "ota-rootfs: no delta from $from: $OTA_COMMIT has no parent commit"
			continue
		fi
		name=$OTA_COMMIT
		if [ "$base" != empty ]; then
			name=$base-$OTA_COMMIT
		fi
		if grep -qx "$name" <<<"$deltas"; then
			continue
		fi
		ota_build delta --repo "$OTA_REPO" --from "$base" --to "$OTA_COMMIT" "${zstd[@]}"
	done
	if [ -n "${OTA_BUNDLE:-}" ] && ! [ "$OTA_BUNDLE" -nt "$desc" ]; then
		base=$(resolve "${OTA_BUNDLE_FROM:-scratch}")
		[ -n "$base" ] || die "bundle from ${OTA_BUNDLE_FROM}: $OTA_COMMIT has no parent commit"
		ota_build bundle --repo "$OTA_REPO" --from "$base" --to "$OTA_COMMIT" \
			--output "$OTA_BUNDLE" "${sign[@]}"
	fi
	# delta rewrites the summary unsigned.
	if [ ${#sign[@]} -gt 0 ]; then
		ota_build summary --repo "$OTA_REPO" "${sign[@]}"
	fi
}

case ${1:-} in
commit)
	[ $# = 3 ] || die "usage: $0 commit TARGET_DIR DESCRIPTION"
	commit "$2" "$3" ;;
release)
	[ $# = 2 ] || die "usage: $0 release DESCRIPTION"
	release "$2" ;;
*)
	die "usage: $0 commit TARGET_DIR DESCRIPTION | release DESCRIPTION" ;;
esac
