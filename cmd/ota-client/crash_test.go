package main

// Acceptance 3: ota-client update killed with SIGKILL at any point of pull or deploy leaves
// a device whose boot configuration boots v1 or v2, complete, and a rerun finishes the
// update.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashDevice is a device (newDevice, v1 deployed by the real ostree) with v2 published,
// copied afresh for each series of kills: newDevice takes seconds, a copy milliseconds.
type crashDevice struct {
	device
	key       string              // the prefix of the release key (publish)
	trees     map[string][]string // treeList of the checkout of each commit
	tmp       []string            // the sysroot repository's tmp/ before any update
	newLoader string              // the boot/loader.N the update writes
	run       time.Duration       // a normal update's duration
	phases    string              // when each stage of a normal update started
	updated   []string            // crashPaths after a normal update (once measured)
	// The events a kill may wait for, in the pull and in the deploy.
	pullTriggers, deployTriggers []crashTrigger
}

// crashTrigger is a file appearing (created or renamed into place) at a path of the
// sysroot: under dir, a name matching each pattern of names in turn (path.Match; all but
// the last are directories that appear first). It is a point of the update a kill waits
// for, then kills up to within later.
type crashTrigger struct {
	dir    string
	names  []string
	within time.Duration
}

func (c crashTrigger) String() string { return filepath.Join(append([]string{c.dir}, c.names...)...) }

