package main

// Issue 9, item 8 and acceptance: `image` and `build` killed with SIGKILL at random points
// leave no partial output at a final path, and a rerun of the same command completes and
// removes every temporary file the killed run left (beside the outputs, in the
// repository's tmp/, in TMPDIR or /dev/shm); a killed delta generation leaves no xz
// running.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// crashEnv returns the environment of a command under test: the test's own without TMPDIR,
// plus TMPDIR=tmp when tmp is set (otherwise image builds stage in /dev/shm) and extra.
func crashEnv(tmp string, extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TMPDIR=") })
	if tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	return append(env, extra...)
}

// crashRerun runs ota-build with env and args, fails the test unless it succeeds, and
// returns its process ID.
func crashRerun(t *testing.T, env []string, args ...string) int {
	t.Helper()
	cmd := exec.Command(otaBuild, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rerun ota-build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return cmd.Process.Pid
}

// crashSameFile checks that the file rel under dir is absent (an error when required) or
// byte for byte the reference's: bundles and deltas are reproducible, so a complete one
// equals the reference run's.
func crashSameFile(t *testing.T, label, dir, refDir, rel string, required bool) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, rel))
	if os.IsNotExist(err) && !required {
		return
	} else if err != nil {
		t.Errorf("%s: %v", label, err)
		return
	}
	want, err := os.ReadFile(filepath.Join(refDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %s is not the complete output (%d bytes, the reference has %d)", label, rel, len(got), len(want))
	}
}

// crashImage checks the image img and its .bmap and .zst, those that exist, with the real
// tools (every one when required): the partition table (sfdisk), both filesystems (e2fsck,
// fsck.vfat: an image is full-size from its first write, so only they tell a complete one),
// the block map against the image (a bmaptool copy verifies its checksums) and the
// compressed copy against the image. A block map or compressed copy without the image
// is an error: the image is renamed into place first.
func crashImage(t *testing.T, label, img string, required bool) {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if r := runCmd(t, nil, nil, name, args...); r.code != 0 {
			t.Errorf("%s: %s %s: exit %d\n%s%s", label, name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if !crashExists(img) {
		for _, p := range []string{img, img + ".bmap", img + ".zst"} {
			if required || crashExists(p) {
				t.Errorf("%s: %s is missing", label, p)
			}
		}
		return
	}
	run("sfdisk", "--verify", img)
	var pt struct {
		PartitionTable struct{ Partitions []struct{ Start, Size int64 } }
	}
	if err := json.Unmarshal([]byte(must(t, "sfdisk", "--json", img).stdout), &pt); err != nil || len(pt.PartitionTable.Partitions) != 2 {
		t.Fatalf("%s: sfdisk --json: %v %+v", label, err, pt)
	}
	boot, root := pt.PartitionTable.Partitions[0], pt.PartitionTable.Partitions[1]
	run("fsck.vfat", "-n", extract(t, img, boot.Start*512, boot.Size*512))
	run("e2fsck", "-fn", extract(t, img, root.Start*512, root.Size*512))
	if required || crashExists(img+".bmap") {
		run("bmaptool", "copy", "--bmap", img+".bmap", img, filepath.Join(t.TempDir(), "copy.img"))
	}
	if required || crashExists(img+".zst") {
		run("sh", "-c", `zstd -q -d -c "$1" | cmp - "$2"`, "sh", img+".zst", img)
	}
}

// crashShm lists the /dev/shm staging directories of ota-build processes pids.
func crashShm(pids ...int) []string {
	var out []string
	for _, pid := range pids {
		m, _ := filepath.Glob(fmt.Sprintf("/dev/shm/ota-image-%d-*", pid))
		out = append(out, m...)
	}
	return out
}

// crashPoint is one kill of a crash test: after a delay, or once trigger(dir) is true.
type crashPoint struct {
	name    string
	delay   time.Duration
	trigger func(dir string) bool
}

// crashPoints returns kills at random fractions (5% to 85%) of d, n per seed, then the
// triggered ones.
func crashPoints(d time.Duration, seeds []uint64, n int, triggers ...crashPoint) []crashPoint {
	var out []crashPoint
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 9))
		for range n {
			f := 0.05 + 0.8*rng.Float64()
			delay := time.Duration(float64(d) * f)
			out = append(out, crashPoint{name: fmt.Sprintf("seed %d: %v (%2.0f%%)", seed, delay.Round(time.Millisecond), f*100), delay: delay})
		}
	}
	return append(out, triggers...)
}

