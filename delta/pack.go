package delta

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/otakit/ota/internal/ostree"
)

// partBuilder lays out one part's payload: its tables and operations, and where its
// objects' data goes in the blob.
type partBuilder struct {
	payload
	blobLen  int64 // the blob is not in payload.blob but in a spool file
	objects  []ObjectRef
	usize    uint64
	modeIdx  map[[3]uint32]int
	xattrIdx map[string]int
}

func newPart() *partBuilder {
	return &partBuilder{modeIdx: map[[3]uint32]int{}, xattrIdx: map[string]int{},
		payload: payload{xattrs: [][]ostree.Xattr{nil}}}
}

func (p *partBuilder) mode(h *ostree.FileHeader) uint64 {
	k := [3]uint32{h.UID, h.GID, h.Mode}
	i, ok := p.modeIdx[k]
	if !ok {
		i = len(p.modes)
		p.modes = append(p.modes, k)
		p.modeIdx[k] = i
	}
	return uint64(i)
}

func (p *partBuilder) xattr(x []ostree.Xattr) uint64 {
	if len(x) == 0 {
		return 0
	}
	var key bytes.Buffer
	for _, a := range x {
		key.WriteString(a.Name)
		key.WriteByte(0)
		key.Write(a.Value)
		key.WriteByte(0)
	}
	i, ok := p.xattrIdx[key.String()]
	if !ok {
		i = len(p.xattrs)
		p.xattrs = append(p.xattrs, x)
		p.xattrIdx[key.String()] = i
	}
	return uint64(i)
}

// reserve returns the offset of the next n bytes of the payload blob, which the caller
// provides (see blobData).
func (p *partBuilder) reserve(n int) uint64 {
	off := p.blobLen
	p.blobLen += int64(n)
	return uint64(off)
}

// put appends the operations that produce one object, whose data (blobData) follows what
// the blob holds so far: a splice of the whole object, or a bsdiff patch against its base.
func (p *partBuilder) put(it *item) {
	n := uint64(it.dataLen)
	switch {
	case it.ref.Type != ostree.ObjFile:
		p.op(opOpenSpliceClose, n, p.reserve(it.dataLen))
	case it.base != nil:
		m, x := p.mode(&it.header), p.xattr(it.header.Xattrs)
		p.op(opSetReadSource, p.reserve(len(it.base)))
		p.op(opOpen, m, x, it.size)
		p.op(opBspatch, p.reserve(it.dataLen), n)
		p.op(opClose)
		p.op(opUnsetReadSource)
	default:
		m, x := p.mode(&it.header), p.xattr(it.header.Xattrs)
		p.op(opOpenSpliceClose, m, x, n, p.reserve(it.dataLen))
	}
	p.objects = append(p.objects, it.ref)
	p.usize += it.size
}

// blobData returns what put reserves in the blob for it, in order: a patch's base
// checksum, then the object's data.
func blobData(it *item) [][]byte {
	if it.ref.Type == ostree.ObjFile && it.base != nil {
		return [][]byte{it.base[:], it.data}
	}
	return [][]byte{it.data}
}

func (p *partBuilder) op(code byte, args ...uint64) {
	p.ops = append(p.ops, code)
	for _, a := range args {
		p.ops = putUvarint(p.ops, a)
	}
}

