package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/otakit/ota/internal/sysroot"
)

// Swap is what Rollback did: the deployments after the swap, described.
type Swap struct {
	Default, Rollback         *sysroot.Deployment
	DefaultInfo, RollbackInfo *DeploymentInfo
}

// Rollback makes the rollback deployment the default and the default the rollback, and
// records the outcome. Without a rollback deployment it refuses and changes nothing.
func Rollback(ctx context.Context, opts Options) (*Swap, error) {
	s, err := opts.OpenSysroot()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	deps := s.Deployments()
	if len(deps) < 2 {
		return nil, errors.New("no rollback deployment: nothing changed")
	}
	list := append([]*sysroot.Deployment{deps[1], deps[0]}, deps[2:]...)
	if err := writeRecorded(ctx, opts, s, "rollback", deps[0], deps[1], list, ""); err != nil {
		return nil, err
	}
	sw := &Swap{Default: deps[1], Rollback: deps[0]}
	if sw.DefaultInfo, err = Describe(s, deps[1]); err != nil {
		return nil, err
	}
	if sw.RollbackInfo, err = Describe(s, deps[0]); err != nil {
		return nil, err
	}
	return sw, nil
}

// writeRecorded makes list the sysroot's deployments, from being the default before and to
// after, and records the outcome of operation as the last result, with note as its
// message.
func writeRecorded(ctx context.Context, opts Options, s *sysroot.Sysroot, operation string, from, to *sysroot.Deployment, list []*sysroot.Deployment, note string) error {
	res := sysroot.Result{Operation: operation, From: from.Commit.String(), To: to.Commit.String(), Outcome: "success", Message: note}
	err := s.WriteDeployments(ctx, list)
	res.Time = time.Now().UTC().Truncate(time.Second)
	if err != nil {
		res.Outcome, res.Error, res.Message = "failure", err.Error(), ""
		if rerr := s.WriteResult(from.OSName, res); rerr != nil {
			opts.warn(rerr.Error())
		}
		return err
	}
	return s.WriteResult(to.OSName, res)
}

// Mark is what MarkGood or MarkBad did.
type Mark struct {
	// BootCounter is the state file written; Bootcount the count it holds now.
	BootCounter string `json:"boot_counter"`
	Bootcount   int64  `json:"bootcount"`
	// FellBack is true when MarkGood found the system booted from the rollback entry and
	// made that deployment the default.
	FellBack bool `json:"fell_back"`
}

// MarkGood records that the running system is healthy: the boot counter goes to 0. When
// the running system is not the default deployment (the boot script fell back to it), it
// first becomes the default, and the last result says so.
func MarkGood(ctx context.Context, opts Options) (*Mark, error) {
	return mark(ctx, opts, true)
}

// MarkBad arms an immediate fallback: the next boot starts the rollback deployment. It
// refuses, changing nothing, without a rollback deployment.
func MarkBad(ctx context.Context, opts Options) (*Mark, error) {
	return mark(ctx, opts, false)
}

func mark(ctx context.Context, opts Options, good bool) (*Mark, error) {
	cfg, err := opts.LoadConfig()
	if err != nil {
		return nil, err
	}
	b := sysroot.BootCounter{Path: cfg.BootCounter}
	m := &Mark{BootCounter: b.Path}
	if good {
		if m.FellBack, err = keepFallback(ctx, opts, b); err == nil {
			err = b.MarkGood()
		}
	} else {
		if err = requireRollback(opts); err == nil {
			err = b.MarkBad()
		}
	}
	if err != nil {
		return nil, err
	}
	if m.Bootcount, err = b.Count(); err != nil {
		return nil, err
	}
	return m, nil
}

// keepFallback makes the booted deployment the default when the boot script fell back to
// it, and records it; it reports whether it did.
func keepFallback(ctx context.Context, opts Options, b sysroot.BootCounter) (bool, error) {
	if !opts.knowsBooted() {
		return false, nil
	}
	s, err := opts.OpenSysroot()
	if err != nil {
		return false, err
	}
	defer s.Close()
	deps := s.Deployments()
	booted := opts.BootedDeployment(s)
	if booted == nil || len(deps) == 0 || booted == deps[0] {
		return false, nil
	}
	n, err := b.Count()
	if err != nil {
		return false, err
	}
	def := deps[0]
	list := append([]*sysroot.Deployment{booted}, slices.DeleteFunc(deps, func(d *sysroot.Deployment) bool { return d == booted })...)
	note := fmt.Sprintf("rolled back: %s failed to boot (bootcount %x), the boot script started %s", def.Name(), n, booted.Name())
	return true, writeRecorded(ctx, opts, s, "fallback", def, booted, list, note)
}

// requireRollback fails unless the sysroot has a deployment to fall back to.
func requireRollback(opts Options) error {
	s, err := opts.OpenSysroot()
	if err != nil {
		return err
	}
	defer s.Close()
	if len(s.Deployments()) < 2 {
		return errors.New("no rollback deployment to fall back to: nothing changed")
	}
	return nil
}
