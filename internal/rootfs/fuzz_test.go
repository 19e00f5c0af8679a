package rootfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// The tar layer and the decompressors are fuzzed apart: instrumented decompression of what
// a mutated header can make expand is slow, and the tar reader sees only a byte stream.
// Seed corpora are in testdata/fuzz.

// maxContent bounds how much of each file FuzzTarReader reads, as a sparse member may
// claim gigabytes of holes.
const maxContent = 1 << 16

// FuzzTarReader reads arbitrary uncompressed tar streams: every entry yielded must be well
// formed (clean path, known type, sorted non-empty xattrs, a hard link to a path that is a
// file at that point), a file's content must be as long as its entry says, and the first
// error must stick.
func FuzzTarReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newTarSource(bytes.NewReader(data), nil)
		// isFile records, for each path yielded, whether its latest entry is a regular file.
		isFile := make(map[string]bool)
		for {
			e, err := s.Next()
			if err != nil {
				if e != nil {
					t.Fatalf("Next returned an entry with error %v", err)
				}
				if e2, err2 := s.Next(); e2 != nil || err2 != err {
					t.Fatalf("Next after error %v returned %v, %v", err, e2, err2)
				}
				return
			}
			checkEntry(t, e, isFile)
			isFile[e.Path] = e.Mode&ModeTypeMask == ModeRegular
		}
	})
}

// checkEntry checks the invariants of an entry a tar source yields; isFile tells which
// paths a hard link may name.
func checkEntry(t *testing.T, e *Entry, isFile map[string]bool) {
	t.Helper()
	if p, err := cleanPath(e.Path); err != nil || p != e.Path {
		t.Fatalf("entry path %q is not clean: %q, %v", e.Path, p, err)
	}
	switch e.Mode & ModeTypeMask {
	case ModeRegular, ModeDir, ModeSymlink, ModeChar, ModeBlock, ModeFIFO:
	default:
		t.Fatalf("%s: mode %#o has no known type", e.Path, e.Mode)
	}
	if e.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		t.Fatalf("%s: mode %#o has stray bits", e.Path, e.Mode)
	}
	for i, x := range e.Xattrs {
		if x.Name == "" || len(x.Value) == 0 || i > 0 && e.Xattrs[i-1].Name >= x.Name {
			t.Fatalf("%s: xattrs not sorted, or with an empty name or value: %q", e.Path, e.Xattrs)
		}
	}
	switch {
	case e.HardlinkTo != "":
		if e.Mode&ModeTypeMask != ModeRegular || e.Content != nil || e.HardlinkTo == e.Path || !isFile[e.HardlinkTo] {
			t.Fatalf("%s: hard link to %s, which is not a file (mode %#o)", e.Path, e.HardlinkTo, e.Mode)
		}
	case e.Content != nil:
		if e.Mode&ModeTypeMask != ModeRegular || e.Size < 0 {
			t.Fatalf("%s: content with mode %#o, size %d", e.Path, e.Mode, e.Size)
		}
		n, err := io.Copy(io.Discard, io.LimitReader(e.Content, maxContent))
		if err == nil && n != min(e.Size, maxContent) {
			t.Fatalf("%s: read %d bytes of a %d-byte file without error", e.Path, n, e.Size)
		}
	case e.Mode&ModeTypeMask == ModeRegular || e.Size != 0:
		t.Fatalf("%s: mode %#o, size %d, no content", e.Path, e.Mode, e.Size)
	}
}

// maxOut bounds the decompressed bytes read per input by the decompressor targets.
const maxOut = 1 << 16

// FuzzGzip, FuzzBzip2, FuzzXz and FuzzZstd feed arbitrary streams to the decompressor
// OpenTar picks. Beyond not panicking, a stream must decompress the same when it arrives a
// byte at a time (as from a pipe), and one that decompresses cleanly must fail once its last
// byte is cut off, so that a truncated tarball cannot pass for a complete one. The xz
// decompressor takes the end of its input at a block boundary for the end of the stream,
// index and footer missing; so a truncated xz stream is caught one level up, by the tar
// reader's end-of-archive check, and FuzzXz does not check truncation.
func FuzzGzip(f *testing.F)  { fuzzDecompress(f, "gzip", true) }
func FuzzBzip2(f *testing.F) { fuzzDecompress(f, "bzip2", true) }
func FuzzXz(f *testing.F)    { fuzzDecompress(f, "xz", false) }
func FuzzZstd(f *testing.F)  { fuzzDecompress(f, "zstd", true) }

func fuzzDecompress(f *testing.F, format string, checkCut bool) {
	f.Fuzz(func(t *testing.T, data []byte) {
		out, ok, err := decompressed(bytes.NewReader(data), format)
		if !ok {
			return // another format
		}
		out1, _, err1 := decompressed(iotest.OneByteReader(bytes.NewReader(data)), format)
		if (err == nil) != (err1 == nil) || err == nil && !bytes.Equal(out, out1) {
			t.Fatalf("%s read whole: %d bytes, %v; a byte at a time: %d bytes, %v", format, len(out), err, len(out1), err1)
		}
		if err != nil || len(out) > maxOut || !checkCut {
			return
		}
		if out, _, err := decompressed(bytes.NewReader(data[:len(data)-1]), format); err == nil {
			t.Fatalf("%s stream cut short by a byte decompresses cleanly to %d bytes", format, len(out))
		}
	})
}

