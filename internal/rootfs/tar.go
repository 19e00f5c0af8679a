package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Magic numbers at the start of the compressed streams OpenTar recognises.
var (
	gzipMagic  = []byte{0x1f, 0x8b}
	bzip2Magic = []byte("BZh") // then the block size, '1' to '9'
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	// zstdSkippable follows the first byte, 0x50 to 0x5f, of a skippable zstd frame, as
	// pzstd writes first.
	zstdSkippable = []byte{0x2a, 0x4d, 0x18}
)

// PAX record prefixes carrying extended attributes.
const (
	schilyXattr     = "SCHILY.xattr."
	libarchiveXattr = "LIBARCHIVE.xattr."
)

// OpenTar returns a Source yielding the members of the tar stream r, which may be
// compressed with gzip, bzip2, xz or zstd; the compression is recognised from the first
// bytes. See the package documentation for how members become entries and how errors read.
// Closing the source releases the decompressor; it does not close r.
func OpenTar(r io.Reader) (Source, error) {
	in, closeFn, err := decompress(bufio.NewReader(r))
	if err != nil {
		return nil, err
	}
	return newTarSource(in, closeFn), nil
}

// newTarSource returns a source yielding the members of the uncompressed tar stream in;
// closeFn, if not nil, releases its decompressor.
func newTarSource(in io.Reader, closeFn func() error) *tarSource {
	s := &tarSource{files: make(map[string]bool), in: &tailReader{r: in}, close: closeFn}
	s.tr = tar.NewReader(s.in)
	return s
}

// decompress returns the tar stream br holds, decompressed if its first bytes are those of a
// compressed stream OpenTar recognises, and the function releasing the decompressor, if any.
func decompress(br *bufio.Reader) (io.Reader, func() error, error) {
	magic, err := br.Peek(len(xzMagic))
	if len(magic) == 0 {
		if err == io.EOF {
			return nil, nil, errors.New("reading tarball: empty input")
		}
		return nil, nil, fmt.Errorf("reading tarball: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, damaged("reading gzip tarball", err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(magic, bzip2Magic) && len(magic) > 3 && '1' <= magic[3] && magic[3] <= '9':
		return bzip2.NewReader(br), nil, nil
	case bytes.HasPrefix(magic, xzMagic):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, damaged("reading xz tarball", err)
		}
		return namedReader{xr, "xz"}, nil, nil
	case bytes.HasPrefix(magic, zstdMagic), magic[0]&0xf0 == 0x50 && bytes.HasPrefix(magic[1:], zstdSkippable):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, damaged("reading zstd tarball", err)
		}
		return namedReader{zr, "zstd"}, func() error { zr.Close(); return nil }, nil
	}
	return br, nil, nil
}

// tarSource is the Source returned by OpenTar.
type tarSource struct {
	tr    *tar.Reader
	in    *tailReader
	close func() error // releases the decompressor, if any
	err   error        // sticky error or io.EOF
	gen   int          // counts Next calls, to invalidate earlier Content readers
	last  string       // name of the latest member, for errors
	// files holds the paths whose latest member is a regular file or a hard link: the
	// paths a hard link may name.
	files map[string]bool
}

func (s *tarSource) Next() (*Entry, error) {
	s.gen++
	if s.err != nil {
		return nil, s.err
	}
	for {
		hdr, err := s.tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil // GODEBUG=tarinsecurepath=0; entry checks the path itself
		}
		if err == io.EOF {
			err = s.finish()
		} else if err != nil {
			err = damaged(s.where(), err)
		}
		if err != nil {
			s.err = err
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader, 'V': // PAX global header, GNU volume label
			s.last = hdr.Name
			continue
		}
		e, err := s.entry(hdr)
		s.last = hdr.Name
		if err != nil {
			s.err = err
		}
		return e, err
	}
}

// blockSize is the size of a tar block; the end-of-archive marker is one or two zero blocks.
const blockSize = 512

// finish checks, once the tar reader has reported the end of the archive, that the stream
// had an end-of-archive marker and that the rest of it decompresses cleanly, which verifies
// the checksums of compressed input; it returns io.EOF if so.
func (s *tarSource) finish() error {
	if s.in.zeros < blockSize {
		return damaged(s.where()+": no end-of-archive marker", io.ErrUnexpectedEOF)
	}
	if _, err := io.Copy(io.Discard, s.in.r); err != nil {
		return damaged("reading tarball after its end-of-archive marker", err)
	}
	return io.EOF
}

func (s *tarSource) where() string {
	if s.last == "" {
		return "reading tarball"
	}
	return "reading tarball after member " + s.last
}

