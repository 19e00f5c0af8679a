package image

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sysroot"
)

// stagedTree describes for ext4.Write the sysroot staged at root together with the
// objects Deploy left out of it: owners, modes and xattrs of staged files come from attrs
// (see sysroot.Record), and the objects in sparse (see sysroot.Sparse) are
// added at their paths and hard links, their data decompressed from the source repository
// as the image is written.
func stagedTree(root string, attrs map[string]ostree.DirMeta, sparse *sysroot.Sparse, src *ostree.Repo) (*ext4.Inode, error) {
	t := &treeBuilder{root: root, attrs: attrs, inodes: map[[2]uint64]*ext4.Inode{}}
	top, err := t.node("")
	if err != nil {
		return nil, err
	}
	objects := make(map[ostree.Checksum]*ext4.Inode, len(sparse.Objects))
	for c, o := range sparse.Objects {
		h := o.Header
		in := &ext4.Inode{Mode: h.Mode, UID: h.UID, GID: h.GID, Xattrs: ext4Xattrs(h.Xattrs), Target: h.LinkTarget}
		if !h.IsSymlink() {
			in.Size = o.Size
			if in.Size > 0 {
				in.Data = objectData(src, c, o.Size)
			}
		}
		objects[c] = in
	}
	d := dirIndex{}
	byChecksum := func(a, b ostree.Checksum) int { return bytes.Compare(a[:], b[:]) }
	for _, c := range slices.SortedFunc(maps.Keys(objects), byChecksum) {
		if err := d.insert(top, sysroot.ObjectPath(c), objects[c]); err != nil {
			return nil, err
		}
	}
	for _, p := range slices.Sorted(maps.Keys(sparse.Links)) {
		if err := d.insert(top, p, objects[sparse.Links[p]]); err != nil {
			return nil, err
		}
	}
	for dir := range d {
		slices.SortFunc(dir.Entries, func(a, b ext4.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	}
	return top, nil
}

// dirIndex maps the directories entries were added to, to their entries by name.
type dirIndex map[*ext4.Inode]map[string]*ext4.Inode

// insert adds in at path p below top, creating missing directories (root-owned, 0755,
// as ostree creates the repository's object directories).
func (d dirIndex) insert(top *ext4.Inode, p string, in *ext4.Inode) error {
	dir := top
	parts := strings.Split(p, "/")
	for i, name := range parts {
		names, ok := d[dir]
		if !ok {
			names = make(map[string]*ext4.Inode, len(dir.Entries))
			for _, e := range dir.Entries {
				names[e.Name] = e.Inode
			}
			d[dir] = names
		}
		if i == len(parts)-1 {
			if _, exists := names[name]; exists {
				return fmt.Errorf("sysroot: %s staged and left out both", p)
			}
			names[name] = in
			dir.Entries = append(dir.Entries, ext4.DirEntry{Name: name, Inode: in})
			return nil
		}
		next, ok := names[name]
		if !ok {
			next = &ext4.Inode{Mode: unix.S_IFDIR | 0o755}
			names[name] = next
			dir.Entries = append(dir.Entries, ext4.DirEntry{Name: name, Inode: next})
		} else if next.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("sysroot: %s: %s is not a directory", p, path.Join(parts[:i+1]...))
		}
		dir = next
	}
	return nil
}

type treeBuilder struct {
	root   string
	attrs  map[string]ostree.DirMeta
	inodes map[[2]uint64]*ext4.Inode // by device and inode number: hard links
}

// node describes the staged file at rel (slash-separated, "" for the root).
func (t *treeBuilder) node(rel string) (*ext4.Inode, error) {
	p := filepath.Join(t.root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	key := [2]uint64{st.Dev, st.Ino}
	a, recorded := t.attrs[rel]
	if in, ok := t.inodes[key]; ok {
		if recorded { // another name of the inode carries its attributes
			setAttrs(in, st.Mode, a)
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
		return in, nil
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		in.Target = target
	case unix.S_IFREG:
		in.Size = st.Size
		if in.Size > 0 {
			in.Data = fileData(p, in.Size)
		}
	default:
		return nil, fmt.Errorf("%s: unsupported file type", p)
	}
	t.inodes[key] = in
	return in, nil
}

func setAttrs(in *ext4.Inode, mode uint32, a ostree.DirMeta) {
	in.Mode = mode&unix.S_IFMT | a.Mode&0o7777
	in.UID, in.GID, in.Xattrs = a.UID, a.GID, ext4Xattrs(a.Xattrs)
}

// ext4Xattrs converts OSTree's xattrs to ext4's. A file's mode needs no conversion: both
// packages take the st_mode value.
func ext4Xattrs(xs []ostree.Xattr) []ext4.Xattr {
	if len(xs) == 0 {
		return nil
	}
	out := make([]ext4.Xattr, len(xs))
	for i, x := range xs {
		out[i] = ext4.Xattr{Name: x.Name, Value: x.Value}
	}
	return out
}

// fileData returns a Data function copying a staged file.
func fileData(p string, size int64) func(io.Writer) error {
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

// objectData returns a Data function writing content object c of src. OpenContent's reader
// verifies the object as the image is written: for a corrupt object, the read that would
// complete it fails, and so does the image.
func objectData(src *ostree.Repo, c ostree.Checksum, size int64) func(io.Writer) error {
	return func(w io.Writer) error {
		o, err := src.OpenContent(c)
		if err != nil {
			return err
		}
		defer o.Close()
		if o.Size != size {
			return fmt.Errorf("object %s: %d bytes, was %d", c, o.Size, size)
		}
		_, err = io.Copy(w, o)
		return err
	}
}
