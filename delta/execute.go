package delta

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/otakit/ota/delta/bsdiff"
	"github.com/otakit/ota/internal/ostree"
)

// executor runs one part's operation stream.
type executor struct {
	repo    *ostree.Repo
	p       *payload
	objects []ObjectRef
	next    int
	ops     opReader

	blob   *io.SectionReader // the payload's blob, in memory or spooled to disk
	source []byte            // content of the read source, when set
	// sourceFile is instead the read source when it is large and its file holds the
	// content as is (see setSource), open.
	sourceFile *ostree.ContentObject
	sourceSum  ostree.Checksum // the read source's checksum, when one is set
	open       *openObject

	// Reused by the part's objects in turn: a source read, and an object a patch builds,
	// when they are at most maxReused bytes (larger ones are not kept for later).
	srcBuf, outBuf []byte
	// Reused too: the reader of patches, the writer of the objects patched straight into
	// the repository.
	patchIn  *bufio.Reader
	patchOut *bufio.Writer
}

// maxReused bounds the buffers an executor keeps for its next objects, and the read
// sources and bsdiff results it holds in memory (larger ones are read from their files and
// written into the repository as the patch applies: setSource, patchToRepo). With 4 MiB,
// two executors held up to 13 MiB of buffers applying a Debian point release; with 1 MiB,
// 4-6 MiB, for 2-5% more CPU time: a source read from its file is read a control record at
// a time, its records being scattered (bench/RESULTS.md, "client: one memory budget").
const maxReused = 1 << 20

// buffer returns a slice of n bytes, from *keep when it is large enough; the slice is
// kept in *keep for the next call when n is at most maxReused.
func buffer(keep *[]byte, n uint64) []byte {
	if uint64(cap(*keep)) >= n {
		return (*keep)[:n]
	}
	b := make([]byte, n)
	if n <= maxReused {
		*keep = b
	}
	return b
}

// openObject is the content object an 'o' op started.
type openObject struct {
	header ostree.FileHeader
	size   uint64
	data   []byte
	// stored is set when a patch wrote the whole object into the repository already (see
	// patchToRepo).
	stored bool
	// from is the read source the object was built from, when fromSource is set: when the
	// object comes out wrong, the source is checked (see diagnose).
	from       ostree.Checksum
	fromSource bool
}

// source returns the read source the object was built from, or nil.
func (o *openObject) source() *ostree.Checksum {
	if !o.fromSource {
		return nil
	}
	return &o.from
}

var errTruncated = errors.New("operation stream references data outside the payload")

// section returns n bytes of the blob at off.
func (e *executor) section(off, n uint64) (*io.SectionReader, error) {
	if size := uint64(e.blob.Size()); off > size || n > size-off {
		return nil, errTruncated
	}
	return io.NewSectionReader(e.blob, int64(off), int64(n)), nil
}

