package ext4

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fitsAt reports whether mke2fs, run as Create runs it, fits dir into
// blocks blocks.
func fitsAt(t testing.TB, dir, img string, blocks int64, inodes int64) bool {
	t.Helper()
	if err := os.Truncate(img, blocks*blockSize); err != nil {
		t.Fatal(err)
	}
	out, err := run(context.Background(), nil, tool(t, "mke2fs"), "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
		"-N", strconv.FormatInt(inodeCount(blocks, inodes), 10), "-d", dir, img, strconv.FormatInt(blocks, 10))
	if err != nil && !tooSmallRE(out) {
		t.Logf("mke2fs at %d blocks: %s", blocks, out)
	}
	return err == nil
}

// trueMin finds the smallest size in MiB at which mke2fs fits dir.
func trueMin(t testing.TB, dir string, hi int64) int64 {
	t.Helper()
	ents, err := scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	used := measure(ents, nil).inodes
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hi /= mib // fits, as checked by the caller
	lo := hi / 2
	if fitsAt(t, dir, img, lo*mib/blockSize, used) {
		lo = 0
	}
	// Now lo does not fit.
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fitsAt(t, dir, img, mid*mib/blockSize, used) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi * mib
}

func TestMinSize(t *testing.T) {
	requireTools(t)
	write := func(t *testing.T, p string, n int) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{0x42}, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		short bool
		build func(t *testing.T, dir string)
	}{
		{"empty", true, func(t *testing.T, dir string) {}},
		{"small files", true, func(t *testing.T, dir string) {
			for i := range 3000 {
				write(t, filepath.Join(dir, fmt.Sprintf("d%d/f%d", i/300, i)), i%5000)
			}
		}},
		{"empty files and short symlinks", true, func(t *testing.T, dir string) {
			for i := range 5000 {
				d := filepath.Join(dir, "e"+strconv.Itoa(i%4))
				write(t, filepath.Join(d, strconv.Itoa(i)), 0)
				if err := os.Symlink("short", filepath.Join(d, "l"+strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"long symlinks", true, func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "l"), 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 2000 {
				if err := os.Symlink(string(bytes.Repeat([]byte("x/"), 40)), filepath.Join(dir, "l", strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"big file", true, func(t *testing.T, dir string) { write(t, filepath.Join(dir, "big"), 150<<20) }},
		{"hardlinks", true, func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "a/0"), 8<<20)
			for i := 1; i < 20; i++ {
				if err := os.Link(filepath.Join(dir, "a/0"), filepath.Join(dir, "a", strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"sysroot-like 20k", false, func(t *testing.T, dir string) { genTree(t, dir, 20000) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && !c.short {
				t.Skip("slow")
			}
			dir := filepath.Join(t.TempDir(), "tree")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			c.build(t, dir)
			est, err := MinSize(dir)
			if err != nil {
				t.Fatal(err)
			}
			if est%mib != 0 {
				t.Errorf("MinSize %d not a multiple of 1 MiB", est)
			}
			img := filepath.Join(t.TempDir(), "img")
			makeImage(t, img, 0, est, 0)
			if err := Create(context.Background(), img, 0, est, dir, nil, Options{}); err != nil {
				t.Fatalf("Create at MinSize %d: %v", est, err)
			}
			fsck(t, img, 0)
			real := trueMin(t, dir, est)
			t.Logf("MinSize %d MiB, mke2fs needs %d MiB", est/mib, real/mib)
			// Below 8 MiB mke2fs makes no journal; MinSize never goes there.
			base := max(real, 8*mib)
			if limit := base + base*15/100 + 4*mib; est > limit {
				t.Errorf("MinSize %d MiB overestimates %d MiB by more than 15%% + 4 MiB", est/mib, real/mib)
			}
		})
	}
}
