package main

// Issue 9, item 9: refused commits and delta applies leave unreachable objects; `ota-build
// prune` removes exactly what the real `ostree prune --refs-only` removes.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// pruneFiles lists the files under a repository's objects/, deltas/ and state/, relative
// to it: what the two prunes are compared on.
func pruneFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"objects", "deltas", "state"} {
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

// pruneWrite writes data to root/name, creating its directories.
func pruneWrite(t *testing.T, root, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	accWriteFile(t, root, name, data)
}

// pruneReport is the part of prune --json the tests read.
type pruneReport struct {
	Schema    int
	DryRun    bool           `json:"dry_run"`
	Objects   int            `json:"objects"`
	Kept      int            `json:"objects_kept"`
	Removed   int            `json:"removed"`
	ByType    map[string]int `json:"removed_by_type"`
	Deltas    int            `json:"deltas_removed"`
	TempFiles int            `json:"temp_files_removed"`
	Bytes     int64          `json:"bytes_freed"`
}

func runPrune(t *testing.T, repo string, args ...string) pruneReport {
	t.Helper()
	r := ota(t, append([]string{"prune", "--repo", repo, "--json"}, args...)...)
	var rep pruneReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, r.stdout)
	}
	if rep.Schema != 1 {
		t.Errorf("prune --json: schema %d, want 1", rep.Schema)
	}
	return rep
}

// pruneMinus returns the elements of a not in b.
func pruneMinus(a, b []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(s string) bool { return slices.Contains(b, s) })
}

