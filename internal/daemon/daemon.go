// Package daemon is ota-client daemon's engine: it runs the client's operations
// (internal/session) one at a time, when asked (over D-Bus, internal/dbusapi) or by its
// policy (client.yaml's daemon mapping: a periodic check with jitter, automatic download,
// install and reboot, a maintenance window), at a low CPU and I/O priority, under a stall
// watchdog, backing off while they fail; and it keeps the device's state for the D-Bus
// properties.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/apps"
	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/update"
)

// Operations, as Start takes them and Observer.Finished reports them.
const (
	OpCheck       = "check"
	OpDownload    = "download"
	OpInstall     = "install"
	OpUpdate      = "update"
	OpRollback    = "rollback"
	OpApplyBundle = "apply-bundle"
	OpMarkGood    = "mark-good"
	OpReboot      = "reboot"
	// The operations on an application (internal/apps), which StartApp starts.
	OpInstallApp  = "install-app"
	OpUpdateApp   = "update-app"
	OpRollbackApp = "rollback-app"
	OpRemoveApp   = "remove-app"
)

// Errors of Start and Cancel, and the causes of a cancelled operation.
var (
	ErrNotRunning = errors.New("no operation is running")
	ErrStopped    = errors.New("the daemon is stopping")
	ErrCancelled  = errors.New("cancelled")
)

// BusyError is the error of Start while an operation runs.
type BusyError struct {
	Op, Status string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("busy: %s is running (%s); wait for its Finished signal or Cancel it", e.Op, e.Status)
}

// Observer receives what the daemon reports; its methods are called one at a time.
type Observer interface {
	// Changed is called with the state after every change.
	Changed(State)
	// Progress reports the running operation: its phase (the stage: check, metadata,
	// download, apply, deploy, finalize), its percent from 0 to 100, and the phase's bytes
	// done and expected (0: unknown).
	Progress(phase string, percent float64, bytesDone, bytesTotal int64)
	// Finished reports the end of an operation.
	Finished(op string, success bool, message string)
}

// Options configure a Daemon.
type Options struct {
	// Session names the device; its Progress is the daemon's.
	Session session.Options
	// Policy is the configuration's daemon policy.
	Policy clientconfig.Daemon
	// Observer receives the state, progress and results.
	Observer Observer
	// Reboot reboots the device (default session.Reboot).
	Reboot func(context.Context) error
	// Log receives one line per operation started and finished (nil: none).
	Log func(string)
	// ProgressInterval is the least time between two Progress reports of a phase
	// (default 200ms).
	ProgressInterval time.Duration
}

// Daemon runs the operations. Its methods are safe for concurrent use.
type Daemon struct {
	opts Options

	refreshMu sync.Mutex // held while the device's state is read and stored

	mu        sync.Mutex
	ctx       context.Context // Run's; nil before Run and after it returns
	st        State
	cur       *operation
	remote    *update.CheckResult // the last check's
	failures  int                 // consecutive failed check, download, install, update
	nextCheck time.Time           // zero: none planned
	rebootAt  time.Time           // zero: none planned
	seen      string              // the sysroot's signature at the last refresh
	wake      chan struct{}
	wg        sync.WaitGroup
}

// operation is a running operation.
type operation struct {
	name, arg string
	app       string // the application of an app operation (arg is its ref)
	auto      bool   // started by the policy
	ctx       context.Context
	cancel    context.CancelCauseFunc
	// lo and hi are the range of an update's overall percent the operation covers.
	lo, hi float64
	// watched is true while the stage is one the stall watchdog watches (the network's),
	// and active the time of its last progress, in Unix nanoseconds.
	watched atomic.Bool
	active  atomic.Int64
}

// New returns a daemon that runs its operations until ctx is done, with the device's state
// read; Run runs its policy.
func New(ctx context.Context, opts Options) *Daemon {
	if opts.Reboot == nil {
		opts.Reboot = session.Reboot
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 200 * time.Millisecond
	}
	d := &Daemon{opts: opts, ctx: ctx, st: State{Status: StatusIdle, Apps: "[]"}, wake: make(chan struct{}, 1)}
	d.refresh()
	return d
}

