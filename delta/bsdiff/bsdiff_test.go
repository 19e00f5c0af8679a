package bsdiff

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"testing/iotest"
)

// randBytes returns n random bytes.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// mutate returns a copy of b with about edits random byte changes,
// insertions, deletions and block moves.
func mutate(r *rand.Rand, b []byte, edits int) []byte {
	out := bytes.Clone(b)
	for range edits {
		p := 0
		if len(out) > 0 {
			p = r.IntN(len(out))
		}
		switch r.IntN(5) {
		case 0, 1: // overwrite a few bytes
			for i := p; i < min(p+1+r.IntN(4), len(out)); i++ {
				out[i] = byte(r.UintN(256))
			}
		case 2: // insert
			out = append(out[:p], append(randBytes(r, 1+r.IntN(40)), out[p:]...)...)
		case 3: // delete
			out = append(out[:p], out[min(p+1+r.IntN(40), len(out)):]...)
		case 4: // duplicate an earlier block here
			if p > 0 {
				src := r.IntN(p)
				blk := bytes.Clone(out[src:min(src+1+r.IntN(200), p)])
				out = append(out[:p], append(blk, out[p:]...)...)
			}
		}
	}
	return out
}

// structured returns n bytes that look a bit like a binary: runs of zeros,
// repeated words and random stretches.
func structured(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		switch r.IntN(3) {
		case 0:
			b = append(b, make([]byte, r.IntN(64))...)
		case 1:
			w := randBytes(r, 4)
			for range r.IntN(16) {
				b = append(b, w...)
			}
		case 2:
			b = append(b, randBytes(r, r.IntN(128))...)
		}
	}
	return b[:n]
}

// roundTrip diffs old and new and checks that the patch applies, with Patch,
// PatchTo and PatchAt; it returns the patch.
func roundTrip(t testing.TB, old, new []byte) []byte {
	t.Helper()
	p, err := Diff(old, new)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	got, err := Patch(old, p, int64(len(new)))
	if err != nil {
		t.Fatalf("Patch (old %d bytes, new %d bytes, patch %d bytes): %v", len(old), len(new), len(p), err)
	}
	if !bytes.Equal(got, new) {
		t.Fatalf("Patch (old %d bytes, new %d bytes): wrong output", len(old), len(new))
	}
	var buf bytes.Buffer
	if err := PatchTo(&buf, old, bytes.NewReader(p), int64(len(new))); err != nil {
		t.Fatalf("PatchTo: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), new) {
		t.Fatalf("PatchTo: wrong output")
	}
	buf.Reset()
	if err := PatchAt(&buf, bytes.NewReader(old), int64(len(old)), bytes.NewReader(p), int64(len(new))); err != nil {
		t.Fatalf("PatchAt: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), new) {
		t.Fatalf("PatchAt: wrong output")
	}
	return p
}

func TestRoundTripTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := structured(r, 5000)
	tests := []struct {
		name     string
		old, new []byte
	}{
		{"both empty", nil, nil},
		{"empty old", nil, []byte("hello, world")},
		{"empty new", []byte("hello, world"), nil},
		{"one byte", []byte{1}, []byte{2}},
		{"identical", base, base},
		{"one byte changed", base, mutate(rand.New(rand.NewPCG(1, 1)), base, 1)},
		{"prefix", base, base[:2500]},
		{"suffix", base, base[2500:]},
		{"appended", base[:2500], base},
		{"rotated", base, append(bytes.Clone(base[1234:]), base[:1234]...)},
		{"zeros to zeros", make([]byte, 10000), make([]byte, 12345)},
		{"unrelated", randBytes(r, 3000), randBytes(r, 4000)},
		{"repetitive", bytes.Repeat([]byte("abc"), 3000), bytes.Repeat([]byte("abcd"), 2000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := roundTrip(t, tt.old, tt.new)
			if len(tt.new) == 0 && len(p) != 0 {
				t.Errorf("patch for an empty new file is %d bytes, want 0", len(p))
			}
		})
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 1))
	for i := range 200 {
		size := r.IntN(64 << 10)
		if i%4 == 0 {
			size = r.IntN(64)
		}
		var old, new []byte
		switch i % 5 {
		case 0: // unrelated random data
			old, new = randBytes(r, size), randBytes(r, r.IntN(64<<10))
		case 1: // random edits of random data
			old = randBytes(r, size)
			new = mutate(r, old, r.IntN(50))
		case 2: // random edits of structured data
			old = structured(r, size)
			new = mutate(r, old, r.IntN(50))
		case 3: // empty old or empty new
			if r.IntN(2) == 0 {
				new = structured(r, size)
			} else {
				old = structured(r, size)
			}
		case 4: // identical
			old = structured(r, size)
			new = bytes.Clone(old)
		}
		roundTrip(t, old, new)
	}
}

