// Package session runs the device client's operations on a sysroot: check, pull, deploy,
// update, apply-bundle, rollback, mark-good and mark-bad, each as the ota-client command
// of that name does it, recording its last result. The ota-client commands and the daemon
// (internal/daemon) share it, so that an update from the command line and one over D-Bus
// are the same code.
package session

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/remote"
	"github.com/otakit/ota/internal/sysroot"
	"github.com/otakit/ota/internal/update"
)

// Options name the device an operation works on and how it reports.
type Options struct {
	// Sysroot is the device's root: the physical sysroot, whose ostree/ and boot/ are
	// managed ("/" on the device).
	Sysroot string
	// Config is client.yaml's path on the device (default clientconfig.DefaultFile).
	Config string
	// Cmdline is the kernel command line of the running system, whose ostree= argument
	// names the booted deployment; empty when none is booted.
	Cmdline string
	// Booted, when set, names the booted deployment as OSNAME/COMMIT.SERIAL instead of
	// Cmdline: the ostree= link of the command line no longer resolves once an update
	// swapped the boot version, so a process that outlives an update (the daemon) finds the
	// booted deployment once, at its start (see BootedName).
	Booted string
	// Root, when set and neither Booted nor Cmdline is, is the running system's root ("/"):
	// the booted deployment is the one mounted there, found by device and inode as libostree
	// finds it (sysroot.Sysroot.RootDeployment), which stays right after the boot
	// configuration is rewritten.
	Root string
	// Progress receives the progress of pulls, bundles and deployments (nil: none).
	Progress progress.Reporter
	// Warn receives the warnings of an operation that fails: a last result that could not
	// be recorded (nil: dropped).
	Warn func(msg string)
	// MaxRate, when set, replaces the configuration's max-rate (bytes per second; 0: no cap).
	MaxRate *int64
	// Waiting, when set, is called before an operation waits for the sysroot's lock, which
	// another process (ota-client, its daemon, ostree) holds.
	Waiting func()
}

// LoadConfig reads the configuration opts name.
func (opts Options) LoadConfig() (*clientconfig.Config, error) {
	return clientconfig.Load(opts.Sysroot, opts.Config)
}

// BootedDeployment returns the booted deployment of s, or nil when it is unknown.
func (opts Options) BootedDeployment(s *sysroot.Sysroot) *sysroot.Deployment {
	switch {
	case opts.Booted == "" && opts.Cmdline == "" && opts.Root != "":
		d, err := s.RootDeployment(opts.Root)
		if err != nil {
			return nil // a root that cannot be read is not a deployment's
		}
		return d
	case opts.Booted == "":
		return s.Booted(opts.Cmdline)
	}
	for _, d := range s.Deployments() {
		if BootedName(d) == opts.Booted {
			return d
		}
	}
	return nil
}

// knowsBooted reports whether opts can tell the booted deployment.
func (opts Options) knowsBooted() bool {
	return opts.Cmdline != "" || opts.Booted != "" || opts.Root != ""
}

// BootedName is the name of deployment d as Options.Booted takes it.
func BootedName(d *sysroot.Deployment) string { return d.OSName + "/" + d.Name() }

// OpenSysroot opens, and locks, the sysroot opts name.
func (opts Options) OpenSysroot() (*sysroot.Sysroot, error) {
	return sysroot.Open(opts.Sysroot, sysroot.OpenOptions{Waiting: opts.Waiting})
}

// ReadSysroot opens the sysroot opts name for a report: read-only, without waiting for an
// operation that holds its lock (see sysroot.OpenOptions.ReadOnly).
func (opts Options) ReadSysroot() (*sysroot.Sysroot, error) {
	return sysroot.Open(opts.Sysroot, sysroot.OpenOptions{ReadOnly: true})
}

func (opts Options) progress() progress.Reporter {
	if opts.Progress == nil {
		return progress.Discard
	}
	return opts.Progress
}

func (opts Options) warn(msg string) {
	if opts.Warn != nil {
		opts.Warn(msg)
	}
}

// Session is what the operations that change the deployments share: the configuration, the
// trusted keys and the sysroot, locked from Open to Close.
type Session struct {
	opts Options
	// Config is the configuration; its MaxRate is Options.MaxRate when that is set.
	Config *clientconfig.Config
	keys   []ed25519.PublicKey
	// Sysroot is the locked sysroot.
	Sysroot *sysroot.Sysroot
	// Default is the default deployment at Open.
	Default *sysroot.Deployment
	// Booted is the booted deployment, nil when unknown (no Options.Cmdline nor Booted).
	Booted *sysroot.Deployment
	// Base is the booted deployment, else the default: the downgrade check's reference.
	base     *sysroot.Deployment
	baseMeta *ostree.Commit
}

