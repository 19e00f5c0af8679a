package delta

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/klauspost/compress/zstd"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// Zstd parts (Options.ZstdParts) are a second copy of a delta's parts that ota-build's
// own clients decode in-process, about five times faster than xz: for each part file N,
// a file N.zst beside it holds the same payload (the part's bytes after its compression
// byte, decompressed) as one zstd frame. The superblock lists their sizes and SHA-256
// checksums in its metadata under ZstdPartsKey, so they are authenticated with the
// superblock (whose checksum the signed summary carries). ostree reads only the parts its
// superblock names and ignores the key: the delta stays what it was for ostree. See
// docs/format.md, "Zstd parts".

// ZstdPartsKey is the superblock metadata key that lists the zstd parts: a(tay), one
// (size, sha256) per part in part order, the size little-endian.
const ZstdPartsKey = "ota.zstd-parts"

const zstdPartsType = "a(tay)"

// ZstdPart describes the zstd file of one part, N.zst.
type ZstdPart struct {
	Size     uint64
	Checksum ostree.Checksum
}

// ZstdPartName is the name of part i's zstd file in the delta directory.
func ZstdPartName(i int) string { return strconv.Itoa(i) + ".zst" }

// ZstdParts returns the zstd parts the superblock lists (nil when it lists none), one per
// part.
func (s *Superblock) ZstdParts() ([]ZstdPart, error) {
	e, ok := ostree.Lookup(s.Metadata, ZstdPartsKey)
	if !ok {
		return nil, nil
	}
	if e.Type != zstdPartsType {
		return nil, fmt.Errorf("superblock: %s has type %s, want %s", ZstdPartsKey, e.Type, zstdPartsType)
	}
	list := e.Value.([]any)
	if len(list) != len(s.Parts) {
		return nil, fmt.Errorf("superblock: %s lists %d parts, the superblock %d", ZstdPartsKey, len(list), len(s.Parts))
	}
	zs := make([]ZstdPart, len(list))
	for i, v := range list {
		f := v.([]any)
		c, err := ostree.ChecksumFromBytes(f[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("superblock: %s, part %d: %w", ZstdPartsKey, i, err)
		}
		zs[i] = ZstdPart{Size: f[0].(uint64), Checksum: c}
	}
	return zs, nil
}

// zstdPartsEntry is the superblock metadata entry listing zs.
func zstdPartsEntry(zs []*ZstdPart) gvariant.DictEntry {
	list := make([]any, len(zs))
	for i, z := range zs {
		list[i] = []any{z.Size, z.Checksum[:]}
	}
	return gvariant.DictEntry{Key: ZstdPartsKey, Value: gvariant.Variant{Type: zstdPartsType, Value: list}}
}

// Encoder settings of zstd parts, fixed so that the same payload gives the same file:
// the best level of github.com/klauspost/compress/zstd with an 8 MiB window (on the
// bench/ Debian point release: 11.9 MB against the xz parts' 10.8 MB, 3.1 s of CPU to
// encode, 0.1 s to decode), one goroutine per encoder. The output depends on the
// library's version, as the xz parts' on the xz command's.
const zstdPartWindow = 8 << 20

// compressZstd writes part idx's payload, read from raw, to the file N.zst of the delta
// being generated and returns its size and checksum.
func (p *packer) compressZstd(idx int, raw io.Reader) (z ZstdPart, err error) {
	f, err := os.OpenFile(filepath.Join(p.g.tmp, ZstdPartName(idx)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return z, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	hash := sha256.New()
	var n countWriter
	enc, err := zstd.NewWriter(io.MultiWriter(f, hash, &n), zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(zstdPartWindow), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return z, err
	}
	if _, err := enc.ReadFrom(ctxReader{p.g.ctx, raw}); err != nil {
		enc.Close()
		return z, err
	}
	if err := enc.Close(); err != nil {
		return z, err
	}
	z.Size = uint64(n)
	hash.Sum(z.Checksum[:0])
	return z, nil
}

// ctxReader reads r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// zstdFile returns the path of part i's zstd file when the superblock lists zstd parts,
// the part is not inline and the file is there; else "".
func (d *Loaded) zstdFile(i int) string {
	if d.zstd == nil {
		return ""
	}
	if _, inline := d.inline[i]; inline {
		return ""
	}
	p := filepath.Join(d.Dir, ZstdPartName(i))
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// spoolZstdPart is spoolPart for a part read from its zstd file (see zstdFile). The file is
// read twice: first to check its size and checksum against the superblock's list, so that
// the decoder only reads verified bytes, then by the decoder, in this process (one
// goroutine, its window at most 8 MiB), into the spool. maxSize bounds the payload.
func spoolZstdPart(repo *ostree.Repo, d *Loaded, i int, maxSize uint64, path string) (*payload, *os.File, error) {
	z := d.zstd[i]
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	src := &countingHash{r: io.LimitReader(f, int64(min(z.Size+1, math.MaxInt64))), h: sha256.New()}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return nil, nil, err
	}
	var sum ostree.Checksum
	src.h.Sum(sum[:0])
	if src.n != z.Size || sum != z.Checksum {
		return nil, nil, fmt.Errorf("%s: checksum or size mismatch (corrupt or truncated)", filepath.Base(path))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdPartWindow))
	if err != nil {
		return nil, nil, err
	}
	defer dec.Close()
	spool, err := repo.CreateTemp(0o600)
	if err != nil {
		return nil, nil, err
	}
	// Unlinked at once: a crash or kill leaves nothing behind in tmp/.
	os.Remove(spool.Name())
	n, err := dec.WriteTo(&boundedWriter{w: spool, left: min(maxSize, math.MaxInt64)})
	var p *payload
	switch {
	case errors.Is(err, errLimit):
		err = errors.New("part: decompresses to more than its limit")
	case err != nil:
		err = fmt.Errorf("part: zstd: %w", err)
	default:
		p, err = openPayload(spool, n)
	}
	if err != nil {
		spool.Close()
		return nil, nil, err
	}
	return p, spool, nil
}

// boundedWriter writes to w at most left bytes more, and refuses (errLimit) a write past
// them.
type boundedWriter struct {
	w    io.Writer
	left uint64
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > b.left {
		return 0, errLimit
	}
	n, err := b.w.Write(p)
	b.left -= uint64(n)
	return n, err
}
