#!/usr/bin/env bash
# Checks this external tree against a Buildroot source tree:
#   check-external.sh [-p | -d] [-o OUTDIR] BUILDROOT_DIR [DEFCONFIG...]
# 1. utils/check-package --br2-external on every file of the tree (-p: only
#    this);
# 2. every defconfig of configs/ (or the DEFCONFIGs named) is loaded with
#    "make BR2_EXTERNAL=... O=... NAME_defconfig", then "make olddefconfig",
#    and every line it sets must still be in .config: a symbol Kconfig dropped
#    (an unmet dependency, a renamed option) is an error (-d: only this). The
#    output directories are OUTDIR/NAME (default: a temporary directory,
#    removed at the end).
# Nothing is downloaded. check-package needs python3 with the magic module,
# flake8 and the shellcheck program; make needs Buildroot's host tools.
set -euo pipefail

usage() {
	echo "usage: $0 [-p | -d] [-o OUTDIR] BUILDROOT_DIR [DEFCONFIG...]" >&2
	exit 2
}

packages=1 defconfigs=1 out=
while getopts pdo: opt; do
	case $opt in
	p) defconfigs= ;;
	d) packages= ;;
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
br=$(cd "$1" && pwd)
shift
ext=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$br/utils/check-package" ] || {
	echo "check-external: $br is not a Buildroot source tree" >&2
	exit 2
}

# check-package runs under the first python3 that has the magic module
# (Debian's python3-magic is not in a pyenv or virtualenv python3).
python=
for p in ${PYTHON3:-} python3 /usr/bin/python3; do
	if "$p" -c 'import magic' 2>/dev/null; then
		python=$p
		break
	fi
done

status=0
if [ -n "$packages" ]; then
	[ -n "$python" ] || {
		echo "check-external: no python3 with the magic module (python3-magic)" >&2
		exit 2
	}
	# Every file of the tree; check-package picks the checks by name and type
	# and skips what it has no checks for (Go files, README.md).
	mapfile -d '' files < <(cd "$ext" && find . -type f ! -path '*/.*' -print0 | sort -z)
	if (cd "$ext" && "$python" "$br/utils/check-package" --br2-external "${files[@]}"); then
		echo "check-external: check-package: no warnings"
	else
		echo "check-external: check-package reported warnings" >&2
		status=1
	fi
fi

if [ -n "$defconfigs" ]; then
	if [ -z "$out" ]; then
		out=$(mktemp -d)
		trap 'rm -rf "$out"' EXIT
	fi
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	names=("$@")
	if [ ${#names[@]} = 0 ]; then
		for f in "$ext"/configs/*_defconfig; do
			names+=("$(basename "$f" _defconfig)")
		done
	fi
	for name in "${names[@]}"; do
		defconfig=$ext/configs/${name}_defconfig
		[ -f "$defconfig" ] || {
			echo "check-external: $defconfig: no such defconfig" >&2
			status=1
			continue
		}
		o=$out/$name
		if ! make -s -C "$br" BR2_EXTERNAL="$ext" O="$o" "${name}_defconfig" >"$out/$name.log" 2>&1 ||
			! make -s -C "$br" O="$o" olddefconfig >>"$out/$name.log" 2>&1; then
			echo "check-external: ${name}_defconfig does not load:" >&2
			cat "$out/$name.log" >&2
			status=1
			continue
		fi
		lost=0
		while IFS= read -r line; do
			case $line in
			BR2_*|"# BR2_"*" is not set") ;;
			*) continue ;;
			esac
			if ! grep -qxF -- "$line" "$o/.config"; then
				echo "check-external: ${name}_defconfig: \"$line\" is not in .config after olddefconfig" >&2
				lost=1
			fi
		done <"$defconfig"
		if [ $lost = 0 ]; then
			echo "check-external: ${name}_defconfig: loads, every symbol kept"
		else
			status=1
		fi
	done
fi
exit $status