// crashExists reports whether anything exists at p.
func crashExists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestCrashKilledImage kills `ota-build image` at random points and as soon as it has
// created the image file, written the block map and started compressing; staging
// alternates between TMPDIR and /dev/shm.
func TestCrashKilledImage(t *testing.T) {
	requireTool(t, "bmaptool", "zstd", "cmp")
	f := newImageFixture(t)
	outputs := []string{"disk.img", "disk.img.bmap", "disk.img.zst"}
	args := func(dir string) []string {
		return []string{"image", "--repo", f.repo, "--board", "qemu-aarch64",
			"-o", filepath.Join(dir, "disk.img"), "--bmap", "--zstd", "myos/stable"}
	}
	refDir := filepath.Join(f.dir, "crash-ref")
	os.Mkdir(refDir, 0o755)
	start := time.Now()
	crashRerun(t, crashEnv(t.TempDir()), args(refDir)...)
	d := time.Since(start)
	t.Logf("reference image took %v", d.Round(time.Millisecond))

	work := func(dir, pattern string) bool {
		m, _ := filepath.Glob(filepath.Join(dir, ".disk.img.ota-tmp-*", pattern))
		return len(m) > 0
	}
	points := crashPoints(d, []uint64{1, 2, 3, 4}, 1,
		crashPoint{name: "image file created", trigger: func(dir string) bool { return work(dir, "image") }},
		crashPoint{name: "block map written", trigger: func(dir string) bool { return work(dir, "bmap") }},
		crashPoint{name: "compressing", trigger: func(dir string) bool { return work(dir, ".zst.ota-tmp-*") }},
	)
	killed := 0
	for i, kp := range points {
		dir := filepath.Join(f.dir, fmt.Sprint("crash", i))
		os.Mkdir(dir, 0o755)
		tmp := ""
		if i%2 == 0 {
			tmp = t.TempDir()
		}
		var trigger func() bool
		if kp.trigger != nil {
			trigger = func() bool { return kp.trigger(dir) }
		}
		cmd := exec.Command(otaBuild, args(dir)...)
		cmd.Env = crashEnv(tmp)
		wasKilled, _ := crashKill(t, cmd, kp.delay, trigger)
		if wasKilled {
			killed++
		}
		left := dirNames(t, dir)
		t.Logf("kill %d at %s (staging in %s): killed=%v, left %v", i, kp.name, cmp.Or(tmp, "/dev/shm"), wasKilled, left)
		img := filepath.Join(dir, "disk.img")
		crashImage(t, fmt.Sprintf("kill %d", i), img, !wasKilled)

		pid := crashRerun(t, crashEnv(tmp), args(dir)...)
		crashImage(t, fmt.Sprintf("kill %d, rerun", i), img, true)
		if got := dirNames(t, dir); !slices.Equal(got, outputs) {
			t.Errorf("kill %d: after the rerun the output directory holds %v, want %v", i, got, outputs)
		}
		crashNoTemps(t, fmt.Sprintf("kill %d: after the rerun", i), tmp, cmd.Process.Pid, pid)
		if t.Failed() {
			return
		}
	}
	if killed == 0 {
		t.Errorf("no run was killed before it finished: the test proved nothing")
	}
}

