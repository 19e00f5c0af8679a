package ostree

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/gvariant"
)

// The metadata objects ota-build reads come from repositories, deltas and bundles, any of
// which may be damaged or hostile. Whatever a parser accepts must marshal back to the bytes
// it was read from: objects are named by the checksum of those bytes, so a parser that
// accepted two encodings of one value would let a rewritten object differ from its name.
// Seed corpora (objects written by ostree 2022.7 and by this package) are in testdata/fuzz.

// FuzzParseCommit checks that an accepted commit re-marshals to its bytes, unless it lists
// related objects, which ParseCommit drops (ota never writes them, as ostree does not).
func FuzzParseCommit(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCommit(data)
		if err != nil {
			return
		}
		again := c.Marshal()
		c2, err := ParseCommit(again)
		if err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("commit %x parses to %+v, which re-marshals to %x, parsed as %+v (%v)", data, c, again, c2, err)
		}
		v, _ := gvariant.Decode(CommitType, data)
		if related := v.([]any)[2].([]any); len(related) == 0 && !bytes.Equal(again, data) {
			t.Fatalf("commit %x re-marshals to %x", data, again)
		}
	})
}

// FuzzParseDirTree checks that an accepted dirtree re-marshals to its bytes.
func FuzzParseDirTree(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if tree, err := ParseDirTree(data); err == nil {
			if again := tree.Marshal(); !bytes.Equal(again, data) {
				t.Fatalf("dirtree %x parses to %+v, which re-marshals to %x", data, tree, again)
			}
		}
	})
}

// FuzzParseDirMeta checks that an accepted dirmeta re-marshals to its bytes.
func FuzzParseDirMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := ParseDirMeta(data); err == nil {
			if again := m.Marshal(); !bytes.Equal(again, data) {
				t.Fatalf("dirmeta %x parses to %+v, which re-marshals to %x", data, m, again)
			}
		}
	})
}

// FuzzParseMetadata reads detached metadata (.commitmeta): what is accepted re-marshals to
// its bytes, and signatures, when present with the type aay the verifiers look for, are
// byte strings.
func FuzzParseMetadata(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata(data)
		if err != nil {
			return
		}
		if again := MarshalMetadata(m); !bytes.Equal(again, data) {
			t.Fatalf("metadata %x parses to %+v, which re-marshals to %x", data, m, again)
		}
		if v, ok := Lookup(m, SignEd25519Key); ok && v.Type == "aay" {
			for _, s := range v.Value.([]any) {
				if _, ok := s.([]byte); !ok {
					t.Fatalf("signature %#v is not a byte string", s)
				}
			}
		}
	})
}

// FuzzParseArchiveHeader checks that an accepted .filez header re-marshals to its bytes,
// the four bytes of padding after its length aside (ostree skips them unread).
func FuzzParseArchiveHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, size, n, err := ParseArchiveHeader(data)
		if err != nil {
			return
		}
		again := h.ArchiveHeader(size)
		if n != len(again) || !bytes.Equal(again[:4], data[:4]) || !bytes.Equal(again[8:], data[8:n]) {
			t.Fatalf("header %x parses to %+v, size %d, %d bytes, which re-marshals to %x", data, h, size, n, again)
		}
	})
}

// FuzzParseSummary checks that an accepted summary, which a hostile server may send, has
// valid, sorted, unique refs that Ref finds, and that errors are one line.
func FuzzParseSummary(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSummary(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("summary %x: error on several lines: %q", data, err)
			}
			return
		}
		for i, r := range s.Refs {
			if !ValidRef(r.Name) || (i > 0 && s.Refs[i-1].Name >= r.Name) {
				t.Fatalf("summary %x: ref %q invalid or out of order", data, r.Name)
			}
			if got, ok := s.Ref(r.Name); !ok || got.Commit != r.Commit {
				t.Fatalf("summary %x: Ref(%q) = %v, %v", data, r.Name, got, ok)
			}
		}
	})
}