// slice reads n bytes of the blob at off, for what is held in memory anyway: metadata
// objects, the checksum of a read source, a patch, a piece of an open object.
func (e *executor) slice(off, n uint64) ([]byte, error) {
	r, err := e.section(off, n)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

func (e *executor) header(modeIdx, xattrIdx uint64) (ostree.FileHeader, error) {
	if modeIdx >= uint64(len(e.p.modes)) || xattrIdx >= uint64(len(e.p.xattrs)) {
		return ostree.FileHeader{}, errors.New("mode or xattr index out of range")
	}
	m := e.p.modes[modeIdx]
	return ostree.FileHeader{UID: m[0], GID: m[1], Mode: m[2], Xattrs: e.p.xattrs[xattrIdx]}, nil
}

func (e *executor) args(n int) ([]uint64, error) {
	out := make([]uint64, n)
	for i := range out {
		v, err := e.ops.varint()
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (e *executor) nextObject() (ObjectRef, error) {
	if e.next >= len(e.objects) {
		return ObjectRef{}, errors.New("operation stream produces more objects than the part lists")
	}
	e.next++
	return e.objects[e.next-1], nil
}

func (e *executor) run() error {
	defer e.dropSource()
	e.ops = opReader{ops: e.p.ops}
	e.blob = e.p.blobFile
	if e.blob == nil {
		e.blob = io.NewSectionReader(bytes.NewReader(e.p.blob), 0, int64(len(e.p.blob)))
	}
	for e.ops.pos < len(e.ops.ops) {
		op := e.ops.ops[e.ops.pos]
		e.ops.pos++
		if err := e.step(op); err != nil {
			return fmt.Errorf("op %q at %d: %w", op, e.ops.pos-1, err)
		}
	}
	if e.next != len(e.objects) {
		return fmt.Errorf("operation stream produced %d of %d objects", e.next, len(e.objects))
	}
	return nil
}

func (e *executor) step(op byte) error {
	switch op {
	case opOpenSpliceClose:
		obj, err := e.nextObject()
		if err != nil {
			return err
		}
		if obj.Type != ostree.ObjFile {
			a, err := e.args(2)
			if err != nil {
				return err
			}
			data, err := e.slice(a[1], a[0])
			if err != nil {
				return err
			}
			if ostree.Sum(data) != obj.Checksum {
				return fmt.Errorf("%s %s: checksum mismatch", obj.Type, obj.Checksum)
			}
			if err := checkMeta(obj.Type, data); err != nil {
				return fmt.Errorf("%s %s: %w", obj.Type, obj.Checksum, err)
			}
			_, err = e.repo.WriteObject(obj.Type, data)
			return err
		}
		a, err := e.args(4)
		if err != nil {
			return err
		}
		h, err := e.header(a[0], a[1])
		if err != nil {
			return err
		}
		if h.IsSymlink() {
			target, err := e.slice(a[3], a[2])
			if err != nil {
				return err
			}
			h.LinkTarget = string(target)
			return e.store(obj, &h, nil, nil, nil)
		}
		data, err := e.section(a[3], a[2])
		if err != nil {
			return err
		}
		// Streamed from the blob: a large file is never held in memory.
		return e.store(obj, &h, nil, data, nil)
	case opOpen:
		a, err := e.args(3)
		if err != nil {
			return err
		}
		h, err := e.header(a[0], a[1])
		if err != nil {
			return err
		}
		if e.open != nil {
			return errors.New("open while an object is open")
		}
		e.open = &openObject{header: h, size: a[2]}
	case opWrite:
		a, err := e.args(2)
		if err != nil {
			return err
		}
		if e.open == nil {
			return errors.New("write without an open object")
		}
		if e.open.stored || uint64(len(e.open.data))+a[0] > e.open.size {
			return errTruncated
		}
		if e.source != nil || e.sourceFile != nil {
			e.open.from, e.open.fromSource = e.sourceSum, true
		}
		if e.sourceFile != nil {
			if size := uint64(e.sourceFile.Size); a[1] > size || a[0] > size-a[1] {
				return errTruncated
			}
			n := len(e.open.data)
			e.open.data = slices.Grow(e.open.data, int(a[0]))[:n+int(a[0])]
			if _, err := e.sourceFile.ContentAt().ReadAt(e.open.data[n:], int64(a[1])); err != nil {
				return fmt.Errorf("read source: %w", err)
			}
			break
		}
		if e.source == nil {
			b, err := e.slice(a[1], a[0])
			if err != nil {
				return err
			}
			e.open.data = append(e.open.data, b...)
			break
		}
		src := e.source
		if a[1] > uint64(len(src)) || a[0] > uint64(len(src))-a[1] {
			return errTruncated
		}
		e.open.data = append(e.open.data, src[a[1]:a[1]+a[0]]...)
	case opSetReadSource:
		a, err := e.args(1)
		if err != nil {
			return err
		}
		b, err := e.slice(a[0], 32)
		if err != nil {
			return err
		}
		c, _ := ostree.ChecksumFromBytes(b)
		if err := e.setSource(c); err != nil {
			return fmt.Errorf("read source: %w", err)
		}
	case opUnsetReadSource:
		e.dropSource()
	case opBspatch:
		a, err := e.args(2)
		if err != nil {
			return err
		}
		if e.open == nil || e.source == nil && e.sourceFile == nil {
			return errors.New("bspatch without an open object and a read source")
		}
		if e.open.stored || len(e.open.data) > 0 {
			return errors.New("bspatch into an object already written")
		}
		e.open.from, e.open.fromSource = e.sourceSum, true
		patch, err := e.section(a[0], a[1])
		if err != nil {
			return err
		}
		// A raw bsdiff patch holds every byte of the new file (as a difference or
		// verbatim), so its length bounds the size the object claims.
		if e.open.size > a[1] {
			return fmt.Errorf("%w: %d bytes cannot produce a %d-byte file", bsdiff.ErrCorrupt, a[1], e.open.size)
		}
		// The patch is read from the blob as it is applied, never copied whole.
		if e.patchIn == nil {
			e.patchIn = bufio.NewReaderSize(patch, 32<<10)
		} else {
			e.patchIn.Reset(patch)
		}
		if e.open.size > maxReused {
			return e.patchToRepo()
		}
		out := bytes.NewBuffer(buffer(&e.outBuf, e.open.size)[:0])
		if err := e.patch(out); err != nil {
			return err
		}
		e.open.data = out.Bytes()
	case opClose:
		if e.open == nil {
			return errors.New("close without an open object")
		}
		obj, err := e.nextObject()
		if err != nil {
			return err
		}
		o := e.open
		e.open = nil
		e.dropSource()
		if o.stored {
			return nil
		}
		if uint64(len(o.data)) != o.size {
			return fmt.Errorf("object %s: built %d of %d bytes", obj.Checksum, len(o.data), o.size)
		}
		return e.store(obj, &o.header, o.data, nil, o.source())
	default:
		return errors.New("unknown operation")
	}
	return nil
}

// patchToRepo applies the patch e.patchIn reads to the read source and writes the result,
// the whole open object, straight into the repository, verified as it is written
// (ostree.Repo.WriteContentFrom): a large object is never held in memory, where a budget
// with an xz process of a large dictionary has little room for it (docs/client.md,
// "Memory"), nor written anywhere else first. The object to come is the one the close
// that must follow will name.
func (e *executor) patchToRepo() error {
	if e.next >= len(e.objects) {
		return errors.New("operation stream produces more objects than the part lists")
	}
	obj, o := e.objects[e.next], e.open
	if err := checkContent(obj, &o.header); err != nil {
		return err
	}
	_, err := e.repo.WriteContentFrom(obj.Checksum, &o.header, int64(o.size), ostree.DefaultCompressionLevel, func(w io.Writer) error {
		if e.patchOut == nil {
			e.patchOut = bufio.NewWriterSize(w, 64<<10)
		} else {
			e.patchOut.Reset(w)
		}
		if err := e.patch(e.patchOut); err != nil {
			return err
		}
		return e.patchOut.Flush()
	})
	if err != nil {
		return e.diagnose(obj, err, o.source())
	}
	o.stored = true
	return nil
}

// checkMeta validates a dirtree or dirmeta object before it is stored: a checksum only
// says the object is the one the delta meant, and a delta could carry, say, a dirtree with
// an entry ".." or "a/b", which must not land in the repository.
func checkMeta(t ostree.ObjectType, data []byte) error {
	var err error
	switch t {
	case ostree.ObjDirTree:
		_, err = ostree.ParseDirTree(data)
	case ostree.ObjDirMeta:
		_, err = ostree.ParseDirMeta(data)
	}
	return err
}

// setSource makes object c the read source: its content (a symlink: its target) in the
// executor's source buffer, or, when it is larger than maxReused and the repository stores
// it as a plain file, that file, which bsdiff patches and writes then read as they need
// it. The source is not verified as it is read: every object built from it is, as it is
// stored, and a wrong object then has its source checked (diagnose).
func (e *executor) setSource(c ostree.Checksum) error {
	e.dropSource()
	o, err := e.repo.OpenContentUnchecked(c)
	if err != nil {
		return err
	}
	e.sourceSum = c
	if o.Header.IsSymlink() {
		o.Close()
		e.source = []byte(o.Header.LinkTarget)
		return nil
	}
	if o.Size > maxReused && o.ContentAt() != nil {
		e.sourceFile = o
		return nil
	}
	defer o.Close()
	buf := buffer(&e.srcBuf, uint64(o.Size))
	if _, err := io.ReadFull(o, buf); err != nil {
		return err
	}
	e.source = buf
	return nil
}

// dropSource unsets the read source.
func (e *executor) dropSource() {
	if e.sourceFile != nil {
		e.sourceFile.Close()
	}
	e.source, e.sourceFile = nil, nil
}

// patch applies the patch e.patchIn reads to the read source, writing the open object to w.
func (e *executor) patch(w io.Writer) error {
	if e.sourceFile != nil {
		return bsdiff.PatchAt(w, e.sourceFile.ContentAt(), e.sourceFile.Size, e.patchIn, int64(e.open.size))
	}
	return bsdiff.PatchTo(w, e.source, e.patchIn, int64(e.open.size))
}

// store writes a content object, from data in memory, else from the blob's section,
// verified as it is written against its expected checksum; from is the read source it was
// built from, if any.
func (e *executor) store(obj ObjectRef, h *ostree.FileHeader, data []byte, section *io.SectionReader, from *ostree.Checksum) error {
	if err := checkContent(obj, h); err != nil {
		return err
	}
	// Either is copied in pieces of 64 KiB (ostree's copyTo): on Linux 6.18, a write of
	// megabytes into ext4 (which then takes large folios) now and then cost several times
	// the CPU of the same bytes in such pieces (bench/RESULTS.md, "client").
	var content io.Reader = bytes.NewReader(data)
	size := int64(len(data))
	if section != nil {
		content, size = section, section.Size()
	}
	if _, err := e.repo.WriteCheckedContent(obj.Checksum, h, content, size, ostree.DefaultCompressionLevel); err != nil {
		return e.diagnose(obj, err, from)
	}
	return nil
}

// checkContent checks that a content operation builds a content object, with a valid
// header.
func checkContent(obj ObjectRef, h *ostree.FileHeader) error {
	if obj.Type != ostree.ObjFile {
		return fmt.Errorf("object %s: content operation for a %s", obj.Checksum, obj.Type)
	}
	if err := h.Validate(); err != nil {
		return fmt.Errorf("object %s: %w", obj.Checksum, err)
	}
	return nil
}

// diagnose returns the error of storing obj, built from the read source from (nil: none):
// when the object came out corrupt, a corrupt source is the cause to report, the
// repository's damage rather than the delta's.
func (e *executor) diagnose(obj ObjectRef, err error, from *ostree.Checksum) error {
	var ce *ostree.CorruptError
	if !errors.As(err, &ce) || ce.Checksum != obj.Checksum {
		return err
	}
	if from != nil {
		if serr := e.checkSource(*from); serr != nil {
			return fmt.Errorf("object %s: built from a damaged read source: %w", obj.Checksum, serr)
		}
	}
	return fmt.Errorf("object %s: checksum mismatch (the delta builds another object)", obj.Checksum)
}

// checkSource reads a read source through the repository's verification.
func (e *executor) checkSource(c ostree.Checksum) error {
	o, err := e.repo.OpenContent(c)
	if err != nil {
		return err
	}
	defer o.Close()
	_, err = io.Copy(io.Discard, o)
	return err
}
