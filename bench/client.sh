#!/usr/bin/env bash
# bench/client.sh: time `ota-client update` against the stock way of updating an ostree
# device, `ostree pull` followed by `ostree admin deploy`, on the delta benchmark's real
# Debian point-release pair served over HTTP on 127.0.0.1 by `ota-build serve`.
#
# Usage (from anywhere):  sudo bash bench/client.sh
#
# Environment:
#   BENCH_DIR     scratch directory (default /tmp/ota-bench-client): the bootable trees, the
#                 repos, the sysroot images, the binaries and the logs live here
#   DELTA_DIR     bench/delta.sh's BENCH_DIR (default /tmp/ota-bench-delta): its V1 rootfs
#                 is reused, and prepared there the same way when missing
#   COMMIT_DIR    bench/commit.sh's BENCH_DIR (default /tmp/ota-bench): its rootfs (V2) and
#                 .debs are reused, and prepared there the same way when missing
#   RUNS          timed runs per tool and scenario (default 3), round-robin; the best time,
#                 the largest RSS and the range of bytes downloaded are shown
#   OTA_BUILD     ota-build binary (commits, deltas, summaries, the HTTP server; default:
#                 built from this checkout into $BENCH_DIR)
#   OTA_CLIENT    ota-client binary to measure (default: built from this checkout with
#                 `CGO_ENABLED=0 go build -o $BENCH_DIR/ota-client ./cmd/ota-client`)
#   OSTREE_DELTA  1 (default) adds the scenario "delta made by ostree" (its
#                 `ostree static-delta generate` takes about 80 s; the delta is cached in
#                 $BENCH_DIR/cache for the same pair of commits); 0 leaves it out
#   XZ_DELTA      1 (default) adds the scenario "delta with xz parts only" (delta-xz); 0 leaves
#                 it out
#   FSCK          1 (default) runs `ostree fsck` on the sysroot repository after the last run
#                 of each tool and scenario (untimed)
#   IMAGE_DIR     where the sysroot images live (default /dev/shm/ota-bench-client: in RAM)
#   NICE          niceness of the timed commands (default -20, as root; 0: none)
#
# The update: V1 and V2 are bench/delta.sh's trees (188 Debian bookworm arm64 packages; V1
# has ~55 of them at older versions: libc6, systemd, openssh, python3.11, perl, ...), each
# hard-linked into $BENCH_DIR/trees plus the same stand-in kernel and initramfs (random
# bytes, 10 and 4 MiB, as bench/image.sh uses: no package is a kernel, so a point release
# of this set leaves the kernel alone), committed with `ota-build commit --bootable`, signed
# with an ed25519 key (`ota-build keygen`), to the branch "bench" of an archive repository.
# The repository is served in up to four scenarios, each by its own `ota-build serve` on
# 127.0.0.1 (the same server for both tools), with a summary signed by the same key:
#   delta         the static delta V1 -> V2 made by `ota-build delta` listed in the summary:
#                 by default (the zstd command there) with zstd parts, so ostree fetches its
#                 xz parts, ota-client the zstd ones (N.zst) beside them
#   delta-xz      instead the one `ota-build delta --zstd-parts=false` makes, xz parts only
#                 (XZ_DELTA=1)
#   delta-ostree  instead the one made by `ostree static-delta generate` (OSTREE_DELTA=1)
#   objects       no delta: both tools fetch the objects V1 lacks
#
# The device: a sysroot made by the real ostree as the tests' newDevice does (`ostree admin
# init-fs`, `os-init bench`, sysroot.bootloader=uboot, `pull-local` of V1 with the remote
# ref bench:bench pointing at it, `ostree admin deploy bench:bench`), with the client's
# configuration (/etc/ota/client.yaml, the public key in /etc/ostree/trusted.ed25519.d/, a
# boot counter in /boot/firmware). It lives in an ext4 image mounted on a loop device, as a
# device's root partition is a filesystem of its own: every run gets a fresh copy of the
# same image (no state left by an earlier run, and syncfs flushes only this filesystem, not
# the busy one of the build machine), whose repository's objects are then read into the page
# cache (untimed). The image file is in RAM (IMAGE_DIR on tmpfs), so the ext4 code runs as
# on a device but the shared disk of the build machine stays out of the figures: what is
# measured is the tools' CPU and system-call work, not a storage device. Without loop
# devices, a plain copy of the sysroot directory is used.
#
# The machines here are shared: the timed commands run at nice -20 (NICE), so that other
# users of the CPUs disturb them less; both tools alike.
#
# Timed (with /usr/bin/time; the gaps between the two commands of the reference are not):
#   ostree      `ostree --repo=SYSROOT/ostree/repo pull bench bench` (the remote added with
#               gpg-verify=false: Debian's ostree is built without ed25519 support, so it
#               checks no signature), then `ostree admin deploy --sysroot=SYSROOT --os=bench
#               bench:bench` (its defaults: it prunes the repository when done)
#   ota-client  `ota-client --sysroot SYSROOT --progress=none update --json`: summary and
#               commit signatures verified, the delta or the objects, deploy
# Reported per tool and scenario: wall time (best run; the reference: pull + deploy), CPU
# (children included: ota-client runs `xz -d` for the parts of a delta when XZ Utils is
# installed), peak RSS of the largest process (/usr/bin/time; for the reference the larger
# of pull and deploy) and of all processes together (sampled every 50 ms), and the
# bytes the server sent (the body bytes of its access log, every request of the run: the
# same count for both tools). After every run `ostree admin status` must list V2 as the
# default and V1 as the rollback; with FSCK=1 the last run's repository must pass
# `ostree fsck`.
#
# Preparing the rootfs trees needs root the first time (see bench/delta.sh); the sysroots
# need root every time (ostree admin deploy, loop mounts).
#
# Progress goes to stderr only on a terminal; the output of every tool goes to
# $BENCH_DIR/logs/. The final table goes to stdout.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/ota-bench-client}
DELTA_DIR=${DELTA_DIR:-/tmp/ota-bench-delta}
COMMIT_DIR=${COMMIT_DIR:-/tmp/ota-bench}
RUNS=${RUNS:-3}
OSTREE_DELTA=${OSTREE_DELTA:-1}
XZ_DELTA=${XZ_DELTA:-1}
FSCK=${FSCK:-1}
OTA_BUILD=${OTA_BUILD:-}
OTA_CLIENT=${OTA_CLIENT:-}
V2_ROOT=$COMMIT_DIR/rootfs
DEBS=$COMMIT_DIR/debs
V1_ROOT=$DELTA_DIR/rootfs-v1
OLD_DEBS=$DELTA_DIR/debs-old
VERSIONS=$DELTA_DIR/versions.txt
LOGS=$BENCH_DIR/logs
TREES=$BENCH_DIR/trees      # V1 and V2 hard-linked, plus the kernel
KERNEL_DIR=$BENCH_DIR/kernel
KEY=$BENCH_DIR/keys/release # ota-build keygen's PREFIX
REPO=$BENCH_DIR/repo        # archive repo with V1 and V2, no delta
SRV=$BENCH_DIR/srv          # one repo per scenario, hard-linked copies of REPO
CACHE=$BENCH_DIR/cache      # ostree's delta, kept for the same commits
IMAGES=${IMAGE_DIR:-/dev/shm/ota-bench-client} # the template sysroot image and the run's copy
MNT=$BENCH_DIR/mnt                               # where a sysroot image is mounted
NICE=${NICE:--20}
KVER=6.1.0-bench
OS_NAME=bench
BRANCH=bench
TIMESTAMP_V1=1704067200 # as bench/delta.sh: 2024-01-01 and 2024-02-01 UTC
TIMESTAMP_V2=1706745600
IMAGE_SIZE=3G

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The table columns of client.sh (lib.sh table_row).
TABLE_NAME_WIDTH=32
TABLE_EXTRA_WIDTH=21
[[ ${TREE:-debian} == debian ]] || die "client.sh runs on the default tree only (TREE=$TREE)"

