package ext4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/otakit/ota/internal/ostree"
	"golang.org/x/sys/unix"
)

// pattern fills b with the bytes of a pattern stream at offset off.
func pattern(b []byte, off int64, seed byte) {
	for i := range b {
		o := off + int64(i)
		b[i] = byte(o*31) ^ byte(o>>12) ^ seed
	}
}

func wFile(mode uint32, data []byte) *Inode {
	return &Inode{Mode: sIFREG | mode, Size: int64(len(data)), Mtime: 1700000000, Data: func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}}
}

// patFile is a file of size bytes of pattern, written in odd-sized chunks.
func patFile(mode uint32, size int64, seed byte) *Inode {
	return &Inode{Mode: sIFREG | mode, Size: size, Mtime: 1600000000, Data: func(w io.Writer) error {
		buf := make([]byte, 65521)
		for off := int64(0); off < size; {
			n := min(int64(len(buf)), size-off)
			pattern(buf[:n], off, seed)
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			off += n
		}
		return nil
	}}
}

func wDir(mode uint32, ents ...DirEntry) *Inode {
	return &Inode{Mode: sIFDIR | mode, Mtime: 1500000000, Entries: ents}
}

func wSym(target string) *Inode {
	return &Inode{Mode: sIFLNK | 0o777, Target: target, Mtime: 1400000000}
}

func ent(name string, in *Inode) DirEntry { return DirEntry{Name: name, Inode: in} }

// wPath is one name of an inode in the input tree.
type wPath struct {
	path string // relative, "" for the root
	in   *Inode
}

// walkInput lists the tree breadth first.
func walkInput(root *Inode) []wPath {
	out := []wPath{{"", root}}
	for i := 0; i < len(out); i++ {
		for _, e := range out[i].in.Entries {
			p := e.Name
			if out[i].path != "" {
				p = out[i].path + "/" + e.Name
			}
			out = append(out, wPath{p, e.Inode})
		}
	}
	return out
}

func wantLinks(root *Inode, in *Inode) int {
	if in.Mode&sIFMT == sIFDIR {
		n := 2
		for _, e := range in.Entries {
			if e.Inode.Mode&sIFMT == sIFDIR {
				n++
			}
		}
		if in == root {
			hasLost := false
			for _, e := range in.Entries {
				hasLost = hasLost || e.Name == "lost+found"
			}
			if !hasLost {
				n++
			}
		}
		return n
	}
	if linkCache.root != root {
		linkCache.root, linkCache.n = root, map[*Inode]int{}
		for _, p := range walkInput(root) {
			linkCache.n[p.in]++
		}
	}
	return linkCache.n[in]
}

// linkCache holds the link counts of the last tree wantLinks saw.
var linkCache struct {
	root *Inode
	n    map[*Inode]int
}

func dataSum(t testing.TB, in *Inode) [32]byte {
	t.Helper()
	h := sha256.New()
	if in.Size > 0 {
		if err := in.Data(h); err != nil {
			t.Fatal(err)
		}
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

const (
	wOffset = 1<<20 + 512
	wTail   = 64 << 10
)

// writeTestImage makes an image with patterns around and garbage in the
// region, writes root into it and checks the patterns.
func writeTestImage(t testing.TB, img string, size int64, root *Inode, opts WriterOptions) error {
	t.Helper()
	makeImageFill(t, img, wOffset, size, wTail, true)
	err := Write(context.Background(), img, wOffset, size, root, opts)
	checkOutside(t, img, wOffset, size, wTail)
	return err
}

// checkOutside checks the patterns around the region without reading it.
func checkOutside(t testing.TB, img string, offset, size, tail int64) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != offset+size+tail {
		t.Fatalf("image size changed: %d, want %d", fi.Size(), offset+size+tail)
	}
	before := make([]byte, offset)
	after := make([]byte, tail)
	if _, err := f.ReadAt(before, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(after, offset+size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, bytes.Repeat([]byte{padBefore}, int(offset))) {
		t.Fatal("bytes before the region changed")
	}
	if !bytes.Equal(after, bytes.Repeat([]byte{padAfter}, int(tail))) {
		t.Fatal("bytes after the region changed")
	}
}

func readRegion(t testing.TB, img string, offset, size int64) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatal(err)
	}
	return b
}

