package daemon

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otakit/ota/internal/apps"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/sysroot"
	"github.com/otakit/ota/internal/update"
)

// result is what a successful operation reports.
type result struct {
	message string
	// available is true when a check or a download found an update; deployed when a new
	// default deployment was written.
	available, deployed bool
}

// perform runs op's session operation.
func (d *Daemon) perform(op *operation) (result, error) {
	d.mu.Lock()
	opts := d.opts.Session
	d.mu.Unlock()
	opts.Progress = progress.NewFunc(d.opts.ProgressInterval, func(e progress.Event) { d.onProgress(op, e) })
	ctx := op.ctx
	switch op.name {
	case OpCheck:
		op.watched.Store(true)
		res, err := session.Check(ctx, opts)
		if err != nil {
			return result{}, err
		}
		d.setRemote(res)
		if !res.Available {
			return result{message: "up to date: " + describeCommit(res.Remote)}, nil
		}
		return result{message: "update available: " + describeCommit(res.Remote), available: true}, nil
	case OpDownload, OpUpdate:
		run := session.Update
		if op.name == OpDownload {
			run = session.Pull
		}
		out, err := run(ctx, opts)
		if err != nil {
			return result{}, err
		}
		d.setRemote(out.Pull.CheckResult)
		switch {
		case !out.Pull.Available:
			return result{message: "up to date: " + describeCommit(out.Pull.Remote)}, nil
		case out.Deployment == nil:
			return result{message: "downloaded: " + describeCommit(out.Pull.Remote), available: true}, nil
		}
		return installed(out), nil
	case OpInstall:
		out, err := session.Install(ctx, opts)
		if err != nil {
			return result{}, err
		}
		return installed(out), nil
	case OpApplyBundle:
		out, err := session.ApplyBundle(ctx, opts, op.arg)
		if err != nil {
			return result{}, err
		}
		return installed(out), nil
	case OpRollback:
		sw, err := session.Rollback(ctx, opts)
		if err != nil {
			return result{}, err
		}
		return result{message: fmt.Sprintf("rolled back: the default is %s %s, restart to use it", sw.Default.Name(), sw.DefaultInfo.Version)}, nil
	case OpMarkGood:
		m, err := session.MarkGood(ctx, opts)
		if err != nil {
			return result{}, err
		}
		msg := fmt.Sprintf("%s: bootcount=%x", m.BootCounter, m.Bootcount)
		if m.FellBack {
			msg += "; the booted deployment, which the boot script fell back to, is the default again"
		}
		return result{message: msg}, nil
	case OpReboot:
		if err := d.opts.Reboot(ctx); err != nil {
			return result{}, err
		}
		return result{message: "rebooting"}, nil
	case OpInstallApp, OpUpdateApp, OpRollbackApp, OpRemoveApp:
		return performApp(ctx, opts, op)
	}
	return result{}, fmt.Errorf("unknown operation %q", op.name)
}

// performApp runs op, an application operation.
func performApp(ctx context.Context, opts session.Options, op *operation) (result, error) {
	var out *session.AppOutcome
	var err error
	switch op.name {
	case OpInstallApp:
		out, err = session.InstallApp(ctx, opts, op.app, op.arg)
	case OpUpdateApp:
		out, err = session.UpdateApp(ctx, opts, op.app)
	case OpRollbackApp:
		out, err = session.RollbackApp(opts, op.app)
	case OpRemoveApp:
		if _, err = session.RemoveApp(opts, op.app); err != nil {
			return result{}, err
		}
		return result{message: "removed application " + op.app}, nil
	}
	if err != nil {
		return result{}, err
	}
	what := fmt.Sprintf("%s %s (%s)", op.app, cmp.Or(out.App.Version, "(no version)"), out.App.Current)
	switch {
	case op.name == OpRollbackApp:
		return result{message: "rolled back application " + what + ", the current version"}, nil
	case !out.Changed:
		return result{message: "application " + what + " is up to date"}, nil
	}
	return result{message: "installed application " + what + ", the current version"}, nil
}

// installed is the result of an operation that deployed out.
func installed(out *session.Outcome) result {
	return result{message: fmt.Sprintf("installed: %s %s, the default deployment; restart to use it", out.Deployment.Name(), out.Info.Version),
		deployed: true}
}

