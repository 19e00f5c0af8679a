package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// commit --bootable lays a plain rootfs out for ostree admin deploy and marks the commit.
func TestCommitBootableFlag(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	tree, repo := filepath.Join(dir, "tree"), filepath.Join(dir, "repo")
	for p, body := range map[string]string{
		"boot/vmlinuz-6.1.0-test":         "kernel",
		"usr/lib/modules/6.1.0-test/dep":  "deps",
		"etc/os-release":                  "ID=test\nPRETTY_NAME=\"Test\"\n",
		"var/lib/app/state":               "",
		"usr/bin/app":                     "#!/bin/sh\n",
		"boot/bcm2711-rpi-4-b.dtb":        "dtb",
		"usr/share/doc/app/README":        "doc",
		"etc/hostname":                    "box\n",
		"home/user/.profile":              "# profile\n",
		"usr/lib/modules/6.1.0-test/kmod": "module",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	otaInit(t, repo)
	otaCommit(t, nil, repo, "dir="+tree, "--bootable", "--owner-uid", "0", "--owner-gid", "0")
	ls := must(t, "ostree", "ls", "-R", "--repo="+repo, "main").stdout
	for _, want := range []string{"/usr/lib/modules/6.1.0-test/vmlinuz", "/usr/lib/modules/6.1.0-test/dtb/bcm2711-rpi-4-b.dtb",
		"/usr/etc/hostname", "/usr/lib/tmpfiles.d/ota-var.conf", "/home -> var/home"} {
		if !strings.Contains(ls, want) {
			t.Errorf("bootable commit lacks %s:\n%s", want, ls)
		}
	}
	if strings.Contains(ls, " /etc/hostname") || strings.Contains(ls, "/boot/vmlinuz") {
		t.Errorf("bootable commit kept /etc or /boot contents:\n%s", ls)
	}
	if got := must(t, "ostree", "show", "--repo="+repo, "--print-metadata-key=ostree.linux", "main").stdout; strings.TrimSpace(got) != "'6.1.0-test'" {
		t.Errorf("ostree.linux = %s", got)
	}
	if got := must(t, "ostree", "show", "--repo="+repo, "--print-metadata-key=ostree.bootable", "main").stdout; strings.TrimSpace(got) != "true" {
		t.Errorf("ostree.bootable = %s", got)
	}
	r := runCmd(t, nil, nil, otaBuild, "commit", "--repo", repo, "-b", "x", "--tree", "dir="+filepath.Join(tree, "usr"), "--bootable")
	if r.code == 0 || !strings.Contains(r.stderr, "kernel") {
		t.Errorf("bootable commit of a tree without kernel: exit %d, %q", r.code, r.stderr)
	}
}
