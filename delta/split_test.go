package delta

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// A delta of one part's size but at least splitMinSize of payload gets two halves, each
// holding files, with the metadata last in the last; the split depends on the objects
// alone, and the delta applies.
func TestSplitHalves(t *testing.T) {
	var files []file
	for i := range 12 {
		// Some half random (dense for xz), some mostly zeros (cheap for it).
		body := randomBytes(uint64(10+i), 800_000)
		if i%3 == 0 {
			body = body[:100_000] + string(make([]byte, 700_000))
		}
		files = append(files, file{name: fmt.Sprintf("usr/lib/dir%d/lib%d.so", i%4, i), body: body})
	}
	src, err := ostree.Init(filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	to := commitTree(t, src, files)
	var superblocks []string
	for _, workers := range []int{1, 3} {
		// Uncompressed: the split does not depend on the compression, and xz takes time.
		res := generate(t, src, Options{Uncompressed: true, Workers: workers}, nil, to)
		parts := res.Superblock.Parts
		if len(parts) != 2 {
			t.Fatalf("%d parts, want 2", len(parts))
		}
		for i, p := range parts {
			metaAt := len(p.Objects)
			nfiles := 0
			for j, o := range p.Objects {
				if o.Type != ostree.ObjFile {
					metaAt = min(metaAt, j)
				} else if j > metaAt {
					t.Fatalf("part %d: file %s after metadata", i, o.Checksum)
				} else {
					nfiles++
				}
			}
			if nfiles == 0 {
				t.Errorf("part %d holds no file", i)
			}
			if (metaAt < len(p.Objects)) != (i == 1) {
				t.Errorf("part %d: metadata from object %d of %d, want it in the last part only", i, metaAt, len(p.Objects))
			}
		}
		sb, err := os.ReadFile(filepath.Join(src.Path, res.Dir, "superblock"))
		if err != nil {
			t.Fatal(err)
		}
		superblocks = append(superblocks, ostree.Sum(sb).String())

		dst := target(t, ostree.ModeBareUser, false)
		d, err := Load(filepath.Join(src.Path, res.Dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(context.Background(), dst, d, ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, want := listing(t, dst, to), listing(t, src, to); got != want {
			t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
		}
	}
	if superblocks[0] != superblocks[1] {
		t.Errorf("1 and 3 workers made different deltas: superblocks %s and %s", superblocks[0], superblocks[1])
	}
}
