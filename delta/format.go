// Package delta generates and applies OSTree static deltas (format of ostree 2022.7): a
// superblock that embeds the target commit, plus parts whose operation streams rebuild every
// object the target has and the source lacks, whole or as bsdiff patches against objects
// of the source. docs/format.md, "Static deltas", describes the format as this package
// writes and reads it.
//
// The repository, checksum, progress and signer types are those of package commit
// (commit.Repo, commit.Checksum, commit.Reporter, commit.Signer: the same types).
package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/ulikunitz/xz"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// Variant types of the delta formats.
const (
	superblockType = "(a{sv}tayay" + ostree.CommitType + "aya(uayttay)a(yaytt))"
	payloadType    = "(a(uuu)aa(ayay)ayay)"
)

// Compression bytes that start a part.
const (
	CompressionNone byte = 0
	CompressionXZ   byte = 'x'
)

// Operation codes of a part's operation stream.
const (
	opOpenSpliceClose = 'S'
	opOpen            = 'o'
	opWrite           = 'w'
	opSetReadSource   = 'r'
	opUnsetReadSource = 'R'
	opClose           = 'c'
	opBspatch         = 'B'
)

// ObjectRef names one object a part produces.
type ObjectRef struct {
	Type     ObjectType
	Checksum ostree.Checksum
}

// PartHeader describes one part in the superblock.
type PartHeader struct {
	// Checksum is the SHA-256 of the part file, compression byte included.
	Checksum ostree.Checksum
	// Size is the part file's size; USize the total size of the objects it produces.
	Size, USize uint64
	Objects     []ObjectRef
}

// Fallback is a content object a client fetches on its own rather than from a part.
type Fallback struct {
	Checksum              ostree.Checksum
	CompressedSize, USize uint64
}

// Superblock is the index of a delta.
type Superblock struct {
	// Metadata holds the delta's a{sv} metadata: endianness, inline parts (but when Open
	// read it), commitmeta.
	Metadata  []DictEntry
	Timestamp uint64
	// From is nil for a delta from scratch.
	From *ostree.Checksum
	To   ostree.Checksum
	// Commit is the serialised target commit object.
	Commit    []byte
	Parts     []PartHeader
	Fallbacks []Fallback
}

func swap64(v uint64, big bool) uint64 {
	if big {
		return bits.ReverseBytes64(v)
	}
	return v
}

func swap32(v uint32, big bool) uint32 {
	if big {
		return bits.ReverseBytes32(v)
	}
	return v
}

// Marshal serialises the superblock in normal form, little-endian.
func (s *Superblock) Marshal() ([]byte, error) {
	cm, err := gvariant.Decode(ostree.CommitType, s.Commit)
	if err != nil {
		return nil, fmt.Errorf("target commit: %w", err)
	}
	var from []byte = []byte{}
	if s.From != nil {
		from = s.From[:]
	}
	parts := make([]any, len(s.Parts))
	for i, p := range s.Parts {
		objs := make([]byte, 0, 33*len(p.Objects))
		for _, o := range p.Objects {
			objs = append(append(objs, byte(o.Type)), o.Checksum[:]...)
		}
		parts[i] = []any{uint32(0), p.Checksum[:], p.Size, p.USize, objs}
	}
	fbs := make([]any, len(s.Fallbacks))
	for i, f := range s.Fallbacks {
		fbs[i] = []any{byte(ostree.ObjFile), f.Checksum[:], f.CompressedSize, f.USize}
	}
	meta := s.Metadata
	if meta == nil {
		meta = []gvariant.DictEntry{}
	}
	return gvariant.Encode(superblockType, []any{meta, bits.ReverseBytes64(s.Timestamp), from, s.To[:],
		cm, []byte{}, parts, fbs})
}

