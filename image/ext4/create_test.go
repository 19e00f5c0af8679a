package ext4

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
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

// capValue is a security.capability value (VFS_CAP_REVISION_2,
// cap_net_raw permitted+effective), binary with NUL bytes.
var capValue = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

const longTarget = "usr/lib/" + "a-rather-long-symlink-target-that-does-not-fit-into-the-inode-at-all/x"

// bigData is the contents of the fixture's big.bin.
func bigData() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 300<<10+123)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// buildFixture writes the staging tree the tests check. xattrs reports
// whether dir supports user xattrs (and so has them set).
func buildFixture(t testing.TB, dir string) (xattrs bool) {
	t.Helper()
	mkdir := func(p string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	file := func(p string, data []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"usr/bin", "usr/lib", "home/user", "etc", "sp ace"} {
		mkdir(d, 0o755)
	}
	mkdir("private", 0o755)
	file("usr/bin/su", []byte("#!/bin/sh\n"), 0o755)
	file("home/user/file", []byte("mine\n"), 0o644)
	file("home/user/high", []byte("high ids\n"), 0o644)
	file("etc/shadowish", []byte("secret\n"), 0o644)
	file("etc/userx", []byte("x\n"), 0o644)
	file("etc/userx2", []byte("x2\n"), 0o644)
	file("usr/lib/a", []byte("linked\n"), 0o644)
	if err := os.Link(filepath.Join(dir, "usr/lib/a"), filepath.Join(dir, "usr/lib/b")); err != nil {
		t.Fatal(err)
	}
	file("unlisted", []byte("u\n"), 0o751)
	file("zero", []byte("z\n"), 0o600)
	file(`sp ace/q"uote`, []byte("q\n"), 0o644)
	file("big.bin", bigData(), 0o644)
	if err := os.Symlink("usr/bin/su", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(longTarget, filepath.Join(dir, "longlink")); err != nil {
		t.Fatal(err)
	}
	err := unix.Lsetxattr(filepath.Join(dir, "unlisted"), "user.stale", []byte("old"), 0)
	if errors.Is(err, unix.ENOTSUP) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	for p, v := range map[string]string{"etc/userx": "bar", "etc/userx2": "bar", "": "rootstale"} {
		if err := unix.Lsetxattr(filepath.Join(dir, p), "user.foo", []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	return true
}

// fixtureAttrs is the recorded metadata of the fixture.
func fixtureAttrs() map[string]ostree.DirMeta {
	return map[string]ostree.DirMeta{
		"":               {UID: 0, GID: 0, Mode: 0o40755},
		"usr/bin/su":     {UID: 0, GID: 0, Mode: 0o104755, Xattrs: []ostree.Xattr{{Name: "security.capability", Value: capValue}}},
		"home/user/file": {UID: 1000, GID: 1000, Mode: 0o100644},
		"home/user/high": {UID: 100000, GID: 200000, Mode: 0o644},
		"etc/shadowish":  {UID: 0, GID: 42, Mode: 0o100640},
		"etc/userx":      {Mode: 0o644, Xattrs: []ostree.Xattr{{Name: "user.foo", Value: []byte("bar")}}},
		"etc/userx2":     {Mode: 0o644, Xattrs: []ostree.Xattr{{Name: "user.foo", Value: []byte("baz")}}},
		"link":           {UID: 7, GID: 8, Mode: 0o120777},
		"private":        {UID: 5, GID: 6, Mode: 0o40700},
		"usr/lib/b":      {UID: 33, GID: 33, Mode: 0o100600},
		"zero":           {Mode: 0o100000},
		`sp ace/q"uote`:  {UID: 9, GID: 9, Mode: 0o644},
	}
}

const (
	fxOffset = 1 << 20
	fxSize   = 64 << 20
	fxTail   = 1<<20 + 512
)

// checkFixture asserts the filesystem Create made from the fixture.
func checkFixture(t *testing.T, img string, xattrs bool) {
	t.Helper()
	checkPads(t, img, fxOffset, fxSize, fxTail)
	fsck(t, img, fxOffset)

	for _, c := range []struct {
		path     string
		typ      string
		mode     uint32
		uid, gid uint32
	}{
		{"/", "directory", 0o755, 0, 0},
		{"/usr", "directory", 0o755, 0, 0},
		{"/usr/bin/su", "regular", 0o4755, 0, 0},
		{"/home/user/file", "regular", 0o644, 1000, 1000},
		{"/home/user/high", "regular", 0o644, 100000, 200000},
		{"/etc/shadowish", "regular", 0o640, 0, 42},
		{"/link", "symlink", 0o777, 7, 8},
		{"/longlink", "symlink", 0o777, 0, 0},
		{"/private", "directory", 0o700, 5, 6},
		{"/usr/lib/a", "regular", 0o600, 33, 33},
		{"/usr/lib/b", "regular", 0o600, 33, 33},
		{"/unlisted", "regular", 0o751, 0, 0},
		{"/zero", "regular", 0, 0, 0},
		{`/sp ace/q"uote`, "regular", 0o644, 9, 9},
		{"/big.bin", "regular", 0o644, 0, 0},
		{"/lost+found", "directory", 0o700, 0, 0},
	} {
		t.Run(strings.TrimPrefix(c.path, "/"), func(t *testing.T) {
			in := stat(t, img, fxOffset, c.path)
			if in.typ != c.typ || in.mode != c.mode || in.uid != c.uid || in.gid != c.gid {
				t.Errorf("got %s %#o %d:%d, want %s %#o %d:%d", in.typ, in.mode, in.uid, in.gid, c.typ, c.mode, c.uid, c.gid)
			}
		})
	}

	a, b := stat(t, img, fxOffset, "/usr/lib/a"), stat(t, img, fxOffset, "/usr/lib/b")
	if a.ino != b.ino || a.links != 2 {
		t.Errorf("hardlinks: inodes %d and %d, %d links; want one inode with 2 links", a.ino, b.ino, a.links)
	}
	if got := dump(t, img, fxOffset, "/big.bin"); !bytes.Equal(got, bigData()) {
		t.Errorf("big.bin contents differ (%d bytes)", len(got))
	}
	if d := dump(t, img, fxOffset, "/longlink"); string(d) != longTarget {
		t.Errorf("longlink target %q, want %q", d, longTarget)
	}

	for _, c := range []struct {
		path, name string
		want       []byte // nil: absent
	}{
		{"/usr/bin/su", "security.capability", capValue},
		{"/etc/userx", "user.foo", []byte("bar")},
		{"/etc/userx2", "user.foo", []byte("baz")},
		{"/unlisted", "user.stale", nil},
		{"/", "user.foo", nil},
		{"/etc/shadowish", "security.capability", nil},
	} {
		if !xattrs && c.want == nil {
			continue // the staging tree could not have them
		}
		got, ok := eaGet(t, img, fxOffset, c.path, c.name)
		switch {
		case c.want == nil && ok:
			t.Errorf("%s has xattr %s=%q, want none", c.path, c.name, got)
		case c.want != nil && !ok:
			t.Errorf("%s lacks xattr %s", c.path, c.name)
		case c.want != nil && !bytes.Equal(got, c.want):
			t.Errorf("%s xattr %s = %x, want %x", c.path, c.name, got, c.want)
		}
	}

	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if alloc := st.Blocks * 512; alloc > fxOffset+fxTail+fxSize/4 {
		t.Errorf("image not sparse: %d bytes allocated of %d", alloc, st.Size)
	}
}

func TestCreate(t *testing.T) {
	requireTools(t)
	base := t.TempDir()
	staging := filepath.Join(base, "staging")
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	xattrs := buildFixture(t, staging)
	if os.Geteuid() == 0 {
		// mke2fs records the staging owner; the fix-up must reset it.
		if err := os.Lchown(filepath.Join(staging, "unlisted"), 4321, 4321); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(staging, "home/user/file"), 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(base, "disk.img")
	makeImageFill(t, img, fxOffset, fxSize, fxTail, true)
	var calls, last int
	opts := Options{Label: "root", UUID: "2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b", Progress: func(done, total int) {
		calls++
		if done < last || done > total {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}}
	if err := Create(context.Background(), img, fxOffset, fxSize, staging, fixtureAttrs(), opts); err != nil {
		t.Fatal(err)
	}
	checkFixture(t, img, xattrs)
	if calls < 2 || last == 0 {
		t.Errorf("progress called %d times, last done %d", calls, last)
	}
	out := dbg(t, img, fxOffset, "stats")
	for _, want := range []string{"Filesystem volume name:   root", "Filesystem UUID:          2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b", "Block size:               4096"} {
		if !strings.Contains(out, want) {
			t.Errorf("superblock lacks %q", want)
		}
	}
}

// helperEnv carries the parameters of TestUnprivilegedHelper.
const helperEnv = "OTA_EXT4_UNPRIV_HELPER"

type helperParams struct {
	Image, Staging string
}

// TestCreateUnprivileged runs Create as uid 65534 on a staging tree owned
// by that user and checks the same results as TestCreate.
func TestCreateUnprivileged(t *testing.T) {
	requireTools(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("setpriv missing and OTA_REQUIRE_TOOLS=1: %v", err)
		}
		t.Skip("setpriv not available")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to uid 65534 (TestCreate already runs unprivileged)")
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	staging := filepath.Join(base, "staging")
	tmp := filepath.Join(base, "tmp")
	for _, d := range []string{staging, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	xattrs := buildFixture(t, staging)
	img := filepath.Join(base, "disk.img")
	makeImageFill(t, img, fxOffset, fxSize, fxTail, true)
	exe := filepath.Join(base, "ext4.test")
	copyFile(t, exe, 0o755)
	for _, p := range []string{img, tmp, exe} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.Walk(staging, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	}); err != nil {
		t.Fatal(err)
	}

	params, _ := json.Marshal(helperParams{Image: img, Staging: staging})
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", exe, "-test.run=^TestUnprivilegedHelper$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(params), "TMPDIR="+tmp, "HOME="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestUnprivilegedHelper") {
		t.Fatalf("unprivileged run: %v\n%s", err, out)
	}
	checkFixture(t, img, xattrs)
}

// TestUnprivilegedHelper is the part of TestCreateUnprivileged that runs
// as uid 65534.
func TestUnprivilegedHelper(t *testing.T) {
	env := os.Getenv(helperEnv)
	if env == "" {
		t.Skip("run by TestCreateUnprivileged")
	}
	var p helperParams
	if err := json.Unmarshal([]byte(env), &p); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 65534 || os.Getegid() != 65534 {
		t.Fatalf("running as %d:%d, want 65534:65534", os.Geteuid(), os.Getegid())
	}
	if err := Create(context.Background(), p.Image, fxOffset, fxSize, p.Staging, fixtureAttrs(), Options{Label: "root"}); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, dst string, mode os.FileMode) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateTooSmall(t *testing.T) {
	requireTools(t)
	base := t.TempDir()
	staging := filepath.Join(base, "staging")
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "big"), bytes.Repeat([]byte{1}, 20<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	const off, size, tail = 4096, 16 << 20, 4096
	img := filepath.Join(base, "disk.img")
	makeImage(t, img, off, size, tail)
	err := Create(context.Background(), img, off, size, staging, nil, Options{})
	if !errors.Is(err, ErrTooSmall) {
		t.Fatalf("got %v, want ErrTooSmall", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(size)) {
		t.Errorf("error %q lacks the available size", err)
	}
	checkPads(t, img, off, size, tail)
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 64<<10 {
		t.Errorf("region was written: %d bytes allocated", st.Blocks*512)
	}
}

// TestTooSmallMessages checks that what mke2fs really prints when a tree
// does not fit is recognised (Create's own estimate normally catches it
// first).
func TestTooSmallMessages(t *testing.T) {
	requireTools(t)
	for _, c := range []struct {
		name   string
		files  int
		size   int
		blocks int
		inodes string
	}{
		{"blocks", 1, 20 << 20, 3000, "64"},
		{"inodes", 200, 0, 3000, "16"},
		{"inode tables", 1, 0, 600, "20000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			staging := filepath.Join(base, "s")
			if err := os.Mkdir(staging, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range c.files {
				if err := os.WriteFile(filepath.Join(staging, strconv.Itoa(i)), make([]byte, c.size), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.size > 0 {
				f, _ := os.OpenFile(filepath.Join(staging, "0"), os.O_WRONLY, 0)
				f.Write(bytes.Repeat([]byte{7}, c.size))
				f.Close()
			}
			img := filepath.Join(base, "img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, int64(c.blocks)*4096); err != nil {
				t.Fatal(err)
			}
			out, err := run(context.Background(), nil, tool(t, "mke2fs"), "-q", "-F", "-t", "ext4", "-b", "4096", "-N", c.inodes, "-d", staging, img, strconv.Itoa(c.blocks))
			if err == nil {
				t.Fatal("mke2fs succeeded")
			}
			if !tooSmallRE(out) {
				t.Errorf("not recognised as too small: %s", out)
			}
		})
	}
}

func TestCreateErrors(t *testing.T) {
	requireTools(t)
	base := t.TempDir()
	staging := filepath.Join(base, "staging")
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "bad\nname"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(base, "img")
	makeImage(t, img, 0, 32<<20, 0)
	for _, c := range []struct {
		name   string
		size   int64
		attrs  map[string]ostree.DirMeta
		opts   Options
		substr string
	}{
		{"past end", 64 << 20, nil, Options{}, "past the end"},
		{"long label", 32 << 20, nil, Options{Label: "seventeen-bytes!!"}, "label"},
		{"bad uuid", 32 << 20, nil, Options{UUID: "nope"}, "UUID"},
		{"unknown path", 32 << 20, map[string]ostree.DirMeta{"missing": {}}, Options{}, "missing"},
		{"line break", 32 << 20, nil, Options{}, "line break"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Create(context.Background(), img, 0, c.size, staging, c.attrs, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("got %v, want an error containing %q", err, c.substr)
			}
		})
	}
}

// TestDebugfsErrors checks that a failing command fails the fix-up even
// though debugfs exits 0.
func TestDebugfsErrors(t *testing.T) {
	requireTools(t)
	base := t.TempDir()
	staging := filepath.Join(base, "s")
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(base, "img")
	makeImage(t, img, 8192, 16<<20, 0)
	if err := Create(context.Background(), img, 8192, 16<<20, staging, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	target := img + "?offset=8192"
	for _, c := range []struct {
		script string
		ok     bool
	}{
		{"set_inode_field \"/f\" uid 5\n", true},
		{"set_inode_field \"/nonexistent\" uid 5\n", false},
		{"set_inode_field \"/f\" nosuchfield 5\n", false},
		{"ea_set -f \"/nonexistent-value-file\" \"/f\" user.x\n", false},
		{"set_inode_field \"/f\" uid 6\nset_inode_field \"/f\" gid x\n", false},
	} {
		p := filepath.Join(base, "script")
		if err := os.WriteFile(p, []byte(c.script), 0o644); err != nil {
			t.Fatal(err)
		}
		n := strings.Count(c.script, "\n")
		err := runDebugfs(context.Background(), nil, tool(t, "debugfs"), true, target, p, n, nil, nil)
		if (err == nil) != c.ok {
			t.Errorf("%q: got %v, want ok=%v", c.script, err, c.ok)
		}
	}
	if in := stat(t, img, 8192, "/f"); in.uid != 6 {
		t.Errorf("uid %d after the fix-ups, want 6", in.uid)
	}
}

func TestReproducibleIDs(t *testing.T) {
	requireTools(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	base := t.TempDir()
	staging := filepath.Join(base, "s")
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	var uuids []string
	for i := range 2 {
		img := filepath.Join(base, "img"+strconv.Itoa(i))
		makeImage(t, img, 0, 16<<20, 0)
		if err := Create(context.Background(), img, 0, 16<<20, staging, nil, Options{Label: "r"}); err != nil {
			t.Fatal(err)
		}
		out := dbg(t, img, 0, "stats")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "Filesystem UUID:") {
				uuids = append(uuids, l)
			}
			if strings.HasPrefix(l, "Filesystem created:") && !strings.Contains(l, "2023") {
				t.Errorf("creation time ignores SOURCE_DATE_EPOCH: %s", l)
			}
		}
	}
	if len(uuids) != 2 || uuids[0] != uuids[1] {
		t.Errorf("UUIDs differ or missing: %q", uuids)
	}
}
