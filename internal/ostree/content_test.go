package ostree

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriteContentUnowned: a bare object written without ownership keeps the writer's
// owner, gets no xattrs and gets its permission bits plus u+rw, whoever the header names;
// an object present is not rewritten, and other modes are refused.
func TestWriteContentUnowned(t *testing.T) {
	r, err := Init(t.TempDir(), ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	xattrs := []Xattr{{Name: "user.test", Value: []byte("v")}}
	for _, tc := range []struct {
		name     string
		h        FileHeader
		data     string
		wantPerm uint32 // on disk; 0 for symlinks
	}{
		{"read-only file", FileHeader{UID: 1000, GID: 1000, Mode: ModeRegular | 0o444, Xattrs: xattrs}, "data\n", 0o644},
		{"setuid file", FileHeader{UID: 1000, GID: 100, Mode: ModeRegular | 0o4750}, "tool\n", 0o4750},
		{"symlink", FileHeader{UID: 1000, GID: 1000, Mode: ModeSymlink | 0o777, LinkTarget: "../target", Xattrs: xattrs}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ContentChecksum(&tc.h, strings.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []bool{true, false} {
				stored, err := r.WriteContentUnowned(c, &tc.h, strings.NewReader(tc.data), int64(len(tc.data)))
				if err != nil || stored != want {
					t.Fatalf("write %d: stored %v, %v; want %v", i+1, stored, err, want)
				}
			}
			p := r.ObjectPath(c, ObjFile)
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			if int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
				t.Errorf("owner %d:%d, want the writer's %d:%d", st.Uid, st.Gid, os.Geteuid(), os.Getegid())
			}
			if tc.h.IsSymlink() {
				if target, err := os.Readlink(p); err != nil || target != tc.h.LinkTarget {
					t.Errorf("symlink target %q, %v", target, err)
				}
			} else {
				if perm := st.Mode & ModePermMask; perm != tc.wantPerm {
					t.Errorf("mode %04o, want %04o", perm, tc.wantPerm)
				}
				if data, err := os.ReadFile(p); err != nil || string(data) != tc.data {
					t.Errorf("content %q, %v", data, err)
				}
			}
			if got, err := ReadXattrs(p); err != nil || len(got) != 0 {
				t.Errorf("xattrs %v, %v; want none", got, err)
			}
		})
	}

	archive, err := Init(t.TempDir(), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	h := FileHeader{Mode: ModeRegular | 0o644}
	c, _ := ContentChecksum(&h, bytes.NewReader(nil))
	if _, err := archive.WriteContentUnowned(c, &h, bytes.NewReader(nil), 0); err == nil || !strings.Contains(err.Error(), "bare") {
		t.Errorf("unowned write to an archive repository: %v, want an error", err)
	}
}