// describeCommit is a remote commit in a message: its version and checksum.
func describeCommit(c update.Commit) string {
	if c.Version == "" {
		return c.Checksum
	}
	return c.Version + " (" + c.Checksum + ")"
}

// setRemote keeps what a check found.
func (d *Daemon) setRemote(res *update.CheckResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.remote = res
}

// watchedStages are the stages of the network, which the stall watchdog watches.
var watchedStages = map[string]bool{"check": true, "metadata": true, "download": true}

// onProgress passes an event of op's progress on: the status follows the stage, and the
// overall percent of an update, rescaled to op's range, goes to the observer.
func (d *Daemon) onProgress(op *operation, e progress.Event) {
	op.active.Store(time.Now().UnixNano())
	if e.Event == "start" {
		op.watched.Store(watchedStages[e.Stage])
		status := map[string]string{"check": StatusChecking, "metadata": StatusDownloading, "download": StatusDownloading,
			"apply": StatusDownloading, "deploy": StatusInstalling, "finalize": StatusInstalling}[e.Stage]
		if op.name == OpApplyBundle && e.Stage == "apply" {
			status = StatusApplying
		}
		d.mu.Lock()
		// An application's operation keeps its status while it pulls.
		if status != "" && op.app == "" && d.cur == op && d.st.Status != status {
			d.st.Status = status
			d.opts.Observer.Changed(d.st)
		}
		d.mu.Unlock()
	}
	if !e.Spanned {
		return
	}
	pct := (e.Percent - op.lo) / (op.hi - op.lo) * 100
	pct = math.Round(min(max(pct, 0), 100)*10) / 10
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == op {
		d.opts.Observer.Progress(e.Stage, pct, e.Bytes, e.BytesTotal)
	}
}

// refresh reads the device's state from the sysroot (read-only: a command line update
// holding the lock does not hold it up) and reports it.
func (d *Daemon) refresh() {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	sig := d.signature()
	d.mu.Lock()
	opts := d.opts.Session
	d.mu.Unlock()
	s, err := opts.ReadSysroot()
	if err != nil {
		d.log("reading the sysroot: %v", err)
		return
	}
	var st State
	if opts.Booted == "" {
		// Found once, while the command line's ostree= link resolves (see session.Options.Booted).
		if b := opts.BootedDeployment(s); b != nil {
			opts.Booted = session.BootedName(b)
			d.mu.Lock()
			d.opts.Session.Booted = opts.Booted
			d.mu.Unlock()
		}
	}
	err = readDevice(s, opts, &st)
	s.Close()
	if err != nil {
		d.log("reading the sysroot: %v", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = sig
	st.Status, st.Error = d.st.Status, d.st.Error
	if d.remote != nil {
		st.Remote = remoteRevision(d.remote.Remote)
		st.UpdateAvailable = d.remote.Remote.Checksum != st.Default.Checksum
	}
	if st != d.st {
		d.st = st
		d.opts.Observer.Changed(d.st)
	}
}

// signature is what changes when a command changes the deployments, the last result or
// the applications: boot/loader's target, the size and time of every stateroot's last
// result, and the targets of the applications' current and previous links.
func (d *Daemon) signature() string {
	root := d.opts.Session.Sysroot
	var b strings.Builder
	target, _ := os.Readlink(filepath.Join(root, "boot/loader"))
	b.WriteString(target)
	results, _ := filepath.Glob(filepath.Join(root, sysroot.ResultPath("*")))
	for _, p := range results {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, " %s %d %d", p, st.Size(), st.ModTime().UnixNano())
		}
	}
	links, _ := filepath.Glob(filepath.Join(apps.Dir(root, "*"), "*", "*"))
	for _, p := range links {
		if base := filepath.Base(p); base == "current" || base == "previous" {
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " %s %s", p, target)
		}
	}
	return b.String()
}

// pollSysroot reads the device's state again when, between operations, a command (or
// ostree) changed it.
func (d *Daemon) pollSysroot() {
	sig := d.signature()
	d.mu.Lock()
	changed := d.cur == nil && sig != d.seen
	d.mu.Unlock()
	if changed {
		d.refresh()
	}
}
