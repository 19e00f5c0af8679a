package delta

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// Name returns a delta's name as ostree prints it: "FROM-TO" or "TO" in hex.
func Name(s *Superblock) string {
	return ostree.Delta{From: s.From, To: s.To}.Name()
}

// Description is what Describe prints about a delta, and `ota-build delta show --json`.
type Description struct {
	Name       string            `json:"name"`
	From       string            `json:"from,omitempty"`
	To         string            `json:"to"`
	Timestamp  time.Time         `json:"timestamp"`
	Signed     bool              `json:"signed"`
	CommitMeta bool              `json:"commit_meta"`
	Parts      []PartDescription `json:"parts"`
	// Bytes and UncompressedBytes total the parts.
	Bytes             uint64 `json:"bytes"`
	UncompressedBytes uint64 `json:"uncompressed_bytes"`
	// ZstdBytes totals the zstd parts the superblock lists (0: none, see ZstdPartsKey).
	ZstdBytes     uint64 `json:"zstd_bytes,omitempty"`
	Fallbacks     int    `json:"fallbacks"`
	FallbackBytes uint64 `json:"fallback_bytes"`
}

// PartDescription describes one part of a delta.
type PartDescription struct {
	Inline bool `json:"inline"`
	// Compression is the part's compression byte: "x" (xz) or "0" (none).
	Compression       string `json:"compression"`
	Objects           int    `json:"objects"`
	Bytes             uint64 `json:"bytes"`
	UncompressedBytes uint64 `json:"uncompressed_bytes"`
	// Operations counts the part's opcodes by their letter, e.g. "B:1 S:12 c:1 o:1".
	Operations string `json:"operations"`
	// ZstdBytes is the size of the part's zstd file N.zst as the superblock lists it (0:
	// none).
	ZstdBytes uint64 `json:"zstd_bytes,omitempty"`
}

// Inspect reads a delta's parts and describes it.
func Inspect(d *Loaded) (*Description, error) {
	out := &Description{Name: Name(d.Superblock), To: d.To.String(),
		Timestamp: time.Unix(int64(d.Timestamp), 0).UTC(), Signed: d.Signed, CommitMeta: d.CommitMeta() != nil,
		Parts: []PartDescription{}, Fallbacks: len(d.Fallbacks)}
	if d.From != nil {
		out.From = d.From.String()
	}
	for i, h := range d.Parts {
		_, inline := d.inline[i]
		part, err := d.readPart(i)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		p, err := decodePart(part, 4*h.USize+64<<20)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		counts, err := countOps(p.ops, h.Objects)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		pd := PartDescription{Inline: inline, Compression: string(part[:1]),
			Objects: len(h.Objects), Bytes: h.Size, UncompressedBytes: h.USize, Operations: counts}
		if d.zstd != nil {
			pd.ZstdBytes = d.zstd[i].Size
		}
		out.Parts = append(out.Parts, pd)
		out.Bytes += h.Size
		out.UncompressedBytes += h.USize
		out.ZstdBytes += pd.ZstdBytes
	}
	for _, f := range d.Fallbacks {
		out.FallbackBytes += f.CompressedSize
	}
	return out, nil
}

// Describe prints a delta's commits, parts, sizes and operation counts.
func Describe(w io.Writer, d *Loaded) error {
	desc, err := Inspect(d)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Delta: %s\n", desc.Name)
	fmt.Fprintf(w, "Timestamp: %s\n", desc.Timestamp.Format(time.RFC3339))
	fmt.Fprintf(w, "Signed: %v\n", desc.Signed)
	fmt.Fprintf(w, "Commit metadata: %v\n", desc.CommitMeta)
	for i, p := range desc.Parts {
		where := "file"
		if p.Inline {
			where = "inline"
		}
		zstd := ""
		if p.ZstdBytes > 0 {
			zstd = fmt.Sprintf("; zstd part %d bytes", p.ZstdBytes)
		}
		fmt.Fprintf(w, "Part %d (%s, compression %q): %d objects, %d bytes, %d uncompressed; ops %s%s\n",
			i, where, p.Compression[0], p.Objects, p.Bytes, p.UncompressedBytes, p.Operations, zstd)
	}
	fmt.Fprintf(w, "Parts: %d, %d bytes, %d uncompressed\n", len(desc.Parts), desc.Bytes, desc.UncompressedBytes)
	if desc.ZstdBytes > 0 {
		fmt.Fprintf(w, "Zstd parts: %d, %d bytes\n", len(desc.Parts), desc.ZstdBytes)
	}
	fmt.Fprintf(w, "Fallback objects: %d, %d bytes\n", desc.Fallbacks, desc.FallbackBytes)
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