// remoteConfig loads the configuration, with Options.MaxRate applied, and the trusted keys.
// needRemote requires a url and a ref in the configuration.
func (opts Options) remoteConfig(needRemote bool) (*clientconfig.Config, []ed25519.PublicKey, error) {
	cfg, err := opts.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	if needRemote && (cfg.URL == "" || cfg.Ref == "") {
		return nil, nil, errors.New("configuration: the remote needs a url and a ref")
	}
	if opts.MaxRate != nil {
		cfg.MaxRate = *opts.MaxRate
	}
	keys, err := cfg.TrustedPublicKeys()
	if err != nil {
		return nil, nil, err
	}
	return cfg, keys, nil
}

// Open loads the configuration and the trusted keys and opens the sysroot, which must have
// a deployment: the stateroot and the update's base are taken from it. needRemote requires
// a url and a ref in the configuration.
func Open(opts Options, needRemote bool) (*Session, error) {
	cfg, keys, err := opts.remoteConfig(needRemote)
	if err != nil {
		return nil, err
	}
	s, err := opts.OpenSysroot()
	if err != nil {
		return nil, err
	}
	ss := &Session{opts: opts, Config: cfg, keys: keys, Sysroot: s}
	deps := s.Deployments()
	if len(deps) == 0 {
		s.Close()
		return nil, fmt.Errorf("%s: no deployment to update (flash an image made by ota-build first)", opts.Sysroot)
	}
	ss.Default, ss.base = deps[0], deps[0]
	if ss.Booted = opts.BootedDeployment(s); ss.Booted != nil {
		ss.base = ss.Booted
	}
	cm, _, err := s.Repo().ReadCommit(ss.base.Commit)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("deployment %s: %w", ss.base.Name(), err)
	}
	ss.baseMeta = &cm
	return ss, nil
}

// Close releases the sysroot's lock.
func (ss *Session) Close() { ss.Sysroot.Close() }

// newClient returns a client of the remote of cfg, reporting its bytes to rep.
func newClient(cfg *clientconfig.Config, rep progress.Reporter) (*remote.Client, error) {
	return remote.New(cfg.URL, remote.Options{
		TLS:      remote.TLSOptions{CAFile: cfg.TLS.CA, CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key},
		MaxRate:  cfg.MaxRate,
		Progress: rep,
	})
}

// pullOptions are the options of a pull from the configured remote.
func (ss *Session) pullOptions() update.PullOptions {
	def := ss.Default.Commit
	bases := []ostree.Checksum{ss.base.Commit}
	for _, d := range ss.Sysroot.Deployments() {
		if d.Commit != ss.base.Commit {
			bases = append(bases, d.Commit)
		}
	}
	return update.PullOptions{
		CheckOptions: update.CheckOptions{Ref: ss.Config.Ref, TrustedKeys: ss.keys, AllowDowngrade: ss.Config.AllowDowngrade,
			Default: &def, Base: ss.baseMeta},
		Bases:    bases,
		Progress: ss.opts.progress(),
	}
}

// deploy deploys commit as the new default deployment of the default's stateroot.
func (ss *Session) deploy(ctx context.Context, commit ostree.Checksum) (*sysroot.Deployment, error) {
	refspec := ss.Config.Ref
	if ss.Config.Remote != "" && refspec != "" {
		refspec = ss.Config.Remote + ":" + refspec
	}
	opts := update.DeployOptions{OSName: ss.Default.OSName, Refspec: refspec, TrustedKeys: ss.keys,
		Base: ss.baseMeta, AllowDowngrade: ss.Config.AllowDowngrade, Booted: ss.Booted, Progress: ss.opts.progress()}
	// The counter lives on the boot partition; a device without one mounted has none.
	if st, err := os.Stat(filepath.Dir(ss.Config.BootCounter)); err == nil && st.IsDir() {
		opts.Counter = &sysroot.BootCounter{Path: ss.Config.BootCounter}
	}
	return update.Deploy(ctx, ss.Sysroot, commit, opts)
}

// record writes the last result of operation, which went from the default deployment to
// commit to (nil when it failed before knowing it) with outcome err, and returns err, or
// the recording's error when err is nil.
func (ss *Session) record(operation string, to *ostree.Checksum, err error) error {
	res := sysroot.Result{Operation: operation, From: ss.Default.Commit.String(), Outcome: "success",
		Time: time.Now().UTC().Truncate(time.Second)}
	if to != nil {
		res.To = to.String()
	}
	if err != nil {
		res.Outcome, res.Error = "failure", otacli.OneLine(err.Error())
	}
	if rerr := ss.Sysroot.WriteResult(ss.Default.OSName, res); rerr != nil {
		if err != nil {
			ss.opts.warn(rerr.Error())
			return err
		}
		return rerr
	}
	return err
}
