#!/bin/bash
# update-go-mods.sh: regenerate recipes-ota/*/*-go-mods.inc and *-licenses.inc with
# go-mod-update-modules.bbclass (bitbake's do_update_modules), after SRCREV moved to a
# commit whose go.mod changed. Needs the Go module proxy (the task runs go list) and the
# git source of OTA_SRC_URI (or its clone in DL_DIR); run as the user who owns the layer.
# The build directory is check-layer.sh's (same environment variables).
set -euo pipefail
layer=$(cd "$(dirname "$0")/.." && pwd)
cache=${OTA_CACHE:+$OTA_CACHE/yocto}
cache=${cache:-$HOME/.cache/ota-tests/yocto}
build=$cache/update-go-mods
# Only meta-ota's recipes, without bbappends: the native recipes need no other (their
# go-native and quilt-native are the host's), and the parse takes seconds. No connectivity
# check: the task needs the module proxy and the git source only, not the Yocto site.
"$layer/scripts/check-layer.sh" --setup-only --build "$build" --conf 'BB_NO_NETWORK = "0"' \
	--conf 'CONNECTIVITY_CHECK_URIS = ""' --conf 'BBMASK = "^(?!.*/meta-ota/).*\.bb$|\.bbappend$"'
export PATH="$cache/src/bitbake-2.18.0/bin:$PATH" LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 BBPATH=$build BUILDDIR=$build
cd "$build"
bitbake ota-build-native -c update_modules
# ota-client is a target recipe: a native twin (same BPN, so the same .inc files) runs the
# task without a cross toolchain.
twin=$layer/recipes-ota/ota-client/ota-client-native_git.bb
trap 'rm -f "$twin"' EXIT
# shellcheck disable=SC2016 # bitbake expands these, not the shell
printf '%s\n' 'require recipes-ota/ota-source.inc' 'require ${BPN}-licenses.inc' 'require ${BPN}-go-mods.inc' \
	'GO_INSTALL = "${GO_IMPORT}/cmd/ota-client"' 'inherit native' >"$twin"
bitbake ota-client-native -c update_modules
grep -H 'spdx=Unknown' "$layer"/recipes-ota/*/*-licenses.inc && {
	echo "update-go-mods.sh: set the spdx= of the Unknown licenses above by hand and run it again" >&2
	exit 1
}
echo "update-go-mods.sh: done; review git diff $layer/recipes-ota"
