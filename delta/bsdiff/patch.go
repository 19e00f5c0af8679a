package bsdiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrCorrupt is returned, wrapped, by Patch and PatchTo for a patch that is
// not a valid patch stream for the given new size.
var ErrCorrupt = errors.New("bsdiff: corrupt patch")

// chunkSize bounds the buffer PatchTo reads diff and extra bytes through.
const chunkSize = 64 << 10

// Patch applies patch, in the stream format described in the package
// documentation, to old and returns the new file of newSize bytes.
//
// Patch accepts what OSTree's bspatch (mendsley/bsdiff's bspatch())
// accepts, with the same result, except that it rejects a patch that has
// bytes left over once the new file is complete, or whose old-file position
// overflows an int64. Every other malformed patch, such as a truncated one,
// one with a negative length, a length above math.MaxInt32 or one that would
// write past newSize, yields an error wrapping ErrCorrupt.
//
// Since every byte of the new file comes from a byte of the patch, a
// newSize larger than the patch is rejected before anything is allocated;
// Patch allocates newSize bytes plus a small constant.
func Patch(old, patch []byte, newSize int64) ([]byte, error) {
	if newSize < 0 {
		return nil, fmt.Errorf("%w: negative new size %d", ErrCorrupt, newSize)
	}
	if newSize > int64(len(patch)) {
		return nil, fmt.Errorf("%w: %d bytes cannot produce a %d-byte file", ErrCorrupt, len(patch), newSize)
	}
	w := sliceWriter{b: make([]byte, 0, newSize)}
	if err := apply(&w, oldFile{b: old, size: int64(len(old))}, bytes.NewReader(patch), newSize); err != nil {
		return nil, err
	}
	return w.b, nil
}

// PatchTo is the streaming form of Patch: it reads the patch from r until
// EOF and writes the newSize bytes of the new file to w as it goes, using a
// fixed-size buffer. It returns an error wrapping ErrCorrupt if the patch
// is malformed (see Patch), or the first error from r or w; w may then have
// received part of the new file.
func PatchTo(w io.Writer, old []byte, r io.Reader, newSize int64) error {
	if newSize < 0 {
		return fmt.Errorf("%w: negative new size %d", ErrCorrupt, newSize)
	}
	return apply(w, oldFile{b: old, size: int64(len(old))}, r, newSize)
}

// PatchAt is PatchTo with the old file, of oldSize bytes, read from old as the patch
// needs its bytes instead of held in memory.
func PatchAt(w io.Writer, old io.ReaderAt, oldSize int64, r io.Reader, newSize int64) error {
	if newSize < 0 || oldSize < 0 {
		return fmt.Errorf("%w: negative size %d or %d", ErrCorrupt, newSize, oldSize)
	}
	return apply(w, oldFile{at: old, size: oldSize, buf: make([]byte, min(oldSize, chunkSize))}, r, newSize)
}

// oldFile is the old file of a patch: in memory (b), or read from at through buf.
type oldFile struct {
	b    []byte
	at   io.ReaderAt
	size int64
	buf  []byte
}

// slice returns bytes start to end of the old file (end-start at most chunkSize).
func (o oldFile) slice(start, end int64) ([]byte, error) {
	if o.at == nil {
		return o.b[start:end], nil
	}
	b := o.buf[:end-start]
	if _, err := o.at.ReadAt(b, start); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the old file is shorter than its size
		}
		return nil, fmt.Errorf("reading the old file: %w", err)
	}
	return b, nil
}

// addBytes adds src to dst byte by byte, modulo 256 (len(dst) == len(src)), eight bytes at
// a time: in each byte the low seven bits are added without a carry out of the byte, then
// the top bit is the sum of the two top bits and that carry.
func addBytes(dst, src []byte) {
	const low, high = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	i := 0
	for ; i+8 <= len(src) && i+8 <= len(dst); i += 8 {
		a, b := binary.LittleEndian.Uint64(dst[i:]), binary.LittleEndian.Uint64(src[i:])
		binary.LittleEndian.PutUint64(dst[i:], (a&low+b&low)^((a^b)&high))
	}
	for ; i < len(src); i++ {
		dst[i] += src[i]
	}
}

// apply is bspatch() from mendsley/bsdiff's bspatch.c, followed by a check
// that r is at EOF.
func apply(w io.Writer, old oldFile, r io.Reader, newSize int64) error {
	var ctrl [ctrlSize]byte
	buf := make([]byte, min(newSize, chunkSize))
	oldsize := old.size
	var oldpos, newpos int64
	for newpos < newSize {
		if err := readFull(r, ctrl[:], "control record"); err != nil {
			return err
		}
		x, y, z := readOff(ctrl[0:]), readOff(ctrl[8:]), readOff(ctrl[16:])
		if x < 0 || x > math.MaxInt32 || y < 0 || y > math.MaxInt32 {
			return fmt.Errorf("%w: record lengths %d, %d out of range", ErrCorrupt, x, y)
		}
		if x > newSize-newpos {
			return fmt.Errorf("%w: %d diff bytes at %d overflow the %d-byte file", ErrCorrupt, x, newpos, newSize)
		}
		if oldpos > math.MaxInt64-x {
			return fmt.Errorf("%w: old position overflows", ErrCorrupt)
		}

		// Diff bytes: add the old bytes that exist.
		for done := int64(0); done < x; {
			chunk := buf[:min(x-done, int64(len(buf)))]
			if err := readFull(r, chunk, "diff bytes"); err != nil {
				return err
			}
			lo, hi := oldpos+done, oldpos+done+int64(len(chunk))
			if lo < oldsize && hi > 0 {
				start, end := max(lo, 0), min(hi, oldsize)
				b, err := old.slice(start, end)
				if err != nil {
					return err
				}
				addBytes(chunk[start-lo:end-lo], b)
			}
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			done += int64(len(chunk))
		}
		newpos += x
		oldpos += x

		// Extra bytes.
		if y > newSize-newpos {
			return fmt.Errorf("%w: %d extra bytes at %d overflow the %d-byte file", ErrCorrupt, y, newpos, newSize)
		}
		for done := int64(0); done < y; {
			chunk := buf[:min(y-done, int64(len(buf)))]
			if err := readFull(r, chunk, "extra bytes"); err != nil {
				return err
			}
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			done += int64(len(chunk))
		}
		newpos += y

		if (z > 0 && oldpos > math.MaxInt64-z) || (z < 0 && oldpos < math.MinInt64-z) {
			return fmt.Errorf("%w: old position overflows", ErrCorrupt)
		}
		oldpos += z
	}
	var one [1]byte
	switch _, err := io.ReadFull(r, one[:]); err {
	case io.EOF:
		return nil
	case nil:
		return fmt.Errorf("%w: data after the end of the new file", ErrCorrupt)
	default:
		return err
	}
}

// readFull fills b from r; running out of data is corruption.
func readFull(r io.Reader, b []byte, what string) error {
	_, err := io.ReadFull(r, b)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	return err
}

// sliceWriter appends to a slice allocated with the right capacity.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