prepare_v2() { prepare_debian_rootfs "$V2_ROOT" bench/client.sh; }
prepare_v1() { prepare_debian_v1 bench/client.sh; }

# Prints the ota-client binary to use, building it when OTA_CLIENT is unset.
client_binary() {
	if [[ -n $OTA_CLIENT ]]; then
		[[ -x $OTA_CLIENT ]] || die "OTA_CLIENT=$OTA_CLIENT is not an executable"
		printf '%s\n' "$OTA_CLIENT"
		return
	fi
	log "building ota-client"
	(cd "$REPO_ROOT" && CGO_ENABLED=0 run "$LOGS/build.log" go build -o "$BENCH_DIR/ota-client" ./cmd/ota-client)
	printf '%s\n' "$BENCH_DIR/ota-client"
}

# The bootable trees: V1 and V2 hard-linked (nothing writes to their files) plus the same
# stand-in kernel and initramfs, made once and kept in $KERNEL_DIR.
prepare_trees() {
	if [[ ! -s $KERNEL_DIR/vmlinuz-$KVER || ! -s $KERNEL_DIR/initrd.img-$KVER ]]; then
		log "writing a stand-in kernel and initramfs to $KERNEL_DIR"
		mkdir -p "$KERNEL_DIR"
		head -c $((10 << 20)) /dev/urandom >"$KERNEL_DIR/vmlinuz-$KVER"
		head -c $((4 << 20)) /dev/urandom >"$KERNEL_DIR/initrd.img-$KVER"
	fi
	local v src
	for v in v1 v2; do
		src=$V1_ROOT
		[[ $v == v2 ]] && src=$V2_ROOT
		log "linking $src into $TREES/$v"
		rm -rf "${TREES:?}/$v"
		mkdir -p "$TREES"
		if ! cp -al "$src" "$TREES/$v" 2>>"$LOGS/prepare.log"; then
			rm -rf "${TREES:?}/$v"
			run "$LOGS/prepare.log" cp -a "$src" "$TREES/$v"
		fi
		rm -f "$TREES/$v/.bench-complete"
		mkdir -p "$TREES/$v/boot"
		cp "$KERNEL_DIR/vmlinuz-$KVER" "$KERNEL_DIR/initrd.img-$KVER" "$TREES/$v/boot/"
	done
}

