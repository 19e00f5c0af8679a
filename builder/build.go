package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/image"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/rootfs"
	"github.com/otakit/ota/internal/sign"
)

// Options tune a run.
type Options struct {
	// Log receives one line per stage (nil: quiet).
	Log io.Writer
	// Progress receives the progress of long stages (nil: none).
	Progress commit.Reporter
	// XZ, when set, replaces the manifest's deltas.xz (delta.Options.XZ).
	XZ string
}

// plan is everything a run needs, gathered and checked before anything is written.
type plan struct {
	m            *Manifest
	commitOpts   commit.Options
	signers      []*sign.Signer
	sumSigners   []*sign.Signer
	layout       image.Layout
	repo         *ostree.Repo // nil until created
	history      []historyEntry
	reuse        *ostree.Checksum // an existing commit of the same version and tree
	reuseRes     commit.Result    // the dry run that found reuse
	deltaVersion []ostree.Checksum
	xz           string // delta.Options.XZ
	zstdParts    bool   // delta.Options.ZstdParts, for every delta but the bundle
	zstdWarning  string // why, by default, the deltas have no zstd parts
	zstd         string // delta.Options.Zstd
	apps         []appPlan
}

// Run executes the manifest's pipeline: commit, sign, deltas, summary, bundle, image.
// Everything is checked first: a manifest error leaves the repository and outputs as they
// were.
func Run(ctx context.Context, m *Manifest, opts Options) (*Report, error) {
	log := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	pr := opts.Progress
	if pr == nil {
		pr = progress.Discard
	}
	p, err := prepare(ctx, m, pr)
	if err != nil {
		return nil, err
	}
	if opts.XZ != "" {
		if _, err := delta.LookXZ(opts.XZ); err != nil {
			return nil, err
		}
		p.xz = opts.XZ
	}
	rep := &Report{Manifest: m.file, Repo: m.path(m.Repo.Path), StageSeconds: map[string]float64{}}
	seconds := func(start time.Time) float64 { return float64(time.Since(start).Milliseconds()) / 1000 }
	stage := func(name string, start time.Time) { rep.StageSeconds[name] = seconds(start) }
	runStart := time.Now()

	// Commit.
	start := time.Now()
	if p.repo == nil {
		mode, _ := ostree.ParseMode(cmpOr(m.Repo.Mode, "archive"))
		if p.repo, err = ostree.Init(rep.Repo, mode); err != nil {
			return nil, err
		}
	}
	// Taking the lock removes what a killed run left in the repository's tmp/, which a
	// rerun that finds everything made would not otherwise touch.
	unlock, err := p.repo.Lock()
	if err != nil {
		return nil, err
	}
	unlock()
	cs, commitRep, added, warnings, err := p.commit(ctx, m.path(m.Commit.Rootfs), p.commitOpts, p.reuse, p.reuseRes)
	if err != nil {
		return nil, err
	}
	rep.Commit = commitRep
	rep.Warnings = append(rep.Warnings, warnings...)
	log("commit   %s %s (%s)", m.Commit.Branch, cs, commitState(rep.Commit, added))
	stage("commit", start)

	// Deltas.
	start = time.Now()
	changed := rep.Commit.New || added > 0
	for _, from := range p.deltaBases(cs, m.Deltas, p.deltaVersion) {
		d, err := p.delta(ctx, from, cs, "", pr)
		if err != nil {
			return nil, err
		}
		changed = changed || d.New
		rep.Deltas = append(rep.Deltas, *d)
		log("delta    %s (%s)", d.Path, newOr(d.New, "kept"))
		if d.New && p.zstdWarning != "" {
			rep.Warnings = append(rep.Warnings, p.zstdWarning)
			p.zstdWarning = ""
		}
	}
	stage("deltas", start)

	// Applications, in the same repository: the summary below covers them.
	if len(p.apps) > 0 {
		start = time.Now()
		for _, ap := range p.apps {
			appChanged, err := p.app(ctx, ap, rep, log, pr)
			if err != nil {
				return nil, err
			}
			changed = changed || appChanged
		}
		stage("apps", start)
	}

	// Summary.
	start = time.Now()
	rep.Summary = SummaryReport{Path: filepath.Join(rep.Repo, "summary"), Signed: len(p.sumSigners) > 0}
	_, serr := os.Stat(rep.Summary.Path)
	_, sigErr := os.Stat(rep.Summary.Path + ".sig")
	if changed || serr != nil || (rep.Summary.Signed && sigErr != nil) {
		if err := UpdateSummary(p.repo, p.sumSigners); err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
		rep.Summary.New = true
	}
	log("summary  %s (%s)", rep.Summary.Path, newOr(rep.Summary.New, "unchanged"))
	stage("summary", start)

	// Bundle.
	if m.Deltas != nil && m.Deltas.Bundle != nil {
		start = time.Now()
		var from *ostree.Checksum
		if m.Deltas.Bundle.From == "previous" {
			from = p.previous(cs)
		}
		if err := os.MkdirAll(filepath.Dir(m.path(m.Deltas.Bundle.Output)), 0o755); err != nil {
			return nil, err
		}
		b, err := p.delta(ctx, from, cs, m.path(m.Deltas.Bundle.Output), pr)
		if err != nil {
			return nil, err
		}
		rep.Bundle = b
		log("bundle   %s (%s)", b.Path, newOr(b.New, "kept"))
		stage("bundle", start)
	}

	// Image.
	if m.Image != nil {
		start = time.Now()
		if rep.Image, err = p.image(ctx, cs, pr); err != nil {
			return nil, err
		}
		log("image    %s (%s)", rep.Image.Image, newOr(rep.Image.New, "kept"))
		stage("image", start)
	}
	rep.Seconds = seconds(runStart)
	return rep, nil
}

