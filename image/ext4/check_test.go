package ext4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The region the tests write filesystems to starts at testOffset, not
// block-aligned, and testTail bytes follow it.
const (
	testOffset = 1<<20 + 512
	testTail   = 64 << 10
)

// writeTestImage makes an image with patterns around and garbage in the
// region, writes root into it and checks the patterns.
func writeTestImage(t testing.TB, img string, size int64, root *Inode, opts WriterOptions) error {
	t.Helper()
	makeImageFill(t, img, testOffset, size, testTail, true)
	err := Write(context.Background(), img, testOffset, size, root, opts)
	checkOutside(t, img, testOffset, size, testTail)
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

// readRegion reads size bytes of img from offset.
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

// debugfsType is the file type debugfs reports for in.
func debugfsType(in *Inode) string {
	switch in.Mode & ModeTypeMask {
	case ModeDir:
		return "directory"
	case ModeSymlink:
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
		st := stat(t, img, testOffset, "/"+p.path)
		if st.typ != debugfsType(in) || st.mode != in.Mode&0o7777 || st.uid != in.UID || st.gid != in.GID || st.links != wantLinks(root, in) {
			t.Errorf("/%s: debugfs says %+v, want type %s mode %#o uid %d gid %d links %d", p.path, st, debugfsType(in), in.Mode&0o7777, in.UID, in.GID, wantLinks(root, in))
		}
		if in.Mode&ModeTypeMask == ModeRegular && in.Size <= 1<<20 {
			got := dump(t, img, testOffset, "/"+p.path)
			if sha256.Sum256(got) != dataSum(t, in) || int64(len(got)) != in.Size {
				t.Errorf("/%s: content differs (%d bytes, want %d)", p.path, len(got), in.Size)
			}
		}
		for _, x := range in.Xattrs {
			if strings.HasPrefix(x.Name, "system.") {
				continue // debugfs shows ACLs converted
			}
			v, ok := eaGet(t, img, testOffset, "/"+p.path, x.Name)
			if !ok || !bytes.Equal(v, x.Value) {
				t.Errorf("/%s: xattr %s = %q, %v; want %q", p.path, x.Name, v, ok, x.Value)
			}
		}
	}
}

// mountBroken is set once mounting failed, so that later tests do not try.
var mountBroken bool

// checkMounted mounts the filesystem read-only, if permitted, and compares
// the whole tree with the input.
func checkMounted(t *testing.T, img string, root *Inode) {
	t.Helper()
	if os.Geteuid() != 0 || mountBroken {
		return
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "ext4", "-o", "ro,loop,offset="+strconv.Itoa(testOffset), img, dir).CombinedOutput()
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
		switch in.Mode & ModeTypeMask {
		case ModeRegular:
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
		case ModeSymlink:
			if got, err := os.Readlink(fp); err != nil || got != in.Target {
				t.Errorf("/%s: readlink %q, %v; want %q", p.path, got, err, in.Target)
			}
		case ModeDir:
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