// crashBuildTree writes a bootable root filesystem for the build crash test; version
// changes a file, and the random blob (different per version) gives xz some work.
func crashBuildTree(t *testing.T, root, version string) {
	t.Helper()
	src := rand.NewChaCha8([32]byte{version[0]})
	files := map[string][]byte{
		"boot/vmlinuz-6.1.0-crash":    bytes.Repeat([]byte("kernel "), 3000),
		"boot/initrd.img-6.1.0-crash": []byte("initramfs"),
		"etc/os-release":              []byte("ID=crash\nVERSION_ID=" + version + "\n"),
		"usr/bin/app":                 []byte("app " + version),
	}
	blob := make([]byte, 256<<10)
	src.Read(blob)
	files["usr/share/blob.bin"] = blob
	for d := range 2 {
		for n := range 50 {
			files[fmt.Sprintf("usr/share/doc/d%d/f%02d", d, n)] = []byte(strings.Repeat(fmt.Sprintf("%s %d %d\n", version, d, n), 20+n))
		}
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// crashManifest is the build crash test's manifest: every stage (commit, deltas, summary,
// bundle, image with block map and compressed copy).
const crashManifest = `os: crash
repo: {path: "${OUT}/repo"}
commit:
  rootfs: ${ROOTFS}
  branch: crash/stable
  version: ${VERSION}
  owner: {uid: 0, gid: 0}
  sign-keys: ["${KEY}"]
deltas:
  from-last: 1
  from-scratch: true
  bundle: {output: "${OUT}/crash-${VERSION}.bundle", from: previous}
summary: {sign: true}
image:
  board: qemu-aarch64
  output: ${OUT}/crash-${VERSION}.img
  outputs: [raw, bmap, zstd]
`

// TestCrashKilledBuild kills `ota-build build` of a second release at random points and at
// the end of its commit, bundle and image stages. After each kill the repository passes
// both fscks with the branch at the old or the new commit and every output present is
// complete; the rerun completes with the reference's outputs and leaves no temporary file.
func TestCrashKilledBuild(t *testing.T) {
	requireTool(t, "ostree", "sfdisk", "bmaptool", "zstd", "cmp", "cp")
	dir := t.TempDir()
	manifest := filepath.Join(dir, "ota.yaml")
	if err := os.WriteFile(manifest, []byte(crashManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "release")
	ota(t, "keygen", "-o", key)
	rootfs1, rootfs2 := filepath.Join(dir, "rootfs1"), filepath.Join(dir, "rootfs2")
	crashBuildTree(t, rootfs1, "1.0")
	crashBuildTree(t, rootfs2, "2.0")
	env := func(out, rootfs, version, tmp string) []string {
		return crashEnv(tmp, "OUT="+out, "ROOTFS="+rootfs, "VERSION="+version, "KEY="+key+".key", "SOURCE_DATE_EPOCH=1700000000")
	}
	args := []string{"build", "-f", manifest}

	base := filepath.Join(dir, "base")
	crashRerun(t, env(base, rootfs1, "1.0", t.TempDir()), args...)
	first := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+filepath.Join(base, "repo"), "crash/stable").stdout)

	ref := filepath.Join(dir, "ref")
	os.Mkdir(ref, 0o755)
	crashCopy(t, filepath.Join(base, "repo"), filepath.Join(ref, "repo"))
	start := time.Now()
	crashRerun(t, env(ref, rootfs2, "2.0", t.TempDir()), args...)
	d := time.Since(start)
	want := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+filepath.Join(ref, "repo"), "crash/stable").stdout)
	listing, repoTmp := dirNames(t, ref), dirNames(t, filepath.Join(ref, "repo", "tmp"))
	deltas := crashDeltaFiles(t, filepath.Join(ref, "repo"))
	t.Logf("reference build took %v: %v, %d delta files", d.Round(time.Millisecond), listing, len(deltas))

	points := crashPoints(d, []uint64{1, 2, 3}, 1,
		crashPoint{name: "branch moved", trigger: func(out string) bool {
			data, _ := os.ReadFile(filepath.Join(out, "repo", "refs", "heads", "crash", "stable"))
			return strings.TrimSpace(string(data)) == want
		}},
		crashPoint{name: "bundle written", trigger: func(out string) bool { return crashExists(filepath.Join(out, "crash-2.0.bundle")) }},
		crashPoint{name: "image renamed into place", trigger: func(out string) bool { return crashExists(filepath.Join(out, "crash-2.0.img")) }},
	)
	killed := 0
	for i, kp := range points {
		out := filepath.Join(dir, fmt.Sprint("kill", i))
		os.Mkdir(out, 0o755)
		crashCopy(t, filepath.Join(base, "repo"), filepath.Join(out, "repo"))
		tmp := ""
		if i%2 == 0 {
			tmp = t.TempDir()
		}
		var trigger func() bool
		if kp.trigger != nil {
			trigger = func() bool { return kp.trigger(out) }
		}
		cmd := exec.Command(otaBuild, args...)
		cmd.Env = env(out, rootfs2, "2.0", tmp)
		wasKilled, _ := crashKill(t, cmd, kp.delay, trigger)
		if wasKilled {
			killed++
		}
		repo := filepath.Join(out, "repo")
		head := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "crash/stable").stdout)
		t.Logf("kill %d at %s (staging in %s): killed=%v, branch at the %s commit, left %v, repo tmp/ %v",
			i, kp.name, cmp.Or(tmp, "/dev/shm"), wasKilled, map[bool]string{true: "new", false: "old"}[head == want],
			dirNames(t, out), dirNames(t, filepath.Join(repo, "tmp")))
		label := fmt.Sprintf("kill %d", i)
		if head != first && head != want {
			t.Errorf("%s: branch at %s, want %s or %s", label, head, first, want)
		}
		crashFscks(t, repo)
		crashSameFile(t, label, out, ref, "crash-2.0.bundle", !wasKilled)
		crashImage(t, label, filepath.Join(out, "crash-2.0.img"), !wasKilled)
		for _, name := range crashDeltaFiles(t, repo) {
			crashSameFile(t, label, repo, filepath.Join(ref, "repo"), name, false)
		}

		pid := crashRerun(t, env(out, rootfs2, "2.0", tmp), args...)
		label += ", rerun"
		crashSameFile(t, label, out, ref, "crash-2.0.bundle", true)
		crashImage(t, label, filepath.Join(out, "crash-2.0.img"), true)
		if got := crashDeltaFiles(t, repo); !slices.Equal(got, deltas) {
			t.Errorf("%s: delta files %v, want %v", label, got, deltas)
		}
		for _, name := range deltas {
			crashSameFile(t, label, repo, filepath.Join(ref, "repo"), name, true)
		}
		if got := dirNames(t, out); !slices.Equal(got, listing) {
			t.Errorf("%s: the output directory holds %v, want %v", label, got, listing)
		}
		if got := dirNames(t, filepath.Join(repo, "tmp")); !slices.Equal(got, repoTmp) {
			t.Errorf("%s: the repository's tmp/ holds %v, want %v", label, got, repoTmp)
		}
		crashNoTemps(t, label, tmp, cmd.Process.Pid, pid)
		if t.Failed() {
			return
		}
	}
	if killed == 0 {
		t.Errorf("no run was killed before it finished: the test proved nothing")
	}
}

