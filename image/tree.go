package image

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/internal/ostree"
)

// stagedTree describes the sysroot staged at root for ext4.Write: owners, modes and
// xattrs come from attrs (see sysroot.Options.Attrs), the data of the placeholders listed
// in sparse (see sysroot.Options.Sparse) from the source repository, decompressed and
// verified as the image is written, and the rest from the staged files.
func stagedTree(root string, attrs map[string]ostree.DirMeta, sparse map[ostree.Checksum]bool, src *ostree.Repo) (*ext4.Inode, error) {
	t := &treeBuilder{root: root, attrs: attrs, sparse: sparse, src: src, inodes: map[[2]uint64]*ext4.Inode{}}
	return t.node("")
}

type treeBuilder struct {
	root   string
	attrs  map[string]ostree.DirMeta
	sparse map[ostree.Checksum]bool
	src    *ostree.Repo
	inodes map[[2]uint64]*ext4.Inode // by device and inode number: hard links
}

// node describes the file at rel (slash-separated, "" for the root).
func (t *treeBuilder) node(rel string) (*ext4.Inode, error) {
	p := filepath.Join(t.root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	key := [2]uint64{st.Dev, st.Ino}
	a, recorded := t.attrs[rel]
	if in, ok := t.inodes[key]; ok {
		// Another name of the inode may carry its attributes, or be the placeholder
		// object whose data is in the source repository.
		if recorded {
			setAttrs(in, st.Mode, a)
		}
		if in.Size > 0 {
			if c, ok := objectChecksum(rel); ok && t.sparse[c] {
				in.Data = t.objectData(c, in.Size)
			}
		}
		return in, nil
	}
	in := &ext4.Inode{Mode: st.Mode, Mtime: st.Mtim.Sec}
	if recorded {
		setAttrs(in, st.Mode, a)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range ents { // sorted by name
			child, err := t.node(path.Join(rel, e.Name()))
			if err != nil {
				return nil, err
			}
			in.Entries = append(in.Entries, ext4.DirEntry{Name: e.Name(), Inode: child})
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		in.Target = target
	case unix.S_IFREG:
		in.Size = st.Size
		if in.Size > 0 {
			in.Data = t.data(rel, p, in.Size)
		}
		t.inodes[key] = in
	default:
		return nil, fmt.Errorf("%s: unsupported file type", p)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		t.inodes[key] = in // hardlinked symlinks: ostree checkouts link them too
	}
	return in, nil
}

func setAttrs(in *ext4.Inode, mode uint32, a ostree.DirMeta) {
	in.Mode = mode&unix.S_IFMT | a.Mode&0o7777
	in.UID, in.GID, in.Xattrs = a.UID, a.GID, a.Xattrs
}

// data returns the Data function of the regular file at rel.
func (t *treeBuilder) data(rel, p string, size int64) func(io.Writer) error {
	if c, ok := objectChecksum(rel); ok && t.sparse[c] {
		return t.objectData(c, size)
	}
	return func(w io.Writer) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, io.LimitReader(f, size))
		return err
	}
}

// objectData returns a Data function writing content object c of the source repository,
// which it verifies.
func (t *treeBuilder) objectData(c ostree.Checksum, size int64) func(io.Writer) error {
	return func(w io.Writer) error {
		o, err := t.src.OpenContent(c)
		if err != nil {
			return err
		}
		defer o.Close()
		d := sha256.New()
		d.Write(o.Header.Stream())
		if o.Size != size {
			return fmt.Errorf("object %s: %d bytes, the staged placeholder %d", c, o.Size, size)
		}
		if _, err := io.Copy(io.MultiWriter(w, d), o); err != nil {
			return fmt.Errorf("object %s: %w", c, err)
		}
		if got := ostree.Checksum(d.Sum(nil)); got != c {
			return fmt.Errorf("object %s is corrupt (checksum %s)", c, got)
		}
		return nil
	}
}

// objectChecksum returns the checksum of a content object path of the sysroot's
// repository (ostree/repo/objects/xx/yyyy.file).
func objectChecksum(rel string) (ostree.Checksum, bool) {
	rest, ok := strings.CutPrefix(rel, "ostree/repo/objects/")
	if !ok || !strings.HasSuffix(rest, ".file") || len(rest) != 2+1+62+5 {
		return ostree.Checksum{}, false
	}
	c, err := ostree.ParseChecksum(rest[:2] + rest[3:65])
	return c, err == nil
}
