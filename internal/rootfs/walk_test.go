package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree creates files under a new temporary directory from a table of path, mode and
// content (for regular files) or target (for symlinks and hard links, the latter marked
// by a mode of 0), and returns the directory.
func tree(t *testing.T, files []treeFile) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		name := filepath.Join(root, f.path)
		var err error
		switch {
		case f.mode == 0:
			err = os.Link(filepath.Join(root, f.data), name)
		case f.mode&ModeTypeMask == ModeDir:
			err = os.Mkdir(name, 0o700)
		case f.mode&ModeTypeMask == ModeSymlink:
			err = os.Symlink(f.data, name)
		default:
			err = os.WriteFile(name, []byte(f.data), 0o600)
		}
		if err == nil && f.mode != 0 && f.mode&ModeTypeMask != ModeSymlink {
			err = os.Chmod(name, os.FileMode(f.mode&0o777)|unixModeBits(f.mode))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

type treeFile struct {
	path string
	mode uint32
	data string
}

// unixModeBits converts the setuid, setgid and sticky bits of mode to os.FileMode.
func unixModeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func TestWalkDir(t *testing.T) {
	root := tree(t, []treeFile{
		{"usr", ModeDir | 0o755, ""},
		{"usr/bin", ModeDir | 0o755, ""},
		{"usr/bin/tool", ModeRegular | 0o4755, "tool"},
		{"usr/bin/tool2", 0, "usr/bin/tool"},
		{"a.txt", ModeRegular | 0o640, "A"},
		{"Z", ModeRegular | 0o644, ""},
		{"bin", ModeSymlink, "usr/bin"},
		{"tmp", ModeDir | 0o1777, ""},
		{"etc", ModeDir | 0o755, ""},
		{"etc/zz", 0, "usr/bin/tool"},
	})
	value := []byte("v\x00\xff")
	haveXattrs := true
	if err := unix.Lsetxattr(filepath.Join(root, "a.txt"), "user.test", value, 0); err != nil {
		if !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			t.Fatal(err)
		}
		t.Logf("no user xattrs here: %v", err)
		haveXattrs = false
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	file := func(p string, mode uint32, size int64) Entry {
		return Entry{Path: p, Mode: mode, UID: uid, GID: gid, Size: size, DiskPath: filepath.Join(root, p)}
	}
	want := []Entry{
		{Path: ".", Mode: ModeDir | 0o755, UID: uid, GID: gid},
		file("Z", ModeRegular|0o644, 0),
		file("a.txt", ModeRegular|0o640, 1),
		{Path: "bin", Mode: ModeSymlink | 0o777, UID: uid, GID: gid, LinkTarget: "usr/bin"},
		{Path: "etc", Mode: ModeDir | 0o755, UID: uid, GID: gid},
		file("etc/zz", ModeRegular|0o4755, 4), // the first of the three links met
		{Path: "tmp", Mode: ModeDir | 0o1777, UID: uid, GID: gid},
		{Path: "usr", Mode: ModeDir | 0o755, UID: uid, GID: gid},
		{Path: "usr/bin", Mode: ModeDir | 0o755, UID: uid, GID: gid},
		{Path: "usr/bin/tool", Mode: ModeRegular | 0o4755, UID: uid, GID: gid, HardlinkTo: "etc/zz"},
		{Path: "usr/bin/tool2", Mode: ModeRegular | 0o4755, UID: uid, GID: gid, HardlinkTo: "etc/zz"},
	}
	if haveXattrs {
		want[2].Xattrs = []Xattr{{Name: "user.test", Value: value}}
	}

	// Walk both the directory and a symbolic link to it.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, link} {
		src, err := WalkDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		gs, err := drain(src)
		if err != nil {
			t.Fatal(err)
		}
		var es []Entry
		for _, g := range gs {
			e := g.Entry
			e.Xattrs = userXattrs(e.Xattrs)
			if rel, ok := strings.CutPrefix(e.DiskPath, link); ok {
				e.DiskPath = root + rel
			}
			es = append(es, e)
		}
		if !reflect.DeepEqual(es, want) {
			t.Errorf("WalkDir(%s):\n%+v\nwant:\n%+v", dir, es, want)
		}
	}
}

// userXattrs returns the user.* attributes of xs, leaving out any the host adds itself,
// such as security.selinux.
func userXattrs(xs []Xattr) []Xattr {
	var us []Xattr
	for _, x := range xs {
		if strings.HasPrefix(x.Name, "user.") {
			us = append(us, x)
		}
	}
	return us
}

func TestWalkDirErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ root, want string }{
		{filepath.Join(dir, "missing"), "stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{file, file + ": not a directory"},
	} {
		if _, err := WalkDir(tt.root); err == nil || err.Error() != tt.want {
			t.Errorf("WalkDir(%s): error %v, want %q", tt.root, err, tt.want)
		}
	}
}

func TestWalkDirUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	root := tree(t, []treeFile{{"secret", ModeDir | 0o755, ""}})
	secret := filepath.Join(root, "secret")
	if err := os.Chmod(secret, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(secret, 0o755) })
	src, err := WalkDir(root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = drain(src)
	if want := "open " + secret + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}
