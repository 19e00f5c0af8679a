package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// xzPayload returns the payload of an xz part file.
func xzPayload(t *testing.T, part string) []byte {
	t.Helper()
	data, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != CompressionXZ {
		t.Fatalf("%s: compression byte %#x, want xz", part, data[0])
	}
	r, err := xz.NewReader(bytes.NewReader(data[1:]))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// With ZstdParts every part file N gets N.zst beside it, the same payload compressed with
// zstd, listed with its size and checksum in the superblock; Apply builds the tree from
// them alone, in this process. Without it, there are none.
func TestZstdParts(t *testing.T) {
	src, from, to := setup(t)
	want := listing(t, src, to)

	plain := generate(t, src, Options{MaxPartSize: 10_000}, &from, to)
	if zs, err := plain.Superblock.ZstdParts(); err != nil || zs != nil {
		t.Fatalf("delta without ZstdParts lists zstd parts %v (%v)", zs, err)
	}
	if m, _ := filepath.Glob(filepath.Join(src.Path, plain.Dir, "*.zst")); len(m) > 0 {
		t.Fatalf("delta without ZstdParts has zstd files %v", m)
	}

	res := generate(t, src, Options{MaxPartSize: 10_000, ZstdParts: true}, &from, to)
	dir := filepath.Join(src.Path, res.Dir)
	if !strings.HasPrefix(res.ZstdEncoder, "zstd ") || plain.ZstdEncoder != "" {
		t.Errorf("ZstdEncoder %q with zstd parts, %q without", res.ZstdEncoder, plain.ZstdEncoder)
	}
	if len(res.Superblock.Parts) < 2 {
		t.Fatalf("want several parts, got %d", len(res.Superblock.Parts))
	}
	zs, err := res.Superblock.ZstdParts()
	if err != nil || len(zs) != len(res.Superblock.Parts) {
		t.Fatalf("zstd parts %v (%v), want one per part (%d)", zs, err, len(res.Superblock.Parts))
	}
	size := int64(0)
	for i, h := range res.Superblock.Parts {
		size += int64(h.Size + zs[i].Size)
		data, err := os.ReadFile(filepath.Join(dir, ZstdPartName(i)))
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(data)) != zs[i].Size || sha256.Sum256(data) != [32]byte(zs[i].Checksum) {
			t.Fatalf("part %d: %s is not what the superblock lists", i, ZstdPartName(i))
		}
		dec, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.DecodeAll(data, nil)
		dec.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, xzPayload(t, filepath.Join(dir, fmt.Sprint(i)))) {
			t.Fatalf("part %d: the zstd file holds another payload than the xz part", i)
		}
	}
	sb, err := os.Stat(filepath.Join(dir, "superblock"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != size+sb.Size() {
		t.Errorf("Result.Size %d, want the superblock and both kinds of parts: %d", res.Size, size+sb.Size())
	}

	// The xz parts are not needed: Apply takes the zstd files, and runs no xz command.
	for i := range res.Superblock.Parts {
		if err := os.Remove(filepath.Join(dir, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := target(t, ostree.ModeBareUser, true)
	decoding := 0
	opts := ApplyOptions{XZ: DecoderXZ(), Decoding: func(uint64) func() { decoding++; return func() {} }}
	if err := Apply(context.Background(), dst, d, opts); err != nil {
		t.Fatal(err)
	}
	if decoding != 0 {
		t.Errorf("Decoding called %d times: zstd parts are decoded in this process", decoding)
	}
	if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
		t.Fatalf("fsck: %v %v", problems, err)
	}
	if got := listing(t, dst, to); got != want {
		t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
	}

	for _, o := range []Options{{Inline: true}, {Output: filepath.Join(t.TempDir(), "bundle")}} {
		o.From, o.To, o.ZstdParts = &from, to, true
		if _, err := Generate(context.Background(), src, o); err == nil ||
			err.Error() != "zstd parts need parts in their own files: not inline, not in a bundle" {
			t.Errorf("ZstdParts with inline parts (%+v): error %v", o, err)
		}
	}
}

// The same commits give byte-identical zstd parts (the zstd command in one thread with
// fixed options), however the parts' compressors read their input.
func TestZstdPartsReproducible(t *testing.T) {
	src, from, to := setup(t)
	var files []map[string][]byte
	for _, workers := range []int{1, 3} {
		res := generate(t, src, Options{Workers: workers, MaxPartSize: 10_000, ZstdParts: true}, &from, to)
		dir := filepath.Join(src.Path, res.Dir)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]byte{}
		for _, e := range ents {
			if m[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		files = append(files, m)
	}
	if len(files[0]) != len(files[1]) {
		t.Fatalf("%d files, then %d", len(files[0]), len(files[1]))
	}
	for name, data := range files[0] {
		if !bytes.Equal(data, files[1][name]) {
			t.Fatalf("%s differs between two generations", name)
		}
	}
}

// A damaged zstd file is refused before it is decoded, in one line, and the repository
// gains nothing; so is a payload past its bound.
func TestZstdPartRefusals(t *testing.T) {
	src, from, to := setup(t)
	res := generate(t, src, Options{ZstdParts: true}, &from, to)
	dir := filepath.Join(src.Path, res.Dir)
	if len(res.Superblock.Parts) != 1 {
		t.Fatalf("want one part, got %d", len(res.Superblock.Parts))
	}
	zst := filepath.Join(dir, ZstdPartName(0))
	good, err := os.ReadFile(zst)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := target(t, ostree.ModeBareUser, true)
	before := objectFiles(t, dst)
	for _, c := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"longer", func(b []byte) []byte { return append(b, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(zst, c.damage(bytes.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Apply(context.Background(), dst, d, ApplyOptions{})
			if err == nil || err.Error() != "part 0: 0.zst: checksum or size mismatch (corrupt or truncated)" {
				t.Fatalf("apply of a damaged zstd part: error %v, want its checksum mismatch", err)
			}
			if after := objectFiles(t, dst); !slices.Equal(after, before) {
				t.Fatalf("a refused part changed the repository:\n%s", strings.Join(after, "\n"))
			}
		})
	}

	if err := os.WriteFile(zst, good, 0o644); err != nil {
		t.Fatal(err)
	}
	n := payloadSize(t, dst, d)
	for _, limit := range []uint64{n - 1, 0} {
		if _, _, err := spoolPart(dst, d, 0, limit, ""); err == nil || err.Error() != "part: decompresses to more than its limit" {
			t.Fatalf("limit %d for %d bytes: error %v, want the limit's", limit, n, err)
		}
	}
	if _, spool, err := spoolPart(dst, d, 0, n, ""); err != nil {
		t.Fatalf("limit %d for %d bytes: %v", n, n, err)
	} else {
		spool.Close()
	}
	if after := objectFiles(t, dst); !slices.Equal(after, before) {
		t.Fatalf("spooling changed the repository:\n%s", strings.Join(after, "\n"))
	}
}

// ZstdParts refuses a list that does not describe every part.
func TestZstdPartsList(t *testing.T) {
	entry := func(typ string, v any) []gvariant.DictEntry {
		return []gvariant.DictEntry{{Key: ZstdPartsKey, Value: gvariant.Variant{Type: typ, Value: v}}}
	}
	sum := make([]byte, 32)
	two := []PartHeader{{}, {}}
	for _, c := range []struct {
		name string
		meta []gvariant.DictEntry
		err  string
	}{
		{"one of two", entry(zstdPartsType, []any{[]any{uint64(1), sum}}), "superblock: ota.zstd-parts lists 1 parts, the superblock 2"},
		{"wrong type", entry("as", []string{"a", "b"}), "superblock: ota.zstd-parts has type as, want a(tay)"},
		{"short checksum", entry(zstdPartsType, []any{[]any{uint64(1), sum}, []any{uint64(1), sum[:31]}}), "superblock: ota.zstd-parts, part 1: "},
	} {
		_, err := (&Superblock{Metadata: c.meta, Parts: two}).ZstdParts()
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
	}
	zs, err := (&Superblock{Metadata: entry(zstdPartsType, []any{[]any{uint64(7), sum}, []any{uint64(9), sum}}), Parts: two}).ZstdParts()
	if err != nil || len(zs) != 2 || zs[0].Size != 7 || zs[1].Size != 9 {
		t.Fatalf("ZstdParts: %v, %v", zs, err)
	}
}
