#!/usr/bin/env bash
# bench/commit.sh: compare `ota-build commit` with the reference `ostree commit` (Debian's
# ostree 2022.7) committing the same realistic rootfs into fresh archive-mode repos, and
# compare ota-build's throughput with the raw-deflate throughput limit of this machine's
# cores (bench/deflatelimit).
#
# Usage (from anywhere):  sudo bash bench/commit.sh
#
# Environment:
#   TREE           the benchmark tree: debian (default), minbase or tiny (see lib.sh and
#                  bench/README.md); each has its own caches (/tmp/ota-bench-minbase, ...)
#   BENCH_DIR      scratch and cache directory (default /tmp/ota-bench, plus -minbase or -tiny
#                  for those trees): the downloaded .debs,
#                  the unpacked rootfs, the repos, the binaries and the logs live here
#   RUNS           timed runs per tool (default 3), taken round-robin across the tools; the
#                  best time and the largest RSS are shown
#   OTA_BUILD      ota-build binary to measure (default: built from this checkout with
#                  `go build -o $BENCH_DIR/ota-build ./cmd/ota-build`); "skip" measures
#                  only ostree and the deflate limit
#   DEFLATE_LEVEL  deflate level for the limit measurement (default 6, the level ota-build and
#                  OSTree's archive mode use)
#   OSTREE_NOFSYNC 1 (default) also times `ostree commit --fsync=false`; 0 leaves it out
#   FSCK           1 (default) checks ota-build's repo with `ostree fsck` afterwards (untimed)
#   NICE           niceness of the timed commands (default -20 as root, else 0), as in
#                  client.sh; with autogroup scheduling also that of the script's session
#                  (see prioritize)
#   DELETE_REPOS   after (default): every run commits into a new repo, and they are deleted
#                  after the last run (the last run's stay, as $BENCH_DIR/repos/TOOL.RUNS);
#                  before: each run deletes its predecessor's repo first, and pays for that
#                  on ext4 without a journal (see the comment above old_repos)
#
# The first run prepares the rootfs and needs root: it enables the arm64 architecture in
# dpkg, runs apt-get update, downloads the packages below with `apt-get download` and unpacks
# them with `dpkg-deb -x` into $BENCH_DIR/rootfs. Later runs reuse it (delete
# $BENCH_DIR/rootfs to rebuild it). The rootfs is 188 Debian bookworm arm64 packages:
# ~420 MiB in ~11,000 regular files, ~1,500 directories and ~1,300 symlinks.
#
# Progress goes to stderr only on a terminal; the output of every tool goes to
# $BENCH_DIR/logs/. The final table goes to stdout.
set -euo pipefail

# The rootfs packages (ARM64_PKGS, ALL_PKGS) and shared helpers are in lib.sh.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
select_tree
BENCH_DIR=${BENCH_DIR:-/tmp/ota-bench$TREE_SUFFIX}
RUNS=${RUNS:-3}
DEFLATE_LEVEL=${DEFLATE_LEVEL:-6}
OSTREE_NOFSYNC=${OSTREE_NOFSYNC:-1}
FSCK=${FSCK:-1}
DELETE_REPOS=${DELETE_REPOS:-after}
NICE=${NICE:-}
OTA_BUILD=${OTA_BUILD:-}
ROOTFS=$BENCH_DIR/rootfs
DEBS=$BENCH_DIR/debs
LOGS=$BENCH_DIR/logs
REPOS=$BENCH_DIR/repos
TIMESTAMP=1704067200 # fixed commit timestamp (2024-01-01 UTC), Unix seconds

prepare_rootfs() { prepare_debian_rootfs "$ROOTFS" bench/commit.sh; }

warm_cache() {
	sync
	# Through a pipe: GNU tar skips reading file data when writing to /dev/null itself.
	tar -C "$ROOTFS" -cf - . | cat >/dev/null
}

# Results per label, besides lib.sh's BEST_SECS, BEST_CPU, BEST_USER, BEST_SYS, ALL_SECS and
# MAX_RSS_KB (timed and record_run are in lib.sh too).
declare -A OBJ_BYTES=() CONTENT=()
LABELS=()
CMD=()
LIMIT_OUT=0