// State returns the current state.
func (d *Daemon) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// Lock takes the lock that allows one daemon per sysroot, held until the returned file is
// closed.
func Lock(sysroot string) (*os.File, error) {
	p := filepath.Join(sysroot, "ostree/ota-daemon.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("daemon: another ota-client daemon runs on %s (%s is locked)", sysroot, p)
		}
		return nil, fmt.Errorf("daemon: locking %s: %w", p, err)
	}
	return f, nil
}

// Run runs the policy until New's context is done: the periodic checks, and the reboots
// planned in the maintenance window. It returns once the running operation, cancelled,
// has ended.
func (d *Daemon) Run() {
	d.mu.Lock()
	ctx := d.ctx
	if d.opts.Policy.Interval > 0 {
		d.nextCheck = time.Now().Add(randBelow(d.opts.Policy.Jitter))
	}
	d.mu.Unlock()
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		timer := time.NewTimer(d.untilDue())
		select {
		case <-ctx.Done():
			timer.Stop()
			d.mu.Lock()
			d.ctx = nil
			d.mu.Unlock()
			d.wg.Wait()
			return
		case <-d.wake:
		case <-timer.C:
		case <-poll.C:
			d.pollSysroot()
		}
		timer.Stop()
		d.mu.Lock()
		if now := time.Now(); d.cur == nil {
			switch {
			case !d.rebootAt.IsZero() && !now.Before(d.rebootAt):
				d.rebootAt = time.Time{}
				d.start(OpReboot, "", true)
			case !d.nextCheck.IsZero() && !now.Before(d.nextCheck):
				d.nextCheck = time.Time{}
				d.start(OpCheck, "", true)
			}
		}
		d.mu.Unlock()
	}
}

// untilDue is the time until the next planned check or reboot; while an operation runs,
// what is due waits for its end, which wakes Run.
func (d *Daemon) untilDue() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	wait := 24 * time.Hour
	if d.cur != nil {
		return wait
	}
	for _, t := range []time.Time{d.nextCheck, d.rebootAt} {
		if !t.IsZero() {
			wait = min(wait, max(time.Until(t), 0))
		}
	}
	return wait
}

// Start starts operation name (one of the Op constants; arg is ApplyBundle's file) and
// returns at once; Observer.Finished reports its end. While an operation runs, it fails
// with a *BusyError.
func (d *Daemon) Start(name, arg string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		return ErrStopped
	}
	if d.cur != nil {
		return &BusyError{Op: d.cur.name, Status: d.st.Status}
	}
	if name == OpApplyBundle && !filepath.IsAbs(arg) {
		return fmt.Errorf("apply-bundle: %q is not an absolute path", arg)
	}
	d.start(name, arg, false)
	return nil
}

// StartApp starts operation name (OpInstallApp, OpUpdateApp, OpRollbackApp or
// OpRemoveApp) on application app, installed from ref (install only; "" is
// apps/APP/MACHINE/stable), and returns at once, as Start does.
func (d *Daemon) StartApp(name, app, ref string) error {
	switch name {
	case OpInstallApp, OpUpdateApp, OpRollbackApp, OpRemoveApp:
	default:
		return fmt.Errorf("%q is not an application operation", name)
	}
	if err := apps.CheckName(app); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if ref != "" {
		if err := apps.CheckRef(app, ref); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		return ErrStopped
	}
	if d.cur != nil {
		return &BusyError{Op: d.cur.name, Status: d.st.Status}
	}
	d.startOp(&operation{name: name, arg: ref, app: app})
	return nil
}

// Cancel cancels the running operation: a download stops where it is (the next one
// continues it), a deployment before its boot configuration is swapped in.
func (d *Daemon) Cancel() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return ErrNotRunning
	}
	d.cur.cancel(ErrCancelled)
	return nil
}

// start starts an operation; d.mu is held and no operation runs.
func (d *Daemon) start(name, arg string, auto bool) {
	d.startOp(&operation{name: name, arg: arg, auto: auto})
}