// TestSplitExtra checks that long extra runs split over several records
// still apply.
func TestSplitExtra(t *testing.T) {
	old := []byte("0123456789")
	extra := []byte("abcdefghijklmnopq")
	p := appendRecord(nil, old[0:3], []byte("xyz"), extra, 5, 5)
	p = appendRecord(p, old[8:10], []byte("89"), nil, 0, 5)
	want := "xyzabcdefghijklmnopq89"
	got, err := Patch(old, p, int64(len(want)))
	if err != nil || string(got) != want {
		t.Fatalf("Patch = %q, %v; want %q", got, err, want)
	}
	if n := (len(p) - len(want)) / ctrlSize; n != 5 {
		t.Errorf("%d records, want 5", n)
	}
}

func TestOff(t *testing.T) {
	for _, x := range []int64{0, 1, -1, 255, 256, -256, math.MaxInt32, math.MaxInt64, -math.MaxInt64} {
		b := appendOff(nil, x)
		if got := readOff(b); got != x {
			t.Errorf("readOff(appendOff(%d)) = %d", x, got)
		}
	}
	if got := appendOff(nil, -2); !bytes.Equal(got, []byte{2, 0, 0, 0, 0, 0, 0, 0x80}) {
		t.Errorf("appendOff(-2) = % x", got)
	}
	if got := readOff([]byte{0, 0, 0, 0, 0, 0, 0, 0x80}); got != 0 {
		t.Errorf("readOff(-0) = %d", got)
	}
}

// record encodes one patch record.
func record(x, y, z int64, data ...byte) []byte {
	b := appendOff(nil, x)
	b = appendOff(b, y)
	b = appendOff(b, z)
	return append(b, data...)
}

func TestPatchSemantics(t *testing.T) {
	old := []byte{10, 20, 30, 40}
	tests := []struct {
		name    string
		patch   []byte
		newSize int64
		want    []byte
	}{
		{"empty", nil, 0, []byte{}},
		{"diff", record(4, 0, 0, 1, 1, 1, 1), 4, []byte{11, 21, 31, 41}},
		{"diff wraps mod 256", record(1, 0, 0, 250), 1, []byte{4}},
		{"extra", record(0, 3, 0, 7, 8, 9), 3, []byte{7, 8, 9}},
		{"seek back", append(record(2, 0, -2, 0, 0), record(2, 0, 0, 0, 0)...), 4, []byte{10, 20, 10, 20}},
		{"negative old position reads zeros", append(record(0, 0, -2), record(4, 0, 0, 1, 2, 3, 4)...), 4, []byte{1, 2, 13, 24}},
		{"past old end reads zeros", append(record(0, 0, 3), record(3, 0, 0, 1, 2, 3)...), 3, []byte{41, 2, 3}},
		{"zero-length records", append(record(0, 0, 1), record(0, 1, 0, 5)...), 1, []byte{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Patch(old, tt.patch, tt.newSize)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("Patch = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestPatchCorrupt(t *testing.T) {
	old := []byte("old file contents")
	huge := int64(math.MaxInt32) + 1
	tests := []struct {
		name    string
		patch   []byte
		newSize int64
	}{
		{"negative new size", nil, -1},
		{"new size beyond patch", record(0, 3, 0, 1, 2, 3), 100},
		{"short control record", record(0, 1, 0, 1)[:20], 1},
		{"negative x", record(-1, 2, 0, 1, 2), 1},
		{"negative y", record(0, -1, 0, 1, 2), 1},
		{"x above MaxInt32", record(huge, 0, 0, 1), 1},
		{"y above MaxInt32", record(0, huge, 0, 1), 1},
		{"x overflows new size", record(3, 0, 0, 1, 2, 3), 2},
		{"y overflows new size", record(1, 2, 0, 1, 2, 3), 2},
		{"truncated diff", record(3, 0, 0, 1, 2), 3},
		{"truncated extra", record(0, 3, 0, 1, 2)[:26], 2},
		{"ends before new size", append(record(0, 2, 0, 1, 2), 0), 3},
		{"trailing data", append(record(0, 1, 0, 1), 9), 1},
		{"old position overflow", append(append(record(0, 0, math.MaxInt64), record(0, 0, 1)...), record(0, 1, 0, 1)...), 1},
		{"old position underflow", append(append(record(0, 0, -math.MaxInt64), record(0, 0, -2)...), record(0, 1, 0, 1)...), 1},
		{"old position overflow through x", append(record(0, 0, math.MaxInt64), record(1, 0, 0, 1)...), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Patch(old, tt.patch, tt.newSize); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Patch = %v, %v; want ErrCorrupt", got, err)
			}
			if err := PatchTo(io.Discard, old, bytes.NewReader(tt.patch), tt.newSize); !errors.Is(err, ErrCorrupt) {
				t.Errorf("PatchTo = %v; want ErrCorrupt", err)
			}
		})
	}
}

// TestPatchTruncated cuts a valid patch at every position and flips bytes
// of its control records.
func TestPatchTruncated(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	old := structured(r, 600)
	new := mutate(r, old, 6)
	p := roundTrip(t, old, new)
	for n := range len(p) {
		if got, err := Patch(old, p[:n], int64(len(new))); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Patch(patch[:%d]) = %d bytes, %v; want ErrCorrupt", n, len(got), err)
		}
		if err := PatchTo(io.Discard, old, bytes.NewReader(p[:n]), int64(len(new))); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("PatchTo(patch[:%d]) = %v; want ErrCorrupt", n, err)
		}
	}
	// Wrong new sizes.
	for _, size := range []int64{0, 1, int64(len(new)) - 1, int64(len(new)) + 1, math.MaxInt64} {
		if _, err := Patch(old, p, size); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Patch(newSize %d) = %v; want ErrCorrupt", size, err)
		}
	}
}

