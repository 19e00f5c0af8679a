package ostree

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/gvariant"
)

// requireOSTree skips the test without the ostree tool, or fails it when
// OTA_REQUIRE_TOOLS=1.
func requireOSTree(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatal("ostree is required (OTA_REQUIRE_TOOLS=1) but not installed")
		}
		t.Skip("ostree not installed")
	}
}

func runOSTree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestParseSummaryOSTree parses the summaries the real `ostree summary -u` and our writer
// make of the same repository (two branches, one with a version, a static delta) and
// compares them with `ostree rev-parse` and the delta's superblock.
func TestParseSummaryOSTree(t *testing.T) {
	requireOSTree(t)
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	runOSTree(t, "init", "--mode=archive", "--repo="+repo)
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	commit := func(branch, content string, extra ...string) {
		if err := os.WriteFile(filepath.Join(tree, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		runOSTree(t, append([]string{"commit", "--repo=" + repo, "-b", branch, "--tree=dir=" + tree, "--timestamp=2026-01-02T03:04:05Z", "-s", "subject"}, extra...)...)
	}
	commit("os/main", "one", "--add-metadata-string=version=1.0")
	from := runOSTree(t, "rev-parse", "--repo="+repo, "os/main")
	commit("os/main", "two", "--add-metadata-string=version=2.0")
	commit("other", "x")
	runOSTree(t, "static-delta", "generate", "--repo="+repo, "--from="+from, "--to=os/main")
	to := runOSTree(t, "rev-parse", "--repo="+repo, "os/main")
	deltaName := from + "-" + to
	fromSum, _ := ParseChecksum(from)
	toSum, _ := ParseChecksum(to)
	superblock, err := os.ReadFile(filepath.Join(repo, DeltaDir(&fromSum, toSum), "superblock"))
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := sha256.Sum256(superblock)

	runOSTree(t, "summary", "-u", "--repo="+repo)
	real, err := os.ReadFile(filepath.Join(repo, "summary"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := r.BuildSummary(1234)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ostree summary -u": real, "BuildSummary": ours} {
		s, err := ParseSummary(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(s.Refs) != 2 {
			t.Fatalf("%s: refs %v, want 2", name, s.Refs)
		}
		for _, branch := range []string{"os/main", "other"} {
			ref, ok := s.Ref(branch)
			if !ok {
				t.Fatalf("%s: no ref %s", name, branch)
			}
			if got, want := ref.Commit.String(), runOSTree(t, "rev-parse", "--repo="+repo, branch); got != want {
				t.Errorf("%s: %s = %s, ostree rev-parse says %s", name, branch, got, want)
			}
			raw, err := os.ReadFile(filepath.Join(repo, "objects", ref.Commit.String()[:2], ref.Commit.String()[2:]+".commit"))
			if err != nil {
				t.Fatal(err)
			}
			if ref.Size != uint64(len(raw)) {
				t.Errorf("%s: %s size %d, want %d", name, branch, ref.Size, len(raw))
			}
			if ts, ok := ref.Timestamp(); !ok || ts != 1767323045 {
				t.Errorf("%s: %s timestamp %d %v, want 1767323045", name, branch, ts, ok)
			}
		}
		if main, _ := s.Ref("os/main"); main.Version() != "2.0" {
			t.Errorf("%s: version %q, want 2.0", name, main.Version())
		}
		if len(s.Deltas) != 1 || s.Deltas[deltaName] != Checksum(wantDigest) {
			t.Errorf("%s: deltas %v, want %s => %x", name, s.Deltas, deltaName, wantDigest)
		}
		if d, ok := s.Delta(&fromSum, toSum); !ok || d.Name() != deltaName {
			t.Errorf("%s: Delta(from, to) = %v, %v", name, d, ok)
		}
		if _, ok := s.Delta(nil, toSum); ok {
			t.Errorf("%s: a from-scratch delta is listed", name)
		}
	}
}

// TestParseSummaryRefuses covers the bounds a hostile server's summary meets.
func TestParseSummaryRefuses(t *testing.T) {
	sum := make([]byte, 32)
	ref := func(name string, commit []byte) []any {
		return []any{name, []any{uint64(10), commit, []gvariant.DictEntry{}}}
	}
	deltas := func(name string, digest gvariant.Variant) []gvariant.DictEntry {
		return []gvariant.DictEntry{{Key: "ostree.static-deltas", Value: gvariant.Variant{Type: "a{sv}", Value: []gvariant.DictEntry{{Key: name, Value: digest}}}}}
	}
	hex := strings.Repeat("ab", 32)
	enc := func(refs []any, meta []gvariant.DictEntry) []byte {
		if meta == nil {
			meta = []gvariant.DictEntry{}
		}
		return gvariant.MustEncode(SummaryType, []any{refs, meta})
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string // "" for valid
	}{
		{"valid", enc([]any{ref("a", sum), ref("b", sum)}, deltas(hex+"-"+hex, gvariant.Variant{Type: "ay", Value: sum})), ""},
		{"garbage", []byte("not a summary"), "summary: "},
		{"too big", make([]byte, MaxSummarySize+1), "more than the limit"},
		{"bad ref name", enc([]any{ref("../x", sum)}, nil), `invalid ref name "../x"`},
		{"unsorted", enc([]any{ref("b", sum), ref("a", sum)}, nil), `ref "a" is out of order`},
		{"repeated", enc([]any{ref("a", sum), ref("a", sum)}, nil), `ref "a" is out of order`},
		{"short checksum", enc([]any{ref("a", sum[:5])}, nil), "ref a: invalid binary checksum"},
		{"bad delta name", enc(nil, deltas("../x", gvariant.Variant{Type: "ay", Value: sum})), `invalid static delta name "../x"`},
		{"three part delta name", enc(nil, deltas(hex+"-"+hex+"-"+hex, gvariant.Variant{Type: "ay", Value: sum})), "invalid static delta name"},
		{"delta digest type", enc(nil, deltas(hex, gvariant.Variant{Type: "s", Value: "x"})), `digest has type "s"`},
		{"delta digest length", enc(nil, deltas(hex, gvariant.Variant{Type: "ay", Value: sum[:3]})), "invalid binary checksum"},
		{"delta map type", enc(nil, []gvariant.DictEntry{{Key: "ostree.static-deltas", Value: gvariant.Variant{Type: "s", Value: "x"}}}), "want a{sv}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSummary(tc.data)
			if tc.want == "" {
				if err != nil || len(s.Refs) != 2 || len(s.Deltas) != 1 {
					t.Fatalf("ParseSummary = %+v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, tc.want)
			}
		})
	}
}