# Repositories are deleted only after the last timed run, unless DELETE_REPOS=before: ext4
# without a journal (the VMs these figures come from) skips the inodes freed in the last 60
# seconds (360 while their inode table block is dirty) when it allocates one
# (recently_deleted() in fs/ext4/ialloc.c), testing each of them in turn, so creating
# thousands of files just after deleting thousands costs ~200 µs of system time per file
# instead of ~10 µs, whichever tool creates them. Deleting each run's predecessor right
# before it would charge that cost to the run.
# old_repos moves the repositories of an earlier invocation aside, to delete_repos'
# list; delete_repos deletes them, and the runs' repositories but the last of each label.
OLD_REPOS=()
old_repos() {
	if [[ -d $REPOS ]]; then
		OLD_REPOS+=("$REPOS.old.$$")
		mv "$REPOS" "$REPOS.old.$$"
	fi
	mkdir -p "$REPOS"
	# ext4 places a new directory near its parent's, unless the parent is marked as the top
	# of a hierarchy (chattr +T): each repo then starts in a block group of its own, away
	# from inodes freed by another tool's run (ostree removes its staging directories) or
	# by other users of the disk. Filesystems without the flag ignore it.
	chattr +T "$REPOS" 2>/dev/null || true
}
# The sync cleans the inode table blocks, so the freed inodes count as recent for 60 seconds
# rather than 360, until something dirties those blocks again: start the next invocation a
# few minutes later (bench/README.md).
delete_repos() {
	local label i
	rm -rf "${OLD_REPOS[@]}"
	for label in "${LABELS[@]}"; do
		for ((i = 1; i < RUNS; i++)); do
			rm -rf "${REPOS:?}/$label.$i"
		done
	done
	sync
}

# bench_once LABEL INIT_FN COMMIT_FN RUN: fresh repo $REPOS/LABEL.RUN, warm cache, timed
# commit; keeps the best time and the largest RSS. INIT_FN REPO initialises the repo;
# COMMIT_FN REPO sets CMD to the commit command.
bench_once() {
	local label=$1 init_fn=$2 commit_fn=$3 i=$4 repo=$REPOS/$1.$4
	if [[ $DELETE_REPOS == before ]]; then
		rm -rf "${REPOS:?}/$label.$((i - 1))"
	fi
	run "$LOGS/$label.log" "$init_fn" "$repo"
	warm_cache
	log "$label: run $i/$RUNS"
	"$commit_fn" "$repo"
	if ! timed "$label" "${CMD[@]}"; then
		tail -n 20 "$LOGS/$label.log" >&2
		die "$label failed: ${CMD[*]} (full log: $LOGS/$label.log)"
	fi
	record_run "$label" "$i" || true
	if ((i == RUNS)); then
		OBJ_BYTES[$label]=$(du -sb "$repo/objects" | cut -f1)
		CONTENT[$label]=$(ostree show --repo="$repo" bench 2>>"$LOGS/$label.log" | awk '/^ContentChecksum:/{print $2}') || true
	fi
}


# limit_once RUN: one in-memory deflate round; keeps the best.
limit_once() {
	local line secs user sys
	log "deflate limit: run $1/$RUNS (level $DEFLATE_LEVEL, $(nproc) threads)"
	line=$(nice -n "$NICE" "$BENCH_DIR/deflatelimit" -root "$ROOTFS" -level "$DEFLATE_LEVEL" 2>>"$LOGS/deflatelimit.log") ||
		die "deflatelimit failed (log: $LOGS/deflatelimit.log)"
	printf 'run %d: %s\n' "$1" "$line" >>"$LOGS/deflatelimit.log"
	secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")
	user=$(sed -n 's/.* user_seconds=\([0-9.]*\).*/\1/p' <<<"$line")
	sys=$(sed -n 's/.* sys_seconds=\([0-9.]*\).*/\1/p' <<<"$line")
	LIMIT_OUT=$(sed -n 's/.* out_bytes=\([0-9]*\).*/\1/p' <<<"$line")
	ALL_SECS[limit]="${ALL_SECS[limit]:+${ALL_SECS[limit]} }$secs"
	if [[ -z ${BEST_SECS[limit]:-} ]] || lt "$secs" "${BEST_SECS[limit]}"; then
		BEST_SECS[limit]=$secs
		BEST_USER[limit]=$user
		BEST_SYS[limit]=$sys
		BEST_CPU[limit]=$(awk -v u="$user" -v s="$sys" -v w="$secs" 'BEGIN{printf "%.0f", 100 * (u + s) / w}')
	fi
}