// entry converts a member header into an Entry.
func (s *tarSource) entry(hdr *tar.Header) (*Entry, error) {
	p, err := cleanPath(hdr.Name)
	if err != nil {
		if hdr.Name == "" {
			return nil, fmt.Errorf("%s: member with an empty name", s.where())
		}
		return nil, fmt.Errorf("tar member %s: %v", hdr.Name, err)
	}
	if hdr.Uid < 0 || int64(hdr.Uid) > math.MaxUint32 || hdr.Gid < 0 || int64(hdr.Gid) > math.MaxUint32 {
		return nil, fmt.Errorf("tar member %s: uid %d or gid %d out of range", hdr.Name, hdr.Uid, hdr.Gid)
	}
	xattrs, err := paxXattrs(hdr.PAXRecords)
	if err != nil {
		return nil, fmt.Errorf("tar member %s: %v", hdr.Name, err)
	}
	e := &Entry{
		Path:   p,
		Mode:   uint32(hdr.Mode & ModePermMask),
		UID:    uint32(hdr.Uid),
		GID:    uint32(hdr.Gid),
		Xattrs: xattrs,
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		e.Mode |= ModeRegular
		e.Size = hdr.Size
		e.Content = &memberReader{s: s, gen: s.gen, name: p}
		s.files[p] = true
		return e, nil
	case tar.TypeLink:
		target, err := cleanPath(hdr.Linkname)
		if err != nil {
			return nil, fmt.Errorf("tar member %s: hard link target %q: %v", hdr.Name, hdr.Linkname, err)
		}
		switch {
		case !s.files[target]:
			return nil, fmt.Errorf("tar member %s: hard link to %s, which is not an earlier regular file", hdr.Name, hdr.Linkname)
		case target == p:
			return nil, fmt.Errorf("tar member %s: hard link to itself", hdr.Name)
		}
		e.Mode |= ModeRegular
		// The target as named, not the path that first held the content: a later member
		// may replace that path while the links keep the content.
		e.HardlinkTo = target
		s.files[p] = true
		return e, nil
	case tar.TypeDir:
		e.Mode |= ModeDir
	case tar.TypeSymlink:
		e.Mode |= ModeSymlink
		e.LinkTarget = hdr.Linkname
	case tar.TypeChar:
		e.Mode |= ModeChar
	case tar.TypeBlock:
		e.Mode |= ModeBlock
	case tar.TypeFifo:
		e.Mode |= ModeFIFO
	default:
		return nil, fmt.Errorf("tar member %s: unsupported type flag %q", hdr.Name, hdr.Typeflag)
	}
	delete(s.files, p)
	return e, nil
}

// Name returns "": a tar stream has no name of its own (see OpenTarNamed).
func (s *tarSource) Name() string { return "" }

func (s *tarSource) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// paxXattrs returns the extended attributes recorded in PAX records, sorted by name and
// without empty values; an empty name is an error.
func paxXattrs(recs map[string]string) ([]Xattr, error) {
	vals := make(map[string]string)
	for k, v := range recs {
		if name, ok := strings.CutPrefix(k, schilyXattr); ok {
			vals[name] = v
			continue
		}
		enc, ok := strings.CutPrefix(k, libarchiveXattr)
		if !ok {
			continue
		}
		name, err := url.PathUnescape(enc)
		if err != nil {
			return nil, fmt.Errorf("PAX record %s: bad attribute name: %v", k, err)
		}
		if _, ok := recs[schilyXattr+name]; ok {
			continue
		}
		val, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			return nil, fmt.Errorf("PAX record %s: bad base64 value: %v", k, err)
		}
		vals[name] = string(val)
	}
	if _, ok := vals[""]; ok {
		return nil, errors.New("PAX record for an xattr with an empty name")
	}
	var xs []Xattr
	for name, v := range vals {
		if v != "" {
			xs = append(xs, Xattr{Name: name, Value: []byte(v)})
		}
	}
	slices.SortFunc(xs, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return xs, nil
}

// memberReader reads the data of the current tar member, naming it in errors.
type memberReader struct {
	s    *tarSource
	gen  int // s.gen when the member was yielded
	name string
}

func (r *memberReader) Read(p []byte) (int, error) {
	if r.gen != r.s.gen {
		return 0, fmt.Errorf("tar member %s: content read after the next member was requested", r.name)
	}
	n, err := r.s.tr.Read(p)
	if err != nil && err != io.EOF {
		err = damaged("tar member "+r.name, err)
	}
	return n, err
}

// damaged wraps err, met while doing what, as a sign of a truncated or corrupt tarball.
func damaged(what string, err error) error {
	hint := "corrupt tarball?"
	if errors.Is(err, io.ErrUnexpectedEOF) {
		hint = "truncated tarball?"
	}
	return fmt.Errorf("%s: %w (%s)", what, err, hint)
}

// namedReader prefixes the errors of a reader, such as a decompressor, whose errors do not
// name it.
type namedReader struct {
	r    io.Reader
	name string
}

func (r namedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", r.name, err)
	}
	return n, err
}

// tailReader counts the zero bytes at the end of what has been read through it, telling
// a tar stream that ends with its end-of-archive marker from one cut at a member boundary.
type tailReader struct {
	r     io.Reader
	zeros int
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i > 0 {
		t.zeros = 0
	}
	t.zeros += n - i
	return n, err
}
