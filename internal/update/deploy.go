package update

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/release"
	"github.com/otakit/ota/internal/sysroot"
)

// DeployOptions configure Deploy.
type DeployOptions struct {
	// OSName is the stateroot to deploy in.
	OSName string
	// Refspec goes to the deployment's .origin file.
	Refspec string
	// TrustedKeys verify the commit's signature once more before it is deployed.
	TrustedKeys []ed25519.PublicKey
	// Base is the commit the downgrade check compares with (nil: none); AllowDowngrade
	// skips the check.
	Base           *ostree.Commit
	AllowDowngrade bool
	// Booted is the booted deployment (nil: unknown), which stays in the list even when it
	// is neither the default nor the rollback any more.
	Booted *sysroot.Deployment
	// Counter, when set, is reset just before the new deployment becomes the default, so
	// that the boot script gives it its full number of attempts. Before, not after: a crash
	// between the swap and the reset would leave the new default with the count of the
	// running system, and the boot script could fall back from it at its first boot; a
	// crash between the reset and the swap leaves the running system the default with a
	// fresh count, as mark-good would.
	Counter *sysroot.BootCounter
	// Progress receives the stages deploy and finalize, the end of an update's percent.
	Progress progress.Reporter
}

// Deploy makes commit, complete in the sysroot's repository (Pull), the new default
// deployment of opts.OSName, the previous default becoming the rollback: the commit's
// signature and the downgrade rule are checked first, then the tree is checked out with its
// /etc merged (sysroot.Sysroot.DeployTree), the boot counter reset and the boot
// configuration swapped in atomically (sysroot.Sysroot.WriteDefault). A failure before the
// swap leaves the boot configuration as it was.
func Deploy(ctx context.Context, s *sysroot.Sysroot, commit ostree.Checksum, opts DeployOptions) (*sysroot.Deployment, error) {
	rep := opts.Progress
	if rep == nil {
		rep = progress.Discard
	}
	rep.Stage("deploy", 0)
	progress.Span(rep, 0, pctApply, pctDeploy)
	if err := VerifyCommit(s.Repo(), commit, opts.TrustedKeys); err != nil {
		return nil, err
	}
	if opts.Base != nil && !opts.AllowDowngrade {
		cm, _, err := s.Repo().ReadCommit(commit)
		if err != nil {
			return nil, err
		}
		if err := release.CheckUpgrade(opts.Base, &cm); err != nil {
			return nil, fmt.Errorf("commit %s: %w", commit, err)
		}
	}
	d, err := s.DeployTree(ctx, commit, sysroot.DeployOptions{OSName: opts.OSName, Refspec: opts.Refspec})
	if err != nil {
		return nil, err
	}
	rep.Stage("finalize", 0)
	progress.Span(rep, 0, pctDeploy, 100)
	if opts.Counter != nil {
		if err := opts.Counter.MarkGood(); err != nil {
			return nil, err
		}
	}
	var keep []*sysroot.Deployment
	if opts.Booted != nil {
		keep = append(keep, opts.Booted)
	}
	if err := s.WriteDefault(ctx, d, keep...); err != nil {
		return nil, err
	}
	rep.Done()
	return d, nil
}

// VerifyCommit checks that commit, in repo, is complete in its metadata and carries an
// ed25519 signature by one of keys in its detached metadata.
func VerifyCommit(repo *ostree.Repo, commit ostree.Checksum, keys []ed25519.PublicKey) error {
	if len(keys) == 0 {
		return errors.New("no trusted keys: nothing could be verified")
	}
	_, data, err := repo.ReadCommit(commit)
	if err != nil {
		return fmt.Errorf("commit %s: %w", commit, err)
	}
	meta, err := repo.ReadDetachedMetadata(commit)
	if err != nil {
		return fmt.Errorf("commit %s: %w", commit, err)
	}
	if err := verifyMeta(keys, data, meta); err != nil {
		return fmt.Errorf("commit %s: %w", commit, err)
	}
	return nil
}
