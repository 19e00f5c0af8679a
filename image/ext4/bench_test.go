package ext4

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// genTree writes files regular files in directories of 100, sizes 0 to
// ~8 KiB, every 50th file hardlinked and every 100th a symlink, and
// returns the relative paths of all entries.
func genTree(tb testing.TB, dir string, files int) []string {
	tb.Helper()
	var paths []string
	data := make([]byte, 8200)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	for i := range files {
		d := fmt.Sprintf("usr/share/d%03d/s%02d", i/1000, i/100%10)
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				tb.Fatal(err)
			}
			paths = append(paths, d)
			if i%1000 == 0 {
				paths = append(paths, filepath.Dir(d))
			}
		}
		p := fmt.Sprintf("%s/file-%05d.dat", d, i)
		switch {
		case i%100 == 99:
			if err := os.Symlink("../s00/file-00000.dat", filepath.Join(dir, p)); err != nil {
				tb.Fatal(err)
			}
		case i%50 == 49:
			if err := os.Link(filepath.Join(dir, d, fmt.Sprintf("file-%05d.dat", i-1)), filepath.Join(dir, p)); err != nil {
				tb.Fatal(err)
			}
		default:
			if err := os.WriteFile(filepath.Join(dir, p), data[:(i*131)%len(data)], 0o644); err != nil {
				tb.Fatal(err)
			}
		}
		paths = append(paths, p)
	}
	paths = append(paths, "", "usr", "usr/share")
	return paths
}

// BenchmarkCreate builds a 20k-file tree once and times Create on it:
// "plain" records what the staging tree has (the fix-up is near empty when
// run as root), "owners" gives every entry a different owner (what an
// unprivileged build needs: uid and gid commands for each inode), and
// "owners+selinux" adds a security.selinux label to each inode.
func BenchmarkCreate(b *testing.B) {
	requireTools(b)
	base := b.TempDir()
	staging := filepath.Join(base, "staging")
	paths := genTree(b, staging, 20000)
	minSize, err := MinSize(staging)
	if err != nil {
		b.Fatal(err)
	}
	size := (minSize*5/4 + mib - 1) / mib * mib
	b.Logf("%d paths, MinSize %d MiB, fs %d MiB", len(paths), minSize/mib, size/mib)
	label := []ostree.Xattr{{Name: "security.selinux", Value: []byte("system_u:object_r:usr_t:s0\x00")}}
	for _, c := range []struct {
		name  string
		attrs func(p string) ostree.DirMeta
	}{
		{"plain", nil},
		{"owners", func(string) ostree.DirMeta { return ostree.DirMeta{UID: 1234, GID: 1234, Mode: 0o644} }},
		{"owners+selinux", func(string) ostree.DirMeta {
			return ostree.DirMeta{UID: 1234, GID: 1234, Mode: 0o644, Xattrs: label}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var attrs map[string]ostree.DirMeta
			if c.attrs != nil {
				attrs = map[string]ostree.DirMeta{}
				for _, p := range paths {
					fi, err := os.Lstat(filepath.Join(staging, p))
					if err != nil {
						b.Fatal(err)
					}
					m := c.attrs(p)
					m.Mode = uint32(fi.Mode().Perm())
					attrs[p] = m
				}
			}
			img := filepath.Join(base, "img")
			var total int
			for b.Loop() {
				makeImage(b, img, 0, size, 0)
				err := Create(context.Background(), img, 0, size, staging, attrs, Options{
					Progress: func(_, t int) { total = t },
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total), "cmds/op")
		})
	}
}