// packer collects objects into parts in order and compresses each part while it fills.
// It keeps two lists: bsdiff patches, mostly runs of small differences that a fast xz
// preset compresses well, and whole files and metadata, which get the stronger preset. A
// delta small enough for one part (by the sizes of its objects, known in advance) gets
// exactly one, with everything in the order it comes: content first and metadata last, so
// that a client applying it never sees a directory before the files in it; or, from
// splitMinSize, two halves compressed at once, runs of files going to either half by an
// estimate of what they cost the compressor (see half; it depends on the objects alone, so
// the same input gives the same delta on every host), and metadata last in the last.
//
// The data of each object goes to its part's spool file at once and leaves memory, and
// the part's xz reads it from there behind the packer: compression overlaps the diffs, and
// memory holds no part. That needs the mode and xattr tables, which precede the blob, before
// the objects: every part carries the tables of all the delta's files (planParts).
type packer struct {
	g      *generator
	tables *partBuilder // the modes and xattrs of every file of the delta
	single bool         // one part for everything (until it would overflow)
	split  bool         // with single: two halves, open[0] and open[1]
	cost   [2]int       // with split: the estimated cost of compressing each half so far
	last   int          // with split: the half of the last file
	open   [2]*streamPart
	slots  chan struct{} // one per compressor running
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

// Part kinds.
const (
	wholeKind = iota
	patchKind
)

// splitMinSize is the estimated payload from which a delta of one part's size gets two:
// xz then takes seconds, and two cores halve that. Below it, one part compresses a little
// smaller (by a tenth to a fifth of a percent) in little time.
const splitMinSize = 8 << 20

// xzCost estimates what compressing b costs xz, in bytes of dense data: xz crosses runs
// of 64 zeros or more about 24 times as fast as it searches its dictionary at other bytes
// (bsdiff patches are mostly runs of zeros, and the short ones between changed bytes take
// most of xz's time; fitted to the xz times of halves of bench/'s tiny delta).
func xzCost(b []byte) int {
	n := len(b)
	for i := 0; i < len(b); {
		if b[i] != 0 {
			i++
			continue
		}
		j := i + 1
		for j < len(b) && b[j] == 0 {
			j++
		}
		if j-i >= 64 {
			n -= j - i
		}
		i = j
	}
	return n + (len(b)-n)/24
}

// halfChunk is how far, in estimated cost (see xzCost), the half that takes the files
// may get ahead of the other before the next files go to the other: files that come
// together (from one package) compress better together. With 256 KiB the halves of the
// bench/ tiny delta took 1.36 and 1.35 s of xz (with 1 MiB, 1.6 and 1.2 s, 0.1% smaller);
// with every file to the cheaper half, the delta was 0.7% larger.
const halfChunk = 256 << 10

// planParts reads the headers of the files the delta holds, in order, and returns their
// mode and xattr tables and an estimate of the payload of all its objects (from their
// sizes; patches are about as large as the file they make).
func (g *generator) planParts(files, meta []object) (*partBuilder, uint64, error) {
	t := newPart()
	var size uint64
	for _, o := range files {
		h, n, err := g.repo.ReadHeader(o.ref.Checksum)
		if err != nil {
			return nil, 0, err
		}
		t.mode(&h)
		t.xattr(h.Xattrs)
		if h.IsSymlink() {
			n = int64(len(h.LinkTarget))
		}
		if !g.fallback(uint64(n)) {
			size += uint64(n) + 32
		}
	}
	for _, o := range meta {
		st, err := os.Stat(g.repo.ObjectPath(o.ref.Checksum, o.ref.Type))
		if err != nil {
			return nil, 0, err
		}
		size += uint64(st.Size()) + 32
	}
	return t, size, nil
}

// streamPart is a part being filled and compressed at once. Its objects' data goes to an
// unlinked spool file, which the compressor reads (see partReader) behind the packer: the
// head (the tables), then the blob as far as it is written, then, once the part is
// closed, the tail (the operations and the framing). With Options.ZstdParts a second
// compressor reads it too.
type streamPart struct {
	b        *partBuilder
	header   *PartHeader
	idx      int // the part's index in the delta
	size     int // estimated payload size (see packer.add)
	spool    *os.File
	w        *bufio.Writer
	n        int64 // bytes written to the spool
	head     []byte
	modesEnd int

	mu     sync.Mutex
	grown  sync.Cond
	avail  int64 // bytes of the spool the compressors may read
	closed bool
	tail   []byte
}

// payload returns a reader of the part's serialised payload for one compressor.
func (s *streamPart) payload() io.Reader {
	return io.MultiReader(bytes.NewReader(s.head), &partReader{s: s})
}

// partReader serves a part's blob and then its tail to one compressor, waiting for the
// packer.
type partReader struct {
	s       *streamPart
	off     int64 // the compressor's position in the spool
	tailOff int
}

func (r *partReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	for r.off == s.avail && !s.closed {
		s.grown.Wait()
	}
	avail := s.avail
	s.mu.Unlock()
	if r.off < avail {
		n, err := s.spool.ReadAt(p[:min(int64(len(p)), avail-r.off)], r.off)
		r.off += int64(n)
		if n > 0 && err == io.EOF {
			err = nil
		}
		return n, err
	}
	if r.tailOff == len(s.tail) {
		return 0, io.EOF
	}
	n := copy(p, s.tail[r.tailOff:])
	r.tailOff += n
	return n, nil
}

// start opens a part and starts its compressor (with Options.ZstdParts, its two
// compressors), once fewer than cap(slots) parts are being compressed.
func (p *packer) start(pr preset) (*streamPart, error) {
	p.slots <- struct{}{}
	// Unlinked at once: a killed run leaves nothing, and the delta directory gets none.
	f, err := os.CreateTemp(p.g.tmp, "spool-")
	if err != nil {
		<-p.slots
		return nil, err
	}
	os.Remove(f.Name())
	t := p.tables
	b := &partBuilder{payload: payload{modes: t.modes, xattrs: t.xattrs, preset: pr},
		modeIdx: t.modeIdx, xattrIdx: t.xattrIdx}
	idx := len(p.g.headers)
	s := &streamPart{b: b, header: &PartHeader{}, idx: idx, spool: f, w: bufio.NewWriterSize(f, 256<<10)}
	s.grown.L = &s.mu
	s.head, s.modesEnd = b.head()
	p.g.headers = append(p.g.headers, s.header)
	var zst *ZstdPart
	if p.g.opts.ZstdParts {
		zst = &ZstdPart{}
		p.g.zstd = append(p.g.zstd, zst)
	}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.slots; p.wg.Done() }()
		var zerr error
		var zwg sync.WaitGroup
		if zst != nil {
			zwg.Go(func() { *zst, zerr = p.compressZstd(idx, s.payload()) })
		}
		size, sum, err := p.compress(idx, pr, s.payload())
		zwg.Wait()
		s.spool.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		if err = errors.Join(err, zerr); err != nil {
			p.err = errors.Join(p.err, fmt.Errorf("part %d: %w", idx, err))
			return
		}
		s.header.Checksum, s.header.Size = sum, uint64(size)
	}()
	return s, nil
}

