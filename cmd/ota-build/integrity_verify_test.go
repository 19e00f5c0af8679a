package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// verifyFixture is an archive repository with two bootable commits on main that differ in
// /usr/bin/blob, 64 KiB of random bytes, which deflate stores as they are (so that a byte
// flipped in the middle of its object still inflates, to the wrong content), and in
// /usr/bin/tool, a symlink whose long target fills the middle of its object.
type verifyFixture struct {
	dir, repo string
	c1, c2    string
}

func newVerifyFixture(t *testing.T) verifyFixture {
	t.Helper()
	dir := t.TempDir()
	f := verifyFixture{dir: dir, repo: filepath.Join(dir, "repo")}
	tree := filepath.Join(dir, "tree")
	for p, body := range map[string]string{
		"boot/vmlinuz-6.1.0-test":        "KERNEL",
		"usr/lib/modules/6.1.0-test/dep": "deps",
		"etc/os-release":                 "ID=test\nPRETTY_NAME=\"Test\"\n",
		"usr/bin/app":                    "#!/bin/sh\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	otaInit(t, f.repo)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 2 {
		blob := make([]byte, 64<<10)
		for j := range blob {
			blob[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(tree, "usr/bin/blob"), blob, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(tree, "usr/bin/tool")
		os.Remove(link)
		if err := os.Symlink(fmt.Sprintf("../lib/tools/version-%d/bin/the-tool-itself", i), link); err != nil {
			t.Fatal(err)
		}
		c := otaCommit(t, nil, f.repo, "dir="+tree, "--bootable", "--owner-uid", "0", "--owner-gid", "0")
		if i == 0 {
			f.c1 = c
		} else {
			f.c2 = c
		}
	}
	return f
}

// corrupt flips one byte in the middle of the .filez of the file at path in commit c,
// keeping its size, and returns the object's checksum.
func (f verifyFixture) corrupt(t *testing.T, c, path string) string {
	t.Helper()
	repo, err := ostree.Open(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ostree.ParseChecksum(c)
	if err != nil {
		t.Fatal(err)
	}
	var obj ostree.Checksum
	err = repo.Walk(cs, path, false, func(e ostree.TreeEntry) error {
		obj = e.Checksum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := repo.ObjectPath(obj, ostree.ObjFile)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return obj.String()
}

// fileSum returns the SHA-256 of a file, or "absent".
func fileSum(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return "absent"
	} else if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// dirNames lists the names in a directory, sorted (as os.ReadDir returns them).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// corruptible are the files of verifyFixture a test corrupts: a regular file and a
// symlink (whose object is all header).
var corruptible = []string{"/usr/bin/blob", "/usr/bin/tool"}

// TestImageRefusesCorruptObject: with one byte flipped in an object the image holds,
// `ota-build image` fails naming the object, writes no image, and leaves an image built
// before at the same path as it was (issue 9, item 1).
func TestImageRefusesCorruptObject(t *testing.T) {
	for _, path := range corruptible {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f := newVerifyFixture(t)
			out := filepath.Join(f.dir, "img", "disk.img")
			os.MkdirAll(filepath.Dir(out), 0o755)
			ota(t, "image", "--repo", f.repo, "--board", "qemu-aarch64", "-o", out, "--bmap", "main")
			before := fileSum(t, out)
			obj := f.corrupt(t, f.c2, path)
			for _, out := range []string{filepath.Join(f.dir, "fresh", "disk.img"), out} {
				os.MkdirAll(filepath.Dir(out), 0o755)
				had := dirNames(t, filepath.Dir(out))
				tmp := t.TempDir()
				r := runCmd(t, []string{"TMPDIR=" + tmp}, nil, otaBuild, "image", "--repo", f.repo,
					"--board", "qemu-aarch64", "-o", out, "--bmap", "main")
				accOneLineError(t, r, obj, "corrupt")
				if r.code != 1 {
					t.Errorf("exit %d, want 1", r.code)
				}
				if got := dirNames(t, filepath.Dir(out)); len(got) != len(had) {
					t.Errorf("%s holds %v, held %v", filepath.Dir(out), got, had)
				}
				if len(had) == 0 && fileSum(t, out) != "absent" {
					t.Errorf("an image was written")
				} else if len(had) > 0 && fileSum(t, out) != before {
					t.Errorf("the image built before changed")
				}
				if ents := dirNames(t, tmp); len(ents) != 0 {
					t.Errorf("staging left in TMPDIR: %v", ents)
				}
			}
		})
	}
}

// TestDeltaAndBundleRefuseCorruptObject: with one corrupt object of the new commit,
// `ota-build delta` and `ota-build bundle` fail naming it and write nothing: no delta
// directory, superblock or bundle, and the repository as it was (issue 9, item 2).
func TestDeltaAndBundleRefuseCorruptObject(t *testing.T) {
	for _, path := range corruptible {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f := newVerifyFixture(t)
			obj := f.corrupt(t, f.c2, path)
			state := repoState(t, f.repo)
			deltaDir := filepath.Join(f.repo, "deltas")
			outDir := filepath.Join(f.dir, "out")
			os.MkdirAll(outDir, 0o755)
			bundle := filepath.Join(outDir, "update.bundle")
			for _, args := range [][]string{
				{"delta", "--repo", f.repo, "--from", f.c1, "--to", f.c2},
				{"delta", "--repo", f.repo, "--from", "empty", "--to", f.c2},
				{"delta", "--repo", f.repo, "--from", f.c1, "--to", f.c2, "--disable-bsdiff"},
				{"bundle", "--repo", f.repo, "--from", f.c1, "--to", f.c2, "-o", bundle},
				{"bundle", "--repo", f.repo, "--from", "empty", "--to", f.c2, "-o", bundle},
			} {
				r := runCmd(t, nil, nil, otaBuild, args...)
				accOneLineError(t, r, obj, "corrupt")
				if r.code != 1 {
					t.Errorf("%v: exit %d, want 1", args, r.code)
				}
				if _, err := os.Stat(deltaDir); !os.IsNotExist(err) {
					t.Errorf("%v: %s exists (%v): a delta or superblock was written", args, deltaDir, err)
				}
				if names := dirNames(t, outDir); len(names) != 0 {
					t.Errorf("%v: output directory holds %v", args, names)
				}
				if got := repoState(t, f.repo); got != state {
					t.Errorf("%v: repository changed:\nbefore:\n%s\nafter:\n%s", args, state, got)
				}
			}
		})
	}
}
