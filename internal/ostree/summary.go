package ostree

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/otakit/ota/internal/gvariant"
)

// MB64 is OSTree's "modified base64" of a checksum, used in static-delta paths: unpadded
// standard base64 with "/" replaced by "_".
func MB64(c Checksum) string {
	return strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(c[:]), "/", "_")
}

// ParseMB64 reverses MB64.
func ParseMB64(s string) (Checksum, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(s, "_", "/"))
	if err != nil {
		return Checksum{}, fmt.Errorf("invalid delta name component %q: %v", s, err)
	}
	return ChecksumFromBytes(b)
}

// DeltaDir returns the directory (relative to the repository) of the static delta from
// from (nil for a from-scratch delta) to to.
func DeltaDir(from *Checksum, to Checksum) string {
	t := MB64(to)
	if from == nil {
		return "deltas/" + t[:2] + "/" + t[2:]
	}
	f := MB64(*from)
	return "deltas/" + f[:2] + "/" + f[2:] + "-" + t
}

// Delta names a static delta stored in a repository.
type Delta struct {
	// From is nil for a from-scratch delta.
	From *Checksum
	To   Checksum
}

// Name returns the delta's name as ostree prints it: "FROM-TO" or "TO" in hex.
func (d Delta) Name() string {
	if d.From == nil {
		return d.To.String()
	}
	return d.From.String() + "-" + d.To.String()
}

