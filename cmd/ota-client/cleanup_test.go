package main

// Issue 11: `ota-client cleanup` prunes unreferenced objects and old deployments.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sysroot"
)

// commitVersion commits a bootable tree of the given version to the device's build
// repository (branch myos/stable, so its parent is the previous version), with its own
// kernel and the extra files, and returns the commit.
func (d device) commitVersion(t *testing.T, version string, extra map[string]string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree-"+version)
	files := map[string]string{
		"boot/vmlinuz-6.1.0-test":                "KERNEL " + version,
		"usr/lib/modules/6.1.0-test/modules.dep": "",
		"etc/os-release":                         "ID=myos\nVERSION_ID=" + version + "\n",
		"usr/share/app/version":                  version,
	}
	for p, data := range extra {
		files[p] = data
	}
	writeFiles(t, tree, files)
	out := strings.Fields(must(t, otaBuild, "commit", "--repo", d.repo, "-b", "myos/stable", "--tree", "dir="+tree,
		"--bootable", "--version", version, "--timestamp", "1700000100", "-s", "release "+version))
	return out[len(out)-1]
}

// messyDevice is a device with everything cleanup removes: 1.0 and 2.0 deployed
// (newDevice), then 3.0 and 4.0, each with its own kernel, by `ostree admin deploy
// --no-prune`, which leaves the objects of 1.0 and 2.0; what an interrupted deployment
// leaves (5.0 checked out but never written into the deployment list, the boot
// configuration and boot links of the other boot version, a kernel directory no deployment
// boots, a deployment ref of an earlier list, to 1.0); 5.0 also kept under ota/pending (a
// pulled update not deployed yet); and the objects of a commit of junk files pulled without
// a ref. It returns the device and the commits 3.0, 4.0, 5.0 and junk.
func messyDevice(t *testing.T, junkFiles int) (d device, v3, v4, v5, junk string) {
	t.Helper()
	d = newDevice(t, 2)
	sysRepo := filepath.Join(d.sysroot, "ostree/repo")
	v3 = d.commitVersion(t, "3.0", nil)
	v4 = d.commitVersion(t, "4.0", map[string]string{"usr/share/app/new-in-4": "4"})
	for _, c := range []string{v3, v4} {
		must(t, "ostree", "pull-local", "--repo="+sysRepo, d.repo, c)
		must(t, "ostree", "admin", "deploy", "--no-prune", "--sysroot="+d.sysroot, "--os=myos", c)
	}
	v5 = d.commitVersion(t, "5.0", map[string]string{"usr/share/app/new-in-5": "5"})
	must(t, "ostree", "pull-local", "--repo="+sysRepo, d.repo, v5)
	must(t, "ostree", "refs", "--repo="+sysRepo, "--create=ota/pending", v5)

	// Left by an interrupted deployment.
	s, err := sysroot.Open(d.sysroot, sysroot.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c5, _ := ostree.ParseChecksum(v5)
	_, err = s.DeployTree(context.Background(), c5, sysroot.DeployOptions{OSName: "myos"})
	bv := s.Bootversion()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	boot, other := filepath.Join(d.sysroot, "boot"), 1-bv
	must(t, "cp", "-a", filepath.Join(boot, fmt.Sprintf("loader.%d", bv)), filepath.Join(boot, fmt.Sprintf("loader.%d", other)))
	links, _ := os.Readlink(filepath.Join(d.sysroot, fmt.Sprintf("ostree/boot.%d", bv)))
	must(t, "cp", "-a", filepath.Join(d.sysroot, "ostree", links), filepath.Join(d.sysroot, fmt.Sprintf("ostree/boot.%d.0", other)))
	os.Symlink(fmt.Sprintf("boot.%d.0", other), filepath.Join(d.sysroot, fmt.Sprintf("ostree/boot.%d", other)))
	writeFiles(t, boot, map[string]string{"ostree/myos-" + strings.Repeat("ab", 32) + "/vmlinuz-6.1.0-old": "OLD KERNEL"})
	must(t, "ostree", "refs", "--repo="+sysRepo, fmt.Sprintf("--create=ostree/%d/0/0", other), d.commits[0])

	files := map[string]string{}
	for i := range junkFiles {
		files[fmt.Sprintf("usr/share/junk/%03d/f%d", i%100, i)] = fmt.Sprintf("junk file %d\n", i)
	}
	tree := filepath.Join(t.TempDir(), "junk")
	writeFiles(t, tree, files)
	out := strings.Fields(must(t, otaBuild, "commit", "--repo", d.repo, "-b", "junk", "--tree", "dir="+tree))
	junk = out[len(out)-1]
	must(t, "ostree", "pull-local", "--repo="+sysRepo, d.repo, junk) // by checksum: no ref
	return d, v3, v4, v5, junk
}

// repoFiles lists the files under a repository's objects/, deltas/ and state/ and its refs,
// relative to it.
func repoFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"objects", "deltas", "state", "refs"} {
		filepath.WalkDir(filepath.Join(repo, d), func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				rel, _ := filepath.Rel(repo, p)
				out = append(out, rel)
			}
			return nil
		})
	}
	slices.Sort(out)
	return out
}