// commit commits the tree at rootfsPath with opts, or takes reuse, an existing commit of
// the same version and tree (found by the dry run reuseRes), and adds the signatures it
// lacks. added counts them.
func (p *plan) commit(ctx context.Context, rootfsPath string, opts commit.Options, reuse *ostree.Checksum, reuseRes commit.Result) (cs ostree.Checksum, rep CommitReport, added int, warnings []string, err error) {
	if reuse != nil {
		cs, warnings = *reuse, reuseRes.Warnings
		rep = NewCommitReport(reuseRes, opts.Branch, opts.Version)
		rep.Checksum = cs.String()
	} else {
		src, err := rootfs.Open(rootfsPath)
		if err != nil {
			return cs, rep, 0, nil, err
		}
		res, err := commit.Commit(ctx, p.repo, src, opts)
		src.Close()
		if err != nil {
			return cs, rep, 0, nil, fmt.Errorf("commit: %w", err)
		}
		cs, rep, warnings = res.Commit, NewCommitReport(res, opts.Branch, opts.Version), res.Warnings
	}
	cm, data, err := p.repo.ReadCommit(cs)
	if err != nil {
		return cs, rep, 0, nil, err
	}
	if cm.HasParent {
		rep.Parent = cm.Parent.String()
	}
	// A commit made earlier (or by a run with other keys) gets the missing signatures.
	if added, err = commit.AddSignatures(p.repo, cs, data, opts.Signers); err != nil {
		return cs, rep, 0, nil, err
	}
	sigs, err := commit.Signatures(p.repo, cs)
	if err != nil {
		return cs, rep, 0, nil, err
	}
	rep.Signatures = len(sigs)
	return cs, rep, added, warnings, nil
}

// commitState says in a log line whether a commit is new.
func commitState(r CommitReport, added int) string {
	switch {
	case r.New:
		return "new"
	case added > 0:
		return fmt.Sprintf("unchanged, %d signature(s) added", added)
	}
	return "unchanged"
}

