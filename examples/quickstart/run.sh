#!/usr/bin/env bash
# Quickstart: build ota-build, make a signing key, commit the example rootfs to a fresh
# repository, verify the signature and check the repository. Output goes to $OUT
# (default: a new directory under /tmp); nothing is written inside the source tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/ota-quickstart.XXXXXX)}
mkdir -p "$OUT"

(cd "$top" && go build -o "$OUT/ota-build" ./cmd/ota-build)
ota="$OUT/ota-build"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

[ -f "$OUT/release.key" ] || "$ota" keygen --out "$OUT/release" >/dev/null
"$ota" init --repo "$OUT/repo"
commit=$("$ota" commit --repo "$OUT/repo" --branch quickstart/x86_64/stable \
	--tree "dir=$here/rootfs" --owner-uid 0 --owner-gid 0 \
	--subject "Quickstart release" --version 1.0 --sign-key "$OUT/release.key" | tail -n1)
"$ota" verify --repo "$OUT/repo" --pubkey "$OUT/release.pub" quickstart/x86_64/stable
"$ota" fsck --repo "$OUT/repo"
"$ota" log --repo "$OUT/repo" quickstart/x86_64/stable
echo "commit $commit is in $OUT/repo (serve that directory over HTTP to ostree pull from it)"
