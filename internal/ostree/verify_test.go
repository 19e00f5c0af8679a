package ostree

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// storeContent writes a content object and returns its checksum.
func storeContent(t *testing.T, r *Repo, h FileHeader, data []byte) Checksum {
	t.Helper()
	c, err := ContentChecksum(&h, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteContent(c, &h, bytes.NewReader(data), int64(len(data)), DefaultCompressionLevel); err != nil {
		t.Fatal(err)
	}
	return c
}

// archiveParts splits an archive object into its header (length-prefixed) and its
// compressed content.
func archiveParts(t *testing.T, p string) (header, rest []byte) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := 8 + int(binary.BigEndian.Uint32(data))
	return data[:n], data[n:]
}

// overwrite replaces the bytes of the file at p from off, keeping its inode (so its
// mode, owner and xattrs).
func overwrite(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// replaceFile rewrites the file at p with data, keeping its inode.
func replaceFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	overwrite(t, p, 0, data)
}

// flipMiddle flips one byte in the middle of an object's stored content, keeping its size.
func flipMiddle(t *testing.T, r *Repo, p string) {
	t.Helper()
	off := int64(0)
	if r.Mode == ModeArchive {
		h, _ := archiveParts(t, p)
		off = int64(len(h))
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	off += (st.Size() - off) / 2
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// restamp gives an object the header h (same size) in place of the one it was stored with.
func restamp(t *testing.T, r *Repo, p string, h FileHeader, size int) {
	t.Helper()
	switch r.Mode {
	case ModeArchive:
		_, rest := archiveParts(t, p)
		replaceFile(t, p, append(h.ArchiveHeader(uint64(size)), rest...))
	case ModeBareUser:
		if err := unix.Setxattr(p, "user.ostreemeta", bareUserMeta(&h), 0); err != nil {
			t.Fatal(err)
		}
	default:
		if err := os.Chmod(p, unixPerm(h.Mode&ModePermMask)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenContentVerifies corrupts stored objects in every way a disk or a hand can, in
// every repository mode, and checks that reading them fails naming the object, with the
// read that completes the content (not a later one), and that sound objects read back.
func TestOpenContentVerifies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, 64<<10) // random: archive objects hold it in stored blocks
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly, ModeBare} {
		// Owners a non-root writer can store in every mode.
		file := FileHeader{Mode: ModeRegular | 0o644}
		link := FileHeader{Mode: ModeSymlink | 0o777, LinkTarget: "../lib/libc.so.6"}
		if mode == ModeBare {
			file.UID, file.GID, link.UID, link.GID = uid, gid, uid, gid
		}
		type corruption struct {
			name    string
			symlink bool
			corrupt func(t *testing.T, r *Repo, p string) // nil: none
		}
		cases := []corruption{
			{"sound", false, nil},
			{"sound symlink", true, nil},
			{"content byte flipped", false, flipMiddle},
			{"header changed", false, func(t *testing.T, r *Repo, p string) {
				h := file
				h.Mode = ModeRegular | 0o600
				restamp(t, r, p, h, len(content))
			}},
			{"truncated", false, func(t *testing.T, r *Repo, p string) {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, st.Size()*3/4); err != nil {
					t.Fatal(err)
				}
			}},
			{"symlink target changed", true, func(t *testing.T, r *Repo, p string) {
				h := link
				h.LinkTarget = "../lib/libc.so.7"
				switch r.Mode {
				case ModeArchive:
					replaceFile(t, p, h.ArchiveHeader(0))
				case ModeBareUser:
					replaceFile(t, p, []byte(h.LinkTarget))
				default:
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(h.LinkTarget, p); err != nil {
						t.Fatal(err)
					}
				}
			}},
		}
		if mode == ModeArchive {
			cases = append(cases,
				corruption{"header size larger than content", false, func(t *testing.T, r *Repo, p string) {
					_, rest := archiveParts(t, p)
					replaceFile(t, p, append(file.ArchiveHeader(uint64(len(content)+10)), rest...))
				}},
				corruption{"more content than the header says", false, func(t *testing.T, r *Repo, p string) {
					var z bytes.Buffer
					if err := deflate(&z, bytes.NewReader(append(bytes.Clone(content), "extra"...)), 6); err != nil {
						t.Fatal(err)
					}
					replaceFile(t, p, append(file.ArchiveHeader(uint64(len(content))), z.Bytes()...))
				}})
		}
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				r, err := Init(filepath.Join(t.TempDir(), "repo"), mode)
				if err != nil {
					t.Fatal(err)
				}
				h, data := file, content
				if tc.symlink {
					h, data = link, nil
				}
				c := storeContent(t, r, h, data)
				if tc.corrupt != nil {
					tc.corrupt(t, r, r.ObjectPath(c, ObjFile))
				}
				got, err := readCompleting(r, c)
				if tc.corrupt == nil {
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("sound object: read %d bytes, %v", len(got), err)
					}
					return
				}
				checkCorrupt(t, "OpenContent and reading Size bytes", err, c)
				_, _, err = r.ReadContent(c)
				checkCorrupt(t, "ReadContent", err, c)
				if tc.symlink {
					_, _, err = r.ReadHeader(c)
					checkCorrupt(t, "ReadHeader of a symlink", err, c)
				}
				problems, err := r.Fsck(context.Background())
				if err != nil || len(problems) != 1 {
					t.Errorf("fsck: %v, %v; want the one corrupt object", problems, err)
				}
			})
		}
	}
}

// readCompleting opens an object and reads exactly its Size bytes, as a caller that
// stops at the announced size would, then expects the end.
func readCompleting(r *Repo, c Checksum) ([]byte, error) {
	o, err := r.OpenContent(c)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	buf := make([]byte, o.Size)
	if _, err := io.ReadFull(o, buf); err != nil {
		return nil, err
	}
	if n, err := o.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return nil, io.ErrNoProgress // data or an error past the end, reported as not EOF
	}
	return buf, nil
}

func checkCorrupt(t *testing.T, what string, err error, c Checksum) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), c.String()) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("%s: error %v, want one saying object %s is corrupt", what, err, c)
	}
}

// TestReadObjectVerifies checks that metadata objects named by their checksum are verified
// when read, and detached metadata (named by its commit) is not.
func TestReadObjectVerifies(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	meta := DirMeta{Mode: ModeDir | 0o755}
	mc, err := r.WriteObject(ObjDirMeta, meta.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tree := DirTree{Files: []TreeFile{{Name: "a", Checksum: mc}}}
	tc, err := r.WriteObject(ObjDirTree, tree.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadDirMeta(mc); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadDirTree(tc); err != nil {
		t.Fatal(err)
	}
	// Still valid objects, with other checksums: mode 0754, file name "b".
	bad := meta
	bad.Mode = ModeDir | 0o754
	replaceFile(t, r.ObjectPath(mc, ObjDirMeta), bad.Marshal())
	badTree := DirTree{Files: []TreeFile{{Name: "b", Checksum: mc}}}
	replaceFile(t, r.ObjectPath(tc, ObjDirTree), badTree.Marshal())
	_, err = r.ReadDirMeta(mc)
	checkCorrupt(t, "ReadDirMeta", err, mc)
	_, err = r.ReadObject(ObjDirMeta, mc)
	checkCorrupt(t, "ReadObject dirmeta", err, mc)
	_, err = r.ReadDirTree(tc)
	checkCorrupt(t, "ReadDirTree", err, tc)
	if err := r.WriteDetachedMetadata(tc, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadObject(ObjCommitMeta, tc); err != nil {
		t.Errorf("detached metadata, named by its commit: %v", err)
	}
}