ostree_init() { ostree init --repo="$1" --mode=archive; }
ota_init() { "$OTA" init --repo "$1"; }
# The timed commands; /usr/bin/time runs them directly, so these only set CMD.
ostree_commit() { CMD=(nice -n "$NICE" ostree commit --repo="$1" --branch=bench --tree=dir="$ROOTFS" --timestamp="@$TIMESTAMP"); }
ostree_commit_nofsync() { ostree_commit "$1" && CMD+=(--fsync=false); }
ota_commit() { CMD=(nice -n "$NICE" "$OTA" commit --repo "$1" --branch bench --tree "dir=$ROOTFS" --timestamp "$TIMESTAMP"); }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

main() {
	local load_start
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	check_number RUNS "$RUNS"
	check_number DEFLATE_LEVEL "$DEFLATE_LEVEL"
	mkdir -p "$BENCH_DIR" "$LOGS"
	ensure_tools
	prepare_rootfs

	OTA=
	if [[ $OTA_BUILD != skip ]]; then
		OTA=$(ota_binary)
		"$OTA" commit --help >/dev/null 2>&1 || die "$OTA has no working 'commit' subcommand ('$OTA commit --help' fails)"
	fi

	log "building deflatelimit"
	(cd "$REPO_ROOT" && run "$LOGS/build.log" go build -o "$BENCH_DIR/deflatelimit" ./bench/deflatelimit)

	local files dirs links in_bytes du_bytes
	files=$(find "$ROOTFS" -type f | wc -l)
	dirs=$(find "$ROOTFS" -type d | wc -l)
	links=$(find "$ROOTFS" -type l | wc -l)
	in_bytes=$(find "$ROOTFS" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
	du_bytes=$(du -sb --apparent-size "$ROOTFS" | cut -f1)

	# Round-robin over the tools, so that load from other users of the machine that comes and
	# goes hits them alike.
	LABELS=(ostree)
	if [[ $OSTREE_NOFSYNC == 1 ]]; then
		LABELS+=(ostree-nofsync)
	fi
	if [[ -n $OTA ]]; then
		LABELS+=(ota-build)
	fi
	local label i
	for label in "${LABELS[@]}"; do
		: >"$LOGS/$label.log"
	done
	: >"$LOGS/deflatelimit.log"
	old_repos
	prioritize
	for ((i = 1; i <= RUNS; i++)); do
		for label in "${LABELS[@]}"; do
			case $label in
			ostree) bench_once ostree ostree_init ostree_commit "$i" ;;
			ostree-nofsync) bench_once ostree-nofsync ostree_init ostree_commit_nofsync "$i" ;;
			ota-build) bench_once ota-build ota_init ota_commit "$i" ;;
			esac
		done
		warm_cache
		limit_once "$i"
	done
	local limit_secs=${BEST_SECS[limit]} limit_out=$LIMIT_OUT
	delete_repos

	local fsck_result=skipped
	if [[ -n $OTA && $FSCK == 1 ]]; then
		log "ostree fsck of ota-build's repo"
		if ostree fsck --repo="$REPOS/ota-build.$RUNS" >>"$LOGS/fsck.log" 2>&1; then
			fsck_result=ok
		else
			fsck_result="FAILED (see $LOGS/fsck.log)"
		fi
	fi

	# The table.
	local cpu secs mibps name load_end
	load_end=$(cut -d' ' -f1-3 /proc/loadavg)
	cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
	printf 'commit benchmark, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'machine: %s CPUs, %s, %s GiB RAM, ostree %s; load average at start %s, at end %s\n' "$(nproc)" "${cpu:-unknown CPU}" \
		"$(awk '/^MemTotal:/{printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
		"$(ostree --version | awk -F"'" '/Version:/{print $2; exit}')" "$load_start" "$load_end"
	printf 'rootfs: %s (%s packages, arm64): %s files, %s dirs, %s symlinks; %s MiB in regular files (du --apparent-size %s MiB)\n' \
		"$ROOTFS" "$((${#ARM64_PKGS[@]} + ${#ALL_PKGS[@]}))" "$files" "$dirs" "$links" "$(mib "$in_bytes")" "$(mib "$du_bytes")"
	printf 'runs: %s per tool, round-robin, at nice %s%s; wall s = best run (CPU %%, user s, sys s of that run), peak RSS = largest of all runs; MiB/s = regular-file MiB / wall s\n\n' "$RUNS" "$NICE" "$AUTOGROUP"
	printf '%-31s %7s %6s %7s %6s %13s %7s %13s   %s\n' tool 'wall s' 'CPU %' 'user s' 'sys s' 'peak RSS MiB' 'MiB/s' 'objects/ MiB' 'all runs (wall s)'
	for label in "${LABELS[@]}"; do
		secs=${BEST_SECS[$label]}
		mibps=$(awk -v b="$in_bytes" -v s="$secs" 'BEGIN{printf "%.1f", b / 1048576 / s}')
		case $label in
		ostree) name='ostree commit' ;;
		ostree-nofsync) name='ostree commit --fsync=false' ;;
		*) name='ota-build commit' ;;
		esac
		printf '%-31s %7.2f %6s %7.2f %6.2f %13.1f %7s %13s   %s\n' "$name" "$secs" "${BEST_CPU[$label]}" \
			"${BEST_USER[$label]}" "${BEST_SYS[$label]}" "$(awk -v k="${MAX_RSS_KB[$label]}" 'BEGIN{print k / 1024}')" \
			"$mibps" "$(mib "${OBJ_BYTES[$label]}")" "${ALL_SECS[$label]}"
	done
	local limit_mibps
	limit_mibps=$(awk -v b="$in_bytes" -v s="$limit_secs" 'BEGIN{printf "%.1f", b / 1048576 / s}')
	printf '%-31s %7.2f %6s %7.2f %6.2f %13s %7s %13s   %s\n' "deflate limit (lvl $DEFLATE_LEVEL, $(nproc) thr)" "$limit_secs" \
		"${BEST_CPU[limit]}" "${BEST_USER[limit]}" "${BEST_SYS[limit]}" - "$limit_mibps" "$(mib "$limit_out")" "${ALL_SECS[limit]} (in memory)"
	printf '\n'
	if [[ -n $OTA ]]; then
		local ours=${BEST_SECS[ota-build]} r
		printf 'speedup ostree_time / ours_time:            %s\n' "$(ratio "${BEST_SECS[ostree]}" "$ours")"
		if [[ $OSTREE_NOFSYNC == 1 ]]; then
			printf 'speedup ostree(--fsync=false) / ours_time:  %s\n' "$(ratio "${BEST_SECS[ostree-nofsync]}" "$ours")"
		fi
		r=$(ratio "$limit_secs" "$ours")
		printf 'ours_MiBps / limit_MiBps:                   %s (target >= 0.67: %s)\n' "$r" \
			"$(awk -v r="$r" 'BEGIN{print (r >= 0.67) ? "met" : "NOT met"}')"
		printf 'limit CPU s / ours CPU s (user+sys):        %s (CPU time: insensitive to CPU contention, not to extra kernel work)\n' \
			"$(awk -v lu="${BEST_USER[limit]}" -v ls="${BEST_SYS[limit]}" -v ou="${BEST_USER[ota-build]}" -v os="${BEST_SYS[ota-build]}" \
				'BEGIN{printf "%.2f", (lu + ls) / (ou + os)}')"
		local same=no
		if [[ -n ${CONTENT[ota-build]} && ${CONTENT[ota-build]} == "${CONTENT[ostree]}" ]]; then
			same=yes
		fi
		printf 'same tree as ostree (ContentChecksum):      %s (ostree %s, ours %s)\n' "$same" \
			"${CONTENT[ostree]:-?}" "${CONTENT[ota-build]:-?}"
		printf 'ostree fsck of ours:                        %s\n' "$fsck_result"
	else
		printf 'ota-build: not measured (OTA_BUILD=skip)\n'
	fi
}

main "$@"
