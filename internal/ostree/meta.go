package ostree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/otakit/ota/internal/gvariant"
)

// File type bits of a mode, as in Linux st_mode.
const (
	ModeTypeMask = 0o170000
	ModeDir      = 0o040000
	ModeRegular  = 0o100000
	ModeSymlink  = 0o120000
	ModePermMask = 0o7777
)

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// SortXattrs sorts xattrs by name, the order OSTree checksums them in.
func SortXattrs(x []Xattr) {
	slices.SortFunc(x, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
}

// xattrsValue converts xattrs to the a(ayay) representation: names carry their NUL.
func xattrsValue(x []Xattr) []any {
	out := make([]any, len(x))
	for i, a := range x {
		out[i] = []any{append([]byte(a.Name), 0), a.Value}
	}
	return out
}

func parseXattrs(v any) ([]Xattr, error) {
	list := v.([]any)
	out := make([]Xattr, 0, len(list))
	for _, e := range list {
		pair := e.([]any)
		name := pair[0].([]byte)
		if len(name) < 2 || name[len(name)-1] != 0 || bytes.IndexByte(name[:len(name)-1], 0) >= 0 {
			return nil, fmt.Errorf("malformed xattr name %q", name)
		}
		out = append(out, Xattr{Name: string(name[:len(name)-1]), Value: pair[1].([]byte)})
	}
	return out, nil
}

func be32(v uint32) uint32 { return bits.ReverseBytes32(v) }
func be64(v uint64) uint64 { return bits.ReverseBytes64(v) }

// FileHeader is the metadata of a content object: a regular file or a symlink.
type FileHeader struct {
	UID, GID uint32
	// Mode is the full st_mode, S_IFREG or S_IFLNK plus permission bits.
	Mode uint32
	// LinkTarget is the target of a symlink, empty for regular files.
	LinkTarget string
	// Xattrs are sorted by name.
	Xattrs []Xattr
}

// IsSymlink reports whether the header describes a symlink.
func (h *FileHeader) IsSymlink() bool { return h.Mode&ModeTypeMask == ModeSymlink }

// Validate checks the rules libostree applies to content objects.
func (h *FileHeader) Validate() error {
	switch h.Mode & ModeTypeMask {
	case ModeRegular:
		if h.LinkTarget != "" {
			return errors.New("regular file with a symlink target")
		}
	case ModeSymlink:
		if err := checkTarget(h.LinkTarget); err != nil {
			return err
		}
	default:
		return fmt.Errorf("invalid file mode %#o: only regular files and symlinks are content objects", h.Mode)
	}
	if h.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		return fmt.Errorf("invalid file mode %#o", h.Mode)
	}
	return nil
}

// Stream returns the start of the canonical object stream: the big-endian header length,
// four zero bytes and the (uuuusa(ayay)) header. The checksum of a content object is the
// SHA-256 of this followed by the file's content.
func (h *FileHeader) Stream() []byte {
	return lengthPrefixed(gvariant.MustEncode(FileHeaderType, []any{
		be32(h.UID), be32(h.GID), be32(h.Mode), uint32(0), h.LinkTarget, xattrsValue(h.Xattrs)}))
}

// lengthPrefixed prepends the big-endian length and four bytes of padding to a header.
func lengthPrefixed(v []byte) []byte {
	out := make([]byte, 8+len(v))
	binary.BigEndian.PutUint32(out, uint32(len(v)))
	copy(out[8:], v)
	return out
}

// ArchiveHeader returns the start of an archive-mode .filez object: the big-endian length,
// four zero bytes and the (tuuuusa(ayay)) header with the uncompressed size.
func (h *FileHeader) ArchiveHeader(size uint64) []byte {
	return lengthPrefixed(gvariant.MustEncode(ZHeaderType, []any{
		be64(size), be32(h.UID), be32(h.GID), be32(h.Mode), uint32(0), h.LinkTarget, xattrsValue(h.Xattrs)}))
}

// parseHeaderFields decodes the uid, gid, mode, rdev, target and xattrs fields of a file header.
func parseHeaderFields(f []any) (FileHeader, error) {
	h := FileHeader{UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32))}
	if f[3].(uint32) != 0 {
		return h, errors.New("nonzero rdev in file header")
	}
	h.LinkTarget = f[4].(string)
	var err error
	if h.Xattrs, err = parseXattrs(f[5]); err != nil {
		return h, err
	}
	return h, h.Validate()
}

// splitHeader splits a length-prefixed header off the front of data.
func splitHeader(data []byte) (header, rest []byte, err error) {
	if len(data) < 8 {
		return nil, nil, errors.New("truncated file header")
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-8) {
		return nil, nil, errors.New("truncated file header")
	}
	return data[8 : 8+n], data[8+n:], nil
}

