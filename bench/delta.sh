#!/usr/bin/env bash
# bench/delta.sh: compare `ota-build delta` with the reference `ostree static-delta generate`
# (Debian's ostree 2022.7) on two versions of a realistic rootfs committed to one archive
# repo, and `ota-build delta apply` with `ostree static-delta apply-offline` applying them to
# a bare-user repo that holds the old version.
#
# Usage (from anywhere):  sudo bash bench/delta.sh
#
# Environment:
#   TREE        the benchmark tree: debian (default), minbase or tiny (see lib.sh and
#               bench/README.md); BENCH_DIR and COMMIT_DIR default to per-tree directories
#   BENCH_DIR   scratch directory (default /tmp/ota-bench-delta, plus -minbase or -tiny for those
#               trees): the old .debs, the V1 rootfs,
#               the repos, the deltas, the binaries and the logs live here
#   COMMIT_DIR  bench/commit.sh's BENCH_DIR (default /tmp/ota-bench, with the tree's suffix): its .debs and its rootfs
#               (V2) are reused, and prepared there the same way when missing
#   RUNS        timed runs per tool (default 2), taken round-robin across the tools; the best
#               time and the largest RSS are shown
#   NICE        niceness of the timed commands (default -20 as root, else 0), with the
#               session's autogroup too (lib.sh prioritize)
#   OTA_BUILD   ota-build binary to measure (default: built from this checkout with
#               `go build -o $BENCH_DIR/ota-build ./cmd/ota-build`)
#   FSCK        1 (default) runs `ostree fsck` on every apply target after the last run
#               (untimed); 0 only checks the one that must pass (ostree applying our delta)
#
# The two versions (a real point-release update: real packages, nothing synthesized):
#   V2 = bench/commit.sh's rootfs: 188 Debian bookworm arm64 packages at the newest versions
#        apt offers (bookworm, bookworm-updates, bookworm-security);
#   V1 = the same 188 packages, but every package for which apt still offers an older version
#        (`apt-cache madison`) at the oldest such version (libc6, libssl3, systemd, openssh,
#        python3.11, perl, curl, util-linux, glib, tzdata, ca-certificates, ...; ~55 packages).
# Both are unpacked with `dpkg-deb -x` and committed with `ota-build commit` to the branch
# "bench" of an archive repo (V1, then V2 with V1 as its parent). The chosen versions are in
# $BENCH_DIR/versions.txt.
#
# Preparing the rootfs trees needs root the first time (dpkg --add-architecture, apt-get);
# later runs reuse them (delete $BENCH_DIR/rootfs-v1 or $COMMIT_DIR/rootfs to rebuild).
#
# Progress goes to stderr only on a terminal; the output of every tool goes to
# $BENCH_DIR/logs/. The final table goes to stdout.
set -euo pipefail

# The rootfs packages (ARM64_PKGS, ALL_PKGS) and shared helpers are in lib.sh.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
select_tree
BENCH_DIR=${BENCH_DIR:-/tmp/ota-bench-delta$TREE_SUFFIX}
COMMIT_DIR=${COMMIT_DIR:-/tmp/ota-bench$TREE_SUFFIX}
RUNS=${RUNS:-2}
NICE=${NICE:-}
FSCK=${FSCK:-1}
OTA_BUILD=${OTA_BUILD:-}
V2_ROOT=$COMMIT_DIR/rootfs
DEBS=$COMMIT_DIR/debs
V1_ROOT=$BENCH_DIR/rootfs-v1
OLD_DEBS=$BENCH_DIR/debs-old
VERSIONS=$BENCH_DIR/versions.txt
LOGS=$BENCH_DIR/logs
REPO=$BENCH_DIR/repo         # archive repo with V1 and V2, where the deltas are generated
TARGET=$BENCH_DIR/target     # bare-user repo holding V1, where the deltas are applied
SAVED=$BENCH_DIR/deltas      # the last generated delta of each tool, kept for applying
TIMESTAMP_V1=1704067200      # fixed commit timestamps (2024-01-01 and 2024-02-01 UTC)
TIMESTAMP_V2=1706745600


