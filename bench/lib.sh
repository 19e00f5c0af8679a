# Shared helpers of the benchmark scripts; sourced, not run.
# shellcheck shell=bash

VERBOSE=0
if [[ -t 2 ]]; then
	VERBOSE=1
fi

log() {
	if ((VERBOSE)); then
		printf '==> %s\n' "$*" >&2
	fi
}

die() {
	printf '%s: error: %s\n' "bench/${0##*/}" "$*" >&2
	exit 1
}

# run LOGFILE CMD...: runs CMD with its output appended to LOGFILE; on failure shows its tail.
run() {
	local logfile=$1
	shift
	printf '+ %s\n' "$*" >>"$logfile"
	if ! "$@" >>"$logfile" 2>&1; then
		tail -n 20 "$logfile" >&2
		die "command failed: $* (full log: $logfile)"
	fi
}

is_root() {
	[[ $(id -u) -eq 0 ]]
}

check_number() {
	[[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"
}

mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}'; }

# lt A B: whether the decimal number A is less than B.
lt() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}'; }

# The timed runs' results per label, kept by record_run and fail_run.
declare -A BEST_SECS=() BEST_CPU=() BEST_USER=() BEST_SYS=() ALL_SECS=() MAX_RSS_KB=() FAILED=()

# A command run alongside every timed command, with /usr/bin/time's pid as its last
# argument, e.g. to sample memory; empty: none.
TIMED_SAMPLER=()

