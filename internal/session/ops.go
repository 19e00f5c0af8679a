package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/release"
	"github.com/otakit/ota/internal/sign"
	"github.com/otakit/ota/internal/sysroot"
	"github.com/otakit/ota/internal/update"
)

// Outcome is what pull, deploy, update or apply-bundle did.
type Outcome struct {
	// Pull is what was pulled; nil for deploy and apply-bundle.
	Pull *update.PullResult
	// Deployment is the new default deployment, nil when none was deployed, and Info its
	// description.
	Deployment *sysroot.Deployment
	Info       *DeploymentInfo
	// Previous is the default deployment before, now the rollback when one was deployed.
	Previous *sysroot.Deployment
}

// ErrNothingToInstall is the error of Install when no pulled commit awaits deployment.
var ErrNothingToInstall = errors.New("nothing to install: no update was downloaded (or it is deployed already)")

// Check fetches and verifies the remote's summary and commit and compares the commit with
// the default deployment's, as update.Check does; the sysroot is locked only while its
// deployments are read.
func Check(ctx context.Context, opts Options) (*update.CheckResult, error) {
	cfg, keys, err := opts.remoteConfig(true)
	if err != nil {
		return nil, err
	}
	copts := update.CheckOptions{Ref: cfg.Ref, TrustedKeys: keys, AllowDowngrade: cfg.AllowDowngrade}
	if err := readBase(opts, &copts); err != nil {
		return nil, err
	}
	client, err := newClient(cfg, nil)
	if err != nil {
		return nil, err
	}
	return update.Check(ctx, client, copts)
}

// readBase sets the default and base commits of copts from the sysroot's deployments.
func readBase(opts Options, copts *update.CheckOptions) error {
	s, err := opts.OpenSysroot()
	if err != nil {
		return err
	}
	defer s.Close()
	deps := s.Deployments()
	if len(deps) == 0 {
		return nil
	}
	copts.Default = &deps[0].Commit
	base := deps[0]
	if b := opts.BootedDeployment(s); b != nil {
		base = b
	}
	cm, _, err := s.Repo().ReadCommit(base.Commit)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", base.Name(), err)
	}
	copts.Base = &cm
	return nil
}

// Pull downloads and verifies the remote's commit into the sysroot's repository without
// deploying it (update.Pull); the ref update.PendingRef then names it.
func Pull(ctx context.Context, opts Options) (*Outcome, error) {
	return pullUpdate(ctx, opts, true)
}

// Update pulls the remote's commit and deploys it when it is not the default deployment's
// already, and records the outcome as the last result.
func Update(ctx context.Context, opts Options) (*Outcome, error) {
	return pullUpdate(ctx, opts, false)
}

func pullUpdate(ctx context.Context, opts Options, pullOnly bool) (*Outcome, error) {
	ss, err := Open(opts, true)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	client, err := newClient(ss.Config, opts.progress())
	if err != nil {
		return nil, err
	}
	res, err := update.Pull(ctx, client, ss.Sysroot.Repo(), ss.pullOptions())
	if err != nil {
		if pullOnly {
			return nil, err
		}
		return nil, ss.record("update", nil, err)
	}
	out := &Outcome{Pull: res, Previous: ss.Default}
	if !pullOnly && !res.Available {
		// The remote's commit is the default already: finish the cleanup a deploy killed
		// after its swap did not (the previous boot configuration, dropped deployments).
		if _, err := ss.Sysroot.CleanupBoot(); err != nil {
			return nil, err
		}
	}
	if pullOnly || !res.Available {
		return out, nil
	}
	to, err := ostree.ParseChecksum(res.Remote.Checksum)
	if err != nil {
		return nil, err
	}
	return ss.deployRecorded(ctx, "update", to, out)
}

// Deploy deploys rev (a commit or a ref of the sysroot's repository, such as
// update.PendingRef) as the new default deployment, and records the outcome.
func Deploy(ctx context.Context, opts Options, rev string) (*Outcome, error) {
	ss, err := Open(opts, false)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	commit, err := ss.Sysroot.Repo().Resolve(rev)
	if err != nil {
		return nil, fmt.Errorf("deploy %s: %w (pull first)", rev, err)
	}
	return ss.deployRecorded(ctx, "deploy", commit, &Outcome{Previous: ss.Default})
}

// Install deploys the commit that Pull pulled (update.PendingRef), as Deploy does, unless
// there is none or it is the default deployment's already (ErrNothingToInstall).
func Install(ctx context.Context, opts Options) (*Outcome, error) {
	ss, err := Open(opts, false)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	commit, err := ss.Sysroot.Repo().Resolve(update.PendingRef)
	if err != nil || commit == ss.Default.Commit {
		return nil, ErrNothingToInstall
	}
	return ss.deployRecorded(ctx, "deploy", commit, &Outcome{Previous: ss.Default})
}

// deployRecorded deploys commit, records the outcome of operation, and completes out.
func (ss *Session) deployRecorded(ctx context.Context, operation string, commit ostree.Checksum, out *Outcome) (*Outcome, error) {
	d, err := ss.deploy(ctx, commit)
	if err = ss.record(operation, &commit, err); err != nil {
		return nil, err
	}
	out.Deployment = d
	if out.Info, err = Describe(ss.Sysroot, d); err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyBundle applies the ota-build bundle at file into the sysroot's repository, every
// object verified, then deploys its target commit as Deploy does, and records the outcome.
func ApplyBundle(ctx context.Context, opts Options, file string) (*Outcome, error) {
	ss, err := Open(opts, false)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	to, err := ss.applyBundle(ctx, file)
	if err != nil {
		return nil, ss.record("apply-bundle", nil, err)
	}
	return ss.deployRecorded(ctx, "apply-bundle", to, &Outcome{Previous: ss.Default})
}

// applyBundle applies the bundle at file into the sysroot's repository and returns its
// target commit.
func (ss *Session) applyBundle(ctx context.Context, file string) (ostree.Checksum, error) {
	l, err := delta.Open(file, ss.keys)
	if errors.Is(err, sign.ErrBadSignature) {
		// The envelope of a signed bundle, which Open verifies: say what failed.
		return ostree.Checksum{}, fmt.Errorf("%s: its signature is not by a trusted key, or the bundle changed since it was signed", file)
	} else if err != nil {
		return ostree.Checksum{}, err
	}
	cm, err := ostree.ParseCommit(l.Commit)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("%s: %w", file, err)
	}
	if !ss.Config.AllowDowngrade {
		if err := release.CheckUpgrade(ss.baseMeta, &cm); err != nil {
			return ostree.Checksum{}, fmt.Errorf("%s: commit %s: %w", file, l.To, err)
		}
	}
	rep := ss.opts.progress()
	rep.Stage("apply", int64(len(l.Parts)))
	progress.Span(rep, 0, 0, update.PulledPercent)
	err = delta.Apply(ctx, ss.Sysroot.Repo(), l, delta.ApplyOptions{Keys: ss.keys, Progress: rep})
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("%s: %w", file, err)
	}
	rep.Done()
	return l.To, ss.Sysroot.Repo().WriteRef(update.PendingRef, l.To)
}

// Reboot runs the reboot command.
func Reboot(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "reboot")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return errors.New("reboot: " + err.Error())
	}
	return nil
}