# V2: bench/commit.sh's rootfs, prepared the same way when missing.
prepare_v2() { prepare_debian_rootfs "$V2_ROOT" bench/delta.sh; }

# V1: the same packages, each at the oldest version apt offers below V2's version (lib.sh).
prepare_v1() { prepare_debian_v1 bench/delta.sh; }

# Commits V1 and V2 (untimed) to a fresh archive repo; sets FROM and TO.
make_repo() {
	log "committing V1 and V2 to $REPO"
	rm -rf "$REPO"
	run "$LOGS/commit.log" "$OTA" init --repo "$REPO"
	run "$LOGS/commit.log" "$OTA" commit --repo "$REPO" --branch bench --tree "dir=$V1_ROOT" \
		--timestamp "$TIMESTAMP_V1" --subject V1
	run "$LOGS/commit.log" "$OTA" commit --repo "$REPO" --branch bench --tree "dir=$V2_ROOT" \
		--timestamp "$TIMESTAMP_V2" --subject V2
	TO=$(ostree rev-parse --repo="$REPO" bench)
	FROM=$(ostree rev-parse --repo="$REPO" bench^)
	[[ $FROM != "$TO" ]] || die "V1 and V2 have the same commit"
}

# Reads the data a timed command reads into the page cache, after flushing dirty data.
warm() {
	sync
	local p
	for p in "$@"; do
		# Through a pipe: GNU tar skips reading file data when writing to /dev/null itself.
		tar -C "$p" -cf - . | cat >/dev/null
	done
}

# The sum over all processes of a timed command (lib.sh's TREE_RSS_SAMPLER): ota-build's xz
# children included.
if command -v python3 >/dev/null; then
	TIMED_SAMPLER=(python3 -c "$TREE_RSS_SAMPLER")
fi

# Results per label, besides lib.sh's BEST_SECS, BEST_CPU, BEST_USER, BEST_SYS, ALL_SECS,
# MAX_RSS_KB and FAILED (timed, record_run and fail_run are in lib.sh too).
declare -A MAX_TREE_KB=() SIZE=() CHECK=()

# record LABEL RUN: lib.sh's record_run, plus the largest process-tree RSS (T_SAMPLED: the sum
# over all processes of the command, sampled; 0 without python3).
record() {
	local label=$1 i=$2 tree_kb=${T_SAMPLED:-0}
	record_run "$label" "$i" "(process tree $tree_kb KiB)" || true
	if ((tree_kb > ${MAX_TREE_KB[$label]:-0})); then
		MAX_TREE_KB[$label]=$tree_kb
	fi
}

# gen_once LABEL RUN: deletes the repo's deltas, then times one generation; the last run's
# delta is moved to $SAVED/LABEL.
gen_once() {
	local label=$1 i=$2 cmd dir
	rm -rf "$REPO/deltas"
	warm "$REPO/objects"
	log "$label: run $i/$RUNS"
	case $label in
	gen-ostree) cmd=(ostree static-delta generate --repo="$REPO" --from="$FROM" --to="$TO") ;;
	gen-ota) cmd=("$OTA" delta --repo "$REPO" --from "$FROM" --to "$TO") ;;
	esac
	if ! timed "$label" nice -n "$NICE" "${cmd[@]}"; then
		fail_run "$label" "$i"
		return
	fi
	record "$label" "$i"
	dir=$(find "$REPO/deltas" -name superblock -printf '%h\n' 2>/dev/null | head -n 1)
	if [[ -z $dir ]]; then
		printf 'no superblock under %s/deltas\n' "$REPO" >>"$LOGS/$label.log"
		fail_run "$label" "$i"
		return
	fi
	SIZE[$label]=$(du -sb "$dir" | cut -f1)
	printf 'run %d: delta %s, %s bytes (du -sb)\n' "$i" "$dir" "${SIZE[$label]}" >>"$LOGS/$label.log"
	if ((i == RUNS)); then
		mkdir -p "$SAVED"
		rm -rf "${SAVED:?}/${label#gen-}"
		mv "$dir" "$SAVED/${label#gen-}"
	fi
}

