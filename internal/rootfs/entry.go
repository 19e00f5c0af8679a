package rootfs

import (
	"fmt"
	"io"
	"strings"

	"github.com/otakit/ota/internal/ostree"
)

// File type bits of Entry.Mode, as in Linux st_mode.
const (
	ModeTypeMask = 0o170000
	ModeSocket   = 0o140000
	ModeSymlink  = 0o120000
	ModeRegular  = 0o100000
	ModeBlock    = 0o060000
	ModeDir      = 0o040000
	ModeChar     = 0o020000
	ModeFIFO     = 0o010000
	ModePermMask = 0o7777
)

// Xattr is one extended attribute of an entry.
type Xattr = ostree.Xattr

// Entry is one filesystem object of a tree, in Linux terms.
type Entry struct {
	// Path is the cleaned path relative to the tree root, with "/" separators and no
	// leading "./" or "/"; the root directory itself is ".".
	Path string
	// Mode is the full Linux st_mode: file type bits (ModeDir, ModeRegular, ...) and
	// permission bits including setuid, setgid and sticky.
	Mode     uint32
	UID, GID uint32
	// Xattrs holds the extended attributes, sorted by name; values are never empty.
	Xattrs []Xattr
	// Size is the content length of a regular file.
	Size int64
	// LinkTarget is the target of a symlink.
	LinkTarget string
	// HardlinkTo, when set, names (as a Path) an earlier regular-file entry of the same
	// source this entry is a hard link to, itself possibly a hard link; the entry then has
	// no content of its own, and shares that of the entry the path named when this one
	// was yielded.
	HardlinkTo string
	// DiskPath, when set, is a file on disk holding the content of a regular file; the
	// consumer may open it at any time, concurrently (directory sources set it).
	DiskPath string
	// Content streams the content of a regular file when DiskPath is empty (tar sources).
	// It is valid only until the next call to Source.Next.
	Content io.Reader
}

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Mode&ModeTypeMask == ModeDir }

// IsRegular reports whether the entry is a regular file.
func (e *Entry) IsRegular() bool { return e.Mode&ModeTypeMask == ModeRegular }

// IsSymlink reports whether the entry is a symbolic link.
func (e *Entry) IsSymlink() bool { return e.Mode&ModeTypeMask == ModeSymlink }

// IsSpecial reports whether the entry is a device node, FIFO or socket: objects OSTree
// cannot represent.
func (e *Entry) IsSpecial() bool {
	switch e.Mode & ModeTypeMask {
	case ModeChar, ModeBlock, ModeFIFO, ModeSocket:
		return true
	}
	return false
}

// Source yields the entries of a tree. A directory's entry comes before the entries inside
// it, except that tar sources may omit directories (consumers create missing parents) or
// repeat a path (the later entry describes it; see the tar reader's documentation).
type Source interface {
	// Next returns the next entry, or io.EOF after the last one.
	Next() (*Entry, error)
	// Name returns what the source's errors call it: the directory or tarball path,
	// "standard input", or "" for a stream given no name.
	Name() string
	// Close releases the source's resources.
	Close() error
}

// Check returns why the entry cannot be committed into a tree that deploys, or nil: a name
// in its path that ostree refuses or longer than NAME_MAX (see ostree.CheckName), a
// symlink target or xattrs beyond the limits of Linux and ext4 (see ostree.CheckLinkTarget
// and ostree.CheckXattrs). The error names the path, quoted so that invalid bytes show as
// escapes.
func (e *Entry) Check() error {
	abs := "/"
	if e.Path != "." {
		abs += e.Path
		for name := range strings.SplitSeq(e.Path, "/") {
			if err := ostree.CheckName(name); err != nil {
				return fmt.Errorf("%q: %w", abs, err)
			}
		}
	}
	var err error
	if e.IsSymlink() {
		err = ostree.CheckLinkTarget(e.LinkTarget)
	}
	if err == nil {
		err = ostree.CheckXattrs(e.Xattrs, e.Mode)
	}
	if err != nil {
		return fmt.Errorf("%q: %w", abs, err)
	}
	return nil
}
