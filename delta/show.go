package delta

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// Name returns a delta's name as ostree prints it: "FROM-TO" or "TO" in hex.
func Name(s *Superblock) string {
	return ostree.Delta{From: s.From, To: s.To}.Name()
}

// Describe prints a delta's commits, parts, sizes and operation counts.
func Describe(w io.Writer, d *Loaded) error {
	fmt.Fprintf(w, "Delta: %s\n", Name(d.Superblock))
	fmt.Fprintf(w, "Timestamp: %s\n", time.Unix(int64(d.Timestamp), 0).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Signed: %v\n", d.Signed)
	fmt.Fprintf(w, "Commit metadata: %v\n", d.CommitMeta() != nil)
	var total, utotal uint64
	for i, h := range d.Parts {
		part, inline := d.inlinePart(i)
		if !inline {
			var err error
			if part, err = os.ReadFile(filepath.Join(d.Dir, strconv.Itoa(i))); err != nil {
				return fmt.Errorf("part %d: %w", i, err)
			}
		}
		p, err := decodePart(part, 4*h.USize+64<<20)
		if err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
		counts, err := countOps(p.ops, h.Objects)
		if err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
		where := "file"
		if inline {
			where = "inline"
		}
		fmt.Fprintf(w, "Part %d (%s, compression %q): %d objects, %d bytes, %d uncompressed; ops %s\n",
			i, where, part[0], len(h.Objects), h.Size, h.USize, counts)
		total += h.Size
		utotal += h.USize
	}
	fmt.Fprintf(w, "Parts: %d, %d bytes, %d uncompressed\n", len(d.Parts), total, utotal)
	var fb uint64
	for _, f := range d.Fallbacks {
		fb += f.CompressedSize
	}
	fmt.Fprintf(w, "Fallback objects: %d, %d bytes\n", len(d.Fallbacks), fb)
	return nil
}

// countOps tallies a part's opcodes, e.g. "B:1 S:12 c:1 o:1".
func countOps(ops []byte, objects []ObjectRef) (string, error) {
	args := map[byte]int{opWrite: 2, opSetReadSource: 1, opUnsetReadSource: 0, opClose: 0, opBspatch: 2, opOpen: 3}
	r := opReader{ops: ops}
	counts := map[byte]int{}
	next := 0
	for r.pos < len(ops) {
		op := ops[r.pos]
		r.pos++
		n, ok := args[op]
		if op == opOpenSpliceClose || op == opClose {
			if next >= len(objects) {
				return "", fmt.Errorf("operation %q beyond the part's %d objects", op, len(objects))
			}
			if op == opOpenSpliceClose {
				// Metadata splices take length and offset; content adds mode and xattr indexes.
				n, ok = 2, true
				if objects[next].Type == ostree.ObjFile {
					n = 4
				}
			}
			next++
		}
		if !ok {
			return "", fmt.Errorf("unknown operation %q", op)
		}
		for range n {
			if _, err := r.varint(); err != nil {
				return "", err
			}
		}
		counts[op]++
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%c:%d", k, counts[byte(k)]))
	}
	return strings.Join(parts, " "), nil
}
