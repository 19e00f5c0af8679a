package bsdiff

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// Debian's bsdiff and bspatch (Colin Percival's bsdiff 4.3) use the
// BSDIFF40 file format: a 32-byte header ("BSDIFF40", the compressed
// lengths of the control and diff blocks and the new size, each an 8-byte
// sign-magnitude integer), then three bzip2 streams: all control records,
// all diff bytes, all extra bytes. The records are those of our raw
// stream, regrouped.

// requireTools skips t when a tool is missing, or fails it when
// OTA_REQUIRE_TOOLS=1.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is required (OTA_REQUIRE_TOOLS=1) but not installed (Debian packages bsdiff, bzip2)", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

// bzip2 runs the bzip2 command on data with the given flags.
func bzip2(t *testing.T, data []byte, flags ...string) []byte {
	t.Helper()
	cmd := exec.Command("bzip2", flags...)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2 %v: %v\n%s", flags, err, stderr.Bytes())
	}
	return out
}

// toBSDIFF40 converts a raw patch stream for a newSize-byte file to the
// BSDIFF40 format.
func toBSDIFF40(t *testing.T, raw []byte, newSize int64) []byte {
	t.Helper()
	var ctrl, diff, extra []byte
	for len(raw) > 0 {
		if len(raw) < ctrlSize {
			t.Fatalf("truncated control record")
		}
		x, y := readOff(raw[0:]), readOff(raw[8:])
		ctrl = append(ctrl, raw[:ctrlSize]...)
		raw = raw[ctrlSize:]
		if x < 0 || y < 0 || x+y > int64(len(raw)) {
			t.Fatalf("bad record lengths %d, %d", x, y)
		}
		diff = append(diff, raw[:x]...)
		extra = append(extra, raw[x:x+y]...)
		raw = raw[x+y:]
	}
	bzCtrl, bzDiff, bzExtra := bzip2(t, ctrl, "-9c"), bzip2(t, diff, "-9c"), bzip2(t, extra, "-9c")
	out := []byte("BSDIFF40")
	out = appendOff(out, int64(len(bzCtrl)))
	out = appendOff(out, int64(len(bzDiff)))
	out = appendOff(out, newSize)
	out = append(out, bzCtrl...)
	out = append(out, bzDiff...)
	return append(out, bzExtra...)
}

// fromBSDIFF40 converts a BSDIFF40 patch to a raw stream and the new size.
func fromBSDIFF40(t *testing.T, p []byte) ([]byte, int64) {
	t.Helper()
	if len(p) < 32 || string(p[:8]) != "BSDIFF40" {
		t.Fatalf("not a BSDIFF40 patch")
	}
	ctrlLen, diffLen, newSize := readOff(p[8:]), readOff(p[16:]), readOff(p[24:])
	body := p[32:]
	if ctrlLen < 0 || diffLen < 0 || ctrlLen+diffLen > int64(len(body)) {
		t.Fatalf("bad BSDIFF40 header")
	}
	ctrl := bzip2(t, body[:ctrlLen], "-dc")
	diff := bzip2(t, body[ctrlLen:ctrlLen+diffLen], "-dc")
	extra := bzip2(t, body[ctrlLen+diffLen:], "-dc")
	var raw []byte
	for ; len(ctrl) >= ctrlSize; ctrl = ctrl[ctrlSize:] {
		x, y := readOff(ctrl[0:]), readOff(ctrl[8:])
		if x < 0 || y < 0 || x > int64(len(diff)) || y > int64(len(extra)) {
			t.Fatalf("bad BSDIFF40 record lengths %d, %d", x, y)
		}
		raw = append(raw, ctrl[:ctrlSize]...)
		raw = append(raw, diff[:x]...)
		raw = append(raw, extra[:y]...)
		diff, extra = diff[x:], extra[y:]
	}
	if len(ctrl) != 0 || len(diff) != 0 || len(extra) != 0 {
		t.Fatalf("BSDIFF40 blocks have %d, %d, %d bytes left over", len(ctrl), len(diff), len(extra))
	}
	return raw, newSize
}

