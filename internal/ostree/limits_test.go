package ostree

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// Each limit accepts a value exactly at it and refuses one past it or otherwise invalid,
// saying why.
func TestLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("n", n) }
	xattr := func(name string, size int) []Xattr {
		return []Xattr{{Name: name, Value: []byte(strings.Repeat("v", size))}}
	}
	reg, lnk := uint32(ModeRegular|0o644), uint32(ModeSymlink|0o777)
	tests := []struct {
		name string
		err  error
		want string // "" when valid
	}{
		{"name", CheckName("bin"), ""},
		{"name at NAME_MAX", CheckName(long(255)), ""},
		{"name over NAME_MAX", CheckName(long(256)), "file name is 256 bytes, more than the 255 Linux allows"},
		{"name not UTF-8", CheckName("bad\xff\xfename"), "file name is not valid UTF-8"},
		{"name empty", CheckName(""), "empty file name"},
		{"name dot", CheckName("."), `file name "." is not allowed`},
		{"name dotdot", CheckName(".."), `file name ".." is not allowed`},
		{"name slash", CheckName("a/b"), "file name contains a / or NUL"},
		{"name NUL", CheckName("a\x00b"), "file name contains a / or NUL"},
		{"target at PATH_MAX", CheckLinkTarget(long(4095)), ""},
		{"target over PATH_MAX", CheckLinkTarget(long(4096)), "symlink target is 4096 bytes, more than the 4095 Linux allows"},
		{"target empty", CheckLinkTarget(""), "symlink with an empty target"},
		{"target not UTF-8", CheckLinkTarget("\xff"), "symlink target is not valid UTF-8"},
		{"xattr name at XATTR_NAME_MAX", CheckXattrs(xattr("user."+long(250), 1), reg), ""},
		{"xattr name over XATTR_NAME_MAX", CheckXattrs(xattr("user."+long(251), 1), reg), "is 256 bytes, more than the 255 Linux allows"},
		{"xattr name empty", CheckXattrs(xattr("", 1), reg), "xattr with an empty name"},
		{"xattr namespace", CheckXattrs(xattr("os2.x", 1), reg), `xattr "os2.x": not in a namespace ext4 stores`},
		{"xattr namespace only", CheckXattrs(xattr("user.", 1), reg), `xattr "user.": not in a namespace ext4 stores`},
		{"xattr other system.*", CheckXattrs(xattr("system.nfs4_acl", 1), reg), `xattr "system.nfs4_acl": not in a namespace`},
		{"xattr value at XATTR_SIZE_MAX", CheckXattr(xattr("user.big", 65536)[0]), ""},
		{"xattr value over XATTR_SIZE_MAX", CheckXattr(xattr("user.big", 65537)[0]), `xattr "user.big": value is 65537 bytes, more than the 65536 Linux allows`},
		{"xattrs at the block", CheckXattrs(xattr("user.a", 4040), reg), ""},
		{"xattrs over the block", CheckXattrs(xattr("user.a", 4041), reg), "xattrs take 4068 bytes in ext4, more than the 4064 of one 4 KiB block"},
		{"xattr twice", CheckXattrs(append(xattr("user.a", 1), xattr("user.a", 2)...), reg), `xattr "user.a" given twice`},
		{"user xattr on a symlink", CheckXattrs(xattr("user.a", 1), lnk), `xattr "user.a": Linux allows user.* xattrs on regular files and directories only`},
		{"security xattr on a symlink", CheckXattrs(xattr("security.selinux", 1), lnk), ""},
		{"header", (&FileHeader{Mode: lnk, LinkTarget: long(4096)}).CheckLimits(), "symlink target is 4096 bytes"},
		{"dirmeta", (&DirMeta{Mode: ModeDir | 0o755, Xattrs: xattr("user.a", 5000)}).CheckLimits(), "xattrs take 5024 bytes"},
	}
	for _, tt := range tests {
		switch {
		case tt.want == "" && tt.err != nil:
			t.Errorf("%s: %v, want no error", tt.name, tt.err)
		case tt.want != "" && (tt.err == nil || !strings.Contains(tt.err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, tt.err, tt.want)
		}
	}
}

// ParseDirTree refuses the names ostree refuses, saying which; Validate refuses symlink
// targets a GVariant string cannot hold.
func TestParseDirTreeNames(t *testing.T) {
	var c Checksum
	tests := []struct {
		name string
		tree DirTree
		want string
	}{
		{"not UTF-8", DirTree{Files: []TreeFile{{Name: "bad\xff\xfename", Checksum: c}}}, `dirtree: entry "bad\xff\xfename": file name is not valid UTF-8`},
		{"dot dir", DirTree{Dirs: []TreeDir{{Name: "..", Tree: c, Meta: c}}}, `dirtree: entry "..": file name ".." is not allowed`},
		{"twice", DirTree{Files: []TreeFile{{Name: "a", Checksum: c}, {Name: "a", Checksum: c}}}, `dirtree: entry "a": listed twice`},
	}
	for _, tt := range tests {
		_, err := ParseDirTree(tt.tree.Marshal())
		var ne *NameError
		if err == nil || err.Error() != tt.want || !errors.As(err, &ne) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	h := FileHeader{Mode: ModeSymlink | 0o777, LinkTarget: "\xff"}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("Validate of a non-UTF-8 target: %v", err)
	}
}

