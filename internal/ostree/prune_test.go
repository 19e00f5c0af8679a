package ostree

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireOstree skips the test when the ostree tool is missing, or fails it when
// OTA_REQUIRE_TOOLS=1.
func requireOstree(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatal("ostree is required (OTA_REQUIRE_TOOLS=1) but not installed")
		}
		t.Skip("ostree not installed")
	}
}

// ostreeCmd runs the ostree tool and returns its trimmed output.
func ostreeCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// objectFiles lists the files under a repository's objects/ and state/, relative to it.
func objectFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"objects", "state"} {
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

// TestPruneOptions: Roots keep commits as refs do, NoHistory drops their ancestors,
// KeepPartial keeps a commit being pulled with what it has, until its mark is older than
// the expiry; each compared with the real `ostree prune --refs-only` on a copy whose refs
// name the same commits (with --depth=0 for NoHistory).
func TestPruneOptions(t *testing.T) {
	requireOstree(t)
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ostreeCmd(t, "init", "--repo="+repo, "--mode=archive")
	commit := func(branch, name string) Checksum {
		tree := filepath.Join(dir, "tree-"+name)
		os.MkdirAll(filepath.Join(tree, "usr/share", name), 0o755)
		os.WriteFile(filepath.Join(tree, "usr/share", name, "file"), []byte(strings.Repeat(name, 100)), 0o644)
		os.WriteFile(filepath.Join(tree, "usr/share/common"), []byte("common"), 0o644)
		c, err := ParseChecksum(ostreeCmd(t, "commit", "--repo="+repo, "-b", branch, "--tree=dir="+tree))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := commit("main", "a")
	b := commit("main", "b") // main: a <- b
	root := commit("deployed", "root")
	pulling := commit("pulling", "pulling")
	stale := commit("stale", "stale")
	for _, ref := range []string{"deployed", "pulling", "stale"} {
		ostreeCmd(t, "refs", "--repo="+repo, "--delete", ref)
	}
	// pulling is being pulled: its mark is fresh and a subtree not fetched yet; stale's
	// pull was given up two days ago.
	r, err := Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	cm, _, err := r.ReadCommit(pulling)
	if err != nil {
		t.Fatal(err)
	}
	sub := cm.RootTree
	for _, name := range []string{"usr", "share", "pulling"} {
		dt, err := r.ReadDirTree(sub)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(dt.Dirs, func(d TreeDir) bool { return d.Name == name })
		if i < 0 {
			t.Fatalf("no %s in the tree", name)
		}
		sub = dt.Dirs[i].Tree
	}
	if err := os.Remove(r.ObjectPath(sub, ObjDirTree)); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, c := range []Checksum{pulling, stale} {
		p := filepath.Join(repo, "state", c.String()+".commitpartial")
		os.WriteFile(p, nil, 0o644)
		if c == stale {
			os.Chtimes(p, old, old)
		}
	}

	// What ostree keeps when refs name main, root and pulling, without history.
	theirs := filepath.Join(dir, "theirs")
	if err := exec.Command("cp", "-a", repo, theirs).Run(); err != nil {
		t.Fatal(err)
	}
	ostreeCmd(t, "refs", "--repo="+theirs, "--create=root", root.String())
	ostreeCmd(t, "refs", "--repo="+theirs, "--create=pulling", pulling.String())
	ostreeCmd(t, "prune", "--repo="+theirs, "--refs-only", "--depth=0")
	want := objectFiles(t, theirs)

	before := objectFiles(t, repo)
	opts := PruneOptions{Roots: []Ref{{Name: "deployment x", Commit: root}}, NoHistory: true, KeepPartial: true, DryRun: true}
	dry, err := r.Prune(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := objectFiles(t, repo); !slices.Equal(got, before) {
		t.Fatalf("a dry run removed files")
	}
	opts.DryRun = false
	res, err := r.Prune(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := objectFiles(t, repo); !slices.Equal(got, want) {
		t.Errorf("Prune kept\n\t%s\nostree\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	for c, kept := range map[Checksum]bool{a: false, stale: false, b: true, root: true, pulling: true} {
		if r.HasObject(c, ObjCommit) != kept {
			t.Errorf("commit %s kept: %v, want %v", c, !kept, kept)
		}
	}
	if res.Partial != 1 || res.Removed["commit"] != 2 || dry.Removed["commit"] != 2 || dry.Bytes != res.Bytes || dry.Partial != 1 {
		t.Errorf("result %+v, dry run %+v", res, dry)
	}
	if out := ostreeCmd(t, "fsck", "--repo="+repo); !strings.Contains(out, "no errors") {
		t.Errorf("ostree fsck: %s", out)
	}

	// A root naming a missing commit is an error.
	if _, err := r.Prune(context.Background(), PruneOptions{Roots: []Ref{{Name: "deployment y", Commit: a}}}); err == nil ||
		!strings.HasPrefix(err.Error(), "deployment y: commit "+a.String()) {
		t.Errorf("a root to a missing commit: %v", err)
	}
}

// TestPruneTmp: tmp/ entries that are not this package's go once older than the expiry
// (core.tmp-expiry-secs, else a day) and unlocked: an flock(2) or fcntl lock on the entry,
// or on ostree's NAME-lock beside it, keeps it, as do tmp/cache and a future time.
func TestPruneTmp(t *testing.T) {
	r, err := Init(t.TempDir(), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(r.Path, "tmp")
	old, hourAgo, future := time.Now().Add(-25*time.Hour), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	entry := func(name string, dir bool, mtime time.Time) string {
		p := filepath.Join(tmp, name)
		if dir {
			os.MkdirAll(filepath.Join(p, "sub"), 0o755)
			os.WriteFile(filepath.Join(p, "sub/data"), []byte("data"), 0o644)
		} else {
			os.WriteFile(p, []byte(name), 0o644)
		}
		os.Chtimes(p, mtime, mtime)
		return p
	}
	lock := func(p string, how string) {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			f, err = os.Open(p)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if how == "flock" {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		} else {
			err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	entry("gone.partial", false, old)
	entry("gone-dir", true, old)
	entry("fresh.partial", false, hourAgo)
	entry("future", false, future)
	os.Chtimes(filepath.Join(tmp, "cache"), old, old)
	lock(entry("flocked.partial", false, old), "flock")
	lock(entry("ofd-locked", false, old), "ofd")
	entry("staging-1234", true, old)
	lock(entry("staging-1234-lock", false, old), "ofd")
	os.Symlink("nowhere", filepath.Join(tmp, "old-link"))
	unix.Lutimes(filepath.Join(tmp, "old-link"), []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())})

	prune := func(dryRun bool) *PruneResult {
		t.Helper()
		res, err := r.Prune(context.Background(), PruneOptions{DryRun: dryRun})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	all := dirList(t, tmp)
	if res := prune(true); res.TempFiles != 3 || !slices.Equal(dirList(t, tmp), all) {
		t.Errorf("dry run: %+v, tmp/ %q", res, dirList(t, tmp))
	}
	res := prune(false)
	want := []string{"cache", "flocked.partial", "fresh.partial", "future", "ofd-locked", "staging-1234", "staging-1234-lock"}
	if got := dirList(t, tmp); !slices.Equal(got, want) || res.TempFiles != 3 || res.Bytes != int64(len("gone.partial")+len("data")+len("nowhere")) {
		t.Errorf("tmp/ holds %q, want %q; result %+v", got, want, res)
	}

	// A shorter expiry from the config; a bad one is an error naming the key.
	r.Config["core.tmp-expiry-secs"] = "60"
	if res := prune(false); res.TempFiles != 1 || slices.Contains(dirList(t, tmp), "fresh.partial") {
		t.Errorf("with a 60 s expiry: %+v, tmp/ %q", res, dirList(t, tmp))
	}
	r.Config["core.tmp-expiry-secs"] = "a day"
	if _, err := r.Prune(context.Background(), PruneOptions{}); err == nil || !strings.Contains(err.Error(), "config: core.tmp-expiry-secs") {
		t.Errorf("bad expiry: %v", err)
	}
}

// dirList returns the names in dir, sorted.
func dirList(t *testing.T, dir string) []string {
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
