package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// WalkDir returns a Source yielding the tree rooted at the directory root, which may be a
// symbolic link to a directory. Regular files get DiskPath set to root joined with their
// Path (so it is relative if root is); the consumer opens them. Errors name the file
// concerned, as in "open rootfs/etc/secret: permission denied" for an unreadable
// directory. See the package documentation for the walk order.
func WalkDir(root string) (Source, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", root)
	}
	return &dirSource{root: root, links: make(map[devIno]string)}, nil
}

// dirSource is the Source returned by WalkDir.
type dirSource struct {
	root    string
	started bool
	// stack holds, for each directory being walked, the names still to yield.
	stack []pendingDir
	// links maps the identity of each file with several links to its first Path.
	links map[devIno]string
	err   error // sticky error or io.EOF
}

// pendingDir is a directory being walked.
type pendingDir struct {
	path  string   // Path of the directory
	names []string // entries not yet yielded, sorted
}

// devIno identifies a file on disk.
type devIno struct{ dev, ino uint64 }

func (s *dirSource) Next() (*Entry, error) {
	if s.err != nil {
		return nil, s.err
	}
	var e *Entry
	if !s.started {
		s.started = true
		e, s.err = s.entry(".")
		return e, s.err
	}
	for len(s.stack) > 0 {
		top := &s.stack[len(s.stack)-1]
		if len(top.names) == 0 {
			s.stack = s.stack[:len(s.stack)-1]
			continue
		}
		name := top.names[0]
		top.names = top.names[1:]
		e, s.err = s.entry(path.Join(top.path, name))
		return e, s.err
	}
	s.err = io.EOF
	return nil, s.err
}

// diskPath returns the file on disk at Path p.
func (s *dirSource) diskPath(p string) string {
	if p == "." {
		return s.root + "/." // follows root if it is a symbolic link
	}
	return filepath.Join(s.root, p)
}

// entry describes the file at Path p, and queues its names if it is a directory.
func (s *dirSource) entry(p string) (*Entry, error) {
	name := s.diskPath(p)
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("lstat %s: no system file information", name)
	}
	xattrs, err := diskXattrs(name)
	if err != nil {
		return nil, err
	}
	e := &Entry{Path: p, Mode: uint32(st.Mode), UID: st.Uid, GID: st.Gid, Xattrs: xattrs}
	switch e.Mode & ModeTypeMask {
	case ModeDir:
		names, err := readNames(name)
		if err != nil {
			return nil, err
		}
		s.stack = append(s.stack, pendingDir{path: p, names: names})
	case ModeRegular:
		if st.Nlink > 1 {
			id := devIno{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := s.links[id]; ok {
				e.HardlinkTo = first
				return e, nil
			}
			s.links[id] = p
		}
		e.Size = fi.Size()
		e.DiskPath = name
	case ModeSymlink:
		if e.LinkTarget, err = os.Readlink(name); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (s *dirSource) Close() error { return nil }

// readNames returns the names in directory dir, sorted bytewise.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// diskXattrs returns the extended attributes of file name, not following symbolic links,
// sorted by name and without empty values; none if the filesystem does not support them.
func diskXattrs(name string) ([]Xattr, error) {
	list, err := xattrCall(func(b []byte) (int, error) { return unix.Llistxattr(name, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "llistxattr", Path: name, Err: err}
	}
	var xs []Xattr
	for _, attr := range strings.Split(string(list), "\x00") {
		if attr == "" {
			continue
		}
		val, err := xattrCall(func(b []byte) (int, error) { return unix.Lgetxattr(name, attr, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lgetxattr " + attr, Path: name, Err: err}
		}
		if len(val) > 0 {
			xs = append(xs, Xattr{Name: attr, Value: val})
		}
	}
	slices.SortFunc(xs, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return xs, nil
}

// xattrCall runs a size-probing xattr system call: first with no buffer to learn the size,
// then with a buffer that large, again if the value grew in between.
func xattrCall(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		b := make([]byte, n)
		n, err = call(b)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return b[:n], nil
	}
}
