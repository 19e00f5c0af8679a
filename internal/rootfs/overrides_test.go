package rootfs

import (
	"reflect"
	"strings"
	"testing"
)

const overridesFile = `# ownership fixes
/usr/bin/sudo  uid=0 gid=0 mode=4755 xattr.security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=

  /home/user/  uid=1000 gid=1000
etc/shadow	mode=0640 xattr.user.hex=0x00ff xattr.user.quoted="a\040b" xattr.user.plain=text xattr.user.old=
/ mode=755
`

func TestOverridesApply(t *testing.T) {
	o, err := ParseOverrides(strings.NewReader(overridesFile), "overrides")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in, want Entry
		applied  bool
	}{
		{
			in: Entry{Path: "usr/bin/sudo", Mode: ModeRegular | 0o755, UID: 1000, GID: 1000,
				Xattrs: []Xattr{{Name: "security.capability", Value: []byte("old")}, {Name: "user.x", Value: []byte("x")}}},
			want: Entry{Path: "usr/bin/sudo", Mode: ModeRegular | 0o4755, Xattrs: []Xattr{
				{Name: "security.capability", Value: capability}, {Name: "user.x", Value: []byte("x")}}},
			applied: true,
		},
		{
			in:      Entry{Path: "home/user", Mode: ModeDir | 0o700},
			want:    Entry{Path: "home/user", Mode: ModeDir | 0o700, UID: 1000, GID: 1000},
			applied: true,
		},
		{
			in: Entry{Path: "etc/shadow", Mode: ModeRegular | 0o4777, UID: 5,
				Xattrs: []Xattr{{Name: "user.a", Value: []byte("a")}, {Name: "user.old", Value: []byte("o")}, {Name: "user.z", Value: []byte("z")}}},
			want: Entry{Path: "etc/shadow", Mode: ModeRegular | 0o640, UID: 5, Xattrs: []Xattr{
				{Name: "user.a", Value: []byte("a")},
				{Name: "user.hex", Value: []byte{0, 0xff}},
				{Name: "user.plain", Value: []byte("text")},
				{Name: "user.quoted", Value: []byte("a b")},
				{Name: "user.z", Value: []byte("z")},
			}},
			applied: true,
		},
		{
			in:      Entry{Path: ".", Mode: ModeDir | 0o700},
			want:    Entry{Path: ".", Mode: ModeDir | 0o755},
			applied: true,
		},
		{
			in:   Entry{Path: "usr/bin", Mode: ModeDir | 0o700, UID: 3},
			want: Entry{Path: "usr/bin", Mode: ModeDir | 0o700, UID: 3},
		},
	}
	for _, tt := range tests {
		e := tt.in
		if applied := o.Apply(&e); applied != tt.applied || !reflect.DeepEqual(e, tt.want) {
			t.Errorf("Apply(%+v) = %v, %+v; want %v, %+v", tt.in, applied, e, tt.applied, tt.want)
		}
	}
	var none *Overrides
	if e := (Entry{Path: "usr/bin/sudo"}); none.Apply(&e) || !reflect.DeepEqual(e, Entry{Path: "usr/bin/sudo"}) {
		t.Errorf("nil Overrides changed %+v", e)
	}
}

func TestParseOverridesErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a uid=0\n\n/b", "ov:3: no fields after the path"},
		{"# c\n../a uid=0", "ov:2: ../a: path escapes the tree root"},
		{"/a uid=0\n./a gid=0", "ov:2: ./a: already overridden on line 1"},
		{"/a uid", `ov:1: field "uid" is not key=value`},
		{"/a uid=0 uid=1", "ov:1: field uid given twice"},
		{"/a uid=root", `ov:1: uid "root" is not a decimal number below 2^32`},
		{"/a gid=4294967296", `ov:1: gid "4294967296" is not a decimal number below 2^32`},
		{"/a gid=-1", `ov:1: gid "-1" is not a decimal number below 2^32`},
		{"/a mode=rwx", `ov:1: mode "rwx" is not octal permission bits up to 7777`},
		{"/a mode=10755", `ov:1: mode "10755" is not octal permission bits up to 7777`},
		{"/a owner=0", `ov:1: unknown field "owner"`},
		{"/a xattr.=x", `ov:1: unknown field "xattr."`},
		{"/a xattr.user.x=0s!!", "ov:1: xattr.user.x: bad base64 value"},
		{"/a xattr.user.x=0xfg", "ov:1: xattr.user.x: bad hex value"},
		{`/a xattr.user.x="a`, `ov:1: xattr.user.x: bad quoted string "a`},
		{"/a xattr.user.x=" + strings.Repeat("x", maxLine), "ov: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		_, err := ParseOverrides(strings.NewReader(tt.in), "ov")
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseOverrides(%.40q): error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestSkipList(t *testing.T) {
	s, err := ParseSkipList(strings.NewReader("# build leftovers\n/usr/share/doc\n\n  ./var/cache/  \nboot/vmlinuz\n"))
	if err != nil {
		t.Fatal(err)
	}
	var none *SkipList
	tests := []struct {
		path string
		want bool
	}{
		{".", false},
		{"usr", false},
		{"usr/share", false},
		{"usr/share/doc", true},
		{"usr/share/doc/x/y", true},
		{"usr/share/docs", false},
		{"var/cache", true},
		{"var/cache/apt/archives", true},
		{"boot/vmlinuz", true},
		{"boot/vmlinuz.old", false},
	}
	for _, tt := range tests {
		if got := s.Skip(tt.path); got != tt.want {
			t.Errorf("Skip(%q) = %v, want %v", tt.path, got, tt.want)
		}
		if none.Skip(tt.path) {
			t.Errorf("nil SkipList skips %q", tt.path)
		}
	}
}

func TestParseSkipListErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a\n/../b", "line 2: /../b: path escapes the tree root"},
		{"# all\n/", "line 2: /: cannot skip the root"},
		{"./", "line 1: ./: cannot skip the root"},
	}
	for _, tt := range tests {
		if _, err := ParseSkipList(strings.NewReader(tt.in)); err == nil || err.Error() != tt.want {
			t.Errorf("ParseSkipList(%q): error %v, want %q", tt.in, err, tt.want)
		}
	}
}
