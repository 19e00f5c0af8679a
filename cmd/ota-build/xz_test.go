package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// builtinEncoder is how reports name the built-in xz encoder of a binary built with
// module information.
var builtinEncoder = regexp.MustCompile(`^builtin \(github\.com/ulikunitz/xz v\d+\.\d+\.\d+\)$`)

// xzRepo makes a repository whose main has two commits and returns it with their
// checksums.
func xzRepo(t *testing.T) (repo, base, next string) {
	t.Helper()
	dir := t.TempDir()
	repo, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte(strings.Repeat("version one\n", 5000)), 0o755)
	otaInit(t, repo)
	base = otaCommit(t, nil, repo, "dir="+tree)
	os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte(strings.Repeat("version two\n", 5000)), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/new"), []byte(strings.Repeat("a new file\n", 3000)), 0o755)
	return repo, base, otaCommit(t, nil, repo, "dir="+tree)
}

// xzReport returns the path and the encoder a delta or bundle --json report names.
func xzReport(t *testing.T, r result) (path, encoder string) {
	t.Helper()
	var rep struct{ Path, Encoder string }
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report %q: %v", r.stdout, err)
	}
	return rep.Path, rep.Encoder
}

// TestDeltaXZEncoders: --xz=builtin and --xz=PATH both make deltas the real ostree applies
// offline, and delta and bundle reports name the encoder and its version; auto without xz
// in $PATH uses the built-in encoder and says so (issue 10).
func TestDeltaXZEncoders(t *testing.T) {
	requireTool(t, "ostree", "xz")
	xzPath, _ := exec.LookPath("xz")
	repo, base, next := xzRepo(t)
	for _, tc := range []struct {
		xz   string
		env  []string
		want *regexp.Regexp
	}{
		{"builtin", nil, builtinEncoder},
		{xzPath, nil, regexp.MustCompile(`^xz \d+\.\d+\.\d+ \(` + regexp.QuoteMeta(xzPath) + `\)$`)},
		{"auto", []string{"PATH=" + t.TempDir()}, builtinEncoder},
	} {
		t.Run(tc.xz, func(t *testing.T) {
			os.RemoveAll(filepath.Join(repo, "deltas"))
			r := runCmd(t, tc.env, nil, otaBuild, "delta", "--repo", repo, "--to", "main", "--xz", tc.xz, "--json")
			if r.code != 0 {
				t.Fatalf("delta --xz %s: exit %d: %s", tc.xz, r.code, r.stderr)
			}
			dir, encoder := xzReport(t, r)
			if !tc.want.MatchString(encoder) {
				t.Errorf("delta --xz %s: encoder %q, want %s", tc.xz, encoder, tc.want)
			}
			dst := filepath.Join(t.TempDir(), "target")
			must(t, "ostree", "init", "--repo="+dst, "--mode=bare-user")
			must(t, "ostree", "pull-local", "--repo="+dst, repo, base)
			must(t, "ostree", "static-delta", "apply-offline", "--repo="+dst, filepath.Join(dir, "superblock"))
			must(t, "ostree", "fsck", "--repo="+dst)
			if got, want := must(t, "ostree", "ls", "-R", "-C", "--repo="+dst, next).stdout, must(t, "ostree", "ls", "-R", "-C", "--repo="+repo, next).stdout; got != want {
				t.Errorf("tree after apply-offline:\n%s\nwant\n%s", got, want)
			}

			bundle := filepath.Join(t.TempDir(), "update.bundle")
			r = runCmd(t, tc.env, nil, otaBuild, "bundle", "--repo", repo, "--to", "main", "-o", bundle, "--xz", tc.xz, "--json")
			if r.code != 0 {
				t.Fatalf("bundle --xz %s: exit %d: %s", tc.xz, r.code, r.stderr)
			}
			if _, encoder := xzReport(t, r); !tc.want.MatchString(encoder) {
				t.Errorf("bundle --xz %s: encoder %q, want %s", tc.xz, encoder, tc.want)
			}
		})
	}
}

// TestDeltaXZMissing: an xz command that does not exist is a one-line error naming it, and
// nothing is written.
func TestDeltaXZMissing(t *testing.T) {
	repo, _, _ := xzRepo(t)
	before := repoState(t, repo)
	missing := filepath.Join(t.TempDir(), "nonexistent")
	for _, args := range [][]string{
		{"delta", "--repo", repo, "--to", "main", "--xz", missing},
		{"bundle", "--repo", repo, "--to", "main", "-o", filepath.Join(t.TempDir(), "b"), "--xz", missing},
	} {
		r := runCmd(t, nil, nil, otaBuild, args...)
		want := `ota-build: xz encoder "` + missing + `": no such file or directory` + "\n"
		if r.code == 0 || r.stderr != want {
			t.Errorf("%s: exit %d, stderr %q; want %q", args[0], r.code, r.stderr, want)
		}
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("the repository changed:\n%s", after)
	}
}

