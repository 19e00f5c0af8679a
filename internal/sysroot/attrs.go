package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// Attrs decides how the files written into a sysroot get the owners, modes and extended
// attributes that the objects of its bare repository, the deployments' directories and
// their copies of /etc must carry. There are three ways, by the value of Options.Attrs
// (or OpenOptions.Attrs):
//
//   - nil sets them on disk, which needs root;
//   - a *Record records them instead, so that an ordinary user can stage a sysroot for an
//     image whose writer applies them;
//   - a *Sparse records them and also leaves the objects deploying does not read out of
//     the sysroot on disk, listing them for the image writer.
//
// Recording works only for a sysroot without deployments: merging /etc reads the
// attributes of a previous deployment from disk.
type Attrs interface {
	// open checks that s can be written this way and binds the recorder to it.
	open(s *Sysroot) error
	// set gives p (a file of type typ, unix.S_IF*) the attributes m.
	set(p string, typ uint32, m ostree.DirMeta) error
	// get returns the attributes of p, whose lstat result is st.
	get(p string, st *unix.Stat_t) (ostree.DirMeta, error)
	// moved follows the rename of the tree at from to to.
	moved(from, to string)
	// writeObject stores content object c, opened in the source repository, in the
	// sysroot's repository dst. It runs on several goroutines at once.
	writeObject(dst *ostree.Repo, c ostree.Checksum, o *ostree.ContentObject) error
	// link makes p, in a checkout, a hard link to content object c at obj.
	link(c ostree.Checksum, obj, p string) error
	// leavesOut reports whether the content object at path p of a commit stays out of
	// the sysroot on disk.
	leavesOut(p string) bool
	// leftOut records an object left out.
	leftOut(c ostree.Checksum, o SparseObject)
}

// onDisk sets attributes on disk; it is what a nil Options.Attrs means.
type onDisk struct{}

func (onDisk) open(*Sysroot) error {
	if os.Geteuid() != 0 {
		return errors.New("sysroot: creating a bare repository needs root (to set file owners and extended attributes); run Deploy as root or record them with Options.Attrs")
	}
	return nil
}

func (onDisk) set(p string, typ uint32, m ostree.DirMeta) error {
	if err := os.Lchown(p, int(m.UID), int(m.GID)); err != nil {
		return err
	}
	for _, x := range m.Xattrs {
		if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("%s: setting xattr %s: %w", p, x.Name, err)
		}
	}
	if typ == unix.S_IFLNK {
		return nil
	}
	return chmod(p, m.Mode&ostree.ModePermMask) // after chown, which clears setuid bits
}

func (onDisk) get(p string, st *unix.Stat_t) (ostree.DirMeta, error) {
	xattrs, err := ostree.ReadXattrs(p)
	if err != nil {
		return ostree.DirMeta{}, err
	}
	return ostree.DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode & ostree.ModePermMask, Xattrs: xattrs}, nil
}

func (onDisk) moved(from, to string) {}

func (onDisk) writeObject(dst *ostree.Repo, c ostree.Checksum, o *ostree.ContentObject) error {
	_, err := dst.WriteContent(c, &o.Header, o, o.Size, 0)
	return err
}

func (onDisk) link(c ostree.Checksum, obj, p string) error { return os.Link(obj, p) }

func (onDisk) leavesOut(string) bool { return false }

func (onDisk) leftOut(ostree.Checksum, SparseObject) {}

func chmod(p string, perm uint32) error {
	if err := unix.Chmod(p, perm); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}

// Record records the owners, modes and extended attributes of a sysroot's files instead
// of setting them. Files on disk keep the caller's owner and get u+rw (directories
// u+rwx); the objects of the repository get no extended attributes. A Record serves one
// sysroot, from the Open (or Deploy) that binds it on.
type Record struct {
	// Attrs holds the attributes of every path whose attributes differ from "owned by
	// 0:0, on-disk permission bits, no xattrs", keyed by slash-separated path relative to
	// the sysroot. Image builders apply them inside the filesystem they write (see
	// image/ext4).
	Attrs map[string]ostree.DirMeta

	root string
	mu   sync.Mutex // objects are written in parallel
}

func (r *Record) open(s *Sysroot) error {
	if len(s.deployments) > 0 {
		return errors.New("sysroot: recording attributes (Options.Attrs) needs a sysroot without deployments")
	}
	r.root = s.path
	if r.Attrs == nil {
		r.Attrs = map[string]ostree.DirMeta{}
	}
	return nil
}

