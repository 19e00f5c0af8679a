package ext4

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// materialise writes the tree under dir.
func materialise(tb testing.TB, dir string, in *Inode) {
	for _, e := range in.Entries {
		p := filepath.Join(dir, e.Name)
		switch e.Inode.Mode & ModeTypeMask {
		case ModeDir:
			if err := os.Mkdir(p, 0o755); err != nil {
				tb.Fatal(err)
			}
			materialise(tb, p, e.Inode)
		case ModeRegular:
			f, err := os.Create(p)
			if err != nil {
				tb.Fatal(err)
			}
			if e.Inode.Size > 0 {
				if err := e.Inode.Data(f); err != nil {
					tb.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// benchDir is a temporary directory, in memory if /dev/shm exists.
func benchDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "ext4w-bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkWrite writes a 10k-file, 400 MB tree with Write ("Write") and,
// for comparison, with mke2fs -d from the same tree materialised on disk
// ("mke2fs-d"; materialising is not timed).
func BenchmarkWrite(b *testing.B) {
	requireTools(b)
	root, total := benchTree()
	size := WriteSize(root) + 64<<20
	b.Run("Write", func(b *testing.B) {
		img := filepath.Join(benchDir(b), "img")
		makeImage(b, img, 0, size, 0)
		b.SetBytes(total)
		for b.Loop() {
			if err := Write(context.Background(), img, 0, size, root, WriterOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mke2fs-d", func(b *testing.B) {
		d := benchDir(b)
		tree := filepath.Join(d, "tree")
		if err := os.Mkdir(tree, 0o755); err != nil {
			b.Fatal(err)
		}
		materialise(b, tree, root)
		img := filepath.Join(d, "img")
		makeImage(b, img, 0, size, 0)
		mke2fs := tool(b, "mke2fs")
		blocks := strconv.FormatInt(size/blockSize, 10)
		b.SetBytes(total)
		for b.Loop() {
			out, err := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
				"-E", "discard", "-d", tree, img, blocks).CombinedOutput()
			if err != nil {
				b.Fatalf("mke2fs -d: %v\n%s", err, out)
			}
		}
	})
}
