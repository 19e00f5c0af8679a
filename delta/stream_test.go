package delta

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// heapPeak samples the heap in use every millisecond until stop is called, which returns
// the largest figure seen above the heap in use when heapPeak was called.
func heapPeak() (stop func() uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// Open and Apply stream a part: a part much larger than a small memory budget, holding one
// large file, in its own file or inline in the superblock (a bundle), is applied without
// the part, its payload or the file ever being in memory whole.
func TestApplyStreamsParts(t *testing.T) {
	const size, budget = 24 << 20, 12 << 20
	// Compressible enough for xz to be quick, varied enough to keep the part large.
	noise := randomBytes(7, 1<<20)
	var big strings.Builder
	for i := 0; big.Len() < size; i++ {
		big.WriteString(noise[i%4096 : i%4096+200_000])
	}
	src, err := ostree.Init(filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	to := commitTree(t, src, []file{{name: "usr/lib/big.bin", body: big.String()}})
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"xz", Options{}},
		{"uncompressed", Options{Uncompressed: true}},
		{"inline, as in a bundle", Options{Inline: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := generate(t, src, c.opts, nil, to)
			if len(res.Superblock.Parts) != 1 || res.Superblock.Parts[0].USize < size {
				t.Fatalf("want one part of at least %d bytes, got %+v", size, res.Superblock.Parts)
			}
			dst := target(t, ostree.ModeBareUser, false)
			stop := heapPeak() // Open included: a bundle's parts must stay in the file
			d, err := Open(filepath.Join(src.Path, res.Dir), nil)
			if err == nil {
				err = Apply(context.Background(), dst, d, ApplyOptions{})
			}
			peak := stop()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("peak heap in use while applying: %.1f MiB", float64(peak)/(1<<20))
			if peak > budget {
				t.Errorf("applying a %d MiB part took %d MiB of heap, want at most %d MiB", size>>20, peak>>20, budget>>20)
			}
			if got, want := listing(t, dst, to), listing(t, src, to); got != want {
				t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// objectFiles lists the files under a repository's objects/ and tmp/.
func objectFiles(t *testing.T, repo *ostree.Repo) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"objects", "tmp"} {
		err := filepath.WalkDir(filepath.Join(repo.Path, dir), func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				out = append(out, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// A part whose checksum does not match is refused before any of its operations runs, also
// when the damage is in its last bytes, which a streaming reader reaches only at the end:
// the repository gains no object and keeps no temporary file.
func TestApplyCorruptPartWritesNothing(t *testing.T) {
	src, from, to := setup(t)
	for _, c := range []struct {
		name string
		opts Options
		at   func(size int) int // the byte to damage
	}{
		{"xz, first byte after the header", Options{}, func(int) int { return 20 }},
		{"xz, last byte", Options{}, func(n int) int { return n - 1 }},
		{"uncompressed, middle", Options{Uncompressed: true}, func(n int) int { return n / 2 }},
		{"uncompressed, last byte", Options{Uncompressed: true}, func(n int) int { return n - 1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := generate(t, src, c.opts, &from, to)
			dir := filepath.Join(src.Path, res.Dir)
			part := filepath.Join(dir, "0")
			data, err := os.ReadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			data[c.at(len(data))] ^= 0x01
			if err := os.WriteFile(part, data, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := Load(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			dst := target(t, ostree.ModeBareUser, true)
			before := objectFiles(t, dst)
			err = Apply(context.Background(), dst, d, ApplyOptions{})
			if err == nil || !strings.Contains(err.Error(), "part 0: checksum or size mismatch") {
				t.Fatalf("apply of a damaged part: error %v, want a checksum mismatch of part 0", err)
			}
			if after := objectFiles(t, dst); !slices.Equal(after, before) {
				t.Fatalf("a refused part changed the repository:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
			}
		})
	}
}

// Load reads superblocks from files a device gets from the network or a USB stick:
// walking their framing must never panic, whatever the bytes.
func FuzzLoadSuperblock(f *testing.F) {
	sb := Superblock{Commit: (&ostree.Commit{Subject: "s"}).Marshal(), Parts: []PartHeader{{Size: 3, USize: 4,
		Objects: []ObjectRef{{Type: ostree.ObjFile}}}}}
	sb.To = ostree.Sum(sb.Commit)
	sb.Metadata = []gvariant.DictEntry{
		{Key: "ostree.endianness", Value: gvariant.Variant{Type: "y", Value: byte('l')}},
		{Key: "deltas/x/0", Value: gvariant.Variant{Type: "(yay)", Value: []any{byte('x'), []byte("abc")}}},
	}
	data, err := sb.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, inline, err := loadSuperblock(bytes.NewReader(data), 0, int64(len(data)))
		if err != nil {
			return
		}
		for i, span := range inline {
			if span.off < 0 || span.n <= 0 || span.off+span.n > int64(len(data)) {
				t.Fatalf("inline part %d at %+v outside the %d-byte superblock", i, span, len(data))
			}
		}
		if _, err := s.Marshal(); err != nil {
			t.Fatalf("loaded superblock does not marshal: %v", err)
		}
	})
}

// Load returns a bundle's superblock whole, inline parts in their places in the metadata;
// Open leaves them out, and applies alike.
func TestLoadKeepsInlineParts(t *testing.T) {
	src, from, to := setup(t)
	res := generate(t, src, Options{Inline: true, MaxPartSize: 20_000, DisableBsdiff: true}, &from, to)
	file := filepath.Join(src.Path, res.Dir, "superblock")
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Marshal(); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Load then Marshal: %d bytes (%v), want the %d bytes of the file", len(got), err, len(want))
	}
	o, err := Open(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if parts := len(res.Superblock.Parts); parts < 3 || len(o.Metadata) != len(l.Metadata)-parts {
		t.Fatalf("Open kept %d of %d metadata entries, want all but the %d parts", len(o.Metadata), len(l.Metadata), parts)
	}
	dst := target(t, ostree.ModeBareUser, true)
	if err := Apply(context.Background(), dst, o, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := listing(t, dst, to), listing(t, src, to); got != want {
		t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
	}
}
