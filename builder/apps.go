package builder

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/apps"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/rootfs"
)

// App names an application's commit: what `ota-build commit --app` and the manifest's
// apps: list both give.
type App struct {
	Name, Arch, Channel string
	// OSVersions is the comma-separated patterns of apps.MetaOSVersions (empty: any).
	OSVersions string
	// Exec is apps.MetaExec.
	Exec string
}

// AppError is an invalid application setting; Field names it as the flag or manifest
// key does (name, arch, channel, branch, bootable).
type AppError struct {
	Field string
	Err   error
}

func (e *AppError) Error() string { return e.Err.Error() }

// AppCommitOptions makes opts the options of application a's commit: its branch
// (apps/NAME/ARCH/CHANNEL; a branch already set must be that one) and its metadata
// (apps.MetaName, MetaOSVersions, MetaExec), after checking that the names cannot escape
// the applications' directory and that the commit is not bootable.
func AppCommitOptions(opts *commit.Options, a App) error {
	if err := apps.CheckName(a.Name); err != nil {
		return &AppError{"name", err}
	}
	if opts.Bootable {
		return &AppError{"bootable", fmt.Errorf("an application is not a bootable tree")}
	}
	if a.Arch == "" {
		return &AppError{"arch", fmt.Errorf("an application needs an architecture")}
	}
	channel := a.Channel
	if channel == "" {
		channel = apps.DefaultChannel
	}
	ref := apps.Ref(a.Name, a.Arch, channel)
	if err := apps.CheckRef(a.Name, ref); err != nil {
		field := "channel"
		if apps.CheckRef(a.Name, apps.Ref(a.Name, a.Arch, apps.DefaultChannel)) != nil {
			field = "arch"
		}
		return &AppError{field, err}
	}
	if opts.Branch != "" && opts.Branch != ref {
		return &AppError{"branch", fmt.Errorf("branch %s: an application's branch is %s", opts.Branch, ref)}
	}
	opts.Branch = ref
	opts.Metadata = append(opts.Metadata, commit.KeyValue{Key: apps.MetaName, Value: a.Name},
		commit.KeyValue{Key: apps.MetaOSVersions, Value: a.OSVersions},
		commit.KeyValue{Key: apps.MetaExec, Value: a.Exec})
	return nil
}

// appPlan is what a run needs to commit the manifest's application i.
type appPlan struct {
	i        int
	opts     commit.Options
	reuse    *ostree.Checksum // an existing commit of the same version and tree
	reuseRes commit.Result    // the dry run that found reuse
}

// prepareApp checks application i's tree and version and plans its commit.
func (p *plan) prepareApp(ctx context.Context, i int) error {
	m, a := p.m, &p.m.Apps[i]
	ap := appPlan{i: i, opts: commit.Options{
		Subject: a.Subject, Version: m.appVersion(i), Timestamp: p.commitOpts.Timestamp,
		Signers: p.commitOpts.Signers, Progress: p.commitOpts.Progress,
	}}
	if err := AppCommitOptions(&ap.opts, m.app(i)); err != nil {
		return err // checked by Load
	}
	if ap.opts.Subject == "" {
		ap.opts.Subject = ap.opts.Branch + " " + ap.opts.Version
	}
	if a.Owner != nil {
		ap.opts.OwnerUID, ap.opts.OwnerGID = &a.Owner.UID, &a.Owner.GID
	}
	src, err := rootfs.Open(m.path(a.Rootfs))
	if err == nil {
		_, err = src.Next()
		src.Close()
	}
	if err != nil && err != io.EOF {
		return m.errorAt(fmt.Sprintf("apps[%d]: rootfs: %v", i, err), "apps", strconv.Itoa(i), "rootfs")
	}
	if ap.reuse, ap.reuseRes, err = p.findReuse(ctx, m.path(a.Rootfs), ap.opts, "apps", strconv.Itoa(i), "version"); err != nil {
		return err
	}
	p.apps = append(p.apps, ap)
	return nil
}

// app commits an application and makes its deltas, adding them to rep; changed reports
// whether the repository changed.
func (p *plan) app(ctx context.Context, ap appPlan, rep *Report, log func(string, ...any), pr progress.Reporter) (changed bool, err error) {
	spec := p.m.Apps[ap.i]
	cs, commitRep, added, warnings, err := p.commit(ctx, p.m.path(spec.Rootfs), ap.opts, ap.reuse, ap.reuseRes)
	if err != nil {
		return false, fmt.Errorf("app %s: %w", spec.Name, err)
	}
	r := AppReport{Name: spec.Name, Commit: commitRep}
	for _, w := range warnings {
		rep.Warnings = append(rep.Warnings, "app "+spec.Name+": "+w)
	}
	log("app      %s %s (%s)", ap.opts.Branch, cs, commitState(commitRep, added))
	changed = commitRep.New || added > 0
	var bases []*ostree.Checksum
	if d := spec.Deltas; d != nil {
		bases = p.deltaBases(cs, &DeltaSpec{FromLast: d.FromLast, FromScratch: d.FromScratch}, nil)
	}
	for _, from := range bases {
		d, err := p.delta(ctx, from, cs, "", pr)
		if err != nil {
			return false, fmt.Errorf("app %s: %w", spec.Name, err)
		}
		changed = changed || d.New
		r.Deltas = append(r.Deltas, *d)
		log("delta    %s (%s)", d.Path, newOr(d.New, "kept"))
	}
	rep.Apps = append(rep.Apps, r)
	return changed, nil
}