func debugfsType(in *Inode) string {
	switch in.Mode & sIFMT {
	case sIFDIR:
		return "directory"
	case sIFLNK:
		return "symlink"
	}
	return "regular"
}

// checkDebugfs compares the first max paths of the tree with what debugfs
// reports.
func checkDebugfs(t *testing.T, img string, root *Inode, maxPaths int) {
	t.Helper()
	for i, p := range walkInput(root) {
		if i >= maxPaths {
			break
		}
		in := p.in
		st := stat(t, img, wOffset, "/"+p.path)
		if st.typ != debugfsType(in) || st.mode != in.Mode&0o7777 || st.uid != in.UID || st.gid != in.GID || st.links != wantLinks(root, in) {
			t.Errorf("/%s: debugfs says %+v, want type %s mode %#o uid %d gid %d links %d", p.path, st, debugfsType(in), in.Mode&0o7777, in.UID, in.GID, wantLinks(root, in))
		}
		if in.Mode&sIFMT == sIFREG && in.Size <= 1<<20 {
			got := dump(t, img, wOffset, "/"+p.path)
			if sha256.Sum256(got) != dataSum(t, in) || int64(len(got)) != in.Size {
				t.Errorf("/%s: content differs (%d bytes, want %d)", p.path, len(got), in.Size)
			}
		}
		for _, x := range in.Xattrs {
			if strings.HasPrefix(x.Name, "system.") {
				continue // debugfs shows ACLs converted
			}
			v, ok := eaGet(t, img, wOffset, "/"+p.path, x.Name)
			if !ok || !bytes.Equal(v, x.Value) {
				t.Errorf("/%s: xattr %s = %q, %v; want %q", p.path, x.Name, v, ok, x.Value)
			}
		}
	}
}

var mountBroken bool

// checkMounted mounts the filesystem read-only, if permitted, and compares
// the whole tree with the input.
func checkMounted(t *testing.T, img string, root *Inode) {
	t.Helper()
	if os.Geteuid() != 0 || mountBroken {
		return
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "ext4", "-o", "ro,loop,offset="+strconv.Itoa(wOffset), img, dir).CombinedOutput()
	if err != nil {
		t.Logf("mount not possible, skipping the mounted comparison: %v: %s", err, out)
		mountBroken = true
		return
	}
	t.Log("mounted, comparing the tree")
	defer func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	}()
	for _, p := range walkInput(root) {
		fp := filepath.Join(dir, p.path)
		in := p.in
		var st syscall.Stat_t
		if err := syscall.Lstat(fp, &st); err != nil {
			t.Errorf("%s: %v", p.path, err)
			continue
		}
		if st.Mode != in.Mode || st.Uid != in.UID || st.Gid != in.GID || int(st.Nlink) != wantLinks(root, in) || st.Mtim.Sec != in.Mtime {
			t.Errorf("/%s: mode %#o uid %d gid %d nlink %d mtime %d; want %#o %d %d %d %d", p.path, st.Mode, st.Uid, st.Gid, st.Nlink, st.Mtim.Sec,
				in.Mode, in.UID, in.GID, wantLinks(root, in), in.Mtime)
		}
		switch in.Mode & sIFMT {
		case sIFREG:
			f, err := os.Open(fp)
			if err != nil {
				t.Error(err)
				continue
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			var s [32]byte
			h.Sum(s[:0])
			if err != nil || n != in.Size || s != dataSum(t, in) {
				t.Errorf("/%s: content differs (%d bytes, want %d, err %v)", p.path, n, in.Size, err)
			}
		case sIFLNK:
			if got, err := os.Readlink(fp); err != nil || got != in.Target {
				t.Errorf("/%s: readlink %q, %v; want %q", p.path, got, err, in.Target)
			}
		case sIFDIR:
			des, err := os.ReadDir(fp)
			if err != nil {
				t.Error(err)
				continue
			}
			want := map[string]bool{}
			for _, e := range in.Entries {
				want[e.Name] = true
			}
			if in == root {
				want["lost+found"] = true
			}
			if len(des) != len(want) {
				t.Errorf("/%s: %d entries, want %d", p.path, len(des), len(want))
			}
			for _, d := range des {
				if !want[d.Name()] {
					t.Errorf("/%s: unexpected entry %s", p.path, d.Name())
				}
			}
		}
		for _, x := range in.Xattrs {
			buf := make([]byte, 65536)
			n, err := unix.Lgetxattr(fp, x.Name, buf)
			if err != nil || !bytes.Equal(buf[:n], x.Value) {
				t.Errorf("/%s: getxattr %s = %q, %v; want %q", p.path, x.Name, buf[:max(n, 0)], err, x.Value)
			}
		}
	}
}

