package image

import (
	"strings"
	"testing"

	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/internal/ostree"
)

// The limit commit and fsck apply to one file's xattrs (ostree.MaxXattrSpace, counted by
// ostree.XattrSpace) is what the ext4 writer fits: a set at the limit can be written, one
// 4 bytes over cannot (WriteSize is 0 for a tree Write refuses).
func TestXattrLimitMatchesWriter(t *testing.T) {
	acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	// valueFor returns the xattrs plus one user.pad xattr sized so that they take want
	// bytes by XattrSpace.
	valueFor := func(xs []ostree.Xattr, want int) []ostree.Xattr {
		pad := ostree.Xattr{Name: "user.pad"}
		rest := want - ostree.XattrSpace(append(xs, pad))
		pad.Value = []byte(strings.Repeat("v", rest))
		return append(append([]ostree.Xattr(nil), xs...), pad)
	}
	// fits reports whether the ext4 writer can write a file carrying xs.
	fits := func(xs []ostree.Xattr) bool {
		f := &ext4.Inode{Mode: ext4.ModeRegular | 0o644, Xattrs: ext4Xattrs(xs)}
		root := &ext4.Inode{Mode: ext4.ModeDir | 0o755, Entries: []ext4.DirEntry{{Name: "f", Inode: f}}}
		return ext4.WriteSize(root) > 0
	}
	for _, tc := range []struct {
		name string
		xs   []ostree.Xattr
	}{
		{"one", nil},
		{"several", []ostree.Xattr{{Name: "security.capability", Value: make([]byte, 20)},
			{Name: "trusted.overlay.opaque", Value: []byte("y")}, {Name: "user.a", Value: []byte("12345")}}},
		{"acl", []ostree.Xattr{{Name: "system.posix_acl_access", Value: acl}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := valueFor(tc.xs, ostree.MaxXattrSpace)
			if err := ostree.CheckXattrs(at, ostree.ModeRegular|0o644); err != nil {
				t.Fatalf("CheckXattrs at the limit: %v", err)
			}
			if !fits(at) {
				t.Fatalf("the writer refuses %d bytes of xattrs, at the limit", ostree.XattrSpace(at))
			}
			over := valueFor(tc.xs, ostree.MaxXattrSpace+4)
			if err := ostree.CheckXattrs(over, ostree.ModeRegular|0o644); err == nil ||
				!strings.Contains(err.Error(), "more than the 4064 of one 4 KiB block") {
				t.Errorf("CheckXattrs over the limit: %v", err)
			}
			if tc.name == "acl" {
				return // ext4 stores ACLs smaller than their xattr form: the limit is conservative
			}
			if fits(over) {
				t.Errorf("the writer fits %d bytes of xattrs, over the limit", ostree.XattrSpace(over))
			}
		})
	}
}