# Commits V1 and V2 (untimed, signed) to a fresh archive repo with a signed summary; sets
# FROM and TO.
make_repo() {
	log "committing V1 and V2 (bootable) to $REPO"
	if [[ ! -s $KEY.key ]]; then
		mkdir -p "$(dirname "$KEY")"
		run "$LOGS/commit.log" "$OTA" keygen -o "$KEY"
	fi
	rm -rf "$REPO"
	run "$LOGS/commit.log" "$OTA" init --repo "$REPO"
	run "$LOGS/commit.log" "$OTA" commit --repo "$REPO" --branch "$BRANCH" --tree "dir=$TREES/v1" --bootable \
		--timestamp "$TIMESTAMP_V1" --version 1.0 --subject V1 --sign-key "$KEY.key"
	run "$LOGS/commit.log" "$OTA" commit --repo "$REPO" --branch "$BRANCH" --tree "dir=$TREES/v2" --bootable \
		--timestamp "$TIMESTAMP_V2" --version 2.0 --subject V2 --sign-key "$KEY.key"
	run "$LOGS/commit.log" "$OTA" summary --repo "$REPO" --sign-key "$KEY.key"
	TO=$(ostree rev-parse --repo="$REPO" "$BRANCH")
	FROM=$(ostree rev-parse --repo="$REPO" "$BRANCH^")
	[[ $FROM != "$TO" ]] || die "V1 and V2 have the same commit"
	ostree ls --repo="$REPO" "$TO" "/usr/lib/modules/$KVER/vmlinuz" >>"$LOGS/commit.log" 2>&1 ||
		die "commit $TO has no /usr/lib/modules/$KVER/vmlinuz (log: $LOGS/commit.log)"
}