// startOp starts op; d.mu is held and no operation runs.
func (d *Daemon) startOp(op *operation) {
	name := op.name
	op.lo, op.hi = 0, 100
	switch name {
	case OpDownload, OpInstallApp, OpUpdateApp: // an application's pull ends at PulledPercent
		op.hi = update.PulledPercent
	case OpInstall:
		op.lo = update.PulledPercent
	}
	op.ctx, op.cancel = context.WithCancelCause(d.ctx)
	op.active.Store(time.Now().UnixNano())
	d.cur = op
	d.st.Status = map[string]string{OpCheck: StatusChecking, OpDownload: StatusDownloading, OpInstall: StatusInstalling,
		OpUpdate: StatusChecking, OpRollback: StatusRollingBack, OpApplyBundle: StatusApplying, OpMarkGood: StatusMarkingGood,
		OpReboot: StatusRebooting, OpInstallApp: StatusInstallingApp, OpUpdateApp: StatusUpdatingApp,
		OpRollbackApp: StatusRollingBackApp, OpRemoveApp: StatusRemovingApp}[name]
	d.opts.Observer.Changed(d.st)
	if op.app != "" {
		d.log("%s %s: started", name, op.app)
	} else {
		d.log("%s: started", name)
	}
	d.wg.Add(2)
	go d.execute(op)
	go d.watch(op)
}

// execute runs op, then reports it and starts what the policy wants next.
func (d *Daemon) execute(op *operation) {
	defer d.wg.Done()
	began := time.Now()
	var restore func() error
	if op.name != OpCheck && op.name != OpReboot {
		var err error
		if restore, err = lowPriority(); err != nil {
			d.log("%s: cannot lower the priority: %v", op.name, err)
		}
	}
	res, err := d.perform(op)
	if restore != nil {
		if err := restore(); err != nil {
			d.log("%s: cannot restore the priority: %v", op.name, err)
		}
	}
	op.cancel(nil)
	if cause := context.Cause(op.ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%s: %w", op.name, cause) // cancelled or stalled: say so, not "context canceled"
	}
	d.refresh()

	d.mu.Lock()
	defer d.mu.Unlock()
	d.cur = nil
	msg := res.message
	if err != nil {
		msg = otacli.OneLine(err.Error())
		d.st.Error = msg
	} else {
		d.st.Error = ""
	}
	d.st.Status = StatusIdle
	next := d.after(op, res, err)
	d.opts.Observer.Changed(d.st)
	d.opts.Observer.Finished(op.name, err == nil, msg)
	d.log("%s: %s after %s: %s", op.name, map[bool]string{true: "succeeded", false: "failed"}[err == nil], since(began), msg)
	if next != "" && d.ctx != nil {
		d.start(next, "", true)
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// after applies the policy once op ended with err, and returns the operation to start
// next, if any; d.mu is held.
func (d *Daemon) after(op *operation, res result, err error) string {
	p := d.opts.Policy
	next := ""
	switch {
	case err != nil:
	case op.name == OpCheck && d.st.UpdateAvailable && p.Download == clientconfig.Auto:
		next = OpDownload
	case op.name == OpDownload && res.available && p.Install == clientconfig.Auto:
		next = OpInstall
	case res.deployed && p.Reboot == clientconfig.RebootImmediately:
		next = OpReboot
	case res.deployed && p.Reboot == clientconfig.RebootWindow:
		if now := time.Now(); p.Window.Contains(now) {
			next = OpReboot
		} else {
			d.rebootAt = p.Window.Next(now)
			d.log("reboot planned at %s, in the maintenance window %s", d.rebootAt.Format(time.RFC3339), p.Window)
		}
	}
	switch op.name {
	case OpCheck, OpDownload, OpInstall, OpUpdate:
		if err != nil {
			d.failures++
		} else if next == "" {
			d.failures = 0
		}
		if next == "" && p.Interval > 0 {
			d.nextCheck = time.Now().Add(checkDelay(p.Interval, p.Jitter, d.failures))
		}
	}
	return next
}

// watch is the stall watchdog of op: it cancels op when a watched stage makes no progress
// for the policy's stall timeout.
func (d *Daemon) watch(op *operation) {
	defer d.wg.Done()
	limit := d.opts.Policy.StallTimeout
	tick := time.NewTicker(min(limit/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-op.ctx.Done():
			return
		case <-tick.C:
			idle := time.Since(time.Unix(0, op.active.Load()))
			if op.watched.Load() && idle >= limit {
				op.cancel(fmt.Errorf("stalled: no progress for %s", limit))
				return
			}
		}
	}
}

func (d *Daemon) log(format string, args ...any) {
	if d.opts.Log != nil {
		d.opts.Log(fmt.Sprintf(format, args...))
	}
}