// ParseArchiveHeader parses the header of a .filez object and returns the header, the
// uncompressed size and the number of bytes the header took.
func ParseArchiveHeader(data []byte) (FileHeader, uint64, int, error) {
	hb, rest, err := splitHeader(data)
	if err != nil {
		return FileHeader{}, 0, 0, err
	}
	v, err := gvariant.Decode(ZHeaderType, hb)
	if err != nil {
		return FileHeader{}, 0, 0, fmt.Errorf("archive file header: %w", err)
	}
	f := v.([]any)
	h, err := parseHeaderFields(f[1:])
	return h, be64(f[0].(uint64)), len(data) - len(rest), err
}

// MaxHeaderSize bounds the header a reader accepts, so a corrupt length cannot make it
// allocate without limit (xattrs such as SELinux labels or ACLs keep real headers small).
const MaxHeaderSize = 1 << 20

// DirMeta is the metadata of a directory.
type DirMeta struct {
	UID, GID uint32
	// Mode is the full st_mode including S_IFDIR.
	Mode   uint32
	Xattrs []Xattr
}

// Marshal serialises the dirmeta object.
func (m *DirMeta) Marshal() []byte {
	return gvariant.MustEncode(DirMetaType, []any{be32(m.UID), be32(m.GID), be32(m.Mode), xattrsValue(m.Xattrs)})
}

// ParseDirMeta parses and validates a dirmeta object.
func ParseDirMeta(data []byte) (DirMeta, error) {
	v, err := gvariant.Decode(DirMetaType, data)
	if err != nil {
		return DirMeta{}, fmt.Errorf("dirmeta: %w", err)
	}
	f := v.([]any)
	m := DirMeta{UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32))}
	if m.Xattrs, err = parseXattrs(f[3]); err != nil {
		return m, fmt.Errorf("dirmeta: %w", err)
	}
	if m.Mode&ModeTypeMask != ModeDir || m.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		return m, fmt.Errorf("dirmeta: invalid directory mode %#o", m.Mode)
	}
	return m, nil
}

// TreeFile is a file or symlink entry of a dirtree.
type TreeFile struct {
	Name     string
	Checksum Checksum
}

// TreeDir is a subdirectory entry of a dirtree.
type TreeDir struct {
	Name       string
	Tree, Meta Checksum
}

// DirTree lists a directory's entries. Marshal sorts them; parsed trees are sorted.
type DirTree struct {
	Files []TreeFile
	Dirs  []TreeDir
}

