package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fixture is a tree on disk built by makeFixture.
type fixture struct {
	dir string
	// xattrs reports whether the fixture carries user.* extended attributes (the
	// filesystem may refuse them).
	xattrs bool
	// owners reports whether some files are owned by uid/gid 1000 (only root can chown).
	owners bool
}

// makeFixture builds, under parent, a tree with every kind of file OSTree stores: regular,
// empty and executable files, setuid/setgid files, a sticky directory, absolute, relative and
// dangling symlinks, hard links (within and across directories), user.* xattrs (when the
// filesystem supports them), empty directories, a 40-level deep path, non-ASCII names, a
// 5 MiB file and (as root) files, directories and a symlink owned by uid/gid 1000.
func makeFixture(t *testing.T, parent string) fixture {
	t.Helper()
	fx := fixture{dir: filepath.Join(parent, "fixture"), owners: os.Geteuid() == 0}
	root := fx.dir

	dir := func(p string, mode uint32, uid, gid int) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.Mkdir(full, 0o700); err != nil {
			t.Fatal(err)
		}
		setMeta(t, full, mode, uid, gid, fx.owners)
	}
	file := func(p string, content []byte, mode uint32, uid, gid int) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.WriteFile(full, content, 0o600); err != nil {
			t.Fatal(err)
		}
		setMeta(t, full, mode, uid, gid, fx.owners)
	}
	symlink := func(p, target string, uid, gid int) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
		if fx.owners {
			if err := os.Lchown(full, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	hardlink := func(p, existing string) {
		t.Helper()
		if err := os.Link(filepath.Join(root, existing), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}

	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	setMeta(t, root, 0o755, 0, 0, fx.owners)

	dir("etc", 0o755, 0, 0)
	file("etc/hostname", []byte("device\n"), 0o644, 0, 0)
	file("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640, 0, 42)
	file("etc/empty.conf", nil, 0o644, 0, 0)
	dir("usr", 0o755, 0, 0)
	dir("usr/bin", 0o755, 0, 0)
	dir("usr/lib", 0o755, 0, 0)
	dir("usr/sbin", 0o755, 0, 0)
	file("usr/bin/tool", []byte("#!/bin/sh\necho tool\n"), 0o755, 0, 0)
	file("usr/bin/empty-exec", nil, 0o755, 0, 0)
	file("usr/bin/suid", []byte("setuid binary\n"), 0o4755, 0, 0)
	file("usr/bin/sgid", []byte("setgid binary\n"), 0o2755, 0, 0)
	file("usr/bin/suid-sgid", []byte("setuid and setgid\n"), 0o6750, 0, 0)
	file("usr/lib/libshared.so", []byte("shared by three hard links\n"), 0o644, 0, 0)
	hardlink("usr/lib/libshared.so.1", "usr/lib/libshared.so")
	hardlink("usr/sbin/libshared-elsewhere", "usr/lib/libshared.so")
	file("usr/lib/same-content-a", []byte("identical content, separate files\n"), 0o644, 0, 0)
	file("usr/lib/same-content-b", []byte("identical content, separate files\n"), 0o644, 0, 0)
	symlink("usr/bin/abs", "/usr/bin/tool", 0, 0)
	symlink("usr/bin/rel", "../bin/tool", 0, 0)
	symlink("lib", "usr/lib", 0, 0)
	symlink("dangling", "does/not/exist", 0, 0)
	dir("tmp", 0o1777, 0, 0)
	dir("var", 0o755, 0, 0)
	dir("var/empty", 0o755, 0, 0)
	dir("var/lib", 0o755, 0, 0)
	dir("var/lib/private", 0o700, 0, 0)

	p := "deep"
	dir(p, 0o755, 0, 0)
	for i := 1; i <= deepLevels; i++ {
		p += fmt.Sprintf("/d%02d", i)
		dir(p, 0o755, 0, 0)
	}
	file(p+"/leaf.txt", []byte("forty levels down\n"), 0o644, 0, 0)

	file("ünïcødé ☃", []byte("non-ASCII name\n"), 0o644, 0, 0)
	dir("日本語", 0o755, 0, 0)
	file("日本語/ファイル.txt", []byte("こんにちは\n"), 0o644, 0, 0)

	big := make([]byte, bigSize)
	rand.NewChaCha8([32]byte{'o', 't', 'a'}).Read(big)
	dir("data", 0o755, 0, 0)
	file("data/big.bin", big, 0o644, 0, 0)

	dir("home", 0o755, 0, 0)
	dir("home/user", 0o750, 1000, 1000)
	file("home/user/.profile", []byte("export PS1='$ '\n"), 0o644, 1000, 1000)
	file("home/user/group-only", []byte("gid 1000, uid 0\n"), 0o640, 0, 1000)
	symlink("home/user/link", ".profile", 1000, 1000)
	dir("home/user/empty", 0o700, 1000, 1000)

	// user.* xattrs: on files (several, one with binary bytes), on a hard-linked file, on
	// a setuid file and on directories (symlinks cannot carry user.* attributes).
	xattrs := []struct{ path, name, value string }{
		{"etc/hostname", "user.compat.note", "hello"},
		{"etc/hostname", "user.compat.a-first", "sorted before note"},
		{"usr/bin/tool", "user.compat.bin", "\x00\x01\x02\xff\x00"},
		{"usr/bin/suid", "user.compat.suid", "kept with setuid"},
		{"usr/lib/libshared.so", "user.compat.linked", "on every hard link"},
		{"usr", "user.compat.dir", "directory attribute"},
		{"var/empty", "user.compat.empty", "on an empty directory"},
		{".", "user.compat.root", "on the root directory"},
	}
	fx.xattrs = true
	for _, x := range xattrs {
		err := unix.Setxattr(filepath.Join(root, x.path), x.name, []byte(x.value), 0)
		if errors.Is(err, unix.ENOTSUP) {
			t.Logf("filesystem of %s refuses user.* xattrs (%v): the xattr part of the fixture is left out", root, err)
			fx.xattrs = false
			break
		}
		if err != nil {
			t.Fatalf("setxattr %s %s: %v", x.path, x.name, err)
		}
	}
	if !fx.owners {
		t.Log("not running as root: the fixture has no files owned by uid/gid 1000")
	}
	return fx
}

// setMeta sets the owner (when chown is allowed) and then the raw mode bits, so that chown
// does not clear setuid/setgid.
func setMeta(t *testing.T, path string, mode uint32, uid, gid int, chown bool) {
	t.Helper()
	if chown {
		if err := os.Lchown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// node is what the tests compare of one file of a tree on disk.
type node struct {
	typ      byte // d, -, l
	mode     uint32
	uid, gid uint32
	size     int64
	sum      [32]byte
	link     string
	xattrs   string // the user.* attributes, "name=hex" sorted, ";"-separated
}

func (n node) String() string {
	s := fmt.Sprintf("%c%05o %d:%d size=%d", n.typ, n.mode, n.uid, n.gid, n.size)
	switch n.typ {
	case '-':
		s += fmt.Sprintf(" sha256=%x", n.sum[:6])
	case 'l':
		s += " -> " + n.link
	}
	if n.xattrs != "" {
		s += " xattrs{" + n.xattrs + "}"
	}
	return s
}

// snapshotOpts says which parts of the files a snapshot records.
type snapshotOpts struct {
	owners  bool // uid/gid
	special bool // setuid, setgid and sticky bits (else only rwx bits)
	xattrs  bool // user.* extended attributes
}

// snapshot describes every file under root, keyed by path relative to root ("." for root).
func snapshot(t *testing.T, root string, o snapshotOpts) map[string]node {
	t.Helper()
	out := make(map[string]node)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{mode: st.Mode & 0o7777}
		if !o.special {
			n.mode &= 0o777
		}
		if o.owners {
			n.uid, n.gid = st.Uid, st.Gid
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.typ = 'd'
		case unix.S_IFREG:
			n.typ = '-'
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.size, n.sum = int64(len(data)), sha256.Sum256(data)
		case unix.S_IFLNK:
			n.typ = 'l'
			if n.link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected file type %o", p, st.Mode&unix.S_IFMT)
		}
		if o.xattrs && n.typ != 'l' {
			n.xattrs = userXattrs(t, p)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// userXattrs returns the user.* extended attributes of a file as sorted "name=hex" pairs.
func userXattrs(t *testing.T, p string) string {
	t.Helper()
	sz, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return ""
	}
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var pairs []string
	for _, name := range strings.Split(string(buf[:sz]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		pairs = append(pairs, name+"="+fmt.Sprintf("%x", getXattr(t, p, name)))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ";")
}

// getXattr returns the value of extended attribute name of file p (not following symlinks).
func getXattr(t *testing.T, p, name string) []byte {
	t.Helper()
	sz, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		t.Fatalf("lgetxattr %s %s: %v", p, name, err)
	}
	val := make([]byte, sz)
	sz, err = unix.Lgetxattr(p, name, val)
	if err != nil {
		t.Fatalf("lgetxattr %s %s: %v", p, name, err)
	}
	return val[:sz]
}

// compareTrees fails the test with every difference between two snapshots.
func compareTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var diffs []string
	for _, p := range paths {
		w, wok := want[p]
		g, gok := got[p]
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("%s: missing from checkout (want %v)", p, w))
		case !wok:
			diffs = append(diffs, fmt.Sprintf("%s: not in the input (got %v)", p, g))
		case w != g:
			diffs = append(diffs, fmt.Sprintf("%s:\n\twant %v\n\tgot  %v", p, w, g))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("checked-out tree differs from the input in %d path(s):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}

// diffListings fails the test unless two `ostree ls` listings are equal, showing the lines
// only one of them has.
func diffListings(t *testing.T, wantName, want, gotName, got string) {
	t.Helper()
	if want == got {
		return
	}
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			fmt.Fprintf(&b, "\n\tonly in %s: %s", wantName, l)
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			fmt.Fprintf(&b, "\n\tonly in %s:  %s", gotName, l)
		}
	}
	if b.Len() == 0 {
		b.WriteString("\n\t(same lines, different order)")
	}
	t.Errorf("ostree ls listings of %s and %s differ:%s", wantName, gotName, b.String())
}