# apply_once LABEL RUN: a fresh bare-user repo holding V1 (untimed), then one timed apply.
apply_once() {
	local label=$1 i=$2 delta cmd
	case $label in
	apply-ostree | apply-ota-x) delta=$SAVED/ostree ;;
	apply-ota | apply-ostree-x) delta=$SAVED/ota ;;
	esac
	if [[ ! -f $delta/superblock ]]; then
		fail_run "$label" "$i"
		return
	fi
	rm -rf "$TARGET"
	run "$LOGS/$label.log" ostree init --repo="$TARGET" --mode=bare-user
	run "$LOGS/$label.log" ostree pull-local --repo="$TARGET" "$REPO" "$FROM"
	warm "$delta"
	log "$label: run $i/$RUNS"
	case $label in
	apply-ostree | apply-ostree-x) cmd=(ostree static-delta apply-offline --repo="$TARGET" "$delta/superblock") ;;
	apply-ota | apply-ota-x) cmd=("$OTA" delta apply --repo "$TARGET" "$delta") ;;
	esac
	if ! timed "$label" nice -n "$NICE" "${cmd[@]}"; then
		fail_run "$label" "$i"
		CHECK[$label]="apply failed"
		return
	fi
	record "$label" "$i"
	if ((i == RUNS)) && [[ $FSCK == 1 || $label == apply-ostree-x ]]; then
		log "$label: ostree fsck"
		printf '+ ostree fsck --repo=%s\n' "$TARGET" >>"$LOGS/$label.log"
		if ! ostree show --repo="$TARGET" "$TO" >/dev/null 2>>"$LOGS/$label.log"; then
			CHECK[$label]="FAILED: V2 commit missing"
		elif ostree fsck --repo="$TARGET" >>"$LOGS/$label.log" 2>&1; then
			CHECK[$label]=ok
		else
			CHECK[$label]="FAILED (see $LOGS/$label.log)"
		fi
	fi
	rm -rf "$TARGET"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# verdict RATIO OP TARGET: "met" or "NOT met" (or "n/a").
verdict() {
	awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN{
		if (r == "n/a") { print "n/a"; exit }
		ok = (op == ">=") ? (r >= t) : (r <= t)
		print ok ? "met" : "NOT met"
	}'
}

# tree_stats DIR: "FILES DIRS SYMLINKS BYTES" (BYTES: regular-file sizes).
tree_stats() {
	printf '%s %s %s %s\n' "$(find "$1" -type f | wc -l)" "$(find "$1" -type d | wc -l)" \
		"$(find "$1" -type l | wc -l)" "$(find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')"
}

# parts DIR: "PARTS FALLBACKS" of a delta, from `ota-build delta show`.
parts() {
	local out
	if out=$("$OTA" delta show "$1" 2>/dev/null); then
		awk '/^Parts:/{p = $2} /^Fallback objects:/{f = $3}
			END{sub(/,$/, "", p); sub(/,$/, "", f); printf "%s %s\n", p == "" ? "?" : p, f == "" ? "?" : f}' <<<"$out"
	else
		printf '? ?\n'
	fi
}

