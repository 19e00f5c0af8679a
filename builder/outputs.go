package builder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/image"
	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/scratch"
)

type historyEntry struct {
	c       ostree.Checksum
	version string
}

// history lists the commits of a branch, newest first, with their versions.
func history(repo *ostree.Repo, branch string) ([]historyEntry, error) {
	c, ok, err := repo.ReadRef(branch)
	if err != nil || !ok {
		return nil, err
	}
	var out []historyEntry
	for {
		cm, _, err := repo.ReadCommit(c)
		if errors.Is(err, fs.ErrNotExist) && len(out) > 0 {
			return out, nil // history pruned beyond this point
		} else if err != nil {
			return nil, err
		}
		out = append(out, historyEntry{c, cm.Version()})
		if !cm.HasParent {
			return out, nil
		}
		c = cm.Parent
	}
}

// previous returns the commit before c on the branch.
func (p *plan) previous(c ostree.Checksum) *ostree.Checksum {
	cm, _, err := p.repo.ReadCommit(c)
	if err != nil || !cm.HasParent || !p.repo.HasObject(cm.Parent, ostree.ObjCommit) {
		return nil
	}
	return &cm.Parent
}

// deltaBases lists the bases of the deltas to c that d selects, and the commits of
// d.FromVersions, versions (nil for a delta from scratch).
func (p *plan) deltaBases(c ostree.Checksum, d *DeltaSpec, versions []ostree.Checksum) []*ostree.Checksum {
	if d == nil {
		return nil
	}
	var out []*ostree.Checksum
	add := func(b *ostree.Checksum) {
		if b != nil && *b == c {
			return
		}
		if !slices.ContainsFunc(out, func(o *ostree.Checksum) bool { return (o == nil) == (b == nil) && (o == nil || *o == *b) }) {
			out = append(out, b)
		}
	}
	if d.FromScratch {
		add(nil)
	}
	at := c
	for range d.FromLast {
		prev := p.previous(at)
		if prev == nil {
			break
		}
		add(prev)
		at = *prev
	}
	for _, v := range versions {
		add(&v)
	}
	return out
}

// delta generates the delta from..to (into output, a bundle, when set) unless it exists.
func (p *plan) delta(ctx context.Context, from *ostree.Checksum, to ostree.Checksum, output string, pr progress.Reporter) (*DeltaReport, error) {
	existing := filepath.Join(p.repo.Path, ostree.DeltaDir(from, to))
	if output != "" {
		existing = output
	}
	opts := delta.Options{From: from, To: to, Output: output, XZ: p.xz, Progress: pr}
	if output == "" { // a bundle's parts are inline: a file with no zstd parts beside it
		opts.ZstdParts, opts.Zstd = p.zstdParts, p.zstd
	}
	var pubs []ed25519.PublicKey
	if output != "" {
		for _, s := range p.signers {
			opts.Signers = append(opts.Signers, s)
			pubs = append(pubs, s.PublicKey())
		}
	}
	meta, err := p.repo.ReadDetachedMetadata(to)
	if err != nil {
		return nil, err
	}
	if d, err := delta.Load(existing, pubs); err == nil && sameDelta(d, from, to, len(pubs) > 0, meta, opts.ZstdParts) {
		r := NewDeltaReport(d.Superblock, existing, ostree.TreeSize(existing))
		return &r, nil
	}
	res, err := delta.Generate(ctx, p.repo, opts)
	if err != nil {
		return nil, fmt.Errorf("delta %s: %w", ostree.Delta{From: from, To: to}.Name(), err)
	}
	r := NewDeltaReport(res.Superblock, existing, res.Size)
	r.New, r.Encoder, r.ZstdEncoder = true, res.Encoder, res.ZstdEncoder
	return &r, nil
}

// sameDelta reports whether d, an existing delta, is the delta from..to that Generate would
// write now: the same commits, the target's current detached metadata (so a commit signed
// since gets a new delta carrying its signatures), an envelope exactly when signed (Load
// checked it against the signing keys) and, when zstd, zstd parts (a delta that has them
// is kept without zstd: clients that ignore them lose nothing).
func sameDelta(d *delta.Loaded, from *ostree.Checksum, to ostree.Checksum, signed bool, meta []gvariant.DictEntry, zstd bool) bool {
	return (!zstd || d.Zstd() != nil) && d.To == to && (d.From == nil) == (from == nil) && (from == nil || *d.From == *from) &&
		d.Signed == signed && bytes.Equal(ostree.MarshalMetadata(d.CommitMeta()), ostree.MarshalMetadata(meta))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// image writes the image unless one made from the same commit and inputs exists: a stamp
// file next to it records what it was made from.
func (p *plan) image(ctx context.Context, c ostree.Checksum, pr progress.Reporter) (*ImageReport, error) {
	im := p.m.Image
	out := p.m.path(im.Output)
	outputs := im.Outputs
	if len(outputs) == 0 {
		outputs = []string{"raw", "bmap"}
	}
	opts := image.Options{
		Repo: p.repo, Commit: c, Refspec: p.m.Commit.Branch, OSName: p.m.OS, Layout: p.layout,
		BootFiles: p.m.path(cmpOr(im.BootFiles, ".")), Output: out, Kargs: im.Kargs,
		Bmap: slices.Contains(outputs, "bmap"), Zstd: slices.Contains(outputs, "zstd"), Progress: pr,
	}
	opts.Size = imageSize(im)
	stamp, err := imageStamp(opts, outputs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	// The stamp holds the inputs' digest, then the report of the build that made the image.
	stampFile := out + ".stamp"
	if old, err := os.ReadFile(stampFile); err == nil && bytes.HasPrefix(old, stamp) {
		var res image.Result
		if json.Unmarshal(old[len(stamp):], &res) == nil && (res.Image == "" || fileExists(res.Image)) {
			return &ImageReport{Result: &res}, nil
		}
	}
	os.Remove(stampFile)
	res, err := image.Build(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if !slices.Contains(outputs, "raw") {
		if err := os.Remove(out); err != nil {
			return nil, err
		}
		res.Image = ""
	}
	js, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if err := scratch.WriteFile(stampFile, append(stamp, js...)); err != nil {
		return nil, err
	}
	return &ImageReport{Result: res, New: true}, nil
}

// imageSize returns the image size the manifest gives (checked by Load), 0 for auto.
func imageSize(im *ImageSpec) int64 {
	if im.Size == "" || im.Size == "auto" {
		return 0
	}
	s, _ := image.ParseSize(im.Size)
	return int64(s)
}

// imageStamp identifies an image's inputs: the commit, the layout, the options and the
// names, sizes and times of the boot files the layout uses.
func imageStamp(o image.Options, outputs []string) ([]byte, error) {
	layout, err := json.Marshal(o.Layout)
	if err != nil {
		return nil, err
	}
	files, err := image.BootFiles(o.Layout, o.BootFiles)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s %s %d %q %q\n", o.Commit, o.Refspec, o.OSName, layout, o.Size, o.Kargs, outputs)
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	return []byte(hex.EncodeToString(h.Sum(nil)) + "\n"), nil
}