# timed LABEL CMD...: runs CMD under /usr/bin/time, its output appended to $LOGS/LABEL.log;
# sets T_SECS, T_RSS_KB (largest process), T_CPU (percent), T_USER and T_SYS (CPU seconds),
# and T_SAMPLED: the first line TIMED_SAMPLER printed (0 without one). Returns 1 (after
# logging) when CMD fails.
# shellcheck disable=SC2034 # the T_ variables are read by the scripts
timed() {
	local label=$1
	shift
	local tf=$BENCH_DIR/time.out sampled=$BENCH_DIR/sampled.out pid sampler rc=0
	printf '+ %s\n' "$*" >>"$LOGS/$label.log"
	T_SAMPLED=0
	if ((${#TIMED_SAMPLER[@]})); then
		/usr/bin/time -f '%e %M %P %U %S' -o "$tf" "$@" >>"$LOGS/$label.log" 2>&1 &
		pid=$!
		"${TIMED_SAMPLER[@]}" "$pid" >"$sampled" 2>>"$LOGS/$label.log" &
		sampler=$!
		wait "$pid" || rc=$?
		wait "$sampler" || true
		read -r T_SAMPLED <"$sampled" || T_SAMPLED=0
	else
		/usr/bin/time -f '%e %M %P %U %S' -o "$tf" "$@" >>"$LOGS/$label.log" 2>&1 || rc=$?
	fi
	if ((rc != 0)); then
		printf 'FAILED (exit status %d)\n' "$rc" >>"$LOGS/$label.log"
		return 1
	fi
	read -r T_SECS T_RSS_KB T_CPU T_USER T_SYS <"$tf"
	T_CPU=${T_CPU%\%}
}

# record_run LABEL RUN [NOTE]: logs the run just timed (NOTE follows its peak RSS in
# $LOGS/LABEL.log), adds its time to ALL_SECS, keeps the best run's BEST_SECS, BEST_CPU,
# BEST_USER and BEST_SYS and the largest MAX_RSS_KB. Returns 0 when this run is the best so
# far, 1 otherwise.
# shellcheck disable=SC2034 # the scripts read the BEST_ arrays
record_run() {
	local label=$1 i=$2 note=${3:+ $3} best=0
	log "$label: ${T_SECS}s, peak RSS ${T_RSS_KB} KiB"
	printf 'run %d: %s s, peak RSS %s KiB%s, CPU %s%% (user %s s, sys %s s)\n' "$i" "$T_SECS" "$T_RSS_KB" "$note" "$T_CPU" "$T_USER" "$T_SYS" >>"$LOGS/$label.log"
	ALL_SECS[$label]="${ALL_SECS[$label]:+${ALL_SECS[$label]} }$T_SECS"
	if [[ -z ${BEST_SECS[$label]:-} ]] || lt "$T_SECS" "${BEST_SECS[$label]}"; then
		BEST_SECS[$label]=$T_SECS
		BEST_CPU[$label]=$T_CPU
		BEST_USER[$label]=$T_USER
		BEST_SYS[$label]=$T_SYS
		best=1
	fi
	if ((T_RSS_KB > ${MAX_RSS_KB[$label]:-0})); then
		MAX_RSS_KB[$label]=$T_RSS_KB
	fi
	((best))
}

# fail_run LABEL RUN: records that the run failed.
fail_run() {
	local label=$1 i=$2
	log "$label: run $i FAILED (log: $LOGS/$label.log)"
	FAILED[$label]="${FAILED[$label]:+${FAILED[$label]},}$i"
	ALL_SECS[$label]="${ALL_SECS[$label]:+${ALL_SECS[$label]} }FAIL"
}


# Sums the resident memory of every descendant of process ARGV[1] (the /usr/bin/time running
# a timed command) every 50 ms while it lives, and prints the peak in KiB. /usr/bin/time's own
# figure is the peak of the largest single process, which leaves out children such as the
# xz processes of ota-build and ota-client. A child that still runs its parent's program
# (between fork and exec) is left out: it shares its parent's memory.
# A script that wants it sets TIMED_SAMPLER=(python3 -c "$TREE_RSS_SAMPLER"); timed's
# T_SAMPLED is then its peak.
# shellcheck disable=SC2034 # used by the scripts
TREE_RSS_SAMPLER='
import os, sys, time
root = int(sys.argv[1])
page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
peak = 0
while os.path.exists("/proc/%d" % root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    todo, total = [(pid, root) for pid in kids.get(root, [])], 0
    while todo:
        pid, parent = todo.pop()
        try:
            # A child between fork and exec runs its parent'"'"'s program in its parent'"'"'s memory
            # (Go forks with CLONE_VM): not counted twice.
            if os.readlink("/proc/%d/exe" % pid) != os.readlink("/proc/%d/exe" % parent):
                with open("/proc/%d/statm" % pid) as f:
                    total += int(f.read().split()[1]) * page_kb
        except (OSError, IndexError, ValueError):
            pass
        todo.extend((kid, pid) for kid in kids.get(pid, []))
    peak = max(peak, total)
    time.sleep(0.05)
print(peak)
'

# Prints the ota-build binary to use, building it when OTA_BUILD is unset.
ota_binary() {
	if [[ -n $OTA_BUILD ]]; then
		[[ -x $OTA_BUILD ]] || die "OTA_BUILD=$OTA_BUILD is not an executable"
		printf '%s\n' "$OTA_BUILD"
		return
	fi
	log "building ota-build"
	(cd "$REPO_ROOT" && run "$LOGS/build.log" go build -o "$BENCH_DIR/ota-build" ./cmd/ota-build)
	printf '%s\n' "$BENCH_DIR/ota-build"
}


# ensure_tools installs /usr/bin/time and ostree when missing (as root) and checks for go.
ensure_tools() {
	if [[ ! -x /usr/bin/time ]]; then
		is_root || die "/usr/bin/time is missing: run as root (sudo bash bench/${0##*/}) to install package 'time', or install it yourself"
		log "installing package time"
		run "$LOGS/apt.log" apt-get update -q
		run "$LOGS/apt.log" apt-get install -y -q time
	fi
	if ! command -v ostree >/dev/null; then
		is_root || die "ostree is missing: run as root (sudo bash bench/${0##*/}) to install it, or install package 'ostree' yourself"
		log "installing package ostree"
		run "$LOGS/apt.log" apt-get update -q
		run "$LOGS/apt.log" apt-get install -y -q ostree
	fi
	command -v go >/dev/null || die "go is not on PATH (with sudo, try: sudo env PATH=\"\$PATH\" bash bench/${0##*/})"
}

# The Debian bookworm packages whose arm64 builds make the benchmark rootfs.
ARM64_PKGS=(
	# base system
	base-files base-passwd bash dash coreutils util-linux util-linux-extra mount fdisk
	bsdutils hostname login passwd tar gzip bzip2 xz-utils zstd sed grep gawk mawk findutils
	diffutils debianutils procps libproc2-0 busybox
	# C runtime and core libraries
	libc6 libc-bin libgcc-s1 gcc-12-base libstdc++6 libcrypt1 zlib1g liblzma5 libzstd1
	libbz2-1.0 liblz4-1 libxxhash0 libmount1 libblkid1 libuuid1 libsmartcols1 libfdisk1
	libselinux1 libsepol2 libsemanage2 libpcre2-8-0 libpcre3 libcap2 libcap2-bin libacl1
	libattr1 libaudit1 libncursesw6 libtinfo6 ncurses-bin libreadline8 libedit2 libbsd0 libmd0
	libffi8 libexpat1 libsqlite3-0 libdb5.3 libgdbm6 libgdbm-compat4 libjson-c5 libicu72
	libmagic1 libmagic-mgc
	# crypto and TLS
	libssl3 openssl libgnutls30 libnettle8 libhogweed6 libgmp10 libtasn1-6 libp11-kit0
	libidn2-0 libunistring2 libgcrypt20 libgpg-error0 libkrb5-3 libk5crypto3 libkrb5support0
	libgssapi-krb5-2 libkeyutils1 libcom-err2 libsasl2-2 libsasl2-modules-db libldap-2.5-0
	# systemd, udev, dbus, glib
	systemd libsystemd0 libsystemd-shared systemd-sysv systemd-timesyncd udev libudev1 libkmod2
	kmod libapparmor1 libseccomp2 libcryptsetup12 libdevmapper1.02.1 libargon2-1 libpam0g
	libpam-modules libpam-modules-bin libpam-systemd dbus dbus-daemon dbus-bin libdbus-1-3
	libglib2.0-0
	# python and perl
	python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11 libpython3.11
	perl-base libperl5.36 perl
	# networking
	iproute2 libbpf1 libelf1 libmnl0 libxtables12 iptables libip4tc2 libip6tc2 libnftnl11
	nftables libnftables1 libjansson4 libnetfilter-conntrack3 libnfnetlink0 iputils-ping
	openssh-client openssh-server openssh-sftp-server libwrap0 curl libcurl4 libcurl3-gnutls
	libnghttp2-14 librtmp1 libpsl5 libbrotli1 libssh2-1 wpasupplicant libnl-3-200
	libnl-genl-3-200 libnl-route-3-200 libpcsclite1
	# tools
	e2fsprogs libext2fs2 libss2 logsave apt libapt-pkg6.0 dpkg vim-tiny less nano file rsync
	libpopt0 git
)
# Architecture "all" packages, downloaded by plain name.
ALL_PKGS=(
	ca-certificates tzdata locales netbase sensible-utils init-system-helpers ncurses-base
	readline-common libpam-runtime libsemanage-common libaudit-common libglib2.0-data
	dbus-session-bus-common dbus-system-bus-common perl-modules-5.36 vim-common git-man
	liberror-perl
)

# The benchmark trees, chosen with TREE (commit.sh, delta.sh and image.sh):
#   debian   (default) the 188 packages above: ~11,000 regular files, ~420 MiB;
#   minbase  a Debian minbase system (Priority: required, apt) with systemd, udev,
#            openssh-server, curl and busybox, dependencies included: ~4,700 files, ~190 MiB;
#   tiny     busybox, libc6 and a few libraries (like a Yocto core-image-minimal): a few
#            hundred files, where fixed costs dominate.
# Each tree has its own cache directories (TREE_SUFFIX is appended to the default BENCH_DIR
# and COMMIT_DIR: /tmp/ota-bench-minbase, /tmp/ota-bench-delta-tiny, ...), so trees never mix.
MINBASE_ARM64_PKGS=(
	apt base-files base-passwd bash bsdutils busybox coreutils curl dash debianutils
	diffutils dmsetup dpkg e2fsprogs findutils gcc-12-base gpgv grep gzip hostname
	libacl1 libapparmor1 libapt-pkg6.0 libargon2-1 libattr1 libaudit1 libblkid1 libbrotli1
	libbsd0 libbz2-1.0 libc-bin libc6 libcap-ng0 libcap2 libcbor0.8 libcom-err2 libcrypt1
	libcryptsetup12 libcurl4 libdb5.3 libdebconfclient0 libdevmapper1.02.1 libedit2
	libext2fs2 libfdisk1 libffi8 libfido2-1 libgcc-s1 libgcrypt20 libgmp10 libgnutls30
	libgpg-error0 libgssapi-krb5-2 libhogweed6 libidn2-0 libip4tc2 libjson-c5 libk5crypto3
	libkeyutils1 libkmod2 libkrb5-3 libkrb5support0 libldap-2.5-0 liblz4-1 liblzma5 libmd0
	libmount1 libncursesw6 libnettle8 libnghttp2-14 libnsl2 libp11-kit0 libpam-modules
	libpam-modules-bin libpam0g libpcre2-8-0 libproc2-0 libpsl5 librtmp1 libsasl2-2
	libsasl2-modules-db libseccomp2 libselinux1 libsemanage2 libsepol2 libsmartcols1 libss2
	libssh2-1 libssl3 libstdc++6 libsystemd-shared libsystemd0 libtasn1-6 libtinfo6 libtirpc3
	libudev1 libunistring2 libuuid1 libwrap0 libxxhash0 libzstd1 login logsave mawk mount
	ncurses-bin openssh-client openssh-server openssh-sftp-server passwd perl-base procps
	sed systemd sysvinit-utils tar udev util-linux util-linux-extra zlib1g
)
MINBASE_ALL_PKGS=(
	adduser debconf debian-archive-keyring init-system-helpers libaudit-common libpam-runtime
	libsemanage-common libtirpc-common ncurses-base runit-helper sensible-utils tzdata ucf
	usr-is-merged
)
TINY_ARM64_PKGS=(
	base-files base-passwd busybox libc6 libgcc-s1 gcc-12-base libcrypt1 zlib1g libssl3
	libzstd1 liblzma5
)
TINY_ALL_PKGS=(netbase)

# select_tree: applies TREE (default debian): sets TREE, TREE_SUFFIX ("" for debian,
# "-minbase", "-tiny") and the package lists ARM64_PKGS and ALL_PKGS.
# shellcheck disable=SC2034 # TREE_SUFFIX is read by the scripts
select_tree() {
	TREE=${TREE:-debian}
	case $TREE in
	debian) TREE_SUFFIX= ;;
	minbase)
		TREE_SUFFIX=-minbase
		ARM64_PKGS=("${MINBASE_ARM64_PKGS[@]}")
		ALL_PKGS=("${MINBASE_ALL_PKGS[@]}")
		;;
	tiny)
		TREE_SUFFIX=-tiny
		ARM64_PKGS=("${TINY_ARM64_PKGS[@]}")
		ALL_PKGS=("${TINY_ALL_PKGS[@]}")
		;;
	*) die "TREE must be debian, minbase or tiny, got '$TREE'" ;;
	esac
}