// ParseSuperblock parses an unsigned superblock. Integers of part headers and fallbacks are
// read in the byte order ostree.endianness declares.
func ParseSuperblock(data []byte) (*Superblock, error) {
	if bytes.HasPrefix(data, []byte("OSTSGNDT")) {
		return nil, errors.New("superblock is signed (OSTSGNDT); unwrap it first")
	}
	v, err := gvariant.Decode(superblockType, data)
	if err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	f := v.([]any)
	s := &Superblock{Metadata: f[0].([]gvariant.DictEntry), Timestamp: bits.ReverseBytes64(f[1].(uint64))}
	big := false
	if e, ok := ostree.Lookup(s.Metadata, "ostree.endianness"); ok && e.Type == "y" {
		big = e.Value.(byte) == 'B'
	}
	if b := f[2].([]byte); len(b) > 0 {
		c, err := ostree.ChecksumFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("superblock from: %w", err)
		}
		s.From = &c
	}
	if s.To, err = ostree.ChecksumFromBytes(f[3].([]byte)); err != nil {
		return nil, fmt.Errorf("superblock to: %w", err)
	}
	if s.Commit, err = gvariant.Encode(ostree.CommitType, f[4]); err != nil {
		return nil, err
	}
	for i, p := range f[6].([]any) {
		ph := p.([]any)
		if swap32(ph[0].(uint32), big) != 0 {
			return nil, fmt.Errorf("part %d: unsupported version %d", i, swap32(ph[0].(uint32), big))
		}
		h := PartHeader{Size: swap64(ph[2].(uint64), big), USize: swap64(ph[3].(uint64), big)}
		if h.Checksum, err = ostree.ChecksumFromBytes(ph[1].([]byte)); err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		objs := ph[4].([]byte)
		if len(objs)%33 != 0 {
			return nil, fmt.Errorf("part %d: object list of %d bytes is not a multiple of 33", i, len(objs))
		}
		for j := 0; j < len(objs); j += 33 {
			t := ostree.ObjectType(objs[j])
			if t < ostree.ObjFile || t > ostree.ObjCommit {
				return nil, fmt.Errorf("part %d: invalid object type %d", i, t)
			}
			var c ostree.Checksum
			copy(c[:], objs[j+1:j+33])
			h.Objects = append(h.Objects, ObjectRef{Type: t, Checksum: c})
		}
		s.Parts = append(s.Parts, h)
	}
	for i, fb := range f[7].([]any) {
		fe := fb.([]any)
		c, err := ostree.ChecksumFromBytes(fe[1].([]byte))
		if err != nil || ostree.ObjectType(fe[0].(byte)) != ostree.ObjFile {
			return nil, fmt.Errorf("fallback %d: invalid entry", i)
		}
		s.Fallbacks = append(s.Fallbacks, Fallback{Checksum: c, CompressedSize: swap64(fe[2].(uint64), big), USize: swap64(fe[3].(uint64), big)})
	}
	if ostree.Sum(s.Commit) != s.To {
		return nil, fmt.Errorf("superblock: embedded commit does not hash to %s", s.To)
	}
	return s, nil
}

// payload is the decoded content of a part.
type payload struct {
	modes  [][3]uint32 // uid, gid, mode
	xattrs [][]ostree.Xattr
	blob   []byte
	// blobFile, when set, holds the blob instead (a part spooled to disk: spoolPart).
	blobFile *io.SectionReader
	ops      []byte
	// preset is the xz preset of the part when generating.
	preset preset
}

// serialized returns a reader of the payload serialised as payloadType, in normal form,
// with its blob read from blob (n bytes) instead of p.blob: a part's blob, up to
// MaxPartSize, is streamed from where it was spooled rather than copied into memory.
func (p *payload) serialized(blob io.Reader, n int64) io.Reader {
	head, modesEnd := p.head()
	return io.MultiReader(bytes.NewReader(head), blob, bytes.NewReader(p.tail(len(head), modesEnd, n)))
}

// head returns what precedes the blob in the serialised payload, the mode and xattr
// tables, and where the mode table ends.
func (p *payload) head() (b []byte, modesEnd int) {
	modes := make([]any, len(p.modes))
	for i, m := range p.modes {
		modes[i] = []any{bits.ReverseBytes32(m[0]), bits.ReverseBytes32(m[1]), bits.ReverseBytes32(m[2])}
	}
	xs := make([]any, len(p.xattrs))
	for i, set := range p.xattrs {
		entries := make([]any, len(set))
		for j, x := range set {
			entries[j] = []any{append([]byte(x.Name), 0), x.Value}
		}
		xs[i] = entries
	}
	// The members need no padding: a(uuu) starts the tuple and the others align to 1.
	b = gvariant.MustEncode("a(uuu)", modes)
	modesEnd = len(b)
	return append(b, gvariant.MustEncode("aa(ayay)", xs)...), modesEnd
}

