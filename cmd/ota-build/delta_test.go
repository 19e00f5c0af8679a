package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The delta, delta show, delta apply and bundle commands work together from the command
// line, and a signed bundle is refused under the wrong key.
func TestDeltaCommands(t *testing.T) {
	dir := t.TempDir()
	repo, tree, client := filepath.Join(dir, "repo"), filepath.Join(dir, "tree"), filepath.Join(dir, "client")
	os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte(strings.Repeat("version one\n", 5000)), 0o755)
	otaInit(t, repo)
	ota(t, "init", "--repo", client, "--mode", "bare-user")
	base := otaCommit(t, nil, repo, "dir="+tree)
	otaCommit(t, nil, client, "dir="+tree)
	os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte(strings.Repeat("version two\n", 5000)), 0o755)
	next := otaCommit(t, nil, repo, "dir="+tree)

	out := ota(t, "delta", "--repo", repo, "--to", "main").stdout
	if !strings.Contains(out, base+"-"+next) {
		t.Fatalf("delta printed %q", out)
	}
	show := ota(t, "delta", "show", "--repo", repo, base+"-"+next).stdout
	for _, want := range []string{"Delta: " + base + "-" + next, "Part 0 (file, compression 'x')"} {
		if !strings.Contains(show, want) {
			t.Errorf("delta show lacks %q:\n%s", want, show)
		}
	}

	ota(t, "keygen", "--output", filepath.Join(dir, "k"))
	ota(t, "keygen", "--output", filepath.Join(dir, "other"))
	ota(t, "sign", "--repo", repo, "--sign-key", filepath.Join(dir, "k.key"), "main")
	bundle := filepath.Join(dir, "update.bundle")
	ota(t, "bundle", "--repo", repo, "--from", "main^", "--to", "main", "-o", bundle, "--sign-key", filepath.Join(dir, "k.key"))

	r := runCmd(t, nil, nil, otaBuild, "delta", "apply", "--repo", client, "--pubkey", filepath.Join(dir, "other.pub"), bundle)
	if r.code == 0 || !strings.HasPrefix(r.stderr, "ota-build: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("bundle under the wrong key: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := ota(t, "delta", "apply", "--repo", client, "--pubkey", filepath.Join(dir, "k.pub"), "--branch", "main", bundle).lastLine(); got != next {
		t.Fatalf("delta apply printed %q, want %s", got, next)
	}
	ota(t, "fsck", "--repo", client)
	if got := ota(t, "log", "--repo", client, "main").stdout; !strings.HasPrefix(got, "commit "+next) {
		t.Fatalf("client log:\n%s", got)
	}
}
