package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The summary lists every branch and, once the repository has static deltas, their index;
// the real ostree reads it and pulls through it.
func TestSummaryReadByOstree(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc/os-release"), []byte("ID=test\n"), 0o644)
	otaInit(t, repo)
	first := otaCommit(t, nil, repo, "dir="+tree, "--version", "1.0")
	os.WriteFile(filepath.Join(tree, "etc/motd"), []byte("second\n"), 0o644)
	ota(t, "commit", "--repo", repo, "-b", "other/branch", "--tree", "dir="+tree, "--timestamp", compatTimestamp)

	view := must(t, "ostree", "summary", "--view", "--repo="+repo).stdout
	for _, want := range []string{"* main", "* other/branch", first, "Version (ostree.commit.version): 1.0",
		"Repository Mode (ostree.summary.mode): archive-z2"} {
		if !strings.Contains(view, want) {
			t.Errorf("ostree summary --view lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "Static Deltas") {
		t.Errorf("summary lists deltas before there are any:\n%s", view)
	}

	must(t, "ostree", "static-delta", "generate", "--repo="+repo, "--empty", "--to="+first)
	ota(t, "summary", "--repo", repo)
	view = must(t, "ostree", "summary", "--view", "--repo="+repo).stdout
	if !strings.Contains(view, "Static Deltas (ostree.static-deltas): {'"+first+"'") {
		t.Errorf("summary does not index the delta to %s:\n%s", first, view)
	}

	// A pull into a bare repository finds the delta through our summary.
	url := serveDir(t, repo)
	client := filepath.Join(dir, "client")
	must(t, "ostree", "init", "--repo="+client, "--mode=bare-user")
	must(t, "ostree", "remote", "add", "--repo="+client, "--no-gpg-verify", "origin", url)
	must(t, "ostree", "pull", "--repo="+client, "--require-static-deltas", "origin", "main")
	ostreeFsck(t, client)
}
