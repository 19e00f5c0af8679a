package ostree

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/otakit/ota/internal/gvariant"
)

// MaxSummarySize bounds the summary a client accepts: ParseSummary refuses bigger input,
// and callers fetch the file with this limit.
const MaxSummarySize = 16 << 20

// SummaryRef is one branch a summary lists.
type SummaryRef struct {
	Name   string
	Commit Checksum
	// Size is the length of the .commit object.
	Size uint64
	// Metadata is the summary's metadata of the commit, e.g. ostree.commit.timestamp.
	Metadata []gvariant.DictEntry
}

// Timestamp returns the ref's ostree.commit.timestamp (seconds since the epoch), if the
// summary gives it.
func (r SummaryRef) Timestamp() (uint64, bool) {
	if v, ok := Lookup(r.Metadata, "ostree.commit.timestamp"); ok {
		if t, ok := v.Value.(uint64); ok && v.Type == "t" {
			return be64(t), true
		}
	}
	return 0, false
}

// Version returns the ref's ostree.commit.version, or "".
func (r SummaryRef) Version() string {
	if v, ok := Lookup(r.Metadata, "ostree.commit.version"); ok {
		if s, ok := v.Value.(string); ok {
			return s
		}
	}
	return ""
}

// Summary is a parsed summary file (docs/format.md, "Summary").
type Summary struct {
	// Refs are sorted by name, as the summary lists them.
	Refs []SummaryRef
	// Metadata is the repository's metadata (ostree.summary.mode, ...).
	Metadata []gvariant.DictEntry
	// Deltas maps the name of each static delta the summary lists ("FROMHEX-TOHEX" or
	// "TOHEX") to the SHA-256 of its superblock.
	Deltas map[string]Checksum
}

// Ref returns the branch called name.
func (s *Summary) Ref(name string) (SummaryRef, bool) {
	i := sort.Search(len(s.Refs), func(i int) bool { return s.Refs[i].Name >= name })
	if i < len(s.Refs) && s.Refs[i].Name == name {
		return s.Refs[i], true
	}
	return SummaryRef{}, false
}

// Delta returns the static delta from from (nil: from scratch) to to, if the summary lists
// it.
func (s *Summary) Delta(from *Checksum, to Checksum) (Delta, bool) {
	d := Delta{From: from, To: to}
	_, ok := s.Deltas[d.Name()]
	return d, ok
}

// ParseSummary parses and validates a summary file, as a server (possibly hostile) sent
// it: at most MaxSummarySize bytes in GVariant normal form, valid unique ref names in
// order, 32-byte checksums, and well-formed delta names.
func ParseSummary(data []byte) (*Summary, error) {
	if len(data) > MaxSummarySize {
		return nil, fmt.Errorf("summary: %d bytes, more than the limit of %d", len(data), MaxSummarySize)
	}
	v, err := gvariant.Decode(SummaryType, data)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	f := v.([]any)
	s := &Summary{Metadata: f[1].([]gvariant.DictEntry)}
	for _, e := range f[0].([]any) {
		re := e.([]any)
		ref := SummaryRef{Name: re[0].(string)}
		body := re[1].([]any)
		ref.Size = body[0].(uint64)
		ref.Metadata = body[2].([]gvariant.DictEntry)
		if !ValidRef(ref.Name) {
			return nil, fmt.Errorf("summary: invalid ref name %q", ref.Name)
		}
		if n := len(s.Refs); n > 0 && s.Refs[n-1].Name >= ref.Name {
			return nil, fmt.Errorf("summary: ref %q is out of order or repeated", ref.Name)
		}
		if ref.Commit, err = ChecksumFromBytes(body[1].([]byte)); err != nil {
			return nil, fmt.Errorf("summary: ref %s: %w", ref.Name, err)
		}
		s.Refs = append(s.Refs, ref)
	}
	if s.Deltas, err = parseDeltaIndex(s.Metadata); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return s, nil
}

// parseDeltaIndex reads the ostree.static-deltas entry of a summary's or delta index's
// metadata.
func parseDeltaIndex(meta []gvariant.DictEntry) (map[string]Checksum, error) {
	v, ok := Lookup(meta, "ostree.static-deltas")
	if !ok {
		return nil, nil
	}
	entries, ok := v.Value.([]gvariant.DictEntry)
	if v.Type != "a{sv}" || !ok {
		return nil, fmt.Errorf("ostree.static-deltas has type %q, want a{sv}", v.Type)
	}
	out := make(map[string]Checksum, len(entries))
	for _, e := range entries {
		name := e.Key.(string)
		if err := checkDeltaName(name); err != nil {
			return nil, err
		}
		d, _ := e.Value.(gvariant.Variant)
		b, ok := d.Value.([]byte)
		if d.Type != "ay" || !ok {
			return nil, fmt.Errorf("static delta %s: digest has type %q, want ay", name, d.Type)
		}
		sum, err := ChecksumFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("static delta %s: %w", name, err)
		}
		out[name] = sum
	}
	return out, nil
}

// checkDeltaName accepts "TOHEX" and "FROMHEX-TOHEX".
func checkDeltaName(name string) error {
	parts := strings.Split(name, "-")
	if len(parts) > 2 {
		return errors.New("invalid static delta name " + quoteName(name))
	}
	for _, c := range parts {
		if _, err := ParseChecksum(c); err != nil {
			return errors.New("invalid static delta name " + quoteName(name))
		}
	}
	return nil
}

// quoteName quotes a name from the network, shortened so one error stays one line.
func quoteName(s string) string {
	if len(s) > 140 {
		s = s[:140] + "..."
	}
	return fmt.Sprintf("%q", s)
}