func acl(entries ...[3]uint32) []byte {
	b := []byte{2, 0, 0, 0}
	for _, e := range entries {
		b = append(b, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8), byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	return b
}

type writerCase struct {
	name  string
	size  int64 // 0: WriteSize
	big   bool  // skipped with -short, not written twice
	root  func() *Inode
	check func(t *testing.T, img string, root *Inode)
}

func writerCases() []writerCase {
	data4096 := make([]byte, 4096)
	pattern(data4096, 0, 1)
	return []writerCase{
		{name: "empty", root: func() *Inode { return wDir(0o755) }},
		{name: "files", size: 64 << 20, root: func() *Inode {
			return wDir(0o755,
				ent("a", wDir(0o755,
					ent("hello", wFile(0o644, []byte("hello, world\n"))),
					ent("b", wDir(0o700, ent("c", wFile(0o600, []byte("c")))))),
				),
				ent("empty", wFile(0o644, nil)),
				ent("one", wFile(0o644, []byte{0})),
				ent("block", wFile(0o644, data4096)),
				ent("block+1", patFile(0o644, 4097, 2)),
				ent("mode0", wFile(0, []byte("x"))),
			)
		}, check: func(t *testing.T, img string, root *Inode) {
			var st syscall.Stat_t
			if err := syscall.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			if alloc := st.Blocks * 512; alloc > wOffset+wTail+2<<20 {
				t.Errorf("image not sparse: %d bytes allocated", alloc)
			}
		}},
		{name: "lost+found given", root: func() *Inode {
			return wDir(0o755, ent("etc", wDir(0o755)), ent("lost+found", wDir(0o700)), ent("z", wFile(0o644, []byte("z"))))
		}},
		{name: "large", big: true, root: func() *Inode {
			return wDir(0o755, ent("first", patFile(0o644, 100<<20, 3)), ent("big", patFile(0o644, 400<<20+123, 4)))
		}, check: func(t *testing.T, img string, root *Inode) {
			if out := dbg(t, img, wOffset, "stat /big"); !strings.Contains(out, "ETB0") {
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
				ents = append(ents, ent(fmt.Sprintf("file-with-a-longer-name-%05d", i), wFile(0o644, []byte(strconv.Itoa(i)))))
			}
			return wDir(0o755, ent("d", wDir(0o755, ents...)))
		}, check: func(t *testing.T, img string, root *Inode) {
			if st := stat(t, img, wOffset, "/d"); st.links != 2 {
				t.Errorf("/d has %d links", st.links)
			}
			if out := dbg(t, img, wOffset, "stat /d"); !strings.Contains(out, "Size: 204800") {
				t.Errorf("/d is not 50 blocks:\n%s", out)
			}
			got := dump(t, img, wOffset, "/d/file-with-a-longer-name-04999")
			if string(got) != "4999" {
				t.Errorf("last file: %q", got)
			}
		}},
		{name: "deep", root: func() *Inode {
			d := wDir(0o755, ent("leaf", wFile(0o644, []byte("deep"))))
			for i := range 100 {
				d = wDir(0o755, ent(fmt.Sprintf("d%d", i), d), ent("f", wFile(0o644, []byte{byte(i)})))
			}
			return d
		}},
		{name: "hardlinks", root: func() *Inode {
			f := wFile(0o644, []byte("linked"))
			g := wFile(0o4755, []byte("two"))
			return wDir(0o755, ent("a", f), ent("sub", wDir(0o755, ent("b", f), ent("g1", g))), ent("c", f), ent("g2", g))
		}},
		{name: "symlinks", root: func() *Inode {
			return wDir(0o755,
				ent("s59", wSym(strings.Repeat("a", 59))),
				ent("s60", wSym(strings.Repeat("b", 60))),
				ent("s200", wSym(strings.Repeat("c/", 100))),
				ent("s1", wSym("x")),
				ent("s4095", wSym(strings.Repeat("d", 4095))),
			)
		}},
		{name: "modes", root: func() *Inode {
			r := wDir(0o755,
				ent("suid", wFile(0o4755, []byte("#!/bin/sh\n"))),
				ent("sgid", wDir(0o2775)),
				ent("tmp", wDir(0o1777)),
				ent("owned", &Inode{Mode: sIFREG | 0o640, UID: 100000, GID: 2000000000, Mtime: 1 << 33, Size: 3, Data: func(w io.Writer) error {
					_, err := w.Write([]byte("abc"))
					return err
				}}),
				ent("link", &Inode{Mode: sIFLNK | 0o777, Target: "owned", UID: 70000, GID: 70001}),
				ent("pre1970", &Inode{Mode: sIFREG | 0o644, Mtime: -1000}),
			)
			r.UID, r.GID = 1, 2
			return r
		}},
		{name: "xattrs", root: func() *Inode {
			capv := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			f := wFile(0o755, []byte("ping"))
			f.Xattrs = []ostree.Xattr{{Name: "security.capability", Value: capv}, {Name: "user.x", Value: []byte("y")}}
			big := wFile(0o644, []byte("big"))
			big.Xattrs = []ostree.Xattr{
				{Name: "user.one", Value: bytes.Repeat([]byte{1}, 100)},
				{Name: "user.two", Value: bytes.Repeat([]byte{2}, 100)},
				{Name: "trusted.three", Value: bytes.Repeat([]byte{3}, 100)},
				{Name: "user.empty", Value: []byte{}},
			}
			d := wDir(0o755, ent("f", wFile(0o644, nil)))
			d.Xattrs = []ostree.Xattr{
				{Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0\x00")},
				{Name: "system.posix_acl_access", Value: acl([3]uint32{1, 7, 0xffffffff}, [3]uint32{2, 5, 1000}, [3]uint32{4, 5, 0xffffffff}, [3]uint32{0x10, 5, 0xffffffff}, [3]uint32{0x20, 5, 0xffffffff})},
				{Name: "system.posix_acl_default", Value: acl([3]uint32{1, 7, 0xffffffff}, [3]uint32{4, 5, 0xffffffff}, [3]uint32{0x20, 0, 0xffffffff})},
			}
			l := wSym("ping")
			l.Xattrs = []ostree.Xattr{{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")}}
			sl := wSym(strings.Repeat("p", 100))
			sl.Xattrs = []ostree.Xattr{{Name: "security.selinux", Value: bytes.Repeat([]byte("s"), 200)}}
			return wDir(0o755, ent("ping", f), ent("big", big), ent("etc", d), ent("pinglink", l), ent("slowlink", sl))
		}},
	}
}

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
			fsck(t, img, wOffset)
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
				if !bytes.Equal(readRegion(t, img, wOffset, size), readRegion(t, img2, wOffset, size)) {
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
			fsck(t, img, wOffset)
			checkMounted(t, img, root)
		})
	}
}

func TestWriterErrors(t *testing.T) {
	requireTools(t)
	boom := errors.New("boom")
	errFile := &Inode{Mode: sIFREG | 0o644, Size: 10000, Data: func(w io.Writer) error {
		w.Write(make([]byte, 5000))
		return boom
	}}
	short := &Inode{Mode: sIFREG | 0o644, Size: 10, Data: func(w io.Writer) error {
		_, err := w.Write([]byte("short"))
		return err
	}}
	long := &Inode{Mode: sIFREG | 0o644, Size: 4, Data: func(w io.Writer) error {
		_, err := w.Write([]byte("too long"))
		return err
	}}
	sub := wDir(0o755)
	for _, c := range []struct {
		name string
		root *Inode
		size int64
		want error
	}{
		{"data error", wDir(0o755, ent("ok", patFile(0o644, 1<<20, 0)), ent("bad", errFile)), 0, boom},
		{"short", wDir(0o755, ent("short", short)), 0, nil},
		{"long", wDir(0o755, ent("long", long)), 0, nil},
		{"too small", wDir(0o755, ent("f", patFile(0o644, 20<<20, 0))), 8 << 20, ErrTooSmall},
		{"tiny", wDir(0o755), 1 << 20, ErrTooSmall},
		{"dir twice", wDir(0o755, ent("a", sub), ent("b", sub)), 0, nil},
		{"bad name", wDir(0o755, ent("a/b", wFile(0o644, nil))), 0, nil},
		{"no data", wDir(0o755, ent("a", &Inode{Mode: sIFREG | 0o644, Size: 1})), 0, nil},
		{"bad xattr", wDir(0o755, ent("a", &Inode{Mode: sIFREG, Xattrs: []ostree.Xattr{{Name: "foo.bar"}}})), 0, nil},
		{"huge xattrs", wDir(0o755, ent("a", &Inode{Mode: sIFREG, Xattrs: []ostree.Xattr{{Name: "user.a", Value: make([]byte, 5000)}}})), 0, nil},
		{"root not dir", wFile(0o644, nil), 0, nil},
		{"bad mode", wDir(0o755, ent("a", &Inode{Mode: 0o20644})), 0, nil},
		{"bad symlink", wDir(0o755, ent("a", wSym(""))), 0, nil},
		{"dup name", wDir(0o755, ent("a", wSym("x")), ent("a", wSym("y"))), 0, nil},
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
		if err := Write(context.Background(), img, 4096, 8<<20, wDir(0o755), WriterOptions{}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "img")
		makeImage(t, img, 0, 32<<20, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Write(ctx, img, 0, 32<<20, wDir(0o755), WriterOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestWriterOptions(t *testing.T) {
	requireTools(t)
	img := filepath.Join(t.TempDir(), "img")
	root := wDir(0o755, ent("f", patFile(0o644, 3<<20, 9)), ent("g", patFile(0o644, 5000, 1)))
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
	fsck(t, img, wOffset)
	out := dbg(t, img, wOffset, "stats")
	for _, want := range []string{"Filesystem volume name:   rootfs", "Filesystem UUID:          2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lack %q:\n%s", want, out)
		}
	}
	if err := Write(context.Background(), img, wOffset, size, root, WriterOptions{UUID: "nope"}); err == nil {
		t.Error("bad UUID accepted")
	}
	if err := Write(context.Background(), img, wOffset, size, root, WriterOptions{Label: strings.Repeat("l", 17)}); err == nil {
		t.Error("long label accepted")
	}
}

// benchTree is 10k files of mixed sizes, about 400 MB, in directories of
// 100: ten of 20 MiB, ninety of 1 MiB and the rest up to 24 KB.
func benchTree() (*Inode, int64) {
	pat := make([]byte, 64<<10)
	pattern(pat, 0, 5)
	var total int64
	var dirs []DirEntry
	for d := range 100 {
		var ents []DirEntry
		for j := range 100 {
			i := d*100 + j
			size := int64(i*7919) % 24000
			switch {
			case i%1000 == 0:
				size = 20 << 20
			case i%100 == 0:
				size = 1 << 20
			}
			total += size
			in := &Inode{Mode: sIFREG | 0o644, Size: size, Data: func(w io.Writer) error {
				for left := size; left > 0; {
					n := min(left, int64(len(pat)-i%512))
					if _, err := w.Write(pat[i%512 : int64(i%512)+n]); err != nil {
						return err
					}
					left -= n
				}
				return nil
			}}
			ents = append(ents, ent(fmt.Sprintf("file-%05d", i), in))
		}
		dirs = append(dirs, ent(fmt.Sprintf("dir-%03d", d), wDir(0o755, ents...)))
	}
	return wDir(0o755, ent("usr", wDir(0o755, dirs...))), total
}

// materialise writes the tree under dir.
func materialise(tb testing.TB, dir string, in *Inode) {
	for _, e := range in.Entries {
		p := filepath.Join(dir, e.Name)
		switch e.Inode.Mode & sIFMT {
		case sIFDIR:
			if err := os.Mkdir(p, 0o755); err != nil {
				tb.Fatal(err)
			}
			materialise(tb, p, e.Inode)
		case sIFREG:
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
		blocks := strconv.FormatInt(size/wBlock, 10)
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
	makeImage(t, img, wOffset, size, wTail)
	if err := Write(context.Background(), img, wOffset, size, root, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	checkOutside(t, img, wOffset, size, wTail)
	fsck(t, img, wOffset)
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