// interopPairs returns the old/new pairs the interop tests use.
func interopPairs(t *testing.T) []struct {
	name     string
	old, new []byte
} {
	r := rand.New(rand.NewPCG(9, 10))
	pairs := []struct {
		name     string
		old, new []byte
	}{
		{"empty old", nil, structured(r, 1000)},
		{"empty new", structured(r, 1000), nil},
		{"unrelated", randBytes(r, 3000), randBytes(r, 2000)},
	}
	for i := range 12 {
		old := structured(r, r.IntN(40000))
		pairs = append(pairs, struct {
			name     string
			old, new []byte
		}{fmt.Sprintf("edited %d", i), old, mutate(r, old, r.IntN(40))})
	}
	// Long runs of one byte, as the zero padding of binaries, which search
	// compares by their lengths: runs of different lengths, at the start
	// and at the end, of zeros and of another byte, shifted by edits.
	for i, lens := range [][2]int{{30000, 30000}, {30000, 29000}, {2000, 31000}, {257, 256}} {
		runs := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
		body := structured(r, 20000)
		old := slices.Concat(runs(lens[0], 0), body, runs(lens[0], 0), body, runs(lens[0]/2, 0xff))
		new := slices.Concat(runs(lens[1], 0), mutate(r, body, 20), runs(lens[1], 0), body[:15000], runs(lens[1]/2, 0xff))
		pairs = append(pairs, struct {
			name     string
			old, new []byte
		}{fmt.Sprintf("runs %d", i), old, new})
	}
	z, body := make([]byte, 3000), structured(r, 5000)
	pairs = append(pairs, struct {
		name     string
		old, new []byte
	}{"equal runs, then different bytes", slices.Concat(z, []byte("x"), body, z, []byte("y"), body),
		slices.Concat(z, []byte("y"), body, z, []byte("x"), body[:100], z, []byte("y"))})
	ls, err1 := os.ReadFile("/usr/bin/ls")
	dir, err2 := os.ReadFile("/usr/bin/dir")
	if err1 == nil && err2 == nil {
		pairs = append(pairs, struct {
			name     string
			old, new []byte
		}{"ls to dir", ls, dir})
	}
	if bin, err := os.ReadFile("/usr/bin/bash"); err == nil {
		pairs = append(pairs, struct {
			name     string
			old, new []byte
		}{"bash edited", bin, edited(bin)})
	}
	return pairs
}

// TestDebianBspatch applies our patches with Debian's bspatch.
func TestDebianBspatch(t *testing.T) {
	requireTools(t, "bspatch", "bzip2")
	dir := t.TempDir()
	for i, pair := range interopPairs(t) {
		t.Run(pair.name, func(t *testing.T) {
			raw := roundTrip(t, pair.old, pair.new)
			oldPath := filepath.Join(dir, fmt.Sprint(i, ".old"))
			newPath := filepath.Join(dir, fmt.Sprint(i, ".new"))
			patchPath := filepath.Join(dir, fmt.Sprint(i, ".bsdiff40"))
			if err := os.WriteFile(oldPath, pair.old, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(patchPath, toBSDIFF40(t, raw, int64(len(pair.new))), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("bspatch", oldPath, newPath, patchPath).CombinedOutput(); err != nil {
				t.Fatalf("bspatch: %v\n%s", err, out)
			}
			got, err := os.ReadFile(newPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pair.new) {
				t.Fatalf("bspatch produced %d bytes that differ from the %d-byte new file", len(got), len(pair.new))
			}
		})
	}
}

// TestDebianBsdiff applies Debian's bsdiff patches with Patch, and checks
// that ours are about as small. Percival's bsdiff 4.3 has the same scan loop
// as mendsley's library and ours, but finds matches in a suffix array, so
// the records may differ where ours has a seed index (see search).
func TestDebianBsdiff(t *testing.T) {
	requireTools(t, "bsdiff", "bzip2")
	dir := t.TempDir()
	for i, pair := range interopPairs(t) {
		t.Run(pair.name, func(t *testing.T) {
			if len(pair.old) == 0 || len(pair.new) == 0 {
				t.Skip("Debian's bsdiff cannot mmap empty files")
			}
			oldPath := filepath.Join(dir, fmt.Sprint(i, ".old"))
			newPath := filepath.Join(dir, fmt.Sprint(i, ".new"))
			patchPath := filepath.Join(dir, fmt.Sprint(i, ".bsdiff40"))
			if err := os.WriteFile(oldPath, pair.old, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(newPath, pair.new, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("bsdiff", oldPath, newPath, patchPath).CombinedOutput(); err != nil {
				t.Fatalf("bsdiff: %v\n%s", err, out)
			}
			p, err := os.ReadFile(patchPath)
			if err != nil {
				t.Fatal(err)
			}
			raw, newSize := fromBSDIFF40(t, p)
			if newSize != int64(len(pair.new)) {
				t.Fatalf("BSDIFF40 header says %d bytes, want %d", newSize, len(pair.new))
			}
			got, err := Patch(pair.old, raw, newSize)
			if err != nil {
				t.Fatalf("Patch: %v", err)
			}
			if !bytes.Equal(got, pair.new) {
				t.Fatal("Patch of bsdiff's patch: wrong output")
			}
			ours, err := Diff(pair.old, pair.new)
			if err != nil {
				t.Fatal(err)
			}
			// Compared in bsdiff's own compressed format, each way.
			o, b := len(toBSDIFF40(t, ours, int64(len(pair.new)))), len(p)
			t.Logf("BSDIFF40 %d bytes against bsdiff's %d (%d against %d records)", o, b, records(ours), records(raw))
			if o > b+b/8+32 {
				t.Errorf("Diff's patch is %d bytes in the BSDIFF40 format, bsdiff's %d", o, b)
			}
		})
	}
}

// records counts the records of a raw patch stream.
func records(raw []byte) int {
	n := 0
	for len(raw) >= ctrlSize {
		l := uint64(ctrlSize) + binary.LittleEndian.Uint64(raw[0:]) + binary.LittleEndian.Uint64(raw[8:])
		if l > uint64(len(raw)) {
			break
		}
		raw = raw[l:]
		n++
	}
	return n
}
