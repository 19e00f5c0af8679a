package ext4

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// entry is one name in the staging tree, in the order mke2fs -d visits
// them: the root first, then each directory's entries in byte order,
// depth first.
type entry struct {
	rel    string // slash-separated path relative to the root; "" is the root
	st     syscall.Stat_t
	xattrs []xattr // as read from the staging file, in listxattr order
	// first is the index of the first entry naming the same inode (itself
	// if it is the first).
	first int
}

type xattr struct {
	name  string
	value []byte
}

type inodeKey struct{ dev, ino uint64 }

// scan walks dir like mke2fs -d does (no symlink is followed) and returns
// its entries with their lstat results and extended attributes.
func scan(dir string) ([]entry, error) {
	var ents []entry
	seen := map[inodeKey]int{}
	add := func(rel, abs string) (*entry, error) {
		var st syscall.Stat_t
		if err := syscall.Lstat(abs, &st); err != nil {
			return nil, &os.PathError{Op: "lstat", Path: abs, Err: err}
		}
		x, err := readXattrs(abs)
		if err != nil {
			return nil, err
		}
		i := len(ents)
		k := inodeKey{uint64(st.Dev), uint64(st.Ino)}
		first := i
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if f, ok := seen[k]; ok {
				first = f
			} else {
				seen[k] = i
			}
		}
		ents = append(ents, entry{rel: rel, st: st, xattrs: x, first: first})
		return &ents[i], nil
	}
	var walk func(rel, abs string) error
	walk = func(rel, abs string) error {
		des, err := os.ReadDir(abs) // sorted by name, as mke2fs's scandir
		if err != nil {
			return err
		}
		for _, de := range des {
			crel := de.Name()
			if rel != "" {
				crel = rel + "/" + de.Name()
			}
			cabs := filepath.Join(abs, de.Name())
			e, err := add(crel, cabs)
			if err != nil {
				return err
			}
			if e.st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				if err := walk(crel, cabs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	root, err := add("", dir)
	if err != nil {
		return nil, err
	}
	if root.st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("ext4: %s is not a directory", dir)
	}
	if err := walk("", dir); err != nil {
		return nil, err
	}
	return ents, nil
}

// readXattrs returns the extended attributes of the file at p, not
// following a final symlink. File systems without xattr support yield none.
func readXattrs(p string) ([]xattr, error) {
	buf := make([]byte, 256)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Llistxattr(p, nil)
			if err != nil {
				return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
			}
			buf = make([]byte, sz+64)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
		}
		break
	}
	var out []xattr
	for b := buf[:n]; len(b) > 0; {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		name := string(b[:i])
		if i < len(b) {
			i++
		}
		b = b[i:]
		if name == "" {
			continue
		}
		v, err := lgetxattr(p, name)
		if err != nil {
			return nil, err
		}
		out = append(out, xattr{name, v})
	}
	return out, nil
}

func lgetxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(p, name, nil)
			if err != nil {
				return nil, &os.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		return buf[:n:n], nil
	}
}

// cleanRel normalises an attrs key to the form scan uses for rel.
func cleanRel(p string) string {
	p = path.Clean("/" + p)
	return p[1:]
}
