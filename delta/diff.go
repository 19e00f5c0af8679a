package delta

import (
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/otakit/ota/delta/bsdiff"
	"github.com/otakit/ota/internal/ostree"
)

// readContent returns a content object's header and its data: the file's content, or a
// symlink's target, which is what delta operations carry.
func readContent(repo *ostree.Repo, c ostree.Checksum) (ostree.FileHeader, []byte, error) {
	h, data, err := repo.ReadContent(c)
	if err == nil && h.IsSymlink() {
		data = []byte(h.LinkTarget)
	}
	return h, data, err
}

// prepareOne loads a new content object and, when the base commit has a regular file at
// the same path (else one with the same name or stem and a similar size, which catches
// renames such as libfoo.so.1.2 → libfoo.so.1.3), a bsdiff patch against it if that
// compresses clearly better.
func (g *generator) prepareOne(o object) (item, error) {
	h, data, err := readContent(g.repo, o.ref.Checksum)
	if err != nil {
		return item{}, err
	}
	it := item{ref: o.ref, header: h, data: data, size: uint64(len(data))}
	if h.IsSymlink() {
		it.size = 0
		return it, nil
	}
	if g.fallback(it.size) {
		it.fallback, it.data = true, nil
		return it, nil
	}
	old, samePath := g.oldFiles[o.path]
	if !samePath {
		old = g.oldByName["n:"+path.Base(o.path)]
		if old == (ostree.Checksum{}) {
			old = g.oldByName["s:"+stem(o.path)]
		}
	}
	if g.opts.DisableBsdiff || old == (ostree.Checksum{}) || len(data) == 0 {
		return it, nil
	}
	oh, odata, err := readContent(g.repo, old)
	if err != nil {
		return item{}, err
	}
	// A file found by name must be of similar size to be worth diffing, as in ostree.
	similar := samePath || (len(odata)*10 >= len(data)*7 && len(odata)*10 <= len(data)*13)
	if oh.IsSymlink() || !similar || uint64(len(odata)+len(data)) > g.opts.MaxBsdiffSize {
		return it, nil
	}
	// The index of old takes up to eight bytes per old byte: bound what concurrent diffs hold.
	release := g.diffMemory.acquire(9*int64(len(odata)) + 2*int64(len(data)))
	patch, err := bsdiff.Diff(odata, data)
	release()
	if err != nil {
		return item{}, fmt.Errorf("%s: bsdiff: %w", o.path, err)
	}
	// Parts are compressed as a whole; compare what each choice costs compressed. A patch
	// that deflates smaller wins: xz compresses patches (mostly runs of zeros) better still
	// (demanding a tenth less made all three bench/ deltas 0.2-0.7% larger).
	// The file's deflation stops once it is larger than the patch's: the patch wins.
	pc := compressedSize(patch, math.MaxInt)
	if compressedSize(data, pc) > pc {
		it.data, it.base = patch, &old
	}
	return it, nil
}

// compressedSize estimates how well data compresses, quickly. It may stop once the
// estimate exceeds limit, and then returns more than limit.
func compressedSize(data []byte, limit int) int {
	n := limitWriter{limit: limit}
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&n)
	// The data goes in pieces: the deflater returns the writer's error after a block.
	for len(data) > 0 && n.n <= limit {
		k := min(len(data), 256<<10)
		w.Write(data[:k])
		data = data[k:]
	}
	if n.n <= limit {
		w.Close()
	}
	return n.n
}

// deflaters holds idle deflaters of compressedSize; one takes a megabyte to set up.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// limitWriter counts what it is given, and fails once that is more than limit.
type limitWriter struct{ n, limit int }

func (c *limitWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	if c.n > c.limit {
		return len(p), errLimit
	}
	return len(p), nil
}

var errLimit = errors.New("over the limit")

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// diffMemoryLimit is how much memory concurrent diffs may hold; one larger diff runs alone.
const diffMemoryLimit = 192 << 20

// budget is a weighted semaphore over bytes of memory.
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int64
	used  int64
}

// acquire waits until n bytes fit (or nothing else holds any) and returns the release.
func (b *budget) acquire(n int64) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	for b.used > 0 && b.used+n > b.limit {
		b.cond.Wait()
	}
	b.used += n
	return func() {
		b.mu.Lock()
		b.used -= n
		b.mu.Unlock()
		b.cond.Broadcast()
	}
}

// stem returns a path's base name up to its first dot.
func stem(p string) string {
	b := path.Base(p)
	if i := strings.IndexByte(b, '.'); i > 0 {
		return b[:i]
	}
	return b
}

// similarNames indexes base files by "n:"+name and "s:"+stem, the first in path order.
func similarNames(files map[string]ostree.Checksum) map[string]ostree.Checksum {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := map[string]ostree.Checksum{}
	for _, p := range paths {
		for _, k := range []string{"n:" + path.Base(p), "s:" + stem(p)} {
			if _, ok := out[k]; !ok {
				out[k] = files[p]
			}
		}
	}
	return out
}
