package delta

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/ulikunitz/xz"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// Parts are applied in bounded memory: a part is read once, as a stream, through its
// checksum and the xz decoder into an unlinked file under the repository's tmp/ (the spool),
// and its operations then read the blob from that file. Only the payload's tables and its
// operation stream, both small, are held in memory; the blob is read an object at a time.

// maxPartTables bounds the mode and xattr tables and the operation stream of a part, the
// parts of a payload held in memory. Real parts need a small fraction of it.
const maxPartTables = 16 << 20

// openPart returns a reader of part i's file, compression byte included.
func (d *Loaded) openPart(i int) (io.ReadCloser, error) {
	span, ok := d.inline[i]
	if !ok {
		return os.Open(filepath.Join(d.Dir, strconv.Itoa(i)))
	}
	if d.data != nil {
		return io.NopCloser(io.NewSectionReader(bytes.NewReader(d.data), span.off, span.n)), nil
	}
	f, err := os.Open(d.file)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, span.off, span.n), f}, nil
}

// readPart returns part i whole, for Inspect.
func (d *Loaded) readPart(i int) ([]byte, error) {
	r, err := d.openPart(i)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// countingHash hashes and counts what is read through it.
type countingHash struct {
	r io.Reader
	h hash.Hash
	n uint64
}

func (c *countingHash) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += uint64(n)
	return n, err
}

// spoolPart reads part i of d, checks it against its header's size and checksum, and returns
// its decompressed payload, whose blob is read from an unlinked file in repo's tmp/. maxSize
// bounds the decompressed payload. The caller closes the returned file. A part whose zstd
// file is there (see zstdFile) is read from that file instead.
//
// The part's checksum is verified before spoolPart returns, so before any of its operations
// runs: a corrupt or tampered part writes no object, exactly as when parts were read whole.
func spoolPart(repo *ostree.Repo, d *Loaded, i int, maxSize uint64, xzCmd string) (*payload, *os.File, error) {
	if zst := d.zstdFile(i); zst != "" {
		return spoolZstdPart(repo, d, i, maxSize, zst)
	}
	if _, inline := d.inline[i]; xzCmd != "" && !inline {
		return spoolPartCmd(repo, d, i, maxSize, xzCmd)
	}
	h := d.Parts[i]
	in, err := d.openPart(i)
	if err != nil {
		return nil, nil, err
	}
	defer in.Close()
	src := &countingHash{r: in, h: sha256.New()}
	// A reader larger than the part cannot pass the size check; stop reading it early.
	r := bufio.NewReaderSize(io.LimitReader(src, int64(min(h.Size+1, math.MaxInt64))), 64<<10)
	spool, err := repo.CreateTemp(0o600)
	if err != nil {
		return nil, nil, err
	}
	// Unlinked at once: a crash or kill leaves nothing behind in tmp/.
	os.Remove(spool.Name())
	size, err := decompress(r, spool, maxSize)
	// Whatever the decoder left unread (or could not read) still counts for the checksum.
	io.Copy(io.Discard, r)
	var sum ostree.Checksum
	src.h.Sum(sum[:0])
	if src.n != h.Size || sum != h.Checksum {
		err = errMismatch
	}
	var p *payload
	if err == nil {
		p, err = openPayload(spool, size)
	}
	if err != nil {
		spool.Close()
		return nil, nil, err
	}
	return p, spool, nil
}