// inodes returns the size of every regular file under root by inode: what removing
// files frees is the size of the inodes no path links any more.
func inodes(t *testing.T, root string) map[uint64]int64 {
	t.Helper()
	out := map[uint64]int64{}
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		if info, err := e.Info(); err == nil {
			out[info.Sys().(*syscall.Stat_t).Ino] = info.Size()
		}
		return nil
	})
	return out
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(s string) bool { return slices.Contains(b, s) })
}

// cleanupReport runs cleanup --json on the device.
func cleanupReport(t *testing.T, d device) cleanupJSON {
	t.Helper()
	var rep struct {
		Schema int
		cleanupJSON
	}
	out := mustClient(t, "--sysroot", d.sysroot, "cleanup", "--json").stdout
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Schema != 1 {
		t.Fatalf("cleanup --json (%v):\n%s", err, out)
	}
	return rep.cleanupJSON
}

// TestCleanupMatchesOstree: cleanup leaves the sysroot as `ostree admin cleanup` and then
// `ostree prune --refs-only` leave a copy of it: the same deployments, boot files, refs and
// objects (ota/pending's commit kept, the ancestors of deployed commits not); fsck passes,
// ostree admin status agrees, and the report counts what went and the space it freed.
func TestCleanupMatchesOstree(t *testing.T) {
	d, v3, v4, v5, junk := messyDevice(t, 20)
	sysRepo := filepath.Join(d.sysroot, "ostree/repo")
	copyRoot := filepath.Join(t.TempDir(), "copy")
	must(t, "cp", "-a", d.sysroot, copyRoot)
	must(t, "ostree", "admin", "cleanup", "--sysroot="+copyRoot)
	must(t, "ostree", "prune", "--repo="+copyRoot+"/ostree/repo", "--refs-only")

	filesBefore, sizesBefore := repoFiles(t, sysRepo), inodes(t, d.sysroot)
	rep := cleanupReport(t, d)

	// ostree leaves the emptied directories of the deployment refs; the refs themselves are
	// compared below.
	noRefDirs := func(paths []string) []string {
		return slices.DeleteFunc(paths, func(p string) bool {
			return strings.HasPrefix(p, "ostree/repo/refs/") && !strings.Contains(p, " ")
		})
	}
	if a, b := noRefDirs(snapshot(t, d.sysroot)), noRefDirs(snapshot(t, copyRoot)); !slices.Equal(a, b) {
		t.Errorf("the sysroot differs from ostree's cleanup:\nonly ours:\n\t%s\nonly ostree's:\n\t%s",
			strings.Join(minus(a, b), "\n\t"), strings.Join(minus(b, a), "\n\t"))
	}
	filesAfter := repoFiles(t, sysRepo)
	if want := repoFiles(t, copyRoot+"/ostree/repo"); !slices.Equal(filesAfter, want) {
		t.Errorf("the repository differs from ostree's prune:\nonly ours:\n\t%s\nonly ostree's:\n\t%s",
			strings.Join(minus(filesAfter, want), "\n\t"), strings.Join(minus(want, filesAfter), "\n\t"))
	}
	has := func(c, typ string) bool {
		return slices.Contains(filesAfter, "objects/"+c[:2]+"/"+c[2:]+"."+typ)
	}
	for _, c := range []string{v3, v4, v5} {
		if !has(c, "commit") {
			t.Errorf("commit %s removed", c)
		}
	}
	for _, c := range []string{d.commits[0], d.commits[1], junk} {
		if has(c, "commit") {
			t.Errorf("commit %s kept", c)
		}
	}
	if got, want := d.ostreeStatus(t), []string{v4 + ".0", v3 + ".0"}; !slices.Equal(got, want) {
		t.Errorf("ostree admin status: %q, want %q", got, want)
	}
	if out := must(t, "ostree", "fsck", "--repo="+sysRepo); !strings.Contains(out, "no errors") {
		t.Errorf("ostree fsck:\n%s", out)
	}

	// The report: what went, and the space it freed (the inodes no path links any more).
	removedObjects := 0
	for _, p := range minus(filesBefore, filesAfter) {
		if strings.HasPrefix(p, "objects/") {
			removedObjects++
		}
	}
	sizesAfter := inodes(t, d.sysroot)
	var freed int64
	for ino, size := range sizesBefore {
		if _, ok := sizesAfter[ino]; !ok {
			freed += size
		}
	}
	if rep.DeploymentsRemoved != 1 || rep.BootFilesRemoved != 5 || rep.RefsRemoved != 1 || rep.ObjectsRemoved != removedObjects || rep.Objects-rep.ObjectsKept != rep.ObjectsRemoved-rep.RemovedByType["commitmeta"] ||
		rep.RemovedByType["commit"] != 3 || rep.BytesFreed != freed || rep.PartialKept != 0 {
		t.Errorf("report %+v; want 1 deployment, 5 boot files, 1 ref, 3 commits and %d object files removed, %d bytes freed", rep, removedObjects, freed)
	}
	// A second run has nothing left to do.
	if rep := cleanupReport(t, d); rep.DeploymentsRemoved+rep.BootFilesRemoved+rep.RefsRemoved+rep.ObjectsRemoved+rep.TempFilesRemoved != 0 || rep.BytesFreed != 0 {
		t.Errorf("a second cleanup removed %+v", rep)
	}
	if text := mustClient(t, "--sysroot", d.sysroot, "cleanup").stdout; !strings.HasPrefix(text, "cleanup: removed 0 deployments, 0 boot files, 0 refs; ") {
		t.Errorf("cleanup printed %q", text)
	}
}