# The scenarios' repos: hard-linked copies of REPO (ota-build and ostree replace files, never
# write into them), each with its delta and a summary signed anew.
make_scenarios() {
	local s dir cached
	rm -rf "$SRV"
	mkdir -p "$SRV"
	for s in "${SCENARIOS[@]}"; do
		dir=$SRV/$s
		cp -al "$REPO" "$dir"
		case $s in
		delta)
			log "ota-build delta $FROM -> $TO"
			run "$LOGS/delta.log" "$OTA" delta --repo "$dir" --from "$FROM" --to "$TO"
			;;
		delta-xz)
			log "ota-build delta --zstd-parts=false $FROM -> $TO"
			run "$LOGS/delta.log" "$OTA" delta --repo "$dir" --from "$FROM" --to "$TO" --zstd-parts=false
			;;
		delta-ostree)
			cached=$CACHE/ostree-$FROM-$TO
			if [[ ! -d $cached/deltas ]]; then
				log "ostree static-delta generate $FROM -> $TO (about 80 s; cached in $CACHE)"
				rm -rf "$cached"
				mkdir -p "$cached"
				run "$LOGS/delta.log" ostree static-delta generate --repo="$dir" --from="$FROM" --to="$TO"
				cp -a "$dir/deltas" "$cached/deltas"
			else
				log "reusing ostree's delta $cached"
				cp -a "$cached/deltas" "$dir/deltas"
			fi
			;;
		esac
		run "$LOGS/delta.log" "$OTA" summary --repo "$dir" --sign-key "$KEY.key"
		if [[ $s != objects ]]; then
			ostree summary --repo="$dir" --view 2>>"$LOGS/delta.log" | grep -q "$FROM-$TO" ||
				die "the summary of $dir lists no delta $FROM-$TO (log: $LOGS/delta.log)"
		fi
	done
}

declare -A SERVER_PID=() URL=()

# Starts one `ota-build serve` per scenario, its access log in $LOGS/serve-SCENARIO.log.
start_servers() {
	local s out i
	for s in "${SCENARIOS[@]}"; do
		out=$LOGS/serve-$s.out
		: >"$out"
		"$OTA" serve --repo "$SRV/$s" --addr 127.0.0.1:0 >"$out" 2>"$LOGS/serve-$s.log" &
		SERVER_PID[$s]=$!
		for ((i = 0; i < 100; i++)); do
			[[ -s $out ]] && break
			sleep 0.05
		done
		URL[$s]=$(awk '/^serving /{u = $NF; sub(/\/$/, "", u); print u}' "$out")
		[[ -n ${URL[$s]} ]] || die "ota-build serve for $s did not start (log: $LOGS/serve-$s.log)"
		log "serving $SRV/$s at ${URL[$s]}"
	done
}

stop_servers() {
	local s
	for s in "${!SERVER_PID[@]}"; do
		kill "${SERVER_PID[$s]}" 2>/dev/null || true
		wait "${SERVER_PID[$s]}" 2>/dev/null || true
	done
	SERVER_PID=()
}

# The sysroot lives in an ext4 image on a loop device when the machine allows it.
USE_LOOP=1

# mount_image IMG: mounts IMG on $MNT.
mount_image() {
	mkdir -p "$MNT"
	mount -o loop "$1" "$MNT"
}

# release_sysroot: unmounts (or deletes) the run's sysroot.
release_sysroot() {
	if mountpoint -q "$MNT"; then
		umount "$MNT"
	fi
	if ((!USE_LOOP)) && [[ -d $MNT ]]; then
		# ostree makes deployments immutable.
		chattr -R -i "$MNT/ostree/deploy" 2>/dev/null || true
		rm -rf "$MNT"
	fi
	rm -f "$IMAGES/run.img"
}

# The device before the update: V1 deployed by the real ostree, with the client's files.
make_template() {
	local t=$IMAGES/template.img s
	log "making the sysroot with V1 deployed"
	release_sysroot
	chattr -R -i "$IMAGES/template/ostree/deploy" 2>/dev/null || true
	rm -rf "$IMAGES"
	mkdir -p "$IMAGES"
	s=$MNT
	if ((USE_LOOP)); then
		truncate -s "$IMAGE_SIZE" "$t"
		run "$LOGS/sysroot.log" mkfs.ext4 -q -F -L bench-root "$t"
		if ! mount_image "$t" 2>>"$LOGS/sysroot.log"; then
			log "no loop mount here: using plain directories"
			USE_LOOP=0
			rm -f "$t"
		fi
	fi
	if ((!USE_LOOP)); then
		s=$IMAGES/template
		mkdir -p "$s"
	fi
	run "$LOGS/sysroot.log" ostree admin init-fs "$s"
	run "$LOGS/sysroot.log" ostree admin os-init --sysroot="$s" "$OS_NAME"
	run "$LOGS/sysroot.log" ostree config --repo="$s/ostree/repo" set sysroot.bootloader uboot
	mkdir -p "$s/boot/loader.0"
	: >"$s/boot/loader.0/uEnv.txt"
	ln -s loader.0 "$s/boot/loader"
	run "$LOGS/sysroot.log" ostree pull-local --repo="$s/ostree/repo" "$REPO" "$FROM"
	# As a device that pulled V1 from the remote "bench" has it.
	mkdir -p "$s/ostree/repo/refs/remotes/$OS_NAME"
	printf '%s\n' "$FROM" >"$s/ostree/repo/refs/remotes/$OS_NAME/$BRANCH"
	run "$LOGS/sysroot.log" ostree admin deploy --sysroot="$s" --os="$OS_NAME" \
		--karg=root=/dev/mmcblk0p2 --karg=rw "$OS_NAME:$BRANCH"
	mkdir -p "$s/etc/ota" "$s/etc/ostree/trusted.ed25519.d" "$s/boot/firmware"
	cp "$KEY.ostree.pub" "$s/etc/ostree/trusted.ed25519.d/release.ostree.pub"
	printf 'bootcount=0\n' >"$s/boot/firmware/ota-state.txt"
	sync
	if ((USE_LOOP)); then
		umount "$MNT"
	fi
}

