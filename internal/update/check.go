// Package update holds the device client's update logic: Check finds out, from verified
// metadata only, whether the remote has an update for the device.
package update

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/release"
	"github.com/otakit/ota/internal/remote"
	"github.com/otakit/ota/internal/sign"
)

// Size bounds of the files Check fetches: a hostile server gets an error, not memory.
const (
	MaxSummarySig = 1 << 20
	MaxCommit     = 1 << 20
	MaxCommitMeta = 1 << 20
)

// Commit is a commit as the reports show it.
type Commit struct {
	Checksum  string    `json:"commit"`
	Version   string    `json:"version,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	Subject   string    `json:"subject,omitempty"`
	// Metadata is the commit's a{sv} metadata (not in the JSON reports).
	Metadata []gvariant.DictEntry `json:"-"`
}

// CheckOptions says what Check compares the remote with.
type CheckOptions struct {
	// Ref is the branch the device follows.
	Ref string
	// TrustedKeys verify the summary's and the commit's ed25519 signatures.
	TrustedKeys []ed25519.PublicKey
	// AllowDowngrade lets the remote commit be older than Base.
	AllowDowngrade bool
	// Default is the commit of the default deployment (nil: none); updates and deltas are
	// reckoned from it.
	Default *ostree.Checksum
	// Base is the commit the downgrade check compares with: the booted deployment's, else
	// the default's (nil: none).
	Base *ostree.Commit
	// Accept, when set, is called with the remote commit once its signature is verified,
	// before anything is written: its error refuses the commit (an application's commit
	// that does not suit the device's OS, or names another application).
	Accept func(*ostree.Commit) error
}

// CheckResult is what Check found.
type CheckResult struct {
	// Available is true when the remote commit differs from the default deployment's.
	Available bool    `json:"available"`
	Ref       string  `json:"ref"`
	Remote    Commit  `json:"remote"`
	Default   *string `json:"default"`
	// Delta is the name of the static delta from the default deployment's commit to the
	// remote one, when the summary lists it.
	Delta string `json:"delta,omitempty"`
	// DownloadSize is the number of bytes to download, when known without fetching more
	// than the metadata (nil: unknown): the size of the delta's parts, 0 when up to date.
	DownloadSize *int64 `json:"download_size"`
	// SpaceNeeded is the space the update needs in the repository's filesystem, beside what
	// must stay free, when known (nil: unknown): the delta's parts and the objects they
	// build.
	SpaceNeeded *int64 `json:"space_needed"`
}

// Check fetches the summary, its signature and the commit of opts.Ref from c and verifies
// them against opts.TrustedKeys, then compares the commit with the device's. Every error
// is one line saying what failed.
func Check(ctx context.Context, c *remote.Client, opts CheckOptions) (*CheckResult, error) {
	t, err := resolve(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	if res := t.result; res.Delta != "" {
		// The superblock is metadata: it declares the sizes of the parts and of what they build.
		sb, err := fetchSuperblock(ctx, c, t, opts.Default)
		if err != nil {
			return nil, err
		}
		zs, err := sb.ZstdParts()
		if err != nil {
			return nil, err
		}
		var download, space int64
		for i, p := range sb.Parts {
			size := partFile(sb, zs, i).size // what Pull downloads
			download += int64(size)
			space += int64(size + p.USize)
		}
		for _, fb := range sb.Fallbacks {
			download += int64(fb.CompressedSize)
			space += int64(fb.USize)
		}
		res.DownloadSize, res.SpaceNeeded = &download, &space
	}
	return t.result, nil
}

// fetchSuperblock fetches the superblock of the static delta from from to t's commit,
// checks it against the digest of the signed summary and parses it.
func fetchSuperblock(ctx context.Context, c *remote.Client, t *target, from *ostree.Checksum) (*delta.Superblock, error) {
	name := ostree.Delta{From: from, To: t.sum}.Name()
	data, err := getSuperblock(ctx, c, t, from)
	if err != nil {
		return nil, err
	}
	sb, err := delta.ReadSuperblock(data)
	if err != nil {
		return nil, fmt.Errorf("static delta %s: %w", name, err)
	}
	return sb, checkSuperblock(sb, from, t.sum, name)
}

// getSuperblock fetches the superblock of the static delta from from to t's commit and
// checks it against the digest of the signed summary.
func getSuperblock(ctx context.Context, c *remote.Client, t *target, from *ostree.Checksum) ([]byte, error) {
	data, err := c.Get(ctx, ostree.DeltaDir(from, t.sum)+"/superblock", MaxSuperblock)
	if err != nil {
		return nil, err
	}
	if name := (ostree.Delta{From: from, To: t.sum}).Name(); sha256.Sum256(data) != t.summary.Deltas[name] {
		return nil, fmt.Errorf("static delta %s: the superblock does not match the summary's digest (tampered or corrupt)", name)
	}
	return data, nil
}

// target is what resolve found and verified: the remote commit of a ref, with the
// summary that lists it.
type target struct {
	result  *CheckResult
	summary *ostree.Summary
	sum     ostree.Checksum
	commit  *ostree.Commit
	data    []byte               // the commit object, verified
	meta    []gvariant.DictEntry // its detached metadata, holding a trusted signature
}

// resolve is Check, keeping what it fetched for Pull.
func resolve(ctx context.Context, c *remote.Client, opts CheckOptions) (*target, error) {
	if len(opts.TrustedKeys) == 0 {
		return nil, errors.New("no trusted keys: nothing could be verified")
	}
	data, err := c.Get(ctx, "summary", ostree.MaxSummarySize)
	if err != nil {
		return nil, err
	}
	sigData, err := c.Get(ctx, "summary.sig", MaxSummarySig)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, fmt.Errorf("summary is not signed: %s is missing", c.URL("summary.sig"))
	} else if err != nil {
		return nil, err
	}
	if _, err := verify(opts.TrustedKeys, data, sigData); err != nil {
		return nil, fmt.Errorf("summary %s: %w", c.URL("summary"), err)
	}
	summary, err := ostree.ParseSummary(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.URL("summary"), err)
	}
	ref, ok := summary.Ref(opts.Ref)
	if !ok {
		return nil, fmt.Errorf("ref %s: not in the remote's summary", opts.Ref)
	}
	t := &target{summary: summary, sum: ref.Commit}
	if t.commit, t.data, t.meta, err = fetchCommit(ctx, c, ref.Commit, opts.TrustedKeys); err != nil {
		return nil, err
	}
	commit := t.commit
	res := &CheckResult{Ref: opts.Ref, Remote: Commit{Checksum: ref.Commit.String(), Version: commit.Version(),
		Timestamp: time.Unix(int64(commit.Timestamp), 0).UTC(), Subject: commit.Subject, Metadata: commit.Metadata}}
	if opts.Base != nil && !opts.AllowDowngrade {
		if err := release.CheckUpgrade(opts.Base, commit); err != nil {
			return nil, fmt.Errorf("ref %s: commit %s: %w", opts.Ref, ref.Commit, err)
		}
	}
	if opts.Accept != nil {
		if err := opts.Accept(commit); err != nil {
			return nil, fmt.Errorf("ref %s: commit %s: %w", opts.Ref, ref.Commit, err)
		}
	}
	res.Available = opts.Default == nil || *opts.Default != ref.Commit
	if opts.Default != nil {
		s := opts.Default.String()
		res.Default = &s
		if d, ok := summary.Delta(opts.Default, ref.Commit); ok && res.Available {
			res.Delta = d.Name()
		}
	}
	if !res.Available {
		var zero int64
		res.DownloadSize = &zero
	}
	t.result = res
	return t, nil
}

// fetchCommit fetches commit sum and its detached metadata, and verifies the commit's
// checksum and its ed25519 signature.
func fetchCommit(ctx context.Context, c *remote.Client, sum ostree.Checksum, keys []ed25519.PublicKey) (*ostree.Commit, []byte, []gvariant.DictEntry, error) {
	data, err := c.Get(ctx, objectPath(sum, ostree.ObjCommit), MaxCommit)
	if err != nil {
		return nil, nil, nil, err
	}
	if got := ostree.Sum(data); got != sum {
		return nil, nil, nil, fmt.Errorf("commit %s: the server's object has checksum %s (tampered or corrupt)", sum, got)
	}
	commit, err := ostree.ParseCommit(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("commit %s: %w", sum, err)
	}
	metaPath := objectPath(sum, ostree.ObjCommitMeta)
	sigData, err := c.Get(ctx, metaPath, MaxCommitMeta)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("commit %s is not signed: %s is missing", sum, c.URL(metaPath))
	} else if err != nil {
		return nil, nil, nil, err
	}
	meta, err := verify(keys, data, sigData)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("commit %s: %w", sum, err)
	}
	return &commit, data, meta, nil
}

// verify checks msg against the ostree.sign.ed25519 signatures of the a{sv} sigData, and
// returns sigData parsed.
func verify(keys []ed25519.PublicKey, msg, sigData []byte) ([]gvariant.DictEntry, error) {
	meta, err := ostree.ParseMetadata(sigData)
	if err != nil {
		return nil, fmt.Errorf("signature file: %w", err)
	}
	return meta, verifyMeta(keys, msg, meta)
}

// verifyMeta checks msg against the ostree.sign.ed25519 signatures of detached metadata.
func verifyMeta(keys []ed25519.PublicKey, msg []byte, meta []gvariant.DictEntry) error {
	sigs, err := ostree.Signatures(meta)
	if err != nil {
		return err
	}
	switch err := sign.Verify(keys, msg, sigs); {
	case errors.Is(err, sign.ErrNoSignatures):
		return errors.New("not signed: no " + ostree.SignEd25519Key + " signature")
	case err != nil:
		return fmt.Errorf("no signature by a trusted key: %w", err)
	}
	return nil
}