// newCrashDevice makes the device a crash test copies: v1 deployed, v2 published with a
// static delta from v1 when method is "delta". The download rate is capped so that
// downloads last long enough to be killed in their middle (delta parts are small).
func newCrashDevice(t *testing.T, method string) *crashDevice {
	t.Helper()
	d := newDevice(t, 1)
	key := d.publish(t)
	rate := "64MiB" // 3 MiB of objects: 50 ms
	if method == "delta" {
		// xz parts: decoded by xz children, which the kills must also leave harmless.
		must(t, otaBuild, "delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1], "--zstd-parts=false")
		must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
		rate = "2MiB" // a part of 70 kB: 30 ms
	}
	yaml := filepath.Join(d.sysroot, "etc/ota/client.yaml")
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": readFile(t, yaml) + "max-rate: " + rate + "\n"})
	cd := &crashDevice{device: d, key: key, trees: map[string][]string{}}
	for _, c := range d.commits {
		dir := filepath.Join(t.TempDir(), "checkout")
		must(t, "ostree", "checkout", "--repo="+d.repo, c, dir)
		cd.trees[c] = treeList(t, dir)
	}
	cd.tmp = dirNames(t, filepath.Join(d.sysroot, "ostree/repo/tmp"))
	bv, err := os.Readlink(filepath.Join(d.sysroot, "boot/loader"))
	if err != nil {
		t.Fatal(err)
	}
	cd.newLoader = map[string]string{"loader.0": "loader.1", "loader.1": "loader.0"}[bv]
	v2 := d.commits[1]
	// Pull: the commit's partial marker, at its start; the download of the large object, or
	// of the delta's part and its application. Deploy: the ref of the pulled commit (the
	// end of the pull), the checkout and its origin file, the boot links, the new loader
	// directory, the symlink about to be renamed over boot/loader and that rename (then
	// cleanup), the boot counter's temporary file.
	const ms = time.Millisecond
	trigger := func(dir string, within time.Duration, names ...string) crashTrigger {
		return crashTrigger{dir, names, within}
	}
	cd.pullTriggers = []crashTrigger{trigger("ostree/repo/state", 5*ms, v2+".commitpartial")}
	if method == "objects" {
		cd.pullTriggers = append(cd.pullTriggers, trigger("ostree/repo/tmp", 50*ms, "ota-object-*.partial"))
	} else {
		cd.pullTriggers = append(cd.pullTriggers, trigger("ostree/repo/tmp", 30*ms, "ota-delta-*", "*.partial"),
			trigger("ostree/repo/tmp", 60*ms, "ota-delta-*", "[0-9]"))
	}
	cd.deployTriggers = []crashTrigger{
		trigger("ostree/repo/refs/heads", 2*ms, "ota"), trigger("ostree/deploy/myos/deploy", 2*ms, v2+"*"),
		trigger("ostree", 2*ms, "boot.*"), trigger("boot", 2*ms, cd.newLoader), trigger("boot", ms, "loader.tmp"),
		trigger("boot", 2*ms, "loader"), trigger("boot/firmware", ms, ".ota-state.txt-*"),
	}
	cd.measure(t)
	return cd
}

// copy copies the device's sysroot (hard links, owners, modes and xattrs kept) to a new
// directory.
func (cd *crashDevice) copy(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sysroot")
	must(t, "cp", "-a", cd.sysroot, dst)
	return dst
}

// measure times a normal update of a copy, noting when each stage starts.
func (cd *crashDevice) measure(t *testing.T) {
	t.Helper()
	s := cd.copy(t)
	var phases []string
	cmd := exec.Command(otaClient, "--sysroot", s, "--progress", "json", "update")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for sc := bufio.NewScanner(stderr); sc.Scan(); {
		if m := stageStart.FindStringSubmatch(sc.Text()); m != nil {
			phases = append(phases, fmt.Sprintf("%s %v", m[1], time.Since(start).Round(time.Millisecond)))
		}
		out.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("update: %v\n%s", err, out.String())
	}
	cd.run, cd.phases = time.Since(start), strings.Join(phases, ", ")
	cd.checkUpdated(t, s)
	cd.updated = crashPaths(t, s)
	os.RemoveAll(filepath.Dir(s))
}

// stageStart matches the start of a stage in --progress=json.
var stageStart = regexp.MustCompile(`"stage":"(\w+)".*"event":"start"`)

// crashPhase is how far a killed update went.
type crashPhase int

const (
	inDownload crashPhase = iota // v2 being pulled, a download's partial file left in tmp/
	inApply                      // v2 being pulled, the delta's parts downloaded
	inPull                       // v2 being pulled, otherwise
	inDeploy                     // v2 pulled, v1 still the default
	afterSwap                    // v2 the default: killed in cleanup or the report
	crashPhases
)

var crashPhaseNames = [crashPhases]string{"pull (a download partial)", "pull (the delta's parts downloaded)",
	"pull", "deploy", "deploy (after the swap)"}

// TestCrashUpdate (acceptance 3): for a device updated by objects and one updated by a
// static delta, copies of the device are updated by ota-client processes killed with
// SIGKILL, at least 50 times in all: a third after a delay drawn from a seeded RNG
// (OTA_CRASH_SEED changes the seed) up to the duration of a normal update, a third just
// after an event of the pull and a third after an event of the deploy (see
// newCrashDevice). A killed run is followed by another, itself killed up to twice more,
// then by one that finishes. After each kill, the boot configuration the bootloader reads
// (boot/loader, its BLS entries and uEnv.txt) boots v1 or v2, complete (every file as in
// the commit, its kernel installed), the rollback entry too; a v2 default has its boot
// counter reset; the real `ostree admin status` reads the sysroot and agrees. After the
// finishing run, v2 is the default and v1 the rollback, `ostree fsck` passes, the
// repository's tmp/ holds what it held before, and the sysroot has the paths of one
// updated without a kill. A fifth of the kills at least must land in the pull and a fifth
// in the deploy, and some in each crashPhase before the swap: leaving a partial
// download, after the delta's parts were downloaded, in the deploy.
func TestCrashUpdate(t *testing.T) {
	requireTool(t, "ostree", "cp")
	seed := uint64(11)
	if s := os.Getenv("OTA_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("OTA_CRASH_SEED %q: %v", s, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	var landed [crashPhases]int
	var timed, triggered int
	devices := map[string]*crashDevice{}
	for _, method := range []string{"objects", "delta"} {
		cd := newCrashDevice(t, method)
		devices[method] = cd
		t.Logf("%s: a normal update takes %v (stages: %s)", method, cd.run.Round(time.Millisecond), cd.phases)
		for kills := 0; kills < 28; {
			s := cd.copy(t)
			var history []string // the kills of this copy
			for range 3 {
				var trigger *crashTrigger
				delay := time.Duration(rng.Int64N(int64(cd.run)))
				switch rng.IntN(3) {
				case 1:
					trigger = &cd.pullTriggers[rng.IntN(len(cd.pullTriggers))]
				case 2:
					trigger = &cd.deployTriggers[rng.IntN(len(cd.deployTriggers))]
				}
				what := fmt.Sprintf("%v after the start", delay)
				if trigger != nil {
					delay = time.Duration(rng.Int64N(int64(trigger.within)))
					what = fmt.Sprintf("%v after %v", delay, trigger)
				}
				if !crashKill(t, s, trigger, delay) {
					break // it finished: the rerun
				}
				kills++
				if trigger == nil {
					timed++
				} else {
					triggered++
				}
				phase := cd.checkKilled(t, s)
				landed[phase]++
				history = append(history, what+" (in the "+crashPhaseNames[phase]+")")
				if t.Failed() {
					t.Fatalf("%s, seed %d: after the kills %s", method, seed, strings.Join(history, ", "))
				}
			}
			mustClient(t, "--sysroot", s, "update")
			cd.checkUpdated(t, s)
			if t.Failed() {
				t.Fatalf("%s, seed %d: after the kills %s and a rerun", method, seed, strings.Join(history, ", "))
			}
			os.RemoveAll(filepath.Dir(s))
		}
	}
	crashChangeMethod(t, devices["objects"])

	var total int
	var counts []string
	for p, n := range landed {
		total += n
		counts = append(counts, fmt.Sprintf("%d in the %s", n, crashPhaseNames[p]))
	}
	t.Logf("%d kills (%d timed, %d at events): %s", total, timed, triggered, strings.Join(counts, ", "))
	pull, deploy := landed[inDownload]+landed[inApply]+landed[inPull], landed[inDeploy]+landed[afterSwap]
	if pull*5 < total || deploy*5 < total || slices.Contains(landed[:afterSwap], 0) {
		t.Errorf("the kills did not land in enough places (seed %d)", seed)
	}
}

// crashChangeMethod: an update by objects killed in the middle of the download of the
// large object, then the server publishes a static delta, which the rerun uses: the
// object's partial download does not stay behind in tmp/.
func crashChangeMethod(t *testing.T, cd *crashDevice) {
	t.Helper()
	s := cd.copy(t)
	partials := filepath.Join(s, "ostree/repo/tmp/ota-object-*.partial")
	for try := 0; ; try++ {
		crashKill(t, s, &crashTrigger{dir: "ostree/repo/tmp", names: []string{"ota-object-*.partial"}}, 10*time.Millisecond)
		if m, _ := filepath.Glob(partials); len(m) > 0 {
			break
		}
		if try == 10 {
			t.Fatalf("no kill of 10 left a partial download")
		}
		os.RemoveAll(filepath.Dir(s))
		s = cd.copy(t)
	}
	must(t, otaBuild, "delta", "--repo", cd.repo, "--from", cd.commits[0], "--to", cd.commits[1])
	must(t, otaBuild, "summary", "--repo", cd.repo, "--sign-key", cd.key+".key")
	dv := cd.device
	dv.sysroot = s
	if rep := updateReport(t, dv, "update"); rep.Pull == nil || rep.Pull.Method != "delta" {
		t.Errorf("the rerun did not use the delta: %+v", rep.Pull)
	}
	cd.checkUpdated(t, s)
}

// crashKill runs ota-client update on sysroot s and SIGKILLs it delay after it starts or,
// when trigger is set, delay after the trigger's event, unless it finishes first. It
// reports whether it was killed; an update that fails on its own fails the test.
func crashKill(t *testing.T, s string, trigger *crashTrigger, delay time.Duration) bool {
	t.Helper()
	var fired <-chan struct{}
	if trigger != nil {
		w := watchFiles(t, filepath.Join(s, trigger.dir), trigger.names)
		defer w.Close()
		fired = w.fired
	}
	var stderr bytes.Buffer
	cmd := exec.Command(otaClient, "--sysroot", s, "update")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if fired != nil {
		select {
		case err := <-done:
			return crashExit(t, err, &stderr)
		case <-fired:
		}
	}
	select {
	case err := <-done:
		return crashExit(t, err, &stderr)
	case <-time.After(delay):
	}
	cmd.Process.Signal(syscall.SIGKILL)
	return crashExit(t, <-done, &stderr)
}

// crashExit reports whether an update ended by err was killed, and fails the test if it
// failed on its own.
func crashExit(t *testing.T, err error, stderr *bytes.Buffer) bool {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		return true
	} else if err != nil {
		t.Fatalf("ota-client update failed on its own: %v\n%s", err, stderr)
	}
	return false
}

// bootEntry is what the boot configuration says of one deployment.
type bootEntry struct {
	version        int
	options, linux string
	deployment     string // the directory ostree= leads to, relative to the sysroot
}

// checkKilled checks the sysroot s of a killed update, as the bootloader and the real
// ostree see it, and returns how far the update went.
func (cd *crashDevice) checkKilled(t *testing.T, s string) crashPhase {
	t.Helper()
	v2 := cd.commits[1]
	entries := cd.checkBoot(t, s)
	if len(entries) == 0 {
		return inPull
	}
	def := filepath.Base(entries[0].deployment)
	if got := cd.statusOf(t, s); len(got) == 0 || got[0] != def {
		t.Errorf("ostree admin status lists %q, the boot entries default to %s", got, def)
	}
	if def == v2+".0" {
		if got := readFile(t, filepath.Join(s, "boot/firmware/ota-state.txt")); got != "bootcount=0\n" {
			t.Errorf("v2 is the default but the boot counter is %q: the boot script may fall back early", got)
		}
		return afterSwap
	}
	_, err := os.Stat(filepath.Join(s, "ostree/repo/state", v2+".commitpartial"))
	tmp := filepath.Join(s, "ostree/repo/tmp")
	partials, _ := filepath.Glob(filepath.Join(tmp, "ota-*.partial"))
	deltaPartials, _ := filepath.Glob(filepath.Join(tmp, "ota-delta-*/*.partial"))
	parts, _ := filepath.Glob(filepath.Join(tmp, "ota-delta-*/[0-9]"))
	switch {
	case errors.Is(err, fs.ErrNotExist) && fileExists(filepath.Join(s, "ostree/repo/objects", v2[:2], v2[2:]+".commit")):
		return inDeploy
	case len(partials)+len(deltaPartials) > 0:
		return inDownload
	case len(parts) > 0:
		return inApply
	}
	return inPull
}

// statusOf returns the deployments `ostree admin status` lists in sysroot s, default
// first.
func (dv device) statusOf(t *testing.T, s string) []string {
	t.Helper()
	dv.sysroot = s
	return dv.ostreeStatus(t)
}

// checkBoot reads the boot configuration of sysroot s as a bootloader does and checks it:
// boot/loader -> loader.N; its BLS entries, v1 alone or v2 then v1, whose ostree= links
// lead to deployments with every file as in the commit (and /etc as its usr/etc) and
// whose kernels are installed; uEnv.txt, which boots the entry of the highest version
// first and the next as the rollback. It returns the entries, default first.
func (cd *crashDevice) checkBoot(t *testing.T, s string) []bootEntry {
	t.Helper()
	loader, err := os.Readlink(filepath.Join(s, "boot/loader"))
	if err != nil || (loader != "loader.0" && loader != "loader.1") {
		t.Errorf("boot/loader -> %q (%v)", loader, err)
		return nil
	}
	confs, _ := filepath.Glob(filepath.Join(s, "boot", loader, "entries/*.conf"))
	var entries []bootEntry
	for _, c := range confs {
		keys := parseEntry(readFile(t, c))
		e := bootEntry{options: keys["options"], linux: keys["linux"]}
		e.version, err = strconv.Atoi(keys["version"])
		m := regexp.MustCompile(`(?:^| )ostree=(\S+)`).FindStringSubmatch(e.options)
		if err != nil || m == nil {
			t.Errorf("%s: version %q, options %q", c, keys["version"], e.options)
			continue
		}
		target, err := filepath.EvalSymlinks(filepath.Join(s, m[1]))
		if err != nil {
			t.Errorf("%s: ostree=%s: %v", c, m[1], err)
			continue
		}
		e.deployment, _ = filepath.Rel(s, target)
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b bootEntry) int { return b.version - a.version })
	if len(entries) == 0 || len(entries) > 2 {
		t.Errorf("boot/%s has %d entries, want 1 or 2", loader, len(entries))
		return nil
	}
	uEnv := readFile(t, filepath.Join(s, "boot", loader, "uEnv.txt"))
	for i, e := range entries {
		suffix := map[int]string{0: "", 1: "2"}[i]
		for _, line := range []string{"bootargs" + suffix + "=" + e.options, "kernel_image" + suffix + "=/boot" + e.linux} {
			if !slices.Contains(strings.Split(uEnv, "\n"), line) {
				t.Errorf("boot/%s/uEnv.txt lacks %q:\n%s", loader, line, uEnv)
			}
		}
		if !fileExists(filepath.Join(s, "boot", e.linux)) {
			t.Errorf("the kernel %s of %s is missing", e.linux, e.deployment)
		}
		commit, _, _ := strings.Cut(filepath.Base(e.deployment), ".")
		want, ok := cd.trees[commit]
		switch {
		case filepath.Dir(e.deployment) != "ostree/deploy/myos/deploy" || !ok:
			t.Errorf("boot entry %d boots %s, neither v1 nor v2", e.version, e.deployment)
		case !fileExists(filepath.Join(s, e.deployment+".origin")):
			t.Errorf("%s has no origin file", e.deployment)
		default:
			dir := filepath.Join(s, e.deployment)
			if got := treeList(t, dir); !slices.Equal(got, want) {
				t.Errorf("%s differs from its commit:\n%s", e.deployment, diffLines(want, got))
			}
			// The device's /etc has no local change: the merged etc is the commit's usr/etc.
			if got, want := treeList(t, filepath.Join(dir, "etc")), treeList(t, filepath.Join(dir, "usr/etc")); !slices.Equal(got, want) {
				t.Errorf("%s/etc differs from its usr/etc:\n%s", e.deployment, diffLines(want, got))
			}
		}
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Base(e.deployment))
	}
	v1, v2 := cd.commits[0]+".0", cd.commits[1]+".0"
	if !slices.Equal(names, []string{v1}) && !slices.Equal(names, []string{v2, v1}) {
		t.Errorf("boot/%s boots %q, want %q or %q", loader, names, []string{v1}, []string{v2, v1})
	}
	return entries
}