# new_sysroot SCENARIO: a fresh copy of the template on $MNT, configured for the scenario's
# server (both tools' configuration: the ostree remote and client.yaml), its repository read
# into the page cache.
new_sysroot() {
	local s=$1
	release_sysroot
	if ((USE_LOOP)); then
		cp --sparse=always "$IMAGES/template.img" "$IMAGES/run.img"
		mount_image "$IMAGES/run.img"
	else
		cp -a "$IMAGES/template" "$MNT"
	fi
	ostree remote add --repo="$MNT/ostree/repo" --set=gpg-verify=false "$OS_NAME" "${URL[$s]}" "$BRANCH"
	printf 'url: %s\nref: %s\n' "${URL[$s]}" "$BRANCH" >"$MNT/etc/ota/client.yaml"
	sync
	tar -C "$MNT/ostree/repo" -cf - . | cat >/dev/null
	tar -C "$SRV/$s" -cf - . | cat >/dev/null
}

# Access-log lines of the scenario's server so far.
log_lines() { wc -l <"$LOGS/serve-$1.log"; }

# served SCENARIO FROM_LINE: "REQUESTS BYTES" the server logged after line FROM_LINE. A
# request is logged once its answer is sent; the client may exit a moment before.
served() {
	sleep 0.3
	tail -n +"$(($2 + 1))" "$LOGS/serve-$1.log" | awk '{n++; b += $(NF - 1)} END {printf "%d %d\n", n, b}'
}

# Per label: bytes and requests served, the smallest and largest of the runs; the method
# the last run used; the checks.
declare -A BYTES_MIN=() BYTES_MAX=() REQS=() METHOD=() CHECK=()

# note_bytes LABEL "REQUESTS BYTES"
note_bytes() {
	local label=$1 req bytes
	read -r req bytes <<<"$2"
	if [[ -z ${BYTES_MIN[$label]:-} ]] || ((bytes < BYTES_MIN[$label])); then
		BYTES_MIN[$label]=$bytes
	fi
	if ((bytes > ${BYTES_MAX[$label]:-0})); then
		BYTES_MAX[$label]=$bytes
	fi
	REQS[$label]="${REQS[$label]:+${REQS[$label]} }$req"
}

# check_sysroot LABEL RUN: the deployments ostree lists must be V2 then V1; on the last run
# (FSCK=1) the repository must pass ostree fsck.
check_sysroot() {
	local label=$1 i=$2 status
	status=$(ostree admin status --sysroot="$MNT" 2>>"$LOGS/$label.log" |
		awk -v os="$OS_NAME" '$1 == os || ($1 == "*" && $2 == os) {print ($1 == "*" ? $3 : $2)}' | tr '\n' ' ')
	printf 'run %d: ostree admin status: %s\n' "$i" "$status" >>"$LOGS/$label.log"
	if [[ $status != "$TO.0 $FROM.0 " ]]; then
		CHECK[$label]="FAILED: deployments $status"
		return
	fi
	if ((i == RUNS && FSCK)); then
		printf '+ ostree fsck --repo=%s/ostree/repo\n' "$MNT" >>"$LOGS/$label.log"
		if ! ostree fsck --repo="$MNT/ostree/repo" >>"$LOGS/$label.log" 2>&1; then
			CHECK[$label]="FAILED: ostree fsck (see $LOGS/$label.log)"
			return
		fi
		CHECK[$label]="ok, fsck ok"
	elif [[ -z ${CHECK[$label]:-} || ${CHECK[$label]} == ok ]]; then
		CHECK[$label]=ok
	fi
}