type failWriter struct{}

var errWrite = errors.New("write failed")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestPatchToErrors(t *testing.T) {
	old := []byte("abc")
	p := roundTrip(t, old, []byte("abcd"))
	if err := PatchTo(failWriter{}, old, bytes.NewReader(p), 4); !errors.Is(err, errWrite) {
		t.Errorf("PatchTo with a failing writer = %v", err)
	}
	errRead := errors.New("read failed")
	r := io.MultiReader(bytes.NewReader(p[:10]), iotest.ErrReader(errRead))
	if err := PatchTo(io.Discard, old, r, 4); !errors.Is(err, errRead) {
		t.Errorf("PatchTo with a failing reader = %v", err)
	}
	// An old file shorter than the size PatchAt is given.
	if err := PatchAt(io.Discard, bytes.NewReader(old[:2]), 3, bytes.NewReader(p), 4); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("PatchAt with a short old file = %v", err)
	}
}

func TestDiffTooLarge(t *testing.T) {
	if testing.Short() || math.MaxInt == math.MaxInt32 {
		t.Skip("needs a 2 GiB allocation")
	}
	// Diff must refuse before touching the (untouched, so not resident)
	// memory.
	if _, err := Diff(make([]byte, MaxOldSize+1), nil); err == nil {
		t.Fatal("Diff accepted an old file above MaxOldSize")
	}
}

// realBinary returns the contents of a large system binary, or skips.
func realBinary(t testing.TB, min int) []byte {
	for _, path := range []string{"/usr/bin/bash", "/bin/bash", "/usr/bin/ls"} {
		if b, err := os.ReadFile(path); err == nil && len(b) >= min {
			return b
		}
	}
	t.Skipf("no system binary of at least %d bytes", min)
	return nil
}

// edited returns a copy of bin with a few edits typical of a rebuild:
// changed bytes, an inserted and a removed stretch.
func edited(bin []byte) []byte {
	r := rand.New(rand.NewPCG(7, 8))
	out := bytes.Clone(bin)
	for range 20 {
		out[r.IntN(len(out))] ^= 0x5a
	}
	p := len(out) / 3
	out = append(out[:p], append([]byte("inserted by the bsdiff test, twice, inserted by the bsdiff test"), out[p:]...)...)
	q := 2 * len(out) / 3
	return append(out[:q], out[q+300:]...)
}

