package sysroot

import (
	"archive/tar"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/ostree"
)

// TestDeployRefusesCorruptObject flips one byte in the middle of an object of the commit
// (keeping its size) and checks that Deploy fails naming it, with nothing of it in the
// sysroot's repository: every object there is one of the source's, under its own name.
// The symlink left out of a sparse deployment is what an image gets from its header alone.
func TestDeployRefusesCorruptObject(t *testing.T) {
	newFixture(t) // for its tool and root checks
	rng := rand.New(rand.NewPCG(3, 4))
	blob := make([]byte, 64<<10) // random: deflate stores it, so a flipped byte still inflates
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	tree := append(baseTree(string(blob)),
		member{name: "usr/share/app/link", typ: tar.TypeSymlink, body: "../../lib/tools/version-1/bin/the-tool-itself"})
	file := func(p string) func(*ostree.Repo, ostree.Checksum) (ostree.Checksum, ostree.ObjectType) {
		return func(src *ostree.Repo, c ostree.Checksum) (ostree.Checksum, ostree.ObjectType) {
			var obj ostree.Checksum
			err := src.Walk(c, p, false, func(e ostree.TreeEntry) error {
				obj = e.Checksum
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return obj, ostree.ObjFile
		}
	}
	for _, tc := range []struct {
		name   string
		sparse bool
		target func(*ostree.Repo, ostree.Checksum) (ostree.Checksum, ostree.ObjectType)
	}{
		{"file", false, file("/usr/share/app/extra")},
		{"symlink", false, file("/usr/share/app/link")},
		{"symlink left out of a sparse deployment", true, file("/usr/share/app/link")},
		{"root dirmeta", false, func(src *ostree.Repo, c ostree.Checksum) (ostree.Checksum, ostree.ObjectType) {
			cm, _, err := src.ReadCommit(c)
			if err != nil {
				t.Fatal(err)
			}
			return cm.RootMeta, ostree.ObjDirMeta
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ostree.Init(t.TempDir(), ostree.ModeArchive)
			if err != nil {
				t.Fatal(err)
			}
			res, err := commit.Commit(context.Background(), src, tarSource(t, tree), commit.Options{
				Branch: "myos/stable", Bootable: true, Timestamp: time.Unix(1700000000, 0)})
			if err != nil {
				t.Fatal(err)
			}
			obj, typ := tc.target(src, res.Commit)
			p := src.ObjectPath(obj, typ)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x01
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}

			s := newSysrootDir(t)
			opts := Options{OSName: "myos", Bootloader: "uboot", Kargs: []string{"rw"}}
			if tc.sparse {
				opts.Attrs = &Sparse{}
			}
			if err := Init(s, opts); err != nil {
				t.Fatal(err)
			}
			err = Deploy(context.Background(), s, src, res.Commit, opts)
			if err == nil || !strings.Contains(err.Error(), obj.String()) || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("Deploy: %v; want an error saying %s %s is corrupt", err, typ, obj)
			}
			dst, err := ostree.Open(filepath.Join(s, "ostree/repo"))
			if err != nil {
				t.Fatal(err)
			}
			err = dst.WalkObjects(func(c ostree.Checksum, t2 ostree.ObjectType, path string) error {
				if (c == obj && t2 == typ) || !src.HasObject(c, t2) {
					t.Errorf("the sysroot's repository holds %s, not an object of the source", path)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
