package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// writerCase is a tree the writer tests write.
type writerCase struct {
	name  string
	size  int64 // 0: WriteSize
	big   bool  // skipped with -short, not written twice
	root  func() *Inode
	check func(t *testing.T, img string, root *Inode)
}

// writerCases are the trees TestWriter and TestWriterNoPunch write.
func writerCases() []writerCase {
	data4096 := make([]byte, 4096)
	pattern(data4096, 0, 1)
	return []writerCase{
		{name: "empty", root: func() *Inode { return directory(0o755) }},
		{name: "files", size: 64 << 20, root: func() *Inode {
			return directory(0o755,
				ent("a", directory(0o755,
					ent("hello", file(0o644, []byte("hello, world\n"))),
					ent("b", directory(0o700, ent("c", file(0o600, []byte("c")))))),
				),
				ent("empty", file(0o644, nil)),
				ent("one", file(0o644, []byte{0})),
				ent("block", file(0o644, data4096)),
				ent("block+1", patFile(0o644, 4097, 2)),
				ent("mode0", file(0, []byte("x"))),
			)
		}, check: func(t *testing.T, img string, root *Inode) {
			var st syscall.Stat_t
			if err := syscall.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			if alloc := st.Blocks * 512; alloc > testOffset+testTail+2<<20 {
				t.Errorf("image not sparse: %d bytes allocated", alloc)
			}
		}},
		{name: "lost+found given", root: func() *Inode {
			return directory(0o755, ent("etc", directory(0o755)), ent("lost+found", directory(0o700)), ent("z", file(0o644, []byte("z"))))
		}},
		{name: "large", big: true, root: func() *Inode {
			return directory(0o755, ent("first", patFile(0o644, 100<<20, 3)), ent("big", patFile(0o644, 400<<20+123, 4)))
		}, check: func(t *testing.T, img string, root *Inode) {
			if out := dbg(t, img, testOffset, "stat /big"); !strings.Contains(out, "ETB0") {
				t.Errorf("/big has no extent tree block:\n%s", out)
			}
		}},
		{name: "mixed", big: true, root: func() *Inode {
			r, _ := benchTree()
			return r
		}},
		{name: "bigdir", root: func() *Inode {
			var ents []DirEntry
			for i := range 5000 {
				ents = append(ents, ent(fmt.Sprintf("file-with-a-longer-name-%05d", i), file(0o644, []byte(strconv.Itoa(i)))))
			}
			return directory(0o755, ent("d", directory(0o755, ents...)))
		}, check: func(t *testing.T, img string, root *Inode) {
			if st := stat(t, img, testOffset, "/d"); st.links != 2 {
				t.Errorf("/d has %d links", st.links)
			}
			if out := dbg(t, img, testOffset, "stat /d"); !strings.Contains(out, "Size: 204800") {
				t.Errorf("/d is not 50 blocks:\n%s", out)
			}
			got := dump(t, img, testOffset, "/d/file-with-a-longer-name-04999")
			if string(got) != "4999" {
				t.Errorf("last file: %q", got)
			}
		}},
		{name: "deep", root: func() *Inode {
			d := directory(0o755, ent("leaf", file(0o644, []byte("deep"))))
			for i := range 100 {
				d = directory(0o755, ent(fmt.Sprintf("d%d", i), d), ent("f", file(0o644, []byte{byte(i)})))
			}
			return d
		}},
		{name: "hardlinks", root: func() *Inode {
			f := file(0o644, []byte("linked"))
			g := file(0o4755, []byte("two"))
			return directory(0o755, ent("a", f), ent("sub", directory(0o755, ent("b", f), ent("g1", g))), ent("c", f), ent("g2", g))
		}},
		{name: "symlinks", root: func() *Inode {
			return directory(0o755,
				ent("s59", symlink(strings.Repeat("a", 59))),
				ent("s60", symlink(strings.Repeat("b", 60))),
				ent("s200", symlink(strings.Repeat("c/", 100))),
				ent("s1", symlink("x")),
				ent("s4095", symlink(strings.Repeat("d", 4095))),
			)
		}},
		{name: "modes", root: func() *Inode {
			r := directory(0o755,
				ent("suid", file(0o4755, []byte("#!/bin/sh\n"))),
				ent("sgid", directory(0o2775)),
				ent("tmp", directory(0o1777)),
				ent("owned", &Inode{Mode: ModeRegular | 0o640, UID: 100000, GID: 2000000000, Mtime: 1 << 33, Size: 3, Data: func(w io.Writer) error {
					_, err := w.Write([]byte("abc"))
					return err
				}}),
				ent("link", &Inode{Mode: ModeSymlink | 0o777, Target: "owned", UID: 70000, GID: 70001}),
				ent("pre1970", &Inode{Mode: ModeRegular | 0o644, Mtime: -1000}),
			)
			r.UID, r.GID = 1, 2
			return r
		}},
		{name: "xattrs", root: func() *Inode {
			capv := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			f := file(0o755, []byte("ping"))
			f.Xattrs = []Xattr{{Name: "security.capability", Value: capv}, {Name: "user.x", Value: []byte("y")}}
			big := file(0o644, []byte("big"))
			big.Xattrs = []Xattr{
				{Name: "user.one", Value: bytes.Repeat([]byte{1}, 100)},
				{Name: "user.two", Value: bytes.Repeat([]byte{2}, 100)},
				{Name: "trusted.three", Value: bytes.Repeat([]byte{3}, 100)},
				{Name: "user.empty", Value: []byte{}},
			}
			d := directory(0o755, ent("f", file(0o644, nil)))
			d.Xattrs = []Xattr{
				{Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0\x00")},
				{Name: "system.posix_acl_access", Value: acl([3]uint32{1, 7, 0xffffffff}, [3]uint32{2, 5, 1000}, [3]uint32{4, 5, 0xffffffff}, [3]uint32{0x10, 5, 0xffffffff}, [3]uint32{0x20, 5, 0xffffffff})},
				{Name: "system.posix_acl_default", Value: acl([3]uint32{1, 7, 0xffffffff}, [3]uint32{4, 5, 0xffffffff}, [3]uint32{0x20, 0, 0xffffffff})},
			}
			l := symlink("ping")
			l.Xattrs = []Xattr{{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")}}
			sl := symlink(strings.Repeat("p", 100))
			sl.Xattrs = []Xattr{{Name: "security.selinux", Value: bytes.Repeat([]byte("s"), 200)}}
			return directory(0o755, ent("ping", f), ent("big", big), ent("etc", d), ent("pinglink", l), ent("slowlink", sl))
		}},
	}
}

// TestWriter writes each case into a region of garbage, checks it with
// e2fsck, debugfs and, as root, a mount, and checks that a second write
// gives the same bytes.
func TestWriter(t *testing.T) {
	requireTools(t)
	for _, c := range writerCases() {
		t.Run(c.name, func(t *testing.T) {
			if c.big && testing.Short() {
				t.Skip("large")
			}
			root := c.root()
			size := c.size
			if size == 0 {
				size = WriteSize(root)
				t.Logf("WriteSize: %d", size)
			}
			dir := t.TempDir()
			img := filepath.Join(dir, "img")
			if err := writeTestImage(t, img, size, root, WriterOptions{Label: "test"}); err != nil {
				t.Fatal(err)
			}
			fsck(t, img, testOffset)
			checkDebugfs(t, img, root, 40)
			if c.check != nil {
				c.check(t, img, root)
			}
			checkMounted(t, img, root)
			if !c.big {
				img2 := filepath.Join(dir, "img2")
				if err := writeTestImage(t, img2, size, root, WriterOptions{Label: "test", Workers: 1}); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(readRegion(t, img, testOffset, size), readRegion(t, img2, testOffset, size)) {
					t.Error("two writes of the same tree differ")
				}
			}
		})
	}
}

// TestWriterNoPunch writes into a region full of garbage without punching a
// hole first, as on files that do not support it.
func TestWriterNoPunch(t *testing.T) {
	requireTools(t)
	noPunch = true
	defer func() { noPunch = false }()
	for _, c := range writerCases() {
		if c.big {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			root := c.root()
			img := filepath.Join(t.TempDir(), "img")
			if err := writeTestImage(t, img, WriteSize(root)+32<<20, root, WriterOptions{}); err != nil {
				t.Fatal(err)
			}
			fsck(t, img, testOffset)
			checkMounted(t, img, root)
		})
	}
}

// TestWriterErrors checks that invalid trees, failing Data functions,
// small regions and canceled contexts make Write fail.
func TestWriterErrors(t *testing.T) {
	requireTools(t)
	boom := errors.New("boom")
	errFile := &Inode{Mode: ModeRegular | 0o644, Size: 10000, Data: func(w io.Writer) error {
		w.Write(make([]byte, 5000))
		return boom
	}}
	short := &Inode{Mode: ModeRegular | 0o644, Size: 10, Data: func(w io.Writer) error {
		_, err := w.Write([]byte("short"))
		return err
	}}
	long := &Inode{Mode: ModeRegular | 0o644, Size: 4, Data: func(w io.Writer) error {
		_, err := w.Write([]byte("too long"))
		return err
	}}
	sub := directory(0o755)
	for _, c := range []struct {
		name string
		root *Inode
		size int64
		want error
	}{
		{"data error", directory(0o755, ent("ok", patFile(0o644, 1<<20, 0)), ent("bad", errFile)), 0, boom},
		{"short", directory(0o755, ent("short", short)), 0, nil},
		{"long", directory(0o755, ent("long", long)), 0, nil},
		{"too small", directory(0o755, ent("f", patFile(0o644, 20<<20, 0))), 8 << 20, ErrTooSmall},
		{"tiny", directory(0o755), 1 << 20, ErrTooSmall},
		{"dir twice", directory(0o755, ent("a", sub), ent("b", sub)), 0, nil},
		{"bad name", directory(0o755, ent("a/b", file(0o644, nil))), 0, nil},
		{"no data", directory(0o755, ent("a", &Inode{Mode: ModeRegular | 0o644, Size: 1})), 0, nil},
		{"bad xattr", directory(0o755, ent("a", &Inode{Mode: ModeRegular, Xattrs: []Xattr{{Name: "foo.bar"}}})), 0, nil},
		{"huge xattrs", directory(0o755, ent("a", &Inode{Mode: ModeRegular, Xattrs: []Xattr{{Name: "user.a", Value: make([]byte, 5000)}}})), 0, nil},
		{"root not dir", file(0o644, nil), 0, nil},
		{"bad mode", directory(0o755, ent("a", &Inode{Mode: 0o20644})), 0, nil},
		{"bad symlink", directory(0o755, ent("a", symlink(""))), 0, nil},
		{"dup name", directory(0o755, ent("a", symlink("x")), ent("a", symlink("y"))), 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			size := c.size
			if size == 0 {
				size = 32 << 20
			}
			img := filepath.Join(t.TempDir(), "img")
			err := writeTestImage(t, img, size, c.root, WriterOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
		})
	}
	t.Run("past end", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		makeImage(t, img, 0, 8<<20, 0)
		if err := Write(context.Background(), img, 4096, 8<<20, directory(0o755), WriterOptions{}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		makeImage(t, img, 0, 32<<20, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Write(ctx, img, 0, 32<<20, directory(0o755), WriterOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestWriterOptions checks the label, UUID, workers and progress options.
func TestWriterOptions(t *testing.T) {
	requireTools(t)
	img := filepath.Join(t.TempDir(), "img")
	root := directory(0o755, ent("f", patFile(0o644, 3<<20, 9)), ent("g", patFile(0o644, 5000, 1)))
	var calls int
	var last int64
	opts := WriterOptions{Label: "rootfs", UUID: "2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b", Workers: 3, Progress: func(done, total int64) {
		calls++
		if done < last || total != 3<<20+5000 {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}}
	size := WriteSize(root)
	if size%(1<<20) != 0 || size < 4<<20 {
		t.Fatalf("WriteSize %d", size)
	}
	if err := writeTestImage(t, img, size, root, opts); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || last != 3<<20+5000 {
		t.Errorf("progress: %d calls, last %d", calls, last)
	}
	fsck(t, img, testOffset)
	out := dbg(t, img, testOffset, "stats")
	for _, want := range []string{"Filesystem volume name:   rootfs", "Filesystem UUID:          2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lack %q:\n%s", want, out)
		}
	}
	if err := Write(context.Background(), img, testOffset, size, root, WriterOptions{UUID: "nope"}); err == nil {
		t.Error("bad UUID accepted")
	}
	if err := Write(context.Background(), img, testOffset, size, root, WriterOptions{Label: strings.Repeat("l", 17)}); err == nil {
		t.Error("long label accepted")
	}
}

// TestWriterManyGroups writes a small tree into a 17 GiB filesystem: 136
// block groups, two group descriptor blocks.
func TestWriterManyGroups(t *testing.T) {
	requireTools(t)
	if testing.Short() {
		t.Skip("large")
	}
	root := writerCases()[1].root()
	img := filepath.Join(t.TempDir(), "img")
	const size = 17 << 30
	makeImage(t, img, testOffset, size, testTail)
	if err := Write(context.Background(), img, testOffset, size, root, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	checkOutside(t, img, testOffset, size, testTail)
	fsck(t, img, testOffset)
	checkDebugfs(t, img, root, 40)
	checkMounted(t, img, root)
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 16<<20 {
		t.Errorf("%d bytes allocated", st.Blocks*512)
	}
}