// decompressed returns up to maxOut+1 bytes of what the decompressor decompress picks for r
// returns, and the error met, if any; ok is false if r is not in format.
func decompressed(r io.Reader, format string) (out []byte, ok bool, err error) {
	in, closeFn, err := decompress(bufio.NewReader(r))
	if err != nil {
		return nil, strings.Contains(err.Error(), " "+format+" "), err
	}
	if closeFn != nil {
		defer closeFn()
	}
	if formatOf(in) != format {
		return nil, false, nil
	}
	var buf bytes.Buffer
	_, err = io.CopyN(&buf, in, maxOut+1)
	if err == io.EOF {
		err = nil
	}
	return buf.Bytes(), true, err
}

// formatOf names the compression of a reader decompress returned.
func formatOf(r io.Reader) string {
	switch r := r.(type) {
	case *gzip.Reader:
		return "gzip"
	case namedReader:
		return r.name
	case *bufio.Reader:
		return "none"
	}
	return "bzip2"
}

// FuzzParseOverrides checks that overrides parse back from their own formatting to the same
// changes, and that an error names a line holding an entry, on one line.
func FuzzParseOverrides(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		o, err := ParseOverrides(strings.NewReader(text), "ov")
		if err != nil {
			if !errors.Is(err, bufio.ErrTooLong) {
				checkLineError(t, err, text, "ov:", ":")
			}
			return
		}
		formatted := formatOverrides(o)
		o2, err := ParseOverrides(strings.NewReader(formatted), "ov")
		if err != nil {
			t.Fatalf("overrides %q format as %q, which does not parse: %v", text, formatted, err)
		}
		if again := formatOverrides(o2); again != formatted {
			t.Fatalf("overrides %q format as %q, which parses and formats as %q", text, formatted, again)
		}
		for p := range o.byPath {
			if e := (Entry{Path: p}); !o.Apply(&e) {
				t.Fatalf("overrides %q: Apply ignores %s", text, p)
			}
		}
	})
}

// formatOverrides writes o in the overrides format, paths sorted, values in hex.
func formatOverrides(o *Overrides) string {
	var sb strings.Builder
	for _, p := range slices.Sorted(maps.Keys(o.byPath)) {
		ov := o.byPath[p]
		if p == "." {
			p = ""
		}
		sb.WriteString("/" + p)
		if ov.setUID {
			fmt.Fprintf(&sb, " uid=%d", ov.uid)
		}
		if ov.setGID {
			fmt.Fprintf(&sb, " gid=%d", ov.gid)
		}
		if ov.setMode {
			fmt.Fprintf(&sb, " mode=%o", ov.mode)
		}
		for _, x := range ov.xattrs {
			if len(x.Value) == 0 {
				fmt.Fprintf(&sb, " xattr.%s=", x.Name)
			} else {
				fmt.Fprintf(&sb, " xattr.%s=0x%x", x.Name, x.Value)
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// FuzzParseSkipList checks that a skip list skips what it lists and everything below, never
// the root, parses back from its own formatting, and that an error names a line holding an
// entry, on one line.
func FuzzParseSkipList(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSkipList(strings.NewReader(text), "skip")
		if err != nil {
			if !errors.Is(err, bufio.ErrTooLong) {
				checkLineError(t, err, text, "skip:", ":")
			}
			return
		}
		skip := func(p string) bool { _, ok := s.Match(p); return ok }
		if skip(".") {
			t.Fatalf("skip list %q skips the root", text)
		}
		for p := range s.paths {
			if !skip(p) || !skip(p+"/x") {
				t.Fatalf("skip list %q does not skip %s and what is below", text, p)
			}
		}
		formatted := formatSkipList(s)
		s2, err := ParseSkipList(strings.NewReader(formatted), "skip")
		if err != nil || formatSkipList(s2) != formatted {
			t.Fatalf("skip list %q formats as %q, which parses to %v (%v)", text, formatted, s2, err)
		}
	})
}

// formatSkipList writes s in the skip-list format, paths sorted.
func formatSkipList(s *SkipList) string {
	var sb strings.Builder
	for _, p := range slices.Sorted(maps.Keys(s.paths)) {
		sb.WriteString("/" + p + "/\n") // the slash keeps trailing spaces of the name
	}
	return sb.String()
}

// checkLineError checks that err is one line, prefix followed by a line number and sep,
// and that that line of text is neither blank nor a comment.
func checkLineError(t *testing.T, err error, text, prefix, sep string) {
	t.Helper()
	msg := err.Error()
	num, _, ok := strings.Cut(strings.TrimPrefix(msg, prefix), sep)
	n, nerr := strconv.Atoi(num)
	lines := strings.Split(text, "\n")
	if !strings.HasPrefix(msg, prefix) || !ok || nerr != nil || n < 1 || n > len(lines) || strings.Contains(msg, "\n") {
		t.Fatalf("error %q is not one line starting %q, a line number of the input and %q", msg, prefix, sep)
	}
	if fields := strings.Fields(lines[n-1]); len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		t.Fatalf("error %q names line %d, %q, which is blank or a comment", msg, n, lines[n-1])
	}
}
