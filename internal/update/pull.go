package update

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/remote"
)

// PendingRef is the ref of the sysroot repository that Pull points at the commit it pulled:
// it keeps a pulled commit from cleanup until Deploy deploys it.
const PendingRef = "ota/pending"

// The overall percent of an update, split between its phases (progress stages): check,
// download, apply (a delta's parts; objects are applied as they download) and deploy,
// finalize.
const (
	pctCheck    = 2
	pctDownload = 60
	pctApply    = 90
	pctDeploy   = 98
)

// PulledPercent is the overall percent of an update once Pull is done, where Deploy's
// stages start: an operation of Pull alone (ota-client pull, the daemon's Download) goes
// from 0 to it.
const PulledPercent = pctApply

// PullOptions configure Pull.
type PullOptions struct {
	CheckOptions
	// Bases are the commits of the device's deployments, the booted one first: the static
	// delta from the first one the summary lists is used. Without any, a from-scratch delta
	// is used when the summary lists one.
	Bases []ostree.Checksum
	// Progress receives the stages check, download and apply, with the overall percent of
	// an update (see progress.Spanner). The remote.Client should report its bytes to it too.
	Progress progress.Reporter
	// Connections is how many files are fetched at once (default remote.DefaultConnections).
	Connections int
	// MinFree is the space that must stay free in the repository's filesystem; default:
	// what the repository's config says as ostree reads it (core.min-free-space-size or
	// -percent), else DefaultMinFree.
	MinFree int64
	// MaxObject bounds the compressed size of one content object (default DefaultMaxObject).
	MaxObject int64
	// PendingRef is the ref pointed at the pulled commit (default PendingRef): an
	// application's pull keeps its commit under its own ref, which deploy ignores.
	PendingRef string
}

// Defaults of PullOptions.
const (
	DefaultMinFree   = 32 << 20
	DefaultMaxObject = 4 << 30
)

// PullResult is what Pull did.
type PullResult struct {
	*CheckResult
	// Method is "delta" (a static delta from the default or booted commit), "scratch" (a
	// from-scratch delta), "objects" (only the missing objects) or "none" (the commit was
	// already in the repository).
	Method string `json:"method"`
	// Fetched counts the files fetched: delta parts or objects.
	Fetched int64 `json:"fetched"`
}

// Pull fetches the commit that opts.Ref names on the remote into repo (the sysroot's bare
// repository), verified as Check verifies it, then every object it lacks: through the
// static delta from a base commit when the summary lists one, else object by object. Every
// object is verified against its checksum before it is stored. The commit object is written
// last, after its detached metadata, and the ref opts.PendingRef then points at it: a commit
// present is a commit complete. An interrupted Pull is continued by the next one: delta
// parts and large objects resume where their download stopped, and objects already stored
// are not fetched again. The caller holds the sysroot's lock (sysroot.Open).
func Pull(ctx context.Context, c *remote.Client, repo *ostree.Repo, opts PullOptions) (*PullResult, error) {
	rep := opts.Progress
	if rep == nil {
		rep = progress.Discard
	}
	opts.Progress = rep
	if opts.Connections <= 0 {
		opts.Connections = remote.DefaultConnections
	}
	if opts.MinFree <= 0 {
		var err error
		if opts.MinFree, err = minFreeSpace(repo, DefaultMinFree); err != nil {
			return nil, err
		}
	}
	if opts.MaxObject <= 0 {
		opts.MaxObject = DefaultMaxObject
	}
	if opts.PendingRef == "" {
		opts.PendingRef = PendingRef
	}
	// Taking the repository's lock removes the temporary files (tmp/ota-tmp-*) of writes a
	// kill interrupted: ours (a ref, detached metadata) or Deploy's (the deployment refs).
	// Pull cannot hold it, as delta.Apply takes it; the sysroot's lock keeps other
	// writers out.
	unlock, err := repo.Lock()
	if err != nil {
		return nil, err
	}
	unlock()
	rep.Stage("check", 0)
	progress.Span(rep, 0, 0, pctCheck)
	t, err := resolve(ctx, c, opts.CheckOptions)
	if err != nil {
		return nil, err
	}
	rep.Done()
	res := &PullResult{CheckResult: t.result, Method: "none"}
	partial := filepath.Join(repo.Path, "state", t.sum.String()+".commitpartial")
	if _, err := os.Stat(partial); err != nil && repo.HasObject(t.sum, ostree.ObjCommit) {
		// A commit that came without a trusted signature (an ostree pull that did not
		// verify, a deployment made by ostree) gets the one just verified: Deploy checks it.
		if VerifyCommit(repo, t.sum, opts.TrustedKeys) != nil {
			if err := repo.WriteDetachedMetadata(t.sum, t.meta); err != nil {
				return nil, err
			}
		}
		return res, repo.WriteRef(opts.PendingRef, t.sum)
	}
	// What the delta declares is checked before its download; objects are checked as they
	// come, the server declaring no total. Either way, nothing is written without MinFree.
	if err := checkSpace(repo.Path, 0, opts.MinFree, "the update"); err != nil {
		return nil, err
	}
	// Like ostree, a marker says the commit's objects may be incomplete: until it goes,
	// every tree is walked again, whatever is present.
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(partial, nil, 0o644); err != nil {
		return nil, err
	}
	if err := repo.WriteDetachedMetadata(t.sum, t.meta); err != nil {
		return nil, err
	}
	p := &puller{c: c, repo: repo, opts: opts, t: t, rep: rep}
	from, scratch := p.chooseDelta()
	switch {
	case from != nil || scratch:
		res.Method = "delta"
		if scratch {
			res.Method = "scratch"
		}
		err = p.pullDelta(ctx, from)
	default:
		res.Method = "objects"
		err = p.pullObjects(ctx)
	}
	res.Fetched = p.fetched.Load()
	if err != nil {
		return nil, err
	}
	if err := repo.Sync(); err != nil {
		return nil, err
	}
	if !repo.HasObject(t.sum, ostree.ObjCommit) {
		if _, err := repo.WriteObject(ostree.ObjCommit, t.data); err != nil {
			return nil, err
		}
		if err := repo.Sync(); err != nil {
			return nil, err
		}
	}
	if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := removeDownloads(repo); err != nil {
		return nil, err
	}
	return res, repo.WriteRef(opts.PendingRef, t.sum)
}

// removeDownloads removes the delta directories and object downloads that interrupted
// pulls left in the repository's tmp/ and this one did not finish: an object stored
// before its download file went, a download that a delta made useless. Once the commit is
// complete they serve no pull (the remote's ref moved on from theirs).
func removeDownloads(repo *ostree.Repo) error {
	tmp := filepath.Join(repo.Path, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), DeltaDirPrefix) || strings.HasPrefix(e.Name(), ObjectFilePrefix) {
			if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// chooseDelta returns the base of the static delta to use, or scratch when it is a
// from-scratch delta; neither means objects.
func (p *puller) chooseDelta() (from *ostree.Checksum, scratch bool) {
	for _, b := range p.opts.Bases {
		if b == p.t.sum || !p.repo.HasObject(b, ostree.ObjCommit) {
			continue
		}
		if _, ok := p.t.summary.Delta(&b, p.t.sum); ok {
			return &b, false
		}
	}
	if len(p.opts.Bases) == 0 {
		if _, ok := p.t.summary.Delta(nil, p.t.sum); ok {
			return nil, true
		}
	}
	return nil, false
}

// objectPath is the path of an object in an archive repository, as a server serves it.
func objectPath(c ostree.Checksum, t ostree.ObjectType) string {
	return ostree.ObjectRel(c, t, ostree.ModeArchive)
}