// Fsck reports, at their paths in the tree, names ostree refuses or Linux cannot create,
// a name that is a file and a directory both, and content a checkout cannot create; an
// object no ref reaches is reported by its own name.
func TestFsckNamesAndLimits(t *testing.T) {
	r, err := Init(t.TempDir(), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	must := func(c Checksum, err error) Checksum {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	file := func(h FileHeader) Checksum {
		t.Helper()
		c, err := ContentChecksum(&h, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WriteContent(c, &h, strings.NewReader(""), 0, 1); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ok := file(FileHeader{Mode: ModeRegular | 0o644})
	longTarget := file(FileHeader{Mode: ModeSymlink | 0o777, LinkTarget: strings.Repeat("t", 5000)})
	bigXattr := file(FileHeader{Mode: ModeRegular | 0o644, Xattrs: []Xattr{{Name: "user.big", Value: make([]byte, 200000)}}})
	unreached := file(FileHeader{Mode: ModeSymlink | 0o777, LinkTarget: strings.Repeat("u", 4096)})
	meta := DirMeta{Mode: ModeDir | 0o755}
	m := must(r.WriteObject(ObjDirMeta, meta.Marshal()))
	badMeta := DirMeta{Mode: ModeDir | 0o755, Xattrs: []Xattr{{Name: "user.x", Value: make([]byte, 5000)}}}
	bm := must(r.WriteObject(ObjDirMeta, badMeta.Marshal()))
	unsorted := DirMeta{Mode: ModeDir | 0o755, Xattrs: []Xattr{{Name: "user.b", Value: []byte("1")}, {Name: "user.a", Value: []byte("1")}}}
	um := must(r.WriteObject(ObjDirMeta, unsorted.Marshal()))
	bad := DirTree{Files: []TreeFile{{Name: "bad\xff\xfename", Checksum: ok}}}
	badTree := must(r.WriteObject(ObjDirTree, bad.Marshal()))
	empty := DirTree{}
	emptyTree := must(r.WriteObject(ObjDirTree, empty.Marshal()))
	root := DirTree{
		Files: []TreeFile{{Name: "big", Checksum: bigXattr}, {Name: "both", Checksum: ok},
			{Name: "link", Checksum: longTarget}, {Name: strings.Repeat("n", 256), Checksum: ok}},
		Dirs: []TreeDir{{Name: "both", Tree: emptyTree, Meta: m}, {Name: "etc", Tree: emptyTree, Meta: bm},
			{Name: "usr", Tree: badTree, Meta: m}},
	}
	cm := Commit{RootTree: must(r.WriteObject(ObjDirTree, root.Marshal())), RootMeta: m}
	c := must(r.WriteObject(ObjCommit, cm.Marshal()))
	if err := r.WriteRef("main", c); err != nil {
		t.Fatal(err)
	}
	problems, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.String())
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		`refs/heads/main: "/usr/bad\xff\xfename": dirtree ` + badTree.String() + `: file name is not valid UTF-8`,
		r.ObjectPath(badTree, ObjDirTree) + `: dirtree: entry "bad\xff\xfename": file name is not valid UTF-8`,
		`refs/heads/main: "/big": xattr "user.big": value is 200000 bytes, more than the 65536 Linux allows`,
		`refs/heads/main: "/link": symlink target is 5000 bytes, more than the 4095 Linux allows`,
		`refs/heads/main: "/etc": xattrs take 5024 bytes in ext4, more than the 4064 of one 4 KiB block`,
		`refs/heads/main: "/both": both a file and a directory in the same dirtree`,
		`refs/heads/main: "/` + strings.Repeat("n", 256) + `": file name is 256 bytes, more than the 255 Linux allows`,
		r.ObjectPath(unreached, ObjFile) + `: symlink target is 4096 bytes, more than the 4095 Linux allows`,
		r.ObjectPath(um, ObjDirMeta) + `: dirmeta: xattr "user.a" out of order or given twice`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("fsck does not report\n\t%s\nin\n%s", want, got)
		}
	}
	if len(problems) != 9 {
		t.Errorf("%d problems, want 9:\n%s", len(problems), got)
	}
}

// In a bare-user-only repository, fsck reports a file whose mode has bits such
// repositories cannot hold (setuid, setgid, sticky, world-writable), as ostree's pull does.
func TestFsckBareUserOnlyModes(t *testing.T) {
	r, err := Init(t.TempDir(), ModeBareUserOnly)
	if err != nil {
		t.Fatal(err)
	}
	// The object of a setuid file, as another tool might have stored it: WriteContent
	// refuses such modes, so the file gets them afterwards.
	h := FileHeader{Mode: ModeRegular | 0o4755}
	c, err := ContentChecksum(&h, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	plain := FileHeader{Mode: ModeRegular | 0o755}
	if _, err := r.WriteContent(c, &plain, strings.NewReader("x"), 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(r.ObjectPath(c, ObjFile), os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	problems, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].String(), "mode 0104755 has bits a bare-user-only repository cannot hold (04000)") {
		t.Errorf("problems %v, want the setuid bit reported", problems)
	}
}
