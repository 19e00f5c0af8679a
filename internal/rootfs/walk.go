package rootfs

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/otakit/ota/internal/ostree"
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
	xattrs, err := ostree.ReadXattrs(name)
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

// Name returns the directory the tree is read from.
func (s *dirSource) Name() string { return s.root }

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