func TestRealBinaries(t *testing.T) {
	// ls and dir are built from the same sources.
	ls, err1 := os.ReadFile("/usr/bin/ls")
	dir, err2 := os.ReadFile("/usr/bin/dir")
	if err1 == nil && err2 == nil {
		p := roundTrip(t, ls, dir)
		t.Logf("ls -> dir: %d -> %d bytes, patch %d bytes, %d deflated", len(ls), len(dir), len(p), compressedSize(p))
	}

	// The raw stream holds a diff or extra byte for every byte of the new
	// file; it is meant to be compressed (OSTree compresses delta parts),
	// and then it is small for similar files.
	bin := realBinary(t, 1<<20)
	one := bytes.Clone(bin)
	one[len(one)/2] ^= 1
	p := roundTrip(t, bin, one)
	if len(p) != len(one)+ctrlSize {
		t.Errorf("patch for a one-byte change is %d bytes, want one record", len(p))
	}
	if c := compressedSize(p); c > len(one)/100 {
		t.Errorf("patch for a one-byte change in a %d-byte file deflates to %d bytes", len(one), c)
	}

	ed := edited(bin)
	p = roundTrip(t, bin, ed)
	c := compressedSize(p)
	t.Logf("edited %d-byte binary: patch %d bytes, %d deflated", len(bin), len(p), c)
	if c > len(ed)/100 {
		t.Errorf("patch for a few edits in a %d-byte file deflates to %d bytes", len(ed), c)
	}
}

// compressedSize returns the size of b compressed with DEFLATE.
func compressedSize(b []byte) int {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Len()
}

// A one-record patch: five diff bytes (all zero: the old bytes are kept),
// one extra byte, and z = -5, which bsdiff emits as it stands (the old
// position no longer matters once the new file is complete).
func ExampleDiff() {
	old := []byte("hello")
	p, _ := Diff(old, []byte("hello!"))
	fmt.Printf("% x\n", p[:24])
	fmt.Printf("% x\n", p[24:])
	new, _ := Patch(old, p, 6)
	fmt.Printf("%s\n", new)
	// Output:
	// 05 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 05 00 00 00 00 00 00 80
	// 00 00 00 00 00 21
	// hello!
}

func BenchmarkDiff(b *testing.B) {
	old := realBinary(b, 1<<20)
	new := edited(old)
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Diff(old, new); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPatch(b *testing.B) {
	old := realBinary(b, 1<<20)
	new := edited(old)
	p, err := Diff(old, new)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Patch(old, p, int64(len(new))); err != nil {
			b.Fatal(err)
		}
	}
}

// addBytes adds bytewise modulo 256, whatever the lengths and alignment.
func TestAddBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		for off := range 3 {
			dst, src := make([]byte, n+off), make([]byte, n+off)
			for i := range dst {
				dst[i], src[i] = byte(r.Uint32()), byte(r.Uint32())
			}
			if n > 0 {
				dst[off], src[off] = 0xff, 0x81 // a carry out of the top bit
			}
			want := slices.Clone(dst[off:])
			for i := range want {
				want[i] += src[off+i]
			}
			addBytes(dst[off:], src[off:])
			if !bytes.Equal(dst[off:], want) {
				t.Fatalf("n=%d off=%d: got %x, want %x", n, off, dst[off:], want)
			}
		}
	}
}

// findRuns lists exactly the maximal runs of runCheck or more equal bytes.
func TestFindRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		var b []byte
		for len(b) < 5000 {
			n := r.IntN(8)
			if r.IntN(4) == 0 {
				n = r.IntN(3 * runCheck)
			}
			b = append(b, bytes.Repeat([]byte{byte(r.IntN(3))}, n)...)
		}
		var want runs
		for i := 0; i < len(b); {
			j := i
			for j < len(b) && b[j] == b[i] {
				j++
			}
			if j-i >= runCheck {
				want.start, want.end = append(want.start, i), append(want.end, j)
			}
			i = j
		}
		got := findRuns(b)
		if !slices.Equal(got.start, want.start) || !slices.Equal(got.end, want.end) {
			t.Fatalf("findRuns: %v, want %v", got, want)
		}
		for p := range b {
			n := 0
			for i, s := range want.start {
				if s <= p && p < want.end[i] {
					n = want.end[i] - p
				}
			}
			if got.left(p) != n {
				t.Fatalf("left(%d) = %d, want %d", p, got.left(p), n)
			}
		}
	}
}