// prunedLikeOstree prunes repo with ota-build and a copy of it with the real ostree prune
// --refs-only, checks that both removed the same files, that a dry run first reported
// exactly that without removing anything, that ostree fsck passes and that every ref still
// checks out with ostree. It returns what was removed.
func prunedLikeOstree(t *testing.T, repo string) []string {
	t.Helper()
	before := pruneFiles(t, repo)
	sizes := map[string]int64{}
	for _, p := range before {
		st, _ := os.Lstat(filepath.Join(repo, p))
		sizes[p] = st.Size()
	}
	copyRepo := filepath.Join(t.TempDir(), "copy")
	must(t, "cp", "-a", repo, copyRepo)
	must(t, "ostree", "prune", "--repo="+copyRepo, "--refs-only")
	want := pruneMinus(before, pruneFiles(t, copyRepo))

	dry := runPrune(t, repo, "--dry-run")
	if got := pruneFiles(t, repo); !slices.Equal(got, before) {
		t.Fatalf("prune --dry-run removed %v", pruneMinus(before, got))
	}
	rep := runPrune(t, repo)
	got := pruneMinus(before, pruneFiles(t, repo))
	if !slices.Equal(got, want) {
		t.Errorf("ota-build prune removed\n\t%s\nostree prune --refs-only removed\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if !dry.DryRun || rep.DryRun || dry.Removed != rep.Removed || dry.Bytes != rep.Bytes || dry.Deltas != rep.Deltas {
		t.Errorf("dry run reported %+v, the prune %+v", dry, rep)
	}
	objectFiles := 0
	for _, p := range got {
		if strings.HasPrefix(p, "objects/") {
			objectFiles++
		}
		rep.Bytes -= sizes[p]
	}
	if rep.Removed != objectFiles || rep.Objects-rep.Kept != rep.Removed-rep.ByType["commitmeta"] || rep.Bytes < 0 {
		t.Errorf("the report does not count the %d object files removed, or their bytes: %+v", objectFiles, rep)
	}
	ostreeFsck(t, repo)
	if r := runCmd(t, nil, nil, otaBuild, "fsck", "--repo", repo); r.code != 0 {
		t.Errorf("ota-build fsck after prune: %s", r.stderr)
	}
	refs := strings.Fields(must(t, "ostree", "refs", "--repo="+repo).stdout)
	if len(refs) == 0 {
		t.Fatal("no refs")
	}
	for _, ref := range refs {
		must(t, "ostree", "checkout", "--repo="+repo, "-U", ref, filepath.Join(t.TempDir(), "co"))
	}
	return got
}

// TestPruneAfterRefusedOperations: a refused commit (truncated tarball) and a refused delta
// apply (a corrupted last part) leave objects no ref reaches; prune removes exactly those.
func TestPruneAfterRefusedOperations(t *testing.T) {
	requireTool(t, "ostree", "cp", "tar")
	for _, tc := range []struct {
		name   string
		refuse func(t *testing.T, dir, repo string)
	}{
		{"refused commit", func(t *testing.T, dir, repo string) {
			tree := filepath.Join(dir, "big")
			for i := range 6 {
				pruneWrite(t, tree, fmt.Sprintf("usr/share/f%d", i), []byte(strings.Repeat(fmt.Sprintf("file %d\n", i), 3000)))
			}
			tarFile := filepath.Join(dir, "t.tar")
			must(t, "tar", "-C", tree, "-cf", tarFile, "usr")
			st, _ := os.Stat(tarFile)
			os.Truncate(tarFile, st.Size()*3/4)
			r := runCmd(t, nil, nil, otaBuild, "commit", "--repo", repo, "-b", "main", "--tree", "tar="+tarFile)
			accOneLineError(t, r, "truncated")
		}},
		{"refused delta apply", func(t *testing.T, dir, repo string) {
			src := filepath.Join(dir, "src")
			ota(t, "init", "--repo", src)
			tree := filepath.Join(dir, "big")
			for i := range 8 {
				pruneWrite(t, tree, fmt.Sprintf("usr/share/f%02d", i), []byte(strings.Repeat(fmt.Sprintf("delta file %d\n", i), 16000)))
			}
			c := ota(t, "commit", "--repo", src, "-b", "main", "--tree", "dir="+tree).lastLine()
			ota(t, "delta", "--repo", src, "--from", "empty", "--to", "main", "--max-part-size", "1")
			to, _ := ostree.ParseChecksum(c)
			d := filepath.Join(src, ostree.DeltaDir(nil, to))
			parts, _ := filepath.Glob(filepath.Join(d, "[0-9]*"))
			if len(parts) < 2 {
				t.Fatalf("want a delta of several parts, got %v", parts)
			}
			slices.Sort(parts)
			last := parts[len(parts)-1]
			data, _ := os.ReadFile(last)
			data[len(data)/2] ^= 0xff
			os.WriteFile(last, data, 0o644)
			r := runCmd(t, nil, nil, otaBuild, "delta", "apply", "--repo", repo, d)
			if r.code == 0 {
				t.Fatal("applying a corrupted delta succeeded")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repo, good := accRepo(t, dir)
			before := pruneFiles(t, repo)
			tc.refuse(t, dir, repo)
			if head := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main").stdout); head != good {
				t.Fatalf("main moved to %s", head)
			}
			left := pruneMinus(pruneFiles(t, repo), before)
			if len(left) == 0 {
				t.Fatal("the refused operation left no object behind: nothing to prune")
			}
			removed := prunedLikeOstree(t, repo)
			if !slices.Equal(removed, left) {
				t.Errorf("prune removed %v, want what the refused operation left: %v", removed, left)
			}
		})
	}
}

// TestPruneMatchesOstree builds a repository with history, a detached branch, a remote ref,
// signed commits, partial-commit marks and deltas, then drops refs and compares ota-build
// prune with ostree prune --refs-only; ota-build prune also removes the temporary files of
// interrupted ota-build commands (and nothing else in tmp/).
func TestPruneMatchesOstree(t *testing.T) {
	requireTool(t, "ostree", "cp")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ota(t, "init", "--repo", repo)
	key := filepath.Join(dir, "release")
	ota(t, "keygen", "-o", key)
	commit := func(branch, content string, extra ...string) string {
		tree := filepath.Join(dir, "tree-"+content)
		accWriteTree(t, tree)
		pruneWrite(t, tree, "usr/share/version", []byte(content))
		pruneWrite(t, tree, "usr/share/"+content, []byte(strings.Repeat(content, 1000)))
		args := append([]string{"commit", "--repo", repo, "-b", branch, "--tree", "dir=" + tree, "--timestamp", accTimestamp, "--sign-key", key + ".key"}, extra...)
		return ota(t, args...).lastLine()
	}
	a := commit("main", "a")
	b := commit("main", "b")       // main: a <- b
	dropped := commit("main", "c") // main: b <- c, then main is reset to b
	side := commit("side", "d")    // a branch whose ref is deleted
	remote := commit("tmp-remote", "e")
	ota(t, "delta", "--repo", repo, "--from", a, "--to", b)
	ota(t, "delta", "--repo", repo, "--from", b, "--to", dropped)
	ota(t, "delta", "--repo", repo, "--from", "empty", "--to", side)

	os.WriteFile(filepath.Join(repo, "refs/heads/main"), []byte(b+"\n"), 0o644)
	os.Remove(filepath.Join(repo, "refs/heads/side"))
	os.MkdirAll(filepath.Join(repo, "refs/remotes/origin"), 0o755)
	os.Rename(filepath.Join(repo, "refs/heads/tmp-remote"), filepath.Join(repo, "refs/remotes/origin/stable"))
	os.WriteFile(filepath.Join(repo, "state", dropped+".commitpartial"), nil, 0o644)
	// Left by interrupted ota-build commands: an object being written, a delta's parts (of
	// a process that no longer exists); and someone else's file, which must stay.
	os.WriteFile(filepath.Join(repo, "tmp", ostree.TempPrefix+"0123456789abcdef"), []byte("partial object"), 0o644)
	dead := exec.Command("true")
	dead.Run()
	scratchDir := filepath.Join(repo, "tmp", fmt.Sprintf("%s%d-0123456789ab", ostree.ScratchPrefix, dead.Process.Pid))
	os.MkdirAll(scratchDir, 0o755)
	os.WriteFile(filepath.Join(scratchDir, "0"), []byte("part"), 0o644)
	os.WriteFile(filepath.Join(repo, "tmp", "not-ours"), []byte("x"), 0o644)

	removed := prunedLikeOstree(t, repo)
	t.Logf("removed %d files:\n\t%s", len(removed), strings.Join(removed, "\n\t"))
	for _, c := range []string{dropped, side} {
		if !slices.Contains(removed, "objects/"+c[:2]+"/"+c[2:]+".commit") || !slices.Contains(removed, "objects/"+c[:2]+"/"+c[2:]+".commitmeta") {
			t.Errorf("commit %s or its signatures not removed: %v", c, removed)
		}
	}
	for _, c := range []string{a, b, remote} {
		if slices.ContainsFunc(removed, func(p string) bool { return strings.Contains(p, c[2:]) }) {
			t.Errorf("a file of the kept commit %s was removed", c)
		}
	}
	if got := dirNames(t, filepath.Join(repo, "tmp")); !slices.Equal(got, []string{"cache", "not-ours"}) {
		t.Errorf("tmp/ after prune: %v, want cache and not-ours", got)
	}
	if len(ota(t, "delta", "show", "--repo", repo, a+"-"+b).stdout) == 0 {
		t.Error("the delta to the kept commit is gone")
	}
	// Nothing left to remove.
	if rep := runPrune(t, repo); rep.Removed != 0 || rep.Deltas != 0 || rep.TempFiles != 0 || rep.Bytes != 0 {
		t.Errorf("a second prune removed %+v", rep)
	}
}

// TestPruneErrorsAndLock: a ref to a missing commit stops prune before it removes anything,
// with one line naming the ref; prune waits for the repository lock.
func TestPruneErrorsAndLock(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	repo, _ := accRepo(t, dir)
	orphan := filepath.Join(dir, "orphan")
	pruneWrite(t, orphan, "x", []byte("unreachable"))
	ota(t, "commit", "--repo", repo, "-b", "gone", "--tree", "dir="+orphan)
	os.Remove(filepath.Join(repo, "refs/heads/gone"))
	missing := strings.Repeat("ab", 32)
	os.WriteFile(filepath.Join(repo, "refs/heads/broken"), []byte(missing+"\n"), 0o644)
	before := pruneFiles(t, repo)
	accOneLineError(t, runCmd(t, nil, nil, otaBuild, "prune", "--repo", repo), "prune: ref heads/broken", missing)
	if got := pruneFiles(t, repo); !slices.Equal(got, before) {
		t.Errorf("a failed prune removed %v", pruneMinus(before, got))
	}
	accOneLineError(t, runCmd(t, nil, nil, otaBuild, "prune", "--repo", filepath.Join(dir, "nowhere")), "nowhere")
	os.Remove(filepath.Join(repo, "refs/heads/broken"))

	r, err := ostree.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := r.Lock()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(otaBuild, "prune", "--repo", repo)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("prune ran while the repository was locked (%v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	if got := pruneFiles(t, repo); !slices.Equal(got, before) {
		t.Errorf("prune removed files before it had the lock")
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("prune: %v", err)
	}
	if got := pruneFiles(t, repo); len(got) >= len(before) {
		t.Errorf("prune removed nothing once it had the lock")
	}
}