// checkUpdated checks sysroot s after an update that finished: the real ostree sees v2 as
// the default and v1 as the rollback and fsck passes, the boot configuration is complete,
// the counter reset, and the repository's tmp/ holds what it held before the update.
func (cd *crashDevice) checkUpdated(t *testing.T, s string) {
	t.Helper()
	v1, v2 := cd.commits[0]+".0", cd.commits[1]+".0"
	if got := cd.statusOf(t, s); !slices.Equal(got, []string{v2, v1}) {
		t.Errorf("ostree admin status: %q, want %q", got, []string{v2, v1})
	}
	must(t, "ostree", "fsck", "--repo="+filepath.Join(s, "ostree/repo"))
	cd.checkBoot(t, s)
	if got := readFile(t, filepath.Join(s, "boot/firmware/ota-state.txt")); got != "bootcount=0\n" {
		t.Errorf("boot counter %q after the update", got)
	}
	if got := dirNames(t, filepath.Join(s, "ostree/repo/tmp")); !slices.Equal(got, cd.tmp) {
		t.Errorf("the repository's tmp/ holds %q, %q before the update", got, cd.tmp)
	}
	if cd.updated != nil {
		if got := crashPaths(t, s); !slices.Equal(got, cd.updated) {
			t.Errorf("the sysroot differs from one updated without a kill:\n%s", diffLines(cd.updated, got))
		}
	}
}

// crashPaths lists the paths of sysroot s but the repository's objects, with symlink
// targets. Left out: the M of the boot links ostree/boot.N.M and of the refs ostree/N/M/I,
// which each write of the deployments toggles, so that a killed write changes it; the last
// result, which an update killed after the swap did not record (or left the temporary
// file of, which the next record removes) and its rerun, finding v2 the default, does not
// record either.
func crashPaths(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, p := range snapshot(t, s) {
		if name, _, ok := strings.Cut(p, " "); ok && !strings.Contains(p, " -> ") {
			p = name // a file: its name, not its content
		}
		if strings.HasPrefix(p, "ostree/deploy/myos/var/lib/ota") {
			continue
		}
		out = append(out, subbootversion.ReplaceAllString(p, "${1}M"))
	}
	slices.Sort(out)
	return out
}

var subbootversion = regexp.MustCompile(`(boot\.[01]\.|refs/heads/ostree/[01]/)[01]\b`)

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// parseEntry reads the keys of a BLS entry.
func parseEntry(s string) map[string]string {
	keys := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		keys[k] = strings.TrimSpace(v)
	}
	return keys
}