// spoolPartCmd is spoolPart for a part file that the xz command xzCmd decompresses. The
// part is read twice: first to check its size and checksum, so that the command only reads
// verified bytes, then by the command, which writes into the spool itself: through a pipe,
// copied by this process, the output cost about a third more CPU in all (xz writes 8 KiB at
// a time, each write a wakeup of the reader). maxSize still bounds the output as it is
// written: the command runs under a file size limit (RLIMIT_FSIZE, set by /bin/sh's
// `ulimit -f` just before it starts xz), which stops it at the first write beyond the
// bound. Parts not compressed with xz take spoolPart's way.
func spoolPartCmd(repo *ostree.Repo, d *Loaded, i int, maxSize uint64, xzCmd string) (*payload, *os.File, error) {
	h := d.Parts[i]
	f, err := openChecked(filepath.Join(d.Dir, strconv.Itoa(i)), h.Size, h.Checksum)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var c [1]byte
	if _, err := f.ReadAt(c[:], 0); err != nil || c[0] != CompressionXZ {
		return spoolPart(repo, d, i, maxSize, "")
	}
	if _, err := f.Seek(1, io.SeekStart); err != nil {
		return nil, nil, err
	}
	spool, err := repo.CreateTemp(0o600)
	if err != nil {
		return nil, nil, err
	}
	// Unlinked at once: a crash or kill leaves nothing behind in tmp/.
	os.Remove(spool.Name())
	maxSize = min(maxSize, math.MaxInt64-512)
	var stderr bytes.Buffer
	// ulimit -f counts 512-byte blocks (POSIX; dash, bash as sh and BusyBox alike).
	cmd := exec.Command(shell, "-c", `ulimit -f "$1" && exec "$0" --decompress --stdout --quiet`,
		xzCmd, strconv.FormatUint(maxSize/512+1, 10))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, spool, &stderr
	err = runTied(cmd)
	var n int64
	if st, serr := spool.Stat(); serr == nil {
		n = st.Size()
	} else if err == nil {
		err = serr
	}
	var p *payload
	switch ee := (*exec.ExitError)(nil); {
	case uint64(n) > maxSize || errors.As(err, &ee) && exitSignal(ee) == syscall.SIGXFSZ:
		err = errPayloadLimit
	case err != nil:
		err = fmt.Errorf("part: %s: %v: %s", xzCmd, err, bytes.TrimSpace(stderr.Bytes()))
	default:
		p, err = openPayload(spool, n)
	}
	if err != nil {
		spool.Close()
		return nil, nil, err
	}
	return p, spool, nil
}

// errMismatch is openChecked's error for a file that is not the one expected.
var errMismatch = errors.New("checksum or size mismatch (corrupt or truncated)")

