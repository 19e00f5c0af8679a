package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// A bundle holds its parts inline, in the superblock's metadata. Load reads such a
// superblock without them: it walks the GVariant framing offsets (docs/format.md,
// "GVariant") from the file, reads and decodes everything but the inline parts, and
// records where each inline part lies in the file, for Apply to stream it from there.

// inlineSpan is where an inline part lies in the superblock file (its compression byte and
// its bytes), and its key and index in the metadata.
type inlineSpan struct {
	off, n int64
	key    string
	at     int
}

var errFraming = errors.New("superblock: gvariant: invalid framing offsets")

// readAt reads n bytes of f at off, n bounded by what a superblock without its parts needs.
func readAt(f io.ReaderAt, off, n int64) ([]byte, error) {
	if n < 0 {
		return nil, errFraming
	}
	if n > maxPartTables {
		return nil, fmt.Errorf("superblock: %d bytes besides its inline parts, more than 16 MiB", n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	return b, nil
}

// frameEnds reads the k framing offsets that end a container of n bytes at off, first
// member first, each checked to lie within the container's body. A tuple stores them last
// member first, an array first element first.
func frameEnds(f io.ReaderAt, off, n int64, k int, tuple bool) ([]int64, error) {
	w := int64(frameWidth(n))
	if w == 0 || n < int64(k)*w {
		return nil, errFraming
	}
	frame, err := readAt(f, off+n-int64(k)*w, int64(k)*w)
	if err != nil {
		return nil, err
	}
	ends := make([]int64, k)
	for j := range ends {
		at := int64(j)
		if tuple {
			at = int64(k - 1 - j)
		}
		ends[j] = int64(readLE(frame[at*w : (at+1)*w]))
		if ends[j] > n-int64(k)*w || (j > 0 && ends[j] < ends[j-1]) {
			return nil, errFraming
		}
	}
	return ends, nil
}

func align8(n int64) int64 { return (n + 7) &^ 7 }

// loadSuperblock parses the unsigned superblock of n bytes at off in f, leaving its inline
// parts in the file.
func loadSuperblock(f io.ReaderAt, off, n int64) (*Superblock, map[int]inlineSpan, error) {
	// (a{sv} t ay ay (commit) ay a(uayttay) a(yaytt)): six framing offsets, for every
	// variable-size member but the last.
	ends, err := frameEnds(f, off, n, 6, true)
	if err != nil {
		return nil, nil, err
	}
	meta, inline, err := loadMetadata(f, off, ends[0])
	if err != nil {
		return nil, nil, err
	}
	// The rest is small: the commit, the part headers and the fallbacks. It is re-encoded
	// with the metadata left once the inline parts are out, and parsed as a superblock.
	body := n - int64(6*frameWidth(n))
	rest, err := readAt(f, off+ends[0], body-ends[0])
	if err != nil {
		return nil, nil, err
	}
	members := []struct {
		typ   string
		end   int64 // -1: fixed size (t)
		align bool  // 8-byte aligned
	}{
		{"t", -1, true}, {"ay", ends[1], false}, {"ay", ends[2], false}, {ostree.CommitType, ends[3], true},
		{"ay", ends[4], false}, {"a(uayttay)", ends[5], true}, {"a(yaytt)", body, true},
	}
	fields := []any{meta}
	start := ends[0]
	for _, m := range members {
		if m.align {
			start = align8(start)
		}
		end := m.end
		if end < 0 {
			end = start + 8
		}
		if start > end || end > body {
			return nil, nil, errFraming
		}
		v, err := gvariant.Decode(m.typ, rest[start-ends[0]:end-ends[0]])
		if err != nil {
			return nil, nil, fmt.Errorf("superblock: %w", err)
		}
		fields = append(fields, v)
		start = end
	}
	data, err := gvariant.Encode(superblockType, fields)
	if err != nil {
		return nil, nil, fmt.Errorf("superblock: %w", err)
	}
	sb, err := ParseSuperblock(data)
	return sb, inline, err
}

// loadMetadata reads the superblock's a{sv} metadata of n bytes at off, but for inline
// parts, whose place it returns instead.
func loadMetadata(f io.ReaderAt, off, n int64) ([]gvariant.DictEntry, map[int]inlineSpan, error) {
	meta := []gvariant.DictEntry{}
	inline := map[int]inlineSpan{}
	if n == 0 {
		return meta, inline, nil
	}
	// An array of variable-size entries ends with their end offsets; the last one is where
	// that table starts.
	w := int64(frameWidth(n))
	last, err := frameEnds(f, off, n, 1, false)
	if err != nil {
		return nil, nil, err
	}
	if (n-last[0])%w != 0 {
		return nil, nil, errFraming
	}
	count := int((n - last[0]) / w)
	if count == 0 {
		return nil, nil, errFraming
	}
	ends, err := frameEnds(f, off, n, count, false)
	if err != nil {
		return nil, nil, err
	}
	start := int64(0)
	for _, end := range ends {
		start = align8(start)
		if start > end {
			return nil, nil, errFraming
		}
		e, span, err := loadEntry(f, off+start, end-start)
		if err != nil {
			return nil, nil, err
		}
		if span.n > 0 {
			i, _ := strconv.Atoi(e.Key.(string)[strings.LastIndexByte(e.Key.(string), '/')+1:])
			span.off += off + start
			span.key, span.at = e.Key.(string), len(meta)+len(inline)
			inline[i] = span
		} else {
			meta = append(meta, e)
		}
		start = end
	}
	return meta, inline, nil
}

// loadEntry reads one {sv} entry of n bytes at off. An inline part, a key deltas/.../N with
// a (yay) value, is not read: its span (relative to the entry) is returned instead.
func loadEntry(f io.ReaderAt, off, n int64) (gvariant.DictEntry, inlineSpan, error) {
	ends, err := frameEnds(f, off, n, 1, true)
	if err != nil {
		return gvariant.DictEntry{}, inlineSpan{}, err
	}
	keyEnd, body := ends[0], n-int64(frameWidth(n))
	if keyEnd > 4096 {
		return gvariant.DictEntry{}, inlineSpan{}, errFraming
	}
	key, err := readAt(f, off, keyEnd)
	if err != nil {
		return gvariant.DictEntry{}, inlineSpan{}, err
	}
	// A variant is its value, a zero byte and its type: (yay) is 5 bytes.
	if k, ok := bytes.CutSuffix(key, []byte{0}); ok && bytes.HasPrefix(k, []byte("deltas/")) && body-align8(keyEnd) > 6 {
		if _, err := strconv.Atoi(string(k[bytes.LastIndexByte(k, '/')+1:])); err == nil {
			tail, err := readAt(f, off+body-6, 6)
			if err != nil {
				return gvariant.DictEntry{}, inlineSpan{}, err
			}
			if string(tail) == "\x00(yay)" {
				return gvariant.DictEntry{Key: string(k)}, inlineSpan{off: align8(keyEnd), n: body - 6 - align8(keyEnd)}, nil
			}
		}
	}
	data, err := readAt(f, off, n)
	if err != nil {
		return gvariant.DictEntry{}, inlineSpan{}, err
	}
	v, err := gvariant.Decode("{sv}", data)
	if err != nil {
		return gvariant.DictEntry{}, inlineSpan{}, fmt.Errorf("superblock metadata: %w", err)
	}
	return v.(gvariant.DictEntry), inlineSpan{}, nil
}
