package ext4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrTooSmall is returned, wrapped with the needed and the available size,
// when the tree does not fit into the filesystem size given to Write.
var ErrTooSmall = errors.New("ext4: filesystem size too small for the contents")

// Inode is a file, directory or symlink of the filesystem Write creates. An
// *Inode that appears in several directories is one inode with several links
// (a hard link). Directories may appear only once.
type Inode struct {
	// Mode is the full st_mode: the file type (ModeRegular, ModeDir or
	// ModeSymlink, the values of S_IFREG, S_IFDIR and S_IFLNK) and the
	// permission bits, setuid, setgid and sticky included.
	Mode uint32
	// UID and GID are the owner.
	UID, GID uint32
	// Mtime is the modification time in seconds since the epoch; it is also
	// used as access, change and creation time so that the output is
	// reproducible.
	Mtime int64
	// Xattrs are the extended attributes, with full names such as
	// "security.capability" or "user.foo". POSIX ACLs
	// (system.posix_acl_access, system.posix_acl_default) are given in the
	// xattr format getxattr returns and stored in ext4's format.
	Xattrs []Xattr
	// Size is the content length of a regular file.
	Size int64
	// Data writes the content of a regular file with Size > 0: exactly Size
	// bytes. It may be called from any goroutine, concurrently with the
	// Data of other files.
	Data func(w io.Writer) error
	// Target is the target of a symlink.
	Target string
	// Entries are the entries of a directory, without "." and "..", in the
	// order they are written to the directory (the caller sorts them).
	Entries []DirEntry
}

// The file types of Inode.Mode, with the values of st_mode's S_IF* bits.
const (
	ModeTypeMask = 0o170000 // S_IFMT: the file type bits of a mode
	ModeRegular  = 0o100000 // S_IFREG: a regular file
	ModeDir      = 0o040000 // S_IFDIR: a directory
	ModeSymlink  = 0o120000 // S_IFLNK: a symbolic link
)

// Xattr is an extended attribute of an Inode.
type Xattr struct {
	// Name is the full name, namespace included: "user.", "trusted.",
	// "security." or "system." followed by 1 to 255 bytes.
	Name string
	// Value is the value, in the format getxattr returns.
	Value []byte
}

// DirEntry names an inode in a directory.
type DirEntry struct {
	// Name is the file name: 1 to 255 bytes, no '/' or NUL, not "." or "..".
	Name string
	// Inode is the named file, directory or symlink.
	Inode *Inode
}

// WriterOptions are the optional settings of Write.
type WriterOptions struct {
	// Label is the volume label, at most 16 bytes.
	Label string
	// UUID is the filesystem UUID in canonical text form, such as
	// "2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b". If empty, it is derived from
	// the label, the offset and the size, so that the output is
	// reproducible.
	UUID string
	// Workers is the number of goroutines calling the Data functions; 0
	// means runtime.GOMAXPROCS(0)*2.
	Workers int
	// Progress, if not nil, is called after each regular file's data is
	// written, with the data bytes written so far and their total. It is
	// called from the worker goroutines, but never concurrently.
	Progress func(doneBytes, totalBytes int64)
}

// WriteSize returns the smallest size, in bytes and a multiple of 1 MiB,
// that Write needs for root, including a journal and some slack (1% and at
// least 1 MiB of free space). It returns 0 if root cannot be written at
// all, for which Write returns the error.
func WriteSize(root *Inode) int64 {
	p, err := analyze(root)
	if err != nil {
		return 0
	}
	return p.size()
}

// Write formats size bytes at byte offset of the existing file imagePath as
// ext4 holding root, a directory Inode. A size that is not a multiple of
// 4096 is rounded down. Write neither truncates nor extends the file, which
// must be at least offset+size bytes long, and writes nothing outside the
// region.
//
// The region is first turned into a hole (on files and filesystems that
// support punching holes; otherwise the inode tables and the journal are
// written as zeros) and then only the blocks the filesystem uses are
// written, so the image stays sparse. Regular files' data is produced by
// their Data functions, called by opts.Workers goroutines in parallel, each
// file's bytes going straight to its blocks. The superblock is written
// last, so an error leaves no valid filesystem behind.
//
// The package documentation describes the filesystem. The same input gives
// a byte-identical filesystem.
//
// Write returns an error wrapping ErrTooSmall if the tree does not fit.
func Write(ctx context.Context, imagePath string, offset, size int64, root *Inode, opts WriterOptions) error {
	if offset < 0 || size < 0 {
		return fmt.Errorf("ext4: invalid region offset %d size %d", offset, size)
	}
	if len(opts.Label) > 16 {
		return fmt.Errorf("ext4: label %q longer than 16 bytes", opts.Label)
	}
	var uuid [16]byte
	u := opts.UUID
	if u == "" {
		u = derivedUUID("writer", opts.Label, fmt.Sprint(offset), fmt.Sprint(size))
	}
	if !validUUID(u) {
		return fmt.Errorf("ext4: invalid UUID %q", opts.UUID)
	}
	if _, err := hex.Decode(uuid[:], []byte(strings.ReplaceAll(u, "-", ""))); err != nil {
		return fmt.Errorf("ext4: invalid UUID %q", opts.UUID)
	}
	p, err := analyze(root)
	if err != nil {
		return err
	}
	blocks := size / blockSize
	l, err := place(p, blocks)
	if err != nil {
		if errors.Is(err, ErrTooSmall) {
			return fmt.Errorf("%w (need %d bytes, have %d)", err, p.size(), size)
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(imagePath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	imgSize, err := fileSize(imagePath)
	if err != nil {
		return err
	}
	if offset+size > imgSize {
		return fmt.Errorf("ext4: region [%d, %d) extends past the end of %s (%d bytes)", offset, offset+size, imagePath, imgSize)
	}
	w := &imgWriter{f: f, base: offset}
	w.zeroed = !noPunch && punchHole(f, offset, size) == nil
	if err := l.writeData(ctx, w, opts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sb := l.superblock(uuid, opts.Label)
	if err := l.writeMeta(w, sb); err != nil {
		return err
	}
	// the primary superblock last
	b0 := make([]byte, blockSize)
	copy(b0[1024:], sb)
	if err := w.writeBlocks(0, b0); err != nil {
		return err
	}
	return nil
}

// validUUID reports whether s is a UUID in canonical text form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// derivedUUID makes a version 4 style UUID from a hash of parts.
func derivedUUID(parts ...string) string {
	h := sha256.Sum256([]byte("otakit/ext4\x00" + strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