// openChecked opens the file at path, checks that it has size bytes whose sha256 is sum
// (else errMismatch), and returns it positioned at its start.
func openChecked(path string, size uint64, sum ostree.Checksum) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	src := &countingHash{r: io.LimitReader(f, int64(min(size+1, math.MaxInt64))), h: sha256.New()}
	if _, err = io.Copy(io.Discard, src); err == nil {
		var got ostree.Checksum
		src.h.Sum(got[:0])
		if src.n != size || got != sum {
			err = errMismatch
		} else {
			_, err = f.Seek(0, io.SeekStart)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// partWindow returns the window of the xz stream of part i's file (see xzWindow): 0 for a
// part that is inline, decoded from its zstd file (in this process) or not compressed
// with xz, the largest possible when its header does not say.
func (d *Loaded) partWindow(i int) uint64 {
	if _, inline := d.inline[i]; inline || d.zstdFile(i) != "" {
		return 0
	}
	f, err := os.Open(filepath.Join(d.Dir, strconv.Itoa(i)))
	if err != nil {
		return 0 // spoolPart reports it
	}
	defer f.Close()
	var c [1]byte
	if _, err := f.ReadAt(c[:], 0); err != nil || c[0] != CompressionXZ {
		return 0
	}
	if w, ok := xzWindow(f, 1); ok {
		return w
	}
	return math.MaxUint64
}

// xzWindow returns the dictionary size of the first LZMA2 filter of the .xz stream that
// starts at offset off of r: what an xz process decoding it fills, for a stream at least
// that long. ok is false when the stream's first block header does not say.
func xzWindow(r io.ReaderAt, off int64) (size uint64, ok bool) {
	// The stream header (12 bytes), then the first block header: at most 1024 bytes.
	b := make([]byte, 12+1024)
	n, _ := r.ReadAt(b, off)
	b = b[:n]
	if len(b) < 13 || !bytes.HasPrefix(b, []byte{0xFD, '7', 'z', 'X', 'Z', 0}) || b[12] == 0 {
		return 0, false
	}
	h := b[12:]
	if end := (int(h[0]) + 1) * 4; end <= len(h) {
		h = h[:end]
	}
	pos := 2
	vli := func() (uint64, bool) { // a variable-length integer of the .xz format
		var v uint64
		for i := 0; i < 9 && pos < len(h); i++ {
			c := h[pos]
			pos++
			v |= uint64(c&0x7F) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	flags := h[1]
	for _, bit := range []byte{0x40, 0x80} { // the compressed and uncompressed sizes, if there
		if flags&bit != 0 {
			if _, ok := vli(); !ok {
				return 0, false
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := vli()
		n, ok2 := vli()
		if !ok1 || !ok2 || n > uint64(len(h)-pos) {
			return 0, false
		}
		props := h[pos : pos+int(n)]
		pos += int(n)
		if id == 0x21 && len(props) == 1 { // LZMA2: the dictionary size in one byte
			switch d := props[0]; {
			case d > 40:
				return 0, false
			case d == 40:
				return 1<<32 - 1, true
			default:
				return uint64(2|d&1) << (d/2 + 11), true
			}
		}
	}
	return 0, false
}

// shell runs the xz command under a file size limit (see spoolPartCmd).
const shell = "/bin/sh"

// exitSignal returns the signal that ended a command, or 0.
func exitSignal(ee *exec.ExitError) syscall.Signal {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// decompress copies the payload that follows r's compression byte into spool and returns
// its size.
func decompress(r *bufio.Reader, spool *os.File, maxSize uint64) (int64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, errors.New("empty part")
	}
	var raw io.Reader
	switch c {
	case CompressionNone:
		raw = r
	case CompressionXZ:
		xr, err := xz.NewReader(r)
		if err != nil {
			return 0, fmt.Errorf("part: xz: %w", err)
		}
		raw = xr
	default:
		return 0, fmt.Errorf("part: invalid compression type %#x", c)
	}
	return spoolBounded(spool, raw, maxSize, "xz")
}

// errPayloadLimit refuses a part whose payload is larger than its bound.
var errPayloadLimit = errors.New("part: decompresses to more than its limit")

// spoolBounded copies the payload a decoder (named codec in errors) reads from raw into
// spool, and fails (errPayloadLimit) at the first write past maxSize bytes: a corrupt or
// hostile part must not fill the disk. A decoder that writes itself out (io.WriterTo) does
// so with no copy between.
func spoolBounded(spool io.Writer, raw io.Reader, maxSize uint64, codec string) (int64, error) {
	n, err := io.Copy(&boundedWriter{w: spool, left: maxSize}, raw)
	switch {
	case errors.Is(err, errLimit):
		return 0, errPayloadLimit
	case err != nil:
		return 0, fmt.Errorf("part: %s: %w", codec, err)
	}
	return n, nil
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

// openPayload parses a payload (a(uuu)aa(ayay)ayay) of size n held in f: it reads the
// tables and the operation stream, and leaves the blob in f.
func openPayload(f *os.File, n int64) (*payload, error) {
	// Three framing offsets, the ends of the first three members, end the tuple.
	ends, err := frameEnds(f, 0, n, 3, true)
	if err != nil {
		return nil, errors.New("part payload: gvariant: invalid framing offsets")
	}
	opsEnd := n - 3*int64(frameWidth(n))
	if ends[1] > maxPartTables || opsEnd-ends[2] > maxPartTables {
		return nil, errors.New("part payload: tables or operation stream larger than 16 MiB")
	}
	tables := make([]byte, ends[1])
	if _, err := f.ReadAt(tables, 0); err != nil {
		return nil, err
	}
	ops := make([]byte, opsEnd-ends[2])
	if _, err := f.ReadAt(ops, ends[2]); err != nil {
		return nil, err
	}
	modes, err := gvariant.Decode("a(uuu)", tables[:ends[0]])
	if err != nil {
		return nil, fmt.Errorf("part payload: %w", err)
	}
	xattrs, err := gvariant.Decode("aa(ayay)", tables[ends[0]:])
	if err != nil {
		return nil, fmt.Errorf("part payload: %w", err)
	}
	p := &payload{ops: ops, blobFile: io.NewSectionReader(f, ends[1], ends[2]-ends[1])}
	return p, p.setTables(modes.([]any), xattrs.([]any))
}

// frameWidth is the framing offset width of a GVariant container of n bytes.
func frameWidth(n int64) int {
	switch {
	case n == 0:
		return 0
	case n <= math.MaxUint8:
		return 1
	case n <= math.MaxUint16:
		return 2
	case n <= math.MaxUint32:
		return 4
	}
	return 8
}

func readLE(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