// tail returns what follows a blob of n bytes in the serialised payload whose head (see
// head) is headLen bytes long: the operations and the tuple's framing offsets.
func (p *payload) tail(headLen, modesEnd int, n int64) []byte {
	blobEnd := headLen + int(n)
	return gvariant.AppendTupleFraming(bytes.Clone(p.ops), blobEnd+len(p.ops), []int{modesEnd, headLen, blobEnd})
}

func parsePayload(data []byte) (*payload, error) {
	v, err := gvariant.Decode(payloadType, data)
	if err != nil {
		return nil, fmt.Errorf("part payload: %w", err)
	}
	f := v.([]any)
	p := &payload{blob: f[2].([]byte), ops: f[3].([]byte)}
	return p, p.setTables(f[0].([]any), f[1].([]any))
}

// setTables sets the mode and xattr tables from their decoded a(uuu) and aa(ayay).
func (p *payload) setTables(modes, xattrs []any) error {
	for _, m := range modes {
		t := m.([]any)
		p.modes = append(p.modes, [3]uint32{bits.ReverseBytes32(t[0].(uint32)), bits.ReverseBytes32(t[1].(uint32)), bits.ReverseBytes32(t[2].(uint32))})
	}
	for _, set := range xattrs {
		var xs []ostree.Xattr
		for _, e := range set.([]any) {
			pair := e.([]any)
			name := pair[0].([]byte)
			if len(name) < 2 || name[len(name)-1] != 0 {
				return errors.New("part payload: malformed xattr name")
			}
			xs = append(xs, ostree.Xattr{Name: string(name[:len(name)-1]), Value: pair[1].([]byte)})
		}
		p.xattrs = append(p.xattrs, xs)
	}
	return nil
}

// decodePart checks a part file's compression byte and returns its decompressed payload.
func decodePart(part []byte, maxSize uint64) (*payload, error) {
	if len(part) == 0 {
		return nil, errors.New("empty part")
	}
	var raw []byte
	switch part[0] {
	case CompressionNone:
		raw = part[1:]
	case CompressionXZ:
		r, err := xz.NewReader(bytes.NewReader(part[1:]))
		if err != nil {
			return nil, fmt.Errorf("part: xz: %w", err)
		}
		// Bound the output: a corrupt or hostile part must not exhaust memory.
		raw, err = io.ReadAll(io.LimitReader(r, int64(maxSize)+1))
		if err != nil {
			return nil, fmt.Errorf("part: xz: %w", err)
		}
		if uint64(len(raw)) > maxSize {
			return nil, errors.New("part: decompresses to more than its limit")
		}
	default:
		return nil, fmt.Errorf("part: invalid compression type %#x", part[0])
	}
	return parsePayload(raw)
}

// writePart writes to w the part file of a payload whose blob is read from blob (n bytes),
// compressed by enc (nil: not compressed).
func writePart(ctx context.Context, w io.Writer, p *payload, blob io.Reader, n int64, enc *xzEncoder) error {
	return compressPart(ctx, w, p.serialized(blob, n), p.preset, enc)
}

// compressPart writes to w the part file of the serialised payload raw, compressed by enc
// (nil: not compressed) with an xz preset.
func compressPart(ctx context.Context, w io.Writer, raw io.Reader, pr preset, enc *xzEncoder) error {
	if enc == nil {
		if _, err := w.Write([]byte{CompressionNone}); err != nil {
			return err
		}
		_, err := io.Copy(w, raw)
		return err
	}
	return enc.compress(ctx, w, raw, pr)
}

// putUvarint appends an LEB128 varint.
func putUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// opReader reads an operation stream.
type opReader struct {
	ops []byte
	pos int
}

func (r *opReader) varint() (uint64, error) {
	v, n := binary.Uvarint(r.ops[r.pos:])
	if n <= 0 {
		return 0, errors.New("truncated or invalid varint in operation stream")
	}
	r.pos += n
	return v, nil
}