// compress compresses a part into its file, named by its index, and returns the file's
// size and checksum.
func (p *packer) compress(idx int, pr preset, raw io.Reader) (int64, ostree.Checksum, error) {
	f, err := os.OpenFile(filepath.Join(p.g.tmp, fmt.Sprint(idx)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, ostree.Checksum{}, err
	}
	hash := sha256.New()
	var n countWriter
	err = compressPart(p.g.ctx, io.MultiWriter(f, hash, &n), raw, pr, p.g.enc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return int64(n), ostree.Checksum(hash.Sum(nil)), err
}

// add queues an object, closing its kind's part first when the object would overflow it.
// With split, the kinds are the halves instead.
func (p *packer) add(kind int, it *item) error {
	pr := presetWhole
	switch {
	case p.split:
		kind, pr = p.half(it), presetHalf
	case p.single:
		kind = wholeKind
	case kind == patchKind:
		pr = presetPatches
	}
	n := len(it.data) + 32
	if s := p.open[kind]; s != nil && uint64(s.size+n) > p.g.opts.MaxPartSize {
		p.open[kind] = nil
		if err := s.close(); err != nil {
			return err
		}
	}
	s := p.open[kind]
	if s == nil {
		var err error
		if s, err = p.start(pr); err != nil {
			return err
		}
		p.open[kind] = s
	}
	modes, xattrs := len(s.b.modes), len(s.b.xattrs)
	it.dataLen = len(it.data)
	s.b.put(it)
	if len(s.b.modes) != modes || len(s.b.xattrs) != xattrs {
		return fmt.Errorf("object %s: its mode or xattrs were not planned", it.ref.Checksum)
	}
	for _, b := range blobData(it) {
		if _, err := s.w.Write(b); err != nil {
			return err
		}
		s.n += int64(len(b))
	}
	it.data = nil
	s.size += n
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.mu.Lock()
	s.avail = s.n
	s.mu.Unlock()
	s.grown.Broadcast()
	return nil
}

// close ends the part's blob and hands its compressor the tail.
func (s *streamPart) close() error {
	err := s.w.Flush()
	s.header.USize, s.header.Objects = s.b.usize, s.b.objects
	s.mu.Lock()
	s.avail, s.closed = s.n, true
	s.tail = s.b.tail(len(s.head), s.modesEnd, s.n)
	s.mu.Unlock()
	s.grown.Broadcast()
	return err
}

// finish closes the open parts (a delta of one part gets it even when it is empty) and
// waits for every part to be written.
func (p *packer) finish() error {
	var errs []error
	if p.single && len(p.g.headers) == 0 {
		s, err := p.start(presetWhole)
		if err != nil {
			return err
		}
		p.open[wholeKind] = s
	}
	for _, kind := range []int{patchKind, wholeKind} {
		if s := p.open[kind]; s != nil {
			errs = append(errs, s.close())
		}
	}
	p.wg.Wait()
	return errors.Join(append(errs, p.err)...)
}

// half returns the half an object goes to: the half of the previous file unless it has
// cost halfChunk more than the other so far, or for metadata the last part opened.
func (p *packer) half(it *item) int {
	if it.ref.Type != ostree.ObjFile {
		if p.open[1] != nil && (p.open[0] == nil || p.open[1].idx > p.open[0].idx) {
			return 1
		}
		return 0
	}
	k := p.last
	if p.cost[k] > p.cost[1-k]+halfChunk {
		k = 1 - k
	}
	p.last = k
	p.cost[k] += it.cost
	return k
}

func (p *packer) meta(objs []object) error {
	for _, o := range objs {
		data, err := p.g.repo.ReadObject(o.ref.Type, o.ref.Checksum)
		if err != nil {
			return err
		}
		if err := p.add(wholeKind, &item{ref: o.ref, data: data, size: uint64(len(data))}); err != nil {
			return err
		}
	}
	return nil
}

func (p *packer) file(it *item) error {
	if it.fallback {
		st, err := os.Stat(p.g.repo.ObjectPath(it.ref.Checksum, ostree.ObjFile))
		if err != nil {
			return err
		}
		p.g.fallbacks = append(p.g.fallbacks, Fallback{Checksum: it.ref.Checksum, CompressedSize: uint64(st.Size()), USize: it.size})
		return nil
	}
	kind := wholeKind
	if it.base != nil {
		kind = patchKind
	}
	return p.add(kind, it)
}