// crashNoTemps fails the test, saying label, when TMPDIR tmp (if set) holds anything or
// /dev/shm holds entries of the killed or rerun process.
func crashNoTemps(t *testing.T, label, tmp string, killed, rerun int) {
	t.Helper()
	if tmp != "" {
		if got := dirNames(t, tmp); len(got) > 0 {
			t.Errorf("%s: TMPDIR holds %v", label, got)
		}
	}
	if shm := crashShm(killed, rerun); len(shm) > 0 {
		t.Errorf("%s: /dev/shm holds %v", label, shm)
	}
}

// crashDeltaFiles lists the files under a repository's deltas/, relative to the repository.
func crashDeltaFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(repo, "deltas"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(repo, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestCrashKilledDeltaLeavesNoXz SIGKILLs a delta generation while xz compresses a part:
// xz must die with it (the test process adopts the orphan as a subreaper, to see how it
// ended), and the next generation removes the killed one's part directory. The kernel
// sends xz SIGKILL (its parent-death signal), unless xz was writing to the pipe of the
// killed process at that moment: the dying process's files close before its children are
// signalled, and xz then gets SIGPIPE first. Either way it is killed, not left to finish.
func TestCrashKilledDeltaLeavesNoXz(t *testing.T) {
	requireTool(t, "xz")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	blob := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{1, 2}).Read(blob)
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	ota(t, "init", "--repo", repo)
	ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree)

	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a subreaper: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	cmd := exec.Command(otaBuild, "delta", "--repo", repo, "--from", "empty", "--to", "main")
	var xz int
	crashKill(t, cmd, 0, func() bool {
		// The xz that compresses a part, not the --version probe run before the part
		// directory exists.
		xz = crashChild(cmd.Process.Pid, "xz")
		if xz != 0 {
			if args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", xz)); !bytes.Contains(args, []byte("--stdout")) {
				xz = 0
			}
		}
		return xz != 0
	})
	if xz == 0 {
		t.Fatal("the delta finished before xz was seen")
	}
	status := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(xz, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		status <- ws
	}()
	select {
	case ws := <-status:
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL && ws.Signal() != syscall.SIGPIPE {
			t.Errorf("xz outlived the killed ota-build and ended on its own (exit status %d, signal %v), not killed with it", ws.ExitStatus(), ws.Signal())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("xz (pid %d) still runs 30 s after ota-build was killed", xz)
	}

	left, _ := filepath.Glob(filepath.Join(repo, "tmp", ostree.ScratchPrefix+strconv.Itoa(cmd.Process.Pid)+"-*"))
	if len(left) == 0 {
		t.Errorf("the killed generation left no part directory: the test does not exercise the cleanup")
	}
	ota(t, "delta", "--repo", repo, "--from", "empty", "--to", "main")
	if got := dirNames(t, filepath.Join(repo, "tmp")); !slices.Equal(got, []string{"cache"}) {
		t.Errorf("after the next generation the repository's tmp/ holds %v", got)
	}
}

// crashChild returns the process ID of a child of parent running the command name, or 0.
func crashChild(parent int, name string) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if s[open+1:end] == name && len(fields) > 1 && fields[1] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
			return pid
		}
	}
	return 0
}
