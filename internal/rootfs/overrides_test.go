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
		// What Linux cannot set is refused at the line too.
		{"/a xattr.user.x=0x" + strings.Repeat("00", 65537), `ov:1: xattr "user.x": value is 65537 bytes, more than the 65536 Linux allows`},
		{"/a xattr.user." + strings.Repeat("n", 251) + "=1", `ov:1: xattr name "user.nnnnn`},
		{"/a xattr.local.x=1", `ov:1: xattr "local.x": not in a namespace ext4 stores`},
	}
	for _, tt := range tests {
		_, err := ParseOverrides(strings.NewReader(tt.in), "ov")
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseOverrides(%.40q): error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestSkipList(t *testing.T) {
	s, err := ParseSkipList(strings.NewReader("# build leftovers\n/usr/share/doc\n\n  ./var/cache/  \nboot/vmlinuz\n"), "skip")
	if err != nil {
		t.Fatal(err)
	}
	var none *SkipList
	tests := []struct {
		path   string
		want   bool
		listed string
	}{
		{".", false, ""},
		{"usr", false, ""},
		{"usr/share", false, ""},
		{"usr/share/doc", true, "usr/share/doc"},
		{"usr/share/doc/x/y", true, "usr/share/doc"},
		{"usr/share/docs", false, ""},
		{"var/cache", true, "var/cache"},
		{"var/cache/apt/archives", true, "var/cache"},
		{"boot/vmlinuz", true, "boot/vmlinuz"},
		{"boot/vmlinuz.old", false, ""},
	}
	for _, tt := range tests {
		if listed, ok := s.Match(tt.path); ok != tt.want || listed != tt.listed {
			t.Errorf("Match(%q) = %q, %v; want %q, %v", tt.path, listed, ok, tt.listed, tt.want)
		}
		if _, ok := none.Match(tt.path); ok {
			t.Errorf("nil SkipList skips %q", tt.path)
		}
	}
}

func TestParseSkipListErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a\n/../b", "skip:2: /../b: path escapes the tree root"},
		{"# all\n/", "skip:2: /: cannot skip the root"},
		{"./", "skip:1: ./: cannot skip the root"},
	}
	for _, tt := range tests {
		if _, err := ParseSkipList(strings.NewReader(tt.in), "skip"); err == nil || err.Error() != tt.want {
			t.Errorf("ParseSkipList(%q): error %v, want %q", tt.in, err, tt.want)
		}
	}
}

// Unmatched lists, in line order and as written, the lines whose paths the caller did not
// see matched.
func TestUnmatched(t *testing.T) {
	o, err := ParseOverrides(strings.NewReader("/usr/bin/sudo mode=4755\n\n./usr/bin/missing uid=0\n/etc/ gid=0\n/ mode=755\n"), "overrides.txt")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSkipList(strings.NewReader("/var/cache\n# x\nvar/log/\n/var/cache\n"), "skip.txt")
	if err != nil {
		t.Fatal(err)
	}
	matched := map[string]bool{"usr/bin/sudo": true, ".": true, "var/cache": true}
	seen := func(p string) bool { return matched[p] }
	var got []string
	for _, u := range append(o.Unmatched(seen), s.Unmatched(seen)...) {
		got = append(got, u.String())
	}
	want := []string{
		`overrides.txt:3: "./usr/bin/missing" matches nothing in the tree`,
		`overrides.txt:4: "/etc/" matches nothing in the tree`,
		`skip.txt:3: "var/log/" matches nothing in the tree`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unmatched:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var noO *Overrides
	var noS *SkipList
	if u := append(noO.Unmatched(seen), noS.Unmatched(seen)...); len(u) > 0 {
		t.Errorf("nil lists have unmatched lines %v", u)
	}
}
