package main

// Acceptance 7: a commit killed with SIGKILL at any point leaves a repository that the real
// `ostree fsck` and `ota-build fsck` accept, with the branch unchanged (absent, or the
// previous commit) or moved to the complete new commit, never to a missing one; running
// the same commit again then succeeds.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// crashTree writes the crash tests' tree: 1500 small files in 15 directories, a few
// symlinks, and random files of 1, 3 and 6 MiB (the last over the 4 MiB up to which
// ota-build holds a file in memory). seed varies the contents.
func crashTree(t *testing.T, root string, seed uint64) {
	t.Helper()
	src := rand.NewChaCha8([32]byte{byte(seed), 1, 2, 3})
	rng := rand.New(src)
	for d := range 15 {
		sub := filepath.Join(root, "usr", fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 100 {
			data := make([]byte, 100+rng.IntN(1500))
			for i := range data {
				data[i] = 'a' + byte(rng.IntN(16)) // compressible, like text
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(fmt.Sprintf("f%03d", d), filepath.Join(sub, "link")); err != nil {
			t.Fatal(err)
		}
	}
	for i, mib := range []int{1, 3, 6} {
		data := make([]byte, mib<<20)
		src.Read(data)
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("blob%d.bin", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// crashChange turns a copy of a crash tree into the tree of a second commit: one directory's
// files rewritten, one large file replaced, one file added.
func crashChange(t *testing.T, root string) {
	t.Helper()
	src := rand.NewChaCha8([32]byte{9, 9, 9})
	rng := rand.New(src)
	sub := filepath.Join(root, "usr", "d07")
	for f := range 100 {
		data := make([]byte, 200+rng.IntN(1000))
		src.Read(data)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 6<<20)
	src.Read(big)
	if err := os.WriteFile(filepath.Join(root, "blob2.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr", "VERSION"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// crashCopy copies the repository src to dst, hard-linking the object files: ota-build never
// changes an object file in place (it writes a new file and renames it over), so the copies
// stay independent while the copy costs next to nothing. The lock file is not shared.
func crashCopy(t *testing.T, src, dst string) {
	t.Helper()
	must(t, "cp", "-al", src, dst)
	if err := os.Remove(filepath.Join(dst, ".lock")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// crashRef returns the commit refs/heads/main names, or "" when the ref does not exist.
func crashRef(t *testing.T, repo string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "refs", "heads", "main"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// crashObjects counts the loose object files of a repository.
func crashObjects(repo string) int {
	n := 0
	filepath.WalkDir(filepath.Join(repo, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// crashTemps returns the temporary files ota-build left in the repository's tmp/.
func crashTemps(repo string) []string {
	m, _ := filepath.Glob(filepath.Join(repo, "tmp", ostree.TempPrefix+"*"))
	return m
}

// crashFscks runs both fscks and fails the test on any problem.
func crashFscks(t *testing.T, repo string) {
	t.Helper()
	accOstreeFsck(t, repo)
	if r := runCmd(t, nil, nil, otaBuild, "fsck", "--repo", repo); r.code != 0 {
		t.Errorf("ota-build fsck: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// crashCommitFile returns the .commit object file of a commit checksum.
func crashCommitFile(repo, c string) string {
	return filepath.Join(repo, "objects", c[:2], c[2:]+".commit")
}

// crashKill starts cmd and SIGKILLs it after delay or, when trigger is set, as soon as
// trigger reports true (busy polling: the last steps of a command take well under a
// millisecond), unless it exits first. It reports whether the command was killed and
// returns its standard output; a command that fails on its own fails the test.
func crashKill(t *testing.T, cmd *exec.Cmd, delay time.Duration, trigger func() bool) (bool, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	exited := false
	if trigger == nil {
		select {
		case err = <-done:
			exited = true
		case <-time.After(delay):
		}
	} else {
	poll:
		for !trigger() {
			select {
			case err = <-done:
				exited = true
				break poll
			default:
			}
		}
	}
	if !exited {
		cmd.Process.Signal(syscall.SIGKILL)
		err = <-done
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		return true, stdout.String()
	} else if err != nil {
		t.Fatalf("%s failed on its own: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return false, stdout.String()
}

// TestCrashKilledCommitLeavesValidRepo is acceptance 7. For a fresh repository and for one
// whose branch already has a commit, it measures how long the commit takes, then starts the
// same commit in a fresh copy of the repository and SIGKILLs it: after 10 delays from 1% to
// 95% of that duration, and at 3 points detected by polling the repository (root dirtree
// stored, commit object stored, ref moved) that timed kills rarely reach. After each kill:
// `ostree fsck` and `ota-build fsck` pass; main is unchanged (absent / the previous commit)
// or is the complete new commit, never a missing one; and rerunning the commit succeeds,
// producing the expected commit and cleaning up the killed run's temporary files.
func TestCrashKilledCommitLeavesValidRepo(t *testing.T) {
	requireTool(t, "ostree", "cp")
	dir := t.TempDir()
	tree1 := filepath.Join(dir, "tree1")
	crashTree(t, tree1, 1)
	tree2 := filepath.Join(dir, "tree2")
	must(t, "cp", "-a", tree1, tree2)
	crashChange(t, tree2)

	fresh := filepath.Join(dir, "fresh-base")
	ota(t, "init", "--repo", fresh)
	second := filepath.Join(dir, "second-base")
	ota(t, "init", "--repo", second)
	first := ota(t, "commit", "--repo", second, "-b", "main", "--tree", "dir="+tree1,
		"--timestamp", accTimestamp, "-s", "first").lastLine()

	fractions := []float64{0.01, 0.05, 0.10, 0.20, 0.30, 0.45, 0.60, 0.75, 0.85, 0.95}
	for _, sc := range []struct {
		name, base, tree, prev string
	}{
		{"fresh repo", fresh, tree1, ""},
		{"second commit", second, tree2, first},
	} {
		t.Run(sc.name, func(t *testing.T) {
			args := func(repo string) []string {
				return []string{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + sc.tree,
					"--timestamp", "1700000100", "-s", "killed?"}
			}
			// The reference run: the commit checksum every completed run must produce, and the
			// duration the kill delays are fractions of.
			ref := filepath.Join(t.TempDir(), "repo")
			crashCopy(t, sc.base, ref)
			syscall.Sync()
			start := time.Now()
			want := ota(t, args(ref)...).lastLine()
			d := time.Since(start)
			final := crashObjects(ref)
			t.Logf("reference commit %s took %v, %d objects", want, d.Round(time.Millisecond), final)
			refRepo, err := ostree.Open(ref)
			if err != nil {
				t.Fatal(err)
			}
			wantSum, err := ostree.ParseChecksum(want)
			if err != nil {
				t.Fatal(err)
			}
			cm, _, err := refRepo.ReadCommit(wantSum)
			if err != nil {
				t.Fatal(err)
			}

			// Kill points: fractions of the reference duration, then points triggered by what
			// the commit has written, to hit the short final steps that timed kills rarely
			// reach: the root dirtree stored (all content stored, the commit object next), the
			// commit object stored (signatures, sync and ref next), and the ref moved.
			type killPoint struct {
				name    string
				delay   time.Duration
				trigger func(repo string) bool
			}
			var points []killPoint
			for _, f := range fractions {
				delay := time.Duration(float64(d) * f)
				points = append(points, killPoint{name: fmt.Sprintf("%v (%2.0f%%)", delay.Round(time.Millisecond), f*100), delay: delay})
			}
			exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
			rootTree := cm.RootTree.String()
			points = append(points,
				killPoint{name: "root dirtree written", trigger: func(repo string) bool {
					return exists(filepath.Join(repo, "objects", rootTree[:2], rootTree[2:]+".dirtree"))
				}},
				killPoint{name: "commit object written", trigger: func(repo string) bool {
					return exists(crashCommitFile(repo, want))
				}},
				killPoint{name: "ref moved", trigger: func(repo string) bool {
					data, _ := os.ReadFile(filepath.Join(repo, "refs", "heads", "main"))
					return strings.TrimSpace(string(data)) != sc.prev
				}},
			)

			killed := 0
			for i, kp := range points {
				repo := filepath.Join(t.TempDir(), "repo")
				crashCopy(t, sc.base, repo)
				syscall.Sync() // so the commit's syncfs flushes its own writes, not earlier tests'

				var trigger func() bool
				if kp.trigger != nil {
					trigger = func() bool { return kp.trigger(repo) }
				}
				wasKilled, stdout := crashKill(t, exec.Command(otaBuild, args(repo)...), kp.delay, trigger)
				if wasKilled {
					killed++
				}

				head := crashRef(t, repo)
				t.Logf("kill %d at %s: killed=%v, %d/%d objects, commit object: %v, main: %s",
					i, kp.name, wasKilled, crashObjects(repo), final, exists(crashCommitFile(repo, want)),
					map[bool]string{true: "unchanged", false: "moved to " + head}[head == sc.prev])
				switch {
				case !wasKilled && head != want:
					t.Errorf("kill %d: commit completed (stdout %q) but main is %q, want %s", i, stdout, head, want)
				case head != sc.prev && head != want:
					t.Errorf("kill %d: main is %q, want %q (unchanged) or %s (the new commit)", i, head, sc.prev, want)
				}
				if head != "" && !exists(crashCommitFile(repo, head)) {
					t.Errorf("kill %d: main points at the missing commit %s", i, head)
				}
				crashFscks(t, repo)

				// The same commit again: it completes, and yields the expected commit (or, when the
				// killed run had already moved main, a child of it).
				r := ota(t, args(repo)...)
				got := r.lastLine()
				if head == want {
					if p := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main^").stdout); p != want {
						t.Errorf("kill %d: rerun made %s with parent %s, want parent %s", i, got, p, want)
					}
				} else if got != want {
					t.Errorf("kill %d: rerun made %s, want %s", i, got, want)
				}
				if h := crashRef(t, repo); h != got {
					t.Errorf("kill %d: after the rerun main is %s, want %s", i, h, got)
				}
				if tmp := crashTemps(repo); len(tmp) > 0 {
					t.Errorf("kill %d: temporary files left after the rerun: %v", i, tmp)
				}
				if i == len(fractions)/2 || i == len(points)-1 {
					crashFscks(t, repo)
				}
				if t.Failed() {
					return
				}
			}
			if killed == 0 {
				t.Errorf("no run was killed before it finished: the test proved nothing")
			}
		})
	}
}

// TestCrashFscksDetectCorruption is the control for the crash test: the two fscks it relies
// on do reject a repository with a truncated content object and one whose branch points at
// a missing commit.
func TestCrashFscksDetectCorruption(t *testing.T) {
	requireTool(t, "ostree", "cp")
	dir := t.TempDir()
	base, c := accRepo(t, dir)
	cases := []struct {
		name      string
		breakRepo func(t *testing.T, repo string) string // returns the path fsck must name
	}{
		{"truncated content object", func(t *testing.T, repo string) string {
			var victim string
			var size int64
			filepath.WalkDir(filepath.Join(repo, "objects"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".filez") {
					if st, _ := d.Info(); st != nil && st.Size() > size {
						victim, size = p, st.Size()
					}
				}
				return nil
			})
			if victim == "" {
				t.Fatal("no content object")
			}
			if err := os.Truncate(victim, size/2); err != nil {
				t.Fatal(err)
			}
			return victim
		}},
		{"ref to missing commit", func(t *testing.T, repo string) string {
			if err := os.Remove(crashCommitFile(repo, c)); err != nil {
				t.Fatal(err)
			}
			return "refs/heads/main"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			must(t, "cp", "-a", base, repo)
			name := tc.breakRepo(t, repo)
			if r := runCmd(t, nil, nil, "ostree", "fsck", "--repo="+repo); r.code == 0 {
				t.Errorf("ostree fsck accepts the broken repository:\n%s", r.stdout)
			}
			r := runCmd(t, nil, nil, otaBuild, "fsck", "--repo", repo)
			if r.code != 1 {
				t.Errorf("ota-build fsck: exit %d, want 1", r.code)
			}
			if !strings.Contains(r.stderr, name) {
				t.Errorf("ota-build fsck does not name %s:\n%s", name, r.stderr)
			}
		})
	}
}