func newOr(isNew bool, old string) string {
	if isNew {
		return "new"
	}
	return old
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// prepare loads every input and checks the version rule, writing nothing.
func prepare(ctx context.Context, m *Manifest, pr progress.Reporter) (*plan, error) {
	p := &plan{m: m, xz: m.xz(), zstd: m.zstd()}
	p.zstdParts, p.zstdWarning = m.zstdParts()
	c := &m.Commit
	var err error
	if p.signers, err = loadKeys(ctx, m, c.SignKeys, "commit", "sign-keys"); err != nil {
		return nil, err
	}
	p.sumSigners = p.signers
	if len(m.Summary.SignKeys) > 0 {
		if p.sumSigners, err = loadKeys(ctx, m, m.Summary.SignKeys, "summary", "sign-keys"); err != nil {
			return nil, err
		}
	} else if !m.Summary.Sign {
		p.sumSigners = nil
	}
	ts := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number", s)
		}
		ts = time.Unix(n, 0)
	}
	p.commitOpts = commit.Options{
		Branch: c.Branch, Subject: c.Subject, Body: c.Body, Version: c.Version,
		Timestamp: ts, Bootable: c.Bootable == nil || *c.Bootable, KernelVersion: c.KernelVersion,
		SkipSpecial: c.SkipSpecial, Strict: c.Strict, Progress: pr,
		// A new version is a new commit even of the same tree (a release is recorded);
		// without versions an unchanged tree makes none.
		SkipIfUnchanged: c.Version == "",
	}
	if p.commitOpts.Subject == "" {
		p.commitOpts.Subject = strings.TrimSpace(c.Branch + " " + c.Version)
	}
	keys := make([]string, 0, len(c.Metadata))
	for k := range c.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p.commitOpts.Metadata = append(p.commitOpts.Metadata, commit.KeyValue{Key: k, Value: c.Metadata[k]})
	}
	if c.Owner != nil {
		p.commitOpts.OwnerUID, p.commitOpts.OwnerGID = &c.Owner.UID, &c.Owner.GID
	}
	if c.Overrides != "" {
		f, err := os.Open(m.path(c.Overrides))
		if err != nil {
			return nil, m.errorAt(err.Error(), "commit", "overrides")
		}
		p.commitOpts.Overrides, err = rootfs.ParseOverrides(f, m.path(c.Overrides))
		f.Close()
		if err != nil {
			return nil, m.errorAt(err.Error(), "commit", "overrides")
		}
	}
	if c.SkipList != "" {
		f, err := os.Open(m.path(c.SkipList))
		if err != nil {
			return nil, m.errorAt(err.Error(), "commit", "skip-list")
		}
		p.commitOpts.SkipList, err = rootfs.ParseSkipList(f, m.path(c.SkipList))
		f.Close()
		if err != nil {
			return nil, m.errorAt(err.Error(), "commit", "skip-list")
		}
	}
	for _, s := range p.signers {
		p.commitOpts.Signers = append(p.commitOpts.Signers, s)
	}
	if im := m.Image; im != nil {
		if im.Board != "" {
			p.layout, err = image.Preset(im.Board)
			if err != nil {
				return nil, m.errorAt(err.Error(), "image", "board")
			}
		} else if p.layout, err = image.LoadLayout(m.path(im.Layout)); err != nil {
			return nil, m.errorAt(err.Error(), "image", "layout")
		}
		if _, err := image.BootFiles(p.layout, m.path(cmpOr(im.BootFiles, "."))); err != nil {
			return nil, m.errorAt(err.Error(), "image", "boot-files")
		}
		// The sysroot's own size is known only once deployed, but the layout's is now.
		if err := image.CheckSize(p.layout, imageSize(im)); err != nil {
			return nil, m.errorAt("image.size: "+err.Error(), "image", "size")
		}
	}
	// A rootfs that is no tree or tarball fails here rather than after the repository
	// is created.
	src, err := rootfs.Open(m.path(c.Rootfs))
	if err == nil {
		_, err = src.Next()
		src.Close()
	}
	if err != nil && err != io.EOF {
		return nil, m.errorAt("commit.rootfs: "+err.Error(), "commit", "rootfs")
	}

	// The repository's history of the branch, if there is one.
	repoPath := m.path(m.Repo.Path)
	if _, err := os.Stat(repoPath); err == nil {
		if p.repo, err = ostree.Open(repoPath); err != nil {
			return nil, m.errorAt(err.Error(), "repo", "path")
		}
		if p.history, err = history(p.repo, c.Branch); err != nil {
			return nil, err
		}
	}
	if d := m.Deltas; d != nil {
		for _, v := range d.FromVersions {
			i := slices.IndexFunc(p.history, func(h historyEntry) bool { return h.version == v })
			if i < 0 && v != c.Version {
				return nil, m.errorAt(fmt.Sprintf("deltas.from-versions: no commit of version %q on %s", v, c.Branch), "deltas", "from-versions")
			}
			if i >= 0 {
				p.deltaVersion = append(p.deltaVersion, p.history[i].c)
			}
		}
	}
	if p.reuse, p.reuseRes, err = p.findReuse(ctx, m.path(c.Rootfs), p.commitOpts, "commit", "version"); err != nil {
		return nil, err
	}
	for i := range m.Apps {
		if err := p.prepareApp(ctx, i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// findReuse returns the commit of opts.Version on opts.Branch, if there is one, after
// checking (writing nothing) that the tree at rootfsPath is still its tree; the error of
// another tree names the manifest's line at path.
func (p *plan) findReuse(ctx context.Context, rootfsPath string, opts commit.Options, path ...string) (*ostree.Checksum, commit.Result, error) {
	if opts.Version == "" || p.repo == nil {
		return nil, commit.Result{}, nil
	}
	hist, err := history(p.repo, opts.Branch)
	if err != nil {
		return nil, commit.Result{}, err
	}
	i := slices.IndexFunc(hist, func(h historyEntry) bool { return h.version == opts.Version })
	if i < 0 {
		return nil, commit.Result{}, nil
	}
	existing := hist[i].c
	src, err := rootfs.Open(rootfsPath)
	if err != nil {
		return nil, commit.Result{}, err
	}
	opts.DryRun, opts.Progress = true, progress.Discard
	res, err := commit.Commit(ctx, p.repo, src, opts)
	src.Close()
	if err != nil {
		return nil, commit.Result{}, fmt.Errorf("commit: %w", err)
	}
	cm, _, err := p.repo.ReadCommit(existing)
	if err != nil {
		return nil, commit.Result{}, err
	}
	if cm.RootTree != res.RootTree || cm.RootMeta != res.RootMeta {
		msg := fmt.Sprintf("version %q already exists on %s (commit %s) with a different tree; give a new version", opts.Version, opts.Branch, existing)
		if path[0] == "apps" {
			msg = fmt.Sprintf("apps[%s]: %s", path[1], msg)
		}
		return nil, commit.Result{}, p.m.errorAt(msg, path...)
	}
	return &existing, res, nil
}

// loadKeys opens the signing keys named by key references (see sign.Open), relative
// paths being relative to the manifest's directory; errors name the line of the list item
// at path.
func loadKeys(ctx context.Context, m *Manifest, refs []string, path ...string) ([]*sign.Signer, error) {
	var out []*sign.Signer
	for i, ref := range refs {
		path := append(slices.Clip(path), strconv.Itoa(i))
		s, err := sign.Open(ctx, ref, filepath.Dir(m.file))
		if err != nil {
			return nil, m.errorAt(err.Error(), path...)
		}
		out = append(out, s)
	}
	return out, nil
}

// UpdateSummary regenerates a repository's summary, signed by signers when there are any;
// its timestamp is SOURCE_DATE_EPOCH when set, for reproducible builds.
func UpdateSummary(repo *commit.Repo, signers []*commit.Signer) error {
	unlock, err := repo.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	opts := ostree.SummaryOptions{Timestamp: uint64(time.Now().Unix())}
	if n, err := strconv.ParseUint(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		opts.Timestamp = n
	}
	if len(signers) > 0 {
		opts.Sign = func(data []byte) ([][]byte, error) {
			sigs, _, err := sign.Merge(data, nil, signers)
			return sigs, err
		}
	}
	return repo.UpdateSummary(opts)
}