// TestBuildXZEncoder: build takes the encoder from deltas.xz or --xz, checks it before
// writing anything, and its report names the encoder of each delta and bundle it wrote.
func TestBuildXZEncoder(t *testing.T) {
	requireTool(t, "xz")
	xzPath, _ := exec.LookPath("xz")
	manifest := deltasManifest(t, "${VERSION}", "")
	dir := filepath.Dir(manifest)
	build := func(version string, extra ...string) result {
		return runCmd(t, nil, nil, otaBuild, append([]string{"build", "-f", manifest, "--version", version, "--json"}, extra...)...)
	}
	report := func(r result) (deltas []string, bundle string) {
		t.Helper()
		var rep struct {
			Deltas []struct{ Encoder string }
			Bundle struct{ Encoder string }
		}
		if r.code != 0 {
			t.Fatalf("build: exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("report %q: %v", r.stdout, err)
		}
		for _, d := range rep.Deltas {
			deltas = append(deltas, d.Encoder)
		}
		return deltas, rep.Bundle.Encoder
	}

	deltas, bundle := report(build("1.0"))
	if len(deltas) != 1 || !builtinEncoder.MatchString(deltas[0]) || !builtinEncoder.MatchString(bundle) {
		t.Errorf("deltas.xz: builtin: delta encoders %q, bundle %q", deltas, bundle)
	}
	repo := filepath.Join(dir, "repo")
	before := repoState(t, repo)
	missing := filepath.Join(dir, "nonexistent")
	if r := build("2.0", "--xz", missing); r.code == 0 || r.stderr != `ota-build: xz encoder "`+missing+`": no such file or directory`+"\n" {
		t.Errorf("build --xz %s: exit %d, stderr %q", missing, r.code, r.stderr)
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("a build with a missing --xz changed the repository:\n%s", after)
	}
	xzEncoder := "xz "
	deltas, bundle = report(build("2.0", "--xz", xzPath))
	if len(deltas) != 1 || !strings.HasPrefix(deltas[0], xzEncoder) || !strings.HasSuffix(bundle, "("+xzPath+")") {
		t.Errorf("--xz %s: delta encoders %q, bundle %q", xzPath, deltas, bundle)
	}
}

// deltasManifest writes, in a new directory, a one-file rootfs and an ota.yaml committing
// it as version to t/stable (repository repo) with a delta from scratch and a bundle
// (b.bundle), both with the built-in xz encoder, and more of the deltas section; it returns
// the manifest's path.
func deltasManifest(t *testing.T, version, deltas string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rootfs/usr/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "rootfs/usr/bin/app"), []byte("app"), 0o755)
	manifest := filepath.Join(dir, "ota.yaml")
	if err := os.WriteFile(manifest, []byte("repo: {path: repo}\ncommit:\n  rootfs: rootfs\n  branch: t/stable\n  version: "+version+"\n"+
		"  bootable: false\n  owner: {uid: 0, gid: 0}\ndeltas:\n  from-scratch: true\n  bundle: {output: b.bundle}\n  xz: builtin\n"+deltas), 0o644); err != nil {
		t.Fatal(err)
	}
	return manifest
}

// TestDeltaInterruptKillsXZ: SIGINT while the xz command compresses a part kills it (the
// command runs with the command's context) and the delta's part directory goes; the xz
// here is a stand-in that never finishes, which ota-build would otherwise wait for.
func TestDeltaInterruptKillsXZ(t *testing.T) {
	repo, _, _ := xzRepo(t)
	xz := filepath.Join(t.TempDir(), "xz")
	script := "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'xz (XZ Utils) 5.4.1'; exit 0; }\nexec sleep 60\n"
	if err := os.WriteFile(xz, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(otaBuild, "delta", "--repo", repo, "--to", "main", "--xz", xz)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var sleeper int
	defer func() {
		// Whatever happened, leave nothing running.
		cmd.Process.Kill()
		if sleeper != 0 && xzAlive(sleeper) {
			syscall.Kill(sleeper, syscall.SIGKILL)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); sleeper == 0; time.Sleep(5 * time.Millisecond) {
		if sleeper = crashChild(cmd.Process.Pid, "sleep"); sleeper == 0 && time.Now().After(deadline) {
			t.Fatal("the xz stand-in never started")
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the interrupted delta succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ota-build still runs 20 s after SIGINT: it waits for xz instead of killing it")
	}
	if xzAlive(sleeper) {
		t.Errorf("xz (pid %d) outlived the interrupted ota-build", sleeper)
	}
	if strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line", stderr.String())
	}
	left, _ := filepath.Glob(filepath.Join(repo, "tmp", ostree.ScratchPrefix+strconv.Itoa(cmd.Process.Pid)+"-*"))
	if len(left) > 0 {
		t.Errorf("the interrupted delta left %v", left)
	}
}

// xzAlive reports whether process pid exists and is not a zombie.
func xzAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}