// key returns the key of p in Attrs.
func (r *Record) key(p string) string {
	rel, _ := filepath.Rel(r.root, p)
	return filepath.ToSlash(rel)
}

func (r *Record) set(p string, typ uint32, m ostree.DirMeta) error {
	perm := m.Mode & ostree.ModePermMask
	disk := perm | 0o600 // readable and writable by the caller, who owns the files
	switch typ {
	case unix.S_IFDIR:
		disk = perm | 0o700
	case unix.S_IFLNK:
		disk = perm
	}
	if m.UID != 0 || m.GID != 0 || len(m.Xattrs) > 0 || disk != perm {
		r.Attrs[r.key(p)] = ostree.DirMeta{UID: m.UID, GID: m.GID, Mode: perm, Xattrs: m.Xattrs}
	}
	if typ == unix.S_IFLNK {
		return nil
	}
	return chmod(p, disk)
}

func (r *Record) get(p string, st *unix.Stat_t) (ostree.DirMeta, error) {
	if m, ok := r.Attrs[r.key(p)]; ok {
		return m, nil
	}
	return ostree.DirMeta{Mode: st.Mode & ostree.ModePermMask}, nil
}

func (r *Record) moved(from, to string) {
	f, t := r.key(from), r.key(to)
	var keys []string
	for k := range r.Attrs {
		if rest, ok := strings.CutPrefix(k, f); ok && (rest == "" || rest[0] == '/') {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		r.Attrs[t+k[len(f):]] = r.Attrs[k]
		delete(r.Attrs, k)
	}
}

func (r *Record) writeObject(dst *ostree.Repo, c ostree.Checksum, o *ostree.ContentObject) error {
	h := &o.Header
	stored, err := dst.WriteContentUnowned(c, h, o, o.Size)
	if err != nil || !stored {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Attrs[r.key(dst.ObjectPath(c, ostree.ObjFile))] = ostree.DirMeta{UID: h.UID, GID: h.GID, Mode: h.Mode & ostree.ModePermMask, Xattrs: h.Xattrs}
	return nil
}

func (r *Record) link(c ostree.Checksum, obj, p string) error {
	if err := os.Link(obj, p); err != nil {
		return err
	}
	// Recorded under the checkout's name too, for copies made from it (/etc).
	a, ok := r.Attrs[r.key(obj)]
	if !ok {
		var st unix.Stat_t
		if err := unix.Lstat(obj, &st); err != nil {
			return err
		}
		a, _ = r.get(obj, &st)
	}
	r.Attrs[r.key(p)] = a
	return nil
}

func (r *Record) leavesOut(string) bool { return false }

func (r *Record) leftOut(ostree.Checksum, SparseObject) {}

// Sparse records attributes as Record does, and leaves out of the sysroot on disk the
// content objects deploying does not read itself (it reads /usr/etc, os-release, the
// kernel, initramfs and device trees), listing them, with the checkout paths that would
// link to them, instead. Image builders write those objects straight from the source
// repository into the image: decompressed once, and never staged.
type Sparse struct {
	Record
	// Objects are the objects left out, by checksum. Each belongs in the sysroot at
	// ObjectPath.
	Objects map[ostree.Checksum]SparseObject
	// Links are the paths of the deployment (relative to the sysroot) that are hard links
	// to them.
	Links map[string]ostree.Checksum
}

// SparseObject is a content object left out of a sysroot.
type SparseObject struct {
	// Header holds the owner, mode, xattrs and symlink target.
	Header ostree.FileHeader
	// Size is the content's length.
	Size int64
}

func (s *Sparse) open(sr *Sysroot) error {
	if err := s.Record.open(sr); err != nil {
		return err
	}
	s.Objects, s.Links = map[ostree.Checksum]SparseObject{}, map[string]ostree.Checksum{}
	return nil
}

func (s *Sparse) link(c ostree.Checksum, obj, p string) error {
	if _, ok := s.Objects[c]; ok {
		s.Links[s.key(p)] = c
		return nil
	}
	return s.Record.link(c, obj, p)
}

func (s *Sparse) leavesOut(p string) bool { return !readByDeploy(p) }

func (s *Sparse) leftOut(c ostree.Checksum, o SparseObject) { s.Objects[c] = o }