# apt_prepare enables the arm64 architecture and updates the package lists, once.
APT_UPDATED=0
apt_prepare() {
	((APT_UPDATED)) && return
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		log "enabling dpkg architecture arm64"
		run "$LOGS/apt.log" dpkg --add-architecture arm64
	fi
	log "apt-get update"
	run "$LOGS/apt.log" apt-get update -q
	APT_UPDATED=1
}

# prepare_debian_rootfs DIR SCRIPT: unpack the benchmark's Debian packages (ARM64_PKGS,
# ALL_PKGS, downloaded into $DEBS) into DIR once; SCRIPT names the script to run as root
# when that is needed.
prepare_debian_rootfs() {
	local dir=$1 script=$2
	if [[ -f $dir/.bench-complete ]]; then
		log "reusing rootfs $dir"
		return
	fi
	is_root || die "rootfs $dir is not prepared yet; preparing it needs root (dpkg --add-architecture, apt-get): run 'sudo bash $script' once"
	apt_prepare
	# shellcheck disable=SC2153 # DEBS is set by the calling script
	mkdir -p "$DEBS"
	# apt drops privileges to _apt for downloads; let it write here.
	chown _apt "$DEBS" 2>/dev/null || true
	local want=() pkg have
	for pkg in "${ARM64_PKGS[@]}"; do
		have=("$DEBS/${pkg}"_*_arm64.deb)
		[[ -e ${have[0]} ]] || want+=("$pkg:arm64")
	done
	for pkg in "${ALL_PKGS[@]}"; do
		have=("$DEBS/${pkg}"_*_all.deb)
		[[ -e ${have[0]} ]] || want+=("$pkg")
	done
	if ((${#want[@]})); then
		log "downloading ${#want[@]} packages into $DEBS"
		(cd "$DEBS" && run "$LOGS/apt.log" apt-get download -q "${want[@]}")
	fi

	log "unpacking $((${#ARM64_PKGS[@]} + ${#ALL_PKGS[@]})) packages into $dir"
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp"
	local deb debs=()
	for pkg in "${ARM64_PKGS[@]}"; do
		debs+=("$DEBS/${pkg}"_*_arm64.deb)
	done
	for pkg in "${ALL_PKGS[@]}"; do
		debs+=("$DEBS/${pkg}"_*_all.deb)
	done
	for deb in "${debs[@]}"; do
		[[ -e $deb ]] || die "missing $deb after apt-get download"
		run "$LOGS/unpack.log" dpkg-deb -x "$deb" "$dir.tmp"
	done
	touch "$dir.tmp/.bench-complete"
	mv "$dir.tmp" "$dir"
}

# all_pkgs: prints every package as "NAME ARCH", ARCH being arm64 or all.
all_pkgs() {
	local pkg
	for pkg in "${ARM64_PKGS[@]}"; do
		printf '%s arm64\n' "$pkg"
	done
	for pkg in "${ALL_PKGS[@]}"; do
		printf '%s all\n' "$pkg"
	done
}

# new_deb NAME ARCH: prints V2's .deb of the package (in $DEBS, bench/commit.sh's download).
new_deb() {
	local have=("$DEBS/$1_"*"_$2.deb")
	[[ -e ${have[0]} ]] || die "missing ${DEBS}/$1_*_$2.deb"
	printf '%s\n' "${have[0]}"
}

# prepare_debian_v1 SCRIPT: the delta benchmark's V1 rootfs in $V1_ROOT: the packages of
# ARM64_PKGS and ALL_PKGS, each at the oldest version apt offers below V2's (the version of
# its .deb in $DEBS), downloaded into $OLD_DEBS; the versions go to $VERSIONS as "NAME ARCH
# OLD NEW" lines. Prepared once (root needed: SCRIPT names the script to run as root), then
# reused.
prepare_debian_v1() {
	local script=$1
	if [[ -f $V1_ROOT/.bench-complete && -s $VERSIONS ]]; then
		log "reusing V1 rootfs $V1_ROOT"
		return
	fi
	is_root || die "rootfs $V1_ROOT is not prepared yet; preparing it needs root (apt-get): run 'sudo bash $script' once"
	apt_prepare
	mkdir -p "$OLD_DEBS"
	chown _apt "$OLD_DEBS" 2>/dev/null || true
	local name arch spec newver oldver v have
	: >"$VERSIONS.tmp"
	while read -r name arch; do
		spec=$name
		[[ $arch == all ]] || spec=$name:$arch
		newver=$(dpkg-deb -f "$(new_deb "$name" "$arch")" Version)
		oldver=
		while read -r v; do
			if dpkg --compare-versions "$v" lt "$newver" &&
				{ [[ -z $oldver ]] || dpkg --compare-versions "$v" lt "$oldver"; }; then
				oldver=$v
			fi
		done < <(apt-cache madison "$spec" | awk -F'|' '{gsub(/ /, "", $2); print $2}')
		if [[ -n $oldver ]]; then
			have=("$OLD_DEBS/${name}_"*"_$arch.deb")
			if [[ ! -e ${have[0]} ]] || [[ $(dpkg-deb -f "${have[0]}" Version) != "$oldver" ]]; then
				rm -f "$OLD_DEBS/${name}_"*"_$arch.deb"
				log "downloading $spec=$oldver"
				(cd "$OLD_DEBS" && run "$LOGS/apt.log" apt-get download -q "$spec=$oldver")
			fi
			printf '%s %s %s %s\n' "$name" "$arch" "$oldver" "$newver" >>"$VERSIONS.tmp"
		else
			printf '%s %s %s %s\n' "$name" "$arch" "$newver" "$newver" >>"$VERSIONS.tmp"
		fi
	done < <(all_pkgs)
	log "unpacking V1 into $V1_ROOT"
	rm -rf "$V1_ROOT" "$V1_ROOT.tmp"
	mkdir -p "$V1_ROOT.tmp"
	local old new deb
	while read -r name arch old new; do
		if [[ $old == "$new" ]]; then
			deb=$(new_deb "$name" "$arch")
		else
			have=("$OLD_DEBS/${name}_"*"_$arch.deb")
			deb=${have[0]}
			[[ -e $deb ]] || die "missing $OLD_DEBS/${name}_*_$arch.deb after apt-get download"
		fi
		run "$LOGS/unpack.log" dpkg-deb -x "$deb" "$V1_ROOT.tmp"
	done <"$VERSIONS.tmp"
	mv "$VERSIONS.tmp" "$VERSIONS"
	touch "$V1_ROOT.tmp/.bench-complete"
	mv "$V1_ROOT.tmp" "$V1_ROOT"
}

# kib_mib KIB: KIB in MiB, one decimal.
kib_mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }

# prioritize: the machines here are shared, so the timed commands run at nice NICE (both
# tools alike), so that other users of the CPUs disturb them less. Where the kernel groups
# processes by session (autogroup: /proc/sys/kernel/sched_autogroup_enabled is 1), a nice
# value only ranks a process within its own session, and each session gets an equal share
# of the CPUs: the session's autogroup gets NICE too, restored on exit.
prioritize() {
	if [[ -z $NICE ]]; then
		NICE=0
		if is_root; then
			NICE=-20
		fi
	fi
	[[ $NICE =~ ^-?[0-9]+$ ]] || die "NICE must be an integer, got '$NICE'"
	((NICE != 0)) || return 0
	local old
	if [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 ]] &&
		old=$(awk '{print $NF}' /proc/self/autogroup 2>/dev/null) &&
		echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
		# shellcheck disable=SC2064 # old is expanded now, on purpose
		trap "echo $old >/proc/self/autogroup 2>/dev/null || true" EXIT
		AUTOGROUP=" (and its session's autogroup)"
	fi
}
# shellcheck disable=SC2034 # printed by the scripts that source this file
AUTOGROUP=

# The timing tables of delta.sh and client.sh: a row's name column is TABLE_NAME_WIDTH wide,
# its last column before the runs (the script's own: size, check, bytes) TABLE_EXTRA_WIDTH.
TABLE_NAME_WIDTH=38
TABLE_EXTRA_WIDTH=24

# table_row NAME LABEL EXTRA: one line of a table, from the results of timed runs of LABEL.
table_row() {
	local name=$1 label=$2 extra=$3 tree=- n=$TABLE_NAME_WIDTH e=$TABLE_EXTRA_WIDTH
	if [[ -z ${BEST_SECS[$label]:-} ]]; then
		printf '%-*s %7s %6s %7s %6s %8s %8s  %-*s %s\n' "$n" "$name" FAILED - - - - - "$e" "$extra" "${ALL_SECS[$label]:-}"
		return
	fi
	if ((${MAX_TREE_KB[$label]:-0} > 0)); then
		tree=$(kib_mib "${MAX_TREE_KB[$label]}")
	fi
	printf '%-*s %7.2f %6s %7.2f %6.2f %8s %8s  %-*s %s\n' "$n" "$name" "${BEST_SECS[$label]}" "${BEST_CPU[$label]}" \
		"${BEST_USER[$label]}" "${BEST_SYS[$label]}" "$(kib_mib "${MAX_RSS_KB[$label]}")" "$tree" "$e" "$extra" "${ALL_SECS[$label]}"
}

# table_header TITLE EXTRA: the header line of a table whose extra column is EXTRA.
table_header() {
	printf '%-*s %7s %6s %7s %6s %8s %8s  %-*s %s\n' "$TABLE_NAME_WIDTH" "$1" 'wall s' 'CPU %' 'user s' 'sys s' 'RSS MiB' \
		'tree MiB' "$TABLE_EXTRA_WIDTH" "$2" 'all runs (wall s)'
}