// Marshal sorts the entries by name and serialises the dirtree object.
func (t *DirTree) Marshal() []byte {
	slices.SortFunc(t.Files, func(a, b TreeFile) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(t.Dirs, func(a, b TreeDir) int { return strings.Compare(a.Name, b.Name) })
	files := make([]any, len(t.Files))
	for i, f := range t.Files {
		files[i] = []any{f.Name, f.Checksum[:]}
	}
	dirs := make([]any, len(t.Dirs))
	for i, d := range t.Dirs {
		dirs[i] = []any{d.Name, d.Tree[:], d.Meta[:]}
	}
	return gvariant.MustEncode(DirTreeType, []any{files, dirs})
}

// NameError is the error ParseDirTree returns for an entry name ostree's rules refuse
// (see ValidName), or for names out of order or given twice.
type NameError struct {
	Name string
	Err  error
}

// Error names the entry, quoted so that invalid bytes show as escapes.
func (e *NameError) Error() string { return fmt.Sprintf("dirtree: entry %q: %v", e.Name, e.Err) }

// checkNames checks that names are valid, sorted bytewise and unique, as ostree requires
// of a dirtree's files and of its directories.
func checkNames(names func(i int) string, n int) error {
	for i := range n {
		name := names(i)
		if err := checkName(name); err != nil {
			return &NameError{Name: name, Err: err}
		}
		if i > 0 && names(i-1) >= name {
			if names(i-1) == name {
				return &NameError{Name: name, Err: errors.New("listed twice")}
			}
			return &NameError{Name: name, Err: fmt.Errorf("listed after %q, out of order", names(i-1))}
		}
	}
	return nil
}

// ParseDirTree parses and validates a dirtree object.
func ParseDirTree(data []byte) (DirTree, error) {
	v, err := gvariant.Decode(DirTreeType, data)
	if err != nil {
		return DirTree{}, fmt.Errorf("dirtree: %w", err)
	}
	f := v.([]any)
	var t DirTree
	for _, e := range f[0].([]any) {
		p := e.([]any)
		c, err := ChecksumFromBytes(p[1].([]byte))
		if err != nil {
			return t, fmt.Errorf("dirtree: %w", err)
		}
		t.Files = append(t.Files, TreeFile{Name: p[0].(string), Checksum: c})
	}
	for _, e := range f[1].([]any) {
		p := e.([]any)
		tc, err1 := ChecksumFromBytes(p[1].([]byte))
		mc, err2 := ChecksumFromBytes(p[2].([]byte))
		if err := errors.Join(err1, err2); err != nil {
			return t, fmt.Errorf("dirtree: %w", err)
		}
		t.Dirs = append(t.Dirs, TreeDir{Name: p[0].(string), Tree: tc, Meta: mc})
	}
	if err := checkNames(func(i int) string { return t.Files[i].Name }, len(t.Files)); err != nil {
		return t, err
	}
	return t, checkNames(func(i int) string { return t.Dirs[i].Name }, len(t.Dirs))
}

// Commit is a commit object.
type Commit struct {
	// Metadata holds the a{sv} commit metadata in the order written.
	Metadata []gvariant.DictEntry
	// Parent is the parent commit; HasParent is false for a root commit.
	Parent    Checksum
	HasParent bool
	Subject   string
	Body      string
	// Timestamp is in seconds since the Unix epoch, UTC.
	Timestamp uint64
	RootTree  Checksum
	RootMeta  Checksum
}

// Marshal serialises the commit object.
func (c *Commit) Marshal() []byte {
	var parent []byte
	if c.HasParent {
		parent = c.Parent[:]
	}
	return gvariant.MustEncode(CommitType, []any{
		metadataValue(c.Metadata), orEmpty(parent), []any{}, c.Subject, c.Body,
		be64(c.Timestamp), c.RootTree[:], c.RootMeta[:]})
}

func metadataValue(m []gvariant.DictEntry) []gvariant.DictEntry {
	if m == nil {
		return []gvariant.DictEntry{}
	}
	return m
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ParseCommit parses and validates a commit object.
func ParseCommit(data []byte) (Commit, error) {
	v, err := gvariant.Decode(CommitType, data)
	if err != nil {
		return Commit{}, fmt.Errorf("commit: %w", err)
	}
	f := v.([]any)
	c := Commit{Metadata: f[0].([]gvariant.DictEntry), Subject: f[3].(string), Body: f[4].(string),
		Timestamp: be64(f[5].(uint64))}
	for _, e := range c.Metadata {
		if e.Key.(string) == "" {
			return c, errors.New("commit: empty metadata key")
		}
	}
	if p := f[1].([]byte); len(p) > 0 {
		if c.Parent, err = ChecksumFromBytes(p); err != nil {
			return c, fmt.Errorf("commit parent: %w", err)
		}
		c.HasParent = true
	}
	if c.RootTree, err = ChecksumFromBytes(f[6].([]byte)); err != nil {
		return c, fmt.Errorf("commit root tree: %w", err)
	}
	if c.RootMeta, err = ChecksumFromBytes(f[7].([]byte)); err != nil {
		return c, fmt.Errorf("commit root dirmeta: %w", err)
	}
	return c, nil
}

// Lookup returns the value of metadata key k.
func Lookup(m []gvariant.DictEntry, k string) (gvariant.Variant, bool) {
	for _, e := range m {
		if e.Key == k {
			v, ok := e.Value.(gvariant.Variant)
			return v, ok
		}
	}
	return gvariant.Variant{}, false
}

// Signatures returns the ed25519 signatures (key [SignEd25519Key]) of detached metadata
// such as a commit's .commitmeta or a summary.sig: none when the key is absent, an error
// when it holds anything but an array of byte strings.
func Signatures(meta []gvariant.DictEntry) ([][]byte, error) {
	v, ok := Lookup(meta, SignEd25519Key)
	if !ok {
		return nil, nil
	}
	list, ok := v.Value.([]any)
	if v.Type != "aay" || !ok {
		return nil, fmt.Errorf("%s has type %s, want aay", SignEd25519Key, v.Type)
	}
	out := make([][]byte, len(list))
	for i, s := range list {
		out[i] = s.([]byte)
	}
	return out, nil
}

// Version returns the commit's "version" metadata string, if any.
func (c *Commit) Version() string {
	if v, ok := Lookup(c.Metadata, "version"); ok {
		if s, ok := v.Value.(string); ok {
			return s
		}
	}
	return ""
}

// ParseMetadata parses an a{sv} dictionary such as detached commit metadata.
func ParseMetadata(data []byte) ([]gvariant.DictEntry, error) {
	v, err := gvariant.Decode(MetadataType, data)
	if err != nil {
		return nil, err
	}
	return v.([]gvariant.DictEntry), nil
}

// MarshalMetadata serialises an a{sv} dictionary.
func MarshalMetadata(m []gvariant.DictEntry) []byte {
	return gvariant.MustEncode(MetadataType, metadataValue(m))
}