// TestCleanupKeepsDeployments: nothing a deployment uses is removed, even when its refs
// are gone; a commit being pulled keeps what it has; a temporary file is removed only once
// it is old and nobody holds it.
func TestCleanupKeepsDeployments(t *testing.T) {
	d, v3, v4, v5, junk := messyDevice(t, 20)
	sysRepo := filepath.Join(d.sysroot, "ostree/repo")
	// Lose every deployment ref and ota/pending: only the deployments keep their commits.
	if err := os.RemoveAll(filepath.Join(sysRepo, "refs/heads/ostree")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(sysRepo, "refs/heads/ota/pending"))
	// The junk commit is being pulled: its mark is fresh.
	os.WriteFile(filepath.Join(sysRepo, "state", junk+".commitpartial"), nil, 0o644)
	// A download interrupted two days ago, one interrupted now, and an old one in use.
	old := time.Now().Add(-48 * time.Hour)
	for _, name := range []string{"old.partial", "fresh.partial", "busy.partial"} {
		p := filepath.Join(sysRepo, "tmp", name)
		os.WriteFile(p, []byte(name), 0o644)
		if name != "fresh.partial" {
			os.Chtimes(p, old, old)
		}
	}
	busy, err := os.Open(filepath.Join(sysRepo, "tmp/busy.partial"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if err := syscall.Flock(int(busy.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	rep := cleanupReport(t, d)
	files := repoFiles(t, sysRepo)
	has := func(c string) bool { return slices.Contains(files, "objects/"+c[:2]+"/"+c[2:]+".commit") }
	if !has(v3) || !has(v4) || !has(junk) || has(v5) || rep.PartialKept != 1 || rep.TempFilesRemoved != 1 {
		t.Errorf("kept 3.0 %v, 4.0 %v, junk being pulled %v, 5.0 without its ref %v; report %+v", has(v3), has(v4), has(junk), has(v5), rep)
	}
	if got := dirEntries(t, filepath.Join(sysRepo, "tmp")); !slices.Equal(got, []string{"busy.partial", "cache", "fresh.partial"}) {
		t.Errorf("tmp/ holds %q", got)
	}
	if out := must(t, "ostree", "fsck", "--repo="+sysRepo); !strings.Contains(out, "no errors") {
		t.Errorf("ostree fsck:\n%s", out)
	}
	// Every file of each deployment is still in the repository.
	for _, c := range []string{v4, v3} {
		must(t, "ostree", "checkout", "--repo="+sysRepo, "-U", c, filepath.Join(t.TempDir(), "co"))
	}
	if got, want := d.ostreeStatus(t), []string{v4 + ".0", v3 + ".0"}; !slices.Equal(got, want) {
		t.Errorf("ostree admin status: %q, want %q", got, want)
	}
}

// dirEntries returns the names in dir, sorted.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

var (
	clientBinOnce sync.Once
	clientBin     string
	clientBinErr  error
)

// clientBinary builds the ota-client binary once, for tests that kill it.
func clientBinary(t *testing.T) string {
	t.Helper()
	clientBinOnce.Do(func() {
		clientBin = filepath.Join(filepath.Dir(otaBuild), "ota-client")
		if out, err := exec.Command("go", "build", "-o", clientBin, ".").CombinedOutput(); err != nil {
			clientBinErr = fmt.Errorf("building ota-client: %v\n%s", err, out)
		}
	})
	if clientBinErr != nil {
		t.Fatal(clientBinErr)
	}
	return clientBin
}

// TestCleanupInterrupted: cleanup killed at any point leaves a repository ostree fsck
// accepts and the deployments ostree admin status lists; a rerun finishes the work and
// leaves what an uninterrupted cleanup leaves.
func TestCleanupInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("kills cleanup many times")
	}
	bin := clientBinary(t)
	base, v3, v4, _, junk := messyDevice(t, 2000)
	junkCommit := filepath.Join(base.sysroot, "ostree/repo/objects", junk[:2], junk[2:]+".commit")
	work := func(name string) device {
		d := base
		d.sysroot = filepath.Join(t.TempDir(), name)
		must(t, "cp", "-a", base.sysroot, d.sysroot)
		return d
	}
	full := work("full")
	cleanupReport(t, full)
	want := repoFiles(t, filepath.Join(full.sysroot, "ostree/repo"))
	before := len(repoFiles(t, filepath.Join(base.sysroot, "ostree/repo")))

	midway := 0
	for i := range 10 {
		d := work("run" + strconv.Itoa(i))
		repo := filepath.Join(d.sysroot, "ostree/repo")
		cmd := exec.Command(bin, "--sysroot", d.sysroot, "cleanup")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Half the kills land at a random moment; the others once the junk commit is gone,
		// when the objects it reached are being removed.
		if i%2 == 0 {
			time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		} else {
			commit := strings.Replace(junkCommit, base.sysroot, d.sysroot, 1)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				if _, err := os.Lstat(commit); err != nil {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if n := len(repoFiles(t, repo)); n < before && n > len(want) {
			midway++
		}
		if out, err := exec.Command("ostree", "fsck", "--repo="+repo).CombinedOutput(); err != nil {
			t.Fatalf("kill %d: ostree fsck: %v\n%s", i, err, out)
		}
		if got, want := d.ostreeStatus(t), []string{v4 + ".0", v3 + ".0"}; !slices.Equal(got, want) {
			t.Fatalf("kill %d: ostree admin status: %q, want %q", i, got, want)
		}
		cleanupReport(t, d)
		if got := repoFiles(t, repo); !slices.Equal(got, want) {
			t.Fatalf("kill %d: after a rerun the repository differs from an uninterrupted cleanup's:\nonly here:\n\t%s\nonly there:\n\t%s",
				i, strings.Join(minus(got, want), "\n\t"), strings.Join(minus(want, got), "\n\t"))
		}
	}
	if midway == 0 {
		t.Error("no kill landed while objects were being removed")
	}
	t.Logf("%d of 10 kills landed while objects were being removed", midway)
}