// ListDeltas returns the static deltas that have a superblock, sorted by name.
func (r *Repo) ListDeltas() ([]Delta, error) {
	var out []Delta
	root := filepath.Join(r.Path, "deltas")
	prefixes, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	for _, p := range prefixes {
		entries, err := os.ReadDir(filepath.Join(root, p.Name()))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(root, p.Name(), e.Name(), "superblock")); err != nil {
				continue
			}
			from, to, isPair := strings.Cut(p.Name()+e.Name(), "-")
			var d Delta
			if isPair {
				f, err1 := ParseMB64(from)
				t, err2 := ParseMB64(to)
				if err1 != nil || err2 != nil {
					continue
				}
				d = Delta{From: &f, To: t}
			} else if t, err := ParseMB64(from); err == nil {
				d = Delta{To: t}
			} else {
				continue
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// SummaryOptions controls UpdateSummary.
type SummaryOptions struct {
	// Timestamp is written as ostree.summary.last-modified (seconds since the epoch).
	Timestamp uint64
	// Sign, when set, returns ed25519 signatures over the summary bytes for summary.sig;
	// when nil any existing summary.sig is removed, as it would no longer match.
	Sign func(summary []byte) ([][]byte, error)
}

// UpdateSummary regenerates the summary file from the local branches and static deltas,
// and the per-commit delta indexes clients look deltas up in.
func (r *Repo) UpdateSummary(opts SummaryOptions) error {
	if err := r.writeDeltaIndexes(); err != nil {
		return err
	}
	data, err := r.BuildSummary(opts.Timestamp)
	if err != nil {
		return err
	}
	sigPath := filepath.Join(r.Path, "summary.sig")
	if opts.Sign == nil {
		if err := os.Remove(sigPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return r.WriteFileAtomic("summary", data, 0o644)
	}
	sigs, err := opts.Sign(data)
	if err != nil {
		return err
	}
	sig := MarshalMetadata([]gvariant.DictEntry{{Key: SignEd25519Key, Value: gvariant.Variant{Type: "aay", Value: byteSlices(sigs)}}})
	// Remove the old signature first so no reader pairs the new summary with it.
	if err := os.Remove(sigPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := r.WriteFileAtomic("summary", data, 0o644); err != nil {
		return err
	}
	return r.WriteFileAtomic("summary.sig", sig, 0o644)
}

// SignEd25519Key is the metadata key holding ed25519 signatures.
const SignEd25519Key = "ostree.sign.ed25519"

func byteSlices(b [][]byte) []any {
	out := make([]any, len(b))
	for i, s := range b {
		out[i] = s
	}
	return out
}

// BuildSummary serialises the summary the repository's current state calls for.
func (r *Repo) BuildSummary(timestamp uint64) ([]byte, error) {
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	entries := make([]any, 0, len(refs))
	for _, ref := range refs {
		cm, raw, err := r.ReadCommit(ref.Commit)
		if err != nil {
			return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		meta := []gvariant.DictEntry{{Key: "ostree.commit.timestamp", Value: gvariant.Variant{Type: "t", Value: be64(cm.Timestamp)}}}
		if v := cm.Version(); v != "" {
			meta = append(meta, gvariant.DictEntry{Key: "ostree.commit.version", Value: gvariant.Variant{Type: "s", Value: v}})
		}
		entries = append(entries, []any{ref.Name, []any{uint64(len(raw)), ref.Commit[:], meta}})
	}
	extra := []gvariant.DictEntry{
		{Key: "ostree.summary.mode", Value: gvariant.Variant{Type: "s", Value: r.Mode.String()}},
		{Key: "ostree.summary.last-modified", Value: gvariant.Variant{Type: "t", Value: be64(timestamp)}},
		{Key: "ostree.summary.tombstone-commits", Value: gvariant.Variant{Type: "b", Value: false}},
		{Key: "ostree.summary.indexed-deltas", Value: gvariant.Variant{Type: "b", Value: true}},
	}
	deltas, err := r.ListDeltas()
	if err != nil {
		return nil, err
	}
	if len(deltas) > 0 {
		index, err := r.deltaDigests(deltas)
		if err != nil {
			return nil, err
		}
		extra = append(extra, gvariant.DictEntry{Key: "ostree.static-deltas", Value: gvariant.Variant{Type: "a{sv}", Value: index}})
	}
	return gvariant.Encode(SummaryType, []any{entries, extra})
}

// deltaDigests maps delta names to the SHA-256 of their superblocks, as summaries and
// delta indexes list them.
func (r *Repo) deltaDigests(deltas []Delta) ([]gvariant.DictEntry, error) {
	out := make([]gvariant.DictEntry, 0, len(deltas))
	for _, d := range deltas {
		sb, err := os.ReadFile(filepath.Join(r.Path, DeltaDir(d.From, d.To), "superblock"))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(sb)
		out = append(out, gvariant.DictEntry{Key: d.Name(), Value: gvariant.Variant{Type: "ay", Value: sum[:]}})
	}
	return out, nil
}

// DeltaIndexPath returns the path (relative to the repository) of the index of deltas to
// commit to.
func DeltaIndexPath(to Checksum) string {
	t := MB64(to)
	return "delta-indexes/" + t[:2] + "/" + t[2:] + ".index"
}

// writeDeltaIndexes rewrites delta-indexes/ to match deltas/, one index per target commit,
// as `ostree static-delta reindex` does.
func (r *Repo) writeDeltaIndexes() error {
	deltas, err := r.ListDeltas()
	if err != nil {
		return err
	}
	byTarget := map[Checksum][]Delta{}
	for _, d := range deltas {
		byTarget[d.To] = append(byTarget[d.To], d)
	}
	keep := map[string]bool{}
	for to, ds := range byTarget {
		digests, err := r.deltaDigests(ds)
		if err != nil {
			return err
		}
		index := MarshalMetadata([]gvariant.DictEntry{{Key: "ostree.static-deltas", Value: gvariant.Variant{Type: "a{sv}", Value: digests}}})
		rel := DeltaIndexPath(to)
		keep[filepath.Join(r.Path, rel)] = true
		if err := r.WriteFileAtomic(rel, index, 0o644); err != nil {
			return err
		}
	}
	stale, _ := filepath.Glob(filepath.Join(r.Path, "delta-indexes", "*", "*.index"))
	for _, p := range stale {
		if !keep[p] {
			os.Remove(p)
		}
	}
	return nil
}