# The sum over all processes of a timed command (lib.sh's TREE_RSS_SAMPLER): ota-client's
# xz children included.
TIMED_SAMPLER=(python3 -c "$TREE_RSS_SAMPLER")
declare -A MAX_TREE_KB=()

# record LABEL RUN: lib.sh's record_run, plus the largest process-tree RSS (T_SAMPLED, at
# least the largest process's: sampling can miss a short peak).
record() {
	local label=$1 i=$2 tree_kb=${T_SAMPLED:-0}
	((tree_kb < T_RSS_KB)) && tree_kb=$T_RSS_KB
	record_run "$label" "$i" "(process tree $tree_kb KiB)" || true
	if ((tree_kb > ${MAX_TREE_KB[$label]:-0})); then
		MAX_TREE_KB[$label]=$tree_kb
	fi
}

# run_ostree SCENARIO RUN: one timed `ostree pull` + `ostree admin deploy`.
run_ostree() {
	local s=$1 i=$2 label=ostree-$1 l0 secs rss cpu user sys tree
	new_sysroot "$s"
	log "$label: run $i/$RUNS"
	l0=$(log_lines "$s")
	if ! timed "$label" nice -n "$NICE" ostree --repo="$MNT/ostree/repo" pull "$OS_NAME" "$BRANCH"; then
		fail_run "$label" "$i"
		return
	fi
	secs=$T_SECS rss=$T_RSS_KB user=$T_USER sys=$T_SYS tree=$T_SAMPLED
	record "$label-pull" "$i"
	METHOD[$label]=$(grep -E 'delta parts|content objects fetched|transferred' "$LOGS/$label.log" | tail -n 1 | sed 's/;.*//')
	if ! timed "$label" nice -n "$NICE" ostree admin deploy --sysroot="$MNT" --os="$OS_NAME" "$OS_NAME:$BRANCH"; then
		fail_run "$label" "$i"
		return
	fi
	record "$label-deploy" "$i"
	note_bytes "$label" "$(served "$s" "$l0")"
	# Both commands as one: times added, the larger RSS.
	T_SECS=$(awk -v a="$secs" -v b="$T_SECS" 'BEGIN{printf "%.2f", a + b}')
	T_USER=$(awk -v a="$user" -v b="$T_USER" 'BEGIN{printf "%.2f", a + b}')
	T_SYS=$(awk -v a="$sys" -v b="$T_SYS" 'BEGIN{printf "%.2f", a + b}')
	cpu=$(awk -v u="$T_USER" -v s="$T_SYS" -v w="$T_SECS" 'BEGIN{printf "%d", (w > 0 ? 100 * (u + s) / w : 0)}')
	T_CPU=$cpu
	((rss > T_RSS_KB)) && T_RSS_KB=$rss
	((tree > T_SAMPLED)) && T_SAMPLED=$tree
	record "$label" "$i"
	check_sysroot "$label" "$i"
}