main() {
	local load_start
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	check_number RUNS "$RUNS"
	mkdir -p "$BENCH_DIR" "$LOGS"
	# Two copies sharing BENCH_DIR would delete each other's repos and deltas.
	exec 9>"$BENCH_DIR/.lock"
	flock -n 9 || die "another bench/delta.sh is running with BENCH_DIR=$BENCH_DIR; wait for it or set another BENCH_DIR"
	ensure_tools
	prioritize
	prepare_v2
	prepare_v1
	OTA=$(ota_binary)
	"$OTA" delta --help >/dev/null 2>&1 || die "$OTA has no working 'delta' subcommand ('$OTA delta --help' fails)"
	: >"$LOGS/commit.log"
	make_repo

	# What changed between V1 and V2.
	local pkgs_changed pkgs_total v1 v2 diff_m diff_a diff_d changed_bytes
	pkgs_total=$(wc -l <"$VERSIONS")
	pkgs_changed=$(awk '$3 != $4' "$VERSIONS" | wc -l)
	read -r -a v1 <<<"$(tree_stats "$V1_ROOT")"
	read -r -a v2 <<<"$(tree_stats "$V2_ROOT")"
	ostree diff --repo="$REPO" "$FROM" "$TO" >"$LOGS/diff.txt" 2>>"$LOGS/commit.log" || die "ostree diff failed"
	diff_m=$(grep -c '^M ' "$LOGS/diff.txt" || true)
	diff_a=$(grep -c '^A ' "$LOGS/diff.txt" || true)
	diff_d=$(grep -c '^D ' "$LOGS/diff.txt" || true)
	# Bytes of V2's regular files that are new or modified.
	changed_bytes=$(awk '/^[MA] /{sub(/^[MA] +/, ""); print}' "$LOGS/diff.txt" |
		while IFS= read -r p; do
			if [[ -f $V2_ROOT$p && ! -L $V2_ROOT$p ]]; then stat -c %s "$V2_ROOT$p"; fi
		done | awk '{s += $1} END {printf "%d", s}')

	local label i
	for label in gen-ostree gen-ota apply-ostree apply-ota apply-ota-x apply-ostree-x; do
		: >"$LOGS/$label.log"
	done
	# Round-robin over the tools, so that load from other users of the machine that comes and
	# goes hits them alike.
	for ((i = 1; i <= RUNS; i++)); do
		gen_once gen-ostree "$i"
		gen_once gen-ota "$i"
	done
	for ((i = 1; i <= RUNS; i++)); do
		for label in apply-ostree apply-ota apply-ota-x apply-ostree-x; do
			apply_once "$label" "$i"
		done
	done

	local p_ostree p_ota
	read -r -a p_ostree <<<"$(parts "$SAVED/ostree")"
	read -r -a p_ota <<<"$(parts "$SAVED/ota")"

	# The table.
	local cpu load_end
	load_end=$(cut -d' ' -f1-3 /proc/loadavg)
	cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
	printf 'delta benchmark, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'machine: %s CPUs, %s, %s GiB RAM, ostree %s; load average at start %s, at end %s\n' "$(nproc)" "${cpu:-unknown CPU}" \
		"$(awk '/^MemTotal:/{printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
		"$(ostree --version | awk -F"'" '/Version:/{print $2; exit}')" "$load_start" "$load_end"
	printf 'versions: Debian bookworm arm64, %s packages; V1 = %s of them at the oldest older version apt offers (%s), V2 = the newest (%s)\n' \
		"$pkgs_total" "$pkgs_changed" "$VERSIONS" "$V2_ROOT"
	printf 'e.g.: %s\n' "$(awk '$3 != $4 && $1 ~ /^(libc6|libssl3|systemd|openssh-server|python3\.11-minimal|perl-base|curl|tzdata)$/ {
		printf "%s%s %s -> %s", sep, $1, $3, $4; sep = ", " }' "$VERSIONS")"
	printf 'V1: %s files, %s dirs, %s symlinks, %s MiB; V2: %s files, %s dirs, %s symlinks, %s MiB\n' \
		"${v1[0]}" "${v1[1]}" "${v1[2]}" "$(mib "${v1[3]}")" "${v2[0]}" "${v2[1]}" "${v2[2]}" "$(mib "${v2[3]}")"
	printf 'ostree diff V1 V2: %s modified, %s added, %s removed (%s MiB of new or modified regular files in V2)\n' \
		"$diff_m" "$diff_a" "$diff_d" "$(mib "$changed_bytes")"
	printf 'commits: %s -> %s in archive repo %s\n' "$FROM" "$TO" "$REPO"
	printf 'runs: %s per tool, at nice %s%s; wall s = best run (CPU %%, user s, sys s of that run); RSS MiB = peak RSS of the largest process (/usr/bin/time), tree MiB = peak of the sum over all processes of the command (sampled every 50 ms); both the largest of all runs\n\n' "$RUNS" "$NICE" "$AUTOGROUP"

	table_header generate 'delta bytes (parts, fb)'
	table_row 'ostree static-delta generate' gen-ostree "${SIZE[gen-ostree]:-?} (${p_ostree[0]}, ${p_ostree[1]})"
	table_row 'ota-build delta' gen-ota "${SIZE[gen-ota]:-?} (${p_ota[0]}, ${p_ota[1]})"
	printf '\n'
	table_header 'apply into bare-user repo holding V1' 'V2 then ostree fsck'
	table_row "ostree apply-offline, ostree's delta" apply-ostree "${CHECK[apply-ostree]:-not checked}"
	table_row 'ota-build delta apply, our delta' apply-ota "${CHECK[apply-ota]:-not checked}"
	table_row "ota-build delta apply, ostree's delta" apply-ota-x "${CHECK[apply-ota-x]:-not checked}"
	table_row 'ostree apply-offline, our delta' apply-ostree-x "${CHECK[apply-ostree-x]:-not checked}"
	printf '\n'

	local r
	r=$(ratio "${BEST_SECS[gen-ostree]:-0}" "${BEST_SECS[gen-ota]:-0}")
	printf 'generate: ostree_time / ours_time:          %s (target >= 4: %s)\n' "$r" "$(verdict "$r" '>=' 4)"
	r=$(ratio "${MAX_RSS_KB[gen-ota]:-0}" "${MAX_RSS_KB[gen-ostree]:-0}")
	printf 'generate: ours_RSS / ostree_RSS:            %s (target <= 0.5: %s; largest process, without our xz children)\n' "$r" "$(verdict "$r" '<=' 0.5)"
	r=$(ratio "${MAX_TREE_KB[gen-ota]:-0}" "${MAX_TREE_KB[gen-ostree]:-0}")
	printf 'generate: ours_tree_RSS / ostree_tree_RSS:  %s (target <= 0.5: %s; all processes)\n' "$r" "$(verdict "$r" '<=' 0.5)"
	r=$(ratio "${SIZE[gen-ota]:-0}" "${SIZE[gen-ostree]:-0}")
	printf 'delta size: ours / ostree:                  %s (target <= 1.0: %s)\n' "$r" "$(verdict "$r" '<=' 1.0)"
	r=$(ratio "${BEST_SECS[apply-ostree]:-0}" "${BEST_SECS[apply-ota]:-0}")
	printf 'apply: ostree_apply / ours_apply:           %s (each its own delta; target >= 1: %s)\n' "$r" "$(verdict "$r" '>=' 1)"
	r=$(ratio "${BEST_SECS[apply-ostree]:-0}" "${BEST_SECS[apply-ota-x]:-0}")
	printf "apply: same, ours applying ostree's delta:  %s\n" "$r"
	printf 'our delta, ostree apply-offline + fsck:     %s\n' "${CHECK[apply-ostree-x]:-not checked}"
	if ((${#FAILED[@]})); then
		for label in "${!FAILED[@]}"; do
			printf 'FAILED: %s run(s) %s (log: %s)\n' "$label" "${FAILED[$label]}" "$LOGS/$label.log"
		done
	fi
}

main "$@"