# run_ota SCENARIO RUN: one timed `ota-client update`.
run_ota() {
	local s=$1 i=$2 label=ota-$1 l0 out
	new_sysroot "$s"
	log "$label: run $i/$RUNS"
	l0=$(log_lines "$s")
	out=$BENCH_DIR/update.json
	# shellcheck disable=SC2016 # expanded by sh
	if ! timed "$label" nice -n "$NICE" sh -c 'exec "$@" >"$0"' "$out" "$CLIENT" --sysroot "$MNT" --progress=none update --json; then
		cat "$out" >>"$LOGS/$label.log" 2>/dev/null || true
		fail_run "$label" "$i"
		return
	fi
	cat "$out" >>"$LOGS/$label.log"
	record "$label" "$i"
	note_bytes "$label" "$(served "$s" "$l0")"
	METHOD[$label]=$(python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["pull"]; print("%s, %d files fetched" % (p["method"], p["fetched"]))' "$out" 2>/dev/null || echo '?')
	check_sysroot "$label" "$i"
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

# bytes_range LABEL: "N" or "MIN-MAX" over the runs.
bytes_range() {
	local label=$1
	if [[ -z ${BYTES_MIN[$label]:-} ]]; then
		printf -- '-'
	elif ((BYTES_MIN[$label] == BYTES_MAX[$label])); then
		printf '%s' "${BYTES_MIN[$label]}"
	else
		printf '%s-%s' "${BYTES_MIN[$label]}" "${BYTES_MAX[$label]}"
	fi
}

# summary_lines SCENARIO: the ratios and verdicts of a scenario.
summary_lines() {
	local s=$1 r
	r=$(ratio "${BEST_SECS[ostree-$s]:-0}" "${BEST_SECS[ota-$s]:-0}")
	printf '  speedup ostree_time / ours_time:   %s (target >= 2: %s)\n' "$r" "$(verdict "$r" '>=' 2)"
	r=$(ratio "$(awk -v u="${BEST_USER[ostree-$s]:-0}" -v s="${BEST_SYS[ostree-$s]:-0}" 'BEGIN{print u + s}')" \
		"$(awk -v u="${BEST_USER[ota-$s]:-0}" -v s="${BEST_SYS[ota-$s]:-0}" 'BEGIN{print u + s}')")
	printf '  CPU time ostree / ours (best runs): %s (not a target: what a load on the machine changes least)\n' "$r"
	r=$(ratio "${MAX_RSS_KB[ota-$s]:-0}" "${MAX_RSS_KB[ostree-$s]:-0}")
	printf '  peak RSS ours / ostree:            %s (target <= 0.5: %s); ours %s MiB (target <= 64: %s) (largest process)\n' "$r" "$(verdict "$r" '<=' 0.5)" \
		"$(kib_mib "${MAX_RSS_KB[ota-$s]:-0}")" "$(verdict "$(kib_mib "${MAX_RSS_KB[ota-$s]:-0}")" '<=' 64)"
	r=$(ratio "${MAX_TREE_KB[ota-$s]:-0}" "${MAX_TREE_KB[ostree-$s]:-0}")
	printf '  same, all processes:               %s (target <= 0.5: %s); ours %s MiB (target <= 64: %s)\n' "$r" "$(verdict "$r" '<=' 0.5)" \
		"$(kib_mib "${MAX_TREE_KB[ota-$s]:-0}")" "$(verdict "$(kib_mib "${MAX_TREE_KB[ota-$s]:-0}")" '<=' 64)"
	r=$(ratio "${BYTES_MAX[ota-$s]:-0}" "${BYTES_MIN[ostree-$s]:-0}")
	printf '  bytes ours (most) / ostree (least): %s (target <= 1: %s)\n' "$r" "$(verdict "$r" '<=' 1)"
	printf '  ostree: %s; ours: %s\n' "${METHOD[ostree-$s]:-?}" "${METHOD[ota-$s]:-?}"
	printf '  requests per run: ostree %s; ours %s\n' "${REQS[ostree-$s]:-?}" "${REQS[ota-$s]:-?}"
	printf '  check (ostree admin status: V2 default, V1 rollback; ostree fsck): ostree %s; ours %s\n' \
		"${CHECK[ostree-$s]:-not checked}" "${CHECK[ota-$s]:-not checked}"
}

cleanup() {
	stop_servers
	release_sysroot 2>/dev/null || true
	# The images take RAM (tmpfs); the template is made anew by every run of the script.
	chattr -R -i "$IMAGES/template/ostree/deploy" 2>/dev/null || true
	rm -rf "$IMAGES"
}

main() {
	local load_start
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	check_number RUNS "$RUNS"
	is_root || die "run as root (sudo bash bench/${0##*/}): ostree admin deploy and the loop-mounted sysroots need it"
	mkdir -p "$BENCH_DIR" "$LOGS"
	exec 9>"$BENCH_DIR/.lock"
	flock -n 9 || die "another bench/client.sh is running with BENCH_DIR=$BENCH_DIR; wait for it or set another BENCH_DIR"
	ensure_tools
	command -v python3 >/dev/null || die "python3 is missing (it reads ota-client's JSON report)"
	command -v zstd >/dev/null || die "zstd is missing (ota-build delta makes the zstd parts of the delta scenario with it): install package 'zstd'"
	SCENARIOS=(delta)
	((XZ_DELTA)) && SCENARIOS+=(delta-xz)
	((OSTREE_DELTA)) && SCENARIOS+=(delta-ostree)
	SCENARIOS+=(objects)
	trap cleanup EXIT
	: >"$LOGS/commit.log"
	: >"$LOGS/delta.log"
	: >"$LOGS/sysroot.log"
	prepare_v2
	prepare_v1
	OTA=$(ota_binary)
	CLIENT=$(client_binary)
	"$CLIENT" update --help >/dev/null 2>&1 || die "$CLIENT has no working 'update' command"
	prepare_trees
	make_repo
	make_scenarios
	start_servers
	make_template

	local s i label
	for s in "${SCENARIOS[@]}"; do
		for label in "ostree-$s" "ota-$s"; do
			: >"$LOGS/$label.log"
		done
	done
	# Round-robin over scenarios and tools, so that load from other users of the machine that
	# comes and goes hits them alike.
	for ((i = 1; i <= RUNS; i++)); do
		for s in "${SCENARIOS[@]}"; do
			run_ostree "$s" "$i"
			run_ota "$s" "$i"
		done
	done
	release_sysroot

	local cpu load_end delta_bytes=() sizes
	load_end=$(cut -d' ' -f1-3 /proc/loadavg)
	cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
	printf 'client benchmark, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'machine: %s CPUs, %s, %s GiB RAM, ostree %s; load average at start %s, at end %s\n' "$(nproc)" "${cpu:-unknown CPU}" \
		"$(awk '/^MemTotal:/{printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
		"$(ostree --version | awk -F"'" '/Version:/{print $2; exit}')" "$load_start" "$load_end"
	printf 'update: V1 %s -> V2 %s (bench/delta.sh'"'"'s Debian pair + a %s MiB stand-in kernel and initramfs, ota-build commit --bootable, signed)\n' \
		"$FROM" "$TO" "$(stat -c %s "$KERNEL_DIR/vmlinuz-$KVER" "$KERNEL_DIR/initrd.img-$KVER" | awk '{s += $1} END {print s / 1048576}')"
	for s in "${SCENARIOS[@]}"; do
		[[ $s == objects ]] && continue
		sizes=$(find "$SRV/$s/deltas" -type f -printf '%s\n' | awk '{b += $1; n++} END {printf "%d bytes in %d files", b, n}')
		delta_bytes+=("$s: $sizes")
	done
	printf 'deltas (superblock + parts): %s\n' "$(IFS=';'; printf '%s' "${delta_bytes[*]}" | sed 's/;/; /g')"
	printf 'sysroot: %s\n' "$( ((USE_LOOP)) && printf 'ext4 image (%s, the file in %s) on a loop device, a fresh copy per run, its repository read into the page cache first' "$IMAGE_SIZE" "$IMAGES" ||
		printf 'a fresh copy of a directory per run, its repository read into the page cache first')"
	printf 'runs: %s per tool and scenario, round-robin, at nice %s; wall s = best run (CPU %%, user s, sys s of that run, children included); RSS MiB = peak of the largest process (/usr/bin/time), tree MiB = peak of the sum over all processes (sampled every 50 ms), both the largest of all runs; bytes served = HTTP body bytes the server logged per run (range over the runs)\n\n' "$RUNS" "$NICE"

	for s in "${SCENARIOS[@]}"; do
		table_header "$s" 'bytes served'
		table_row 'ostree pull + admin deploy' "ostree-$s" "$(bytes_range "ostree-$s")"
		table_row '  ostree pull' "ostree-$s-pull" ''
		table_row '  ostree admin deploy' "ostree-$s-deploy" ''
		table_row 'ota-client update' "ota-$s" "$(bytes_range "ota-$s")"
		summary_lines "$s"
		printf '\n'
	done
	if ((${#FAILED[@]})); then
		for label in "${!FAILED[@]}"; do
			printf 'FAILED: %s run(s) %s (log: %s)\n' "$label" "${FAILED[$label]}" "$LOGS/$label.log"
		done
	fi
}

main "$@"
