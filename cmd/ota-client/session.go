package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/remote"
	"github.com/otakit/ota/internal/sysroot"
	"github.com/otakit/ota/internal/update"
)

// session is what the commands that change the deployments share: the configuration, the
// trusted keys and the sysroot, locked from openSession to close.
type session struct {
	c        *cli.Context
	cfg      *clientconfig.Config
	keys     []ed25519.PublicKey
	s        *sysroot.Sysroot
	def      *sysroot.Deployment // the default deployment
	booted   *sysroot.Deployment // nil when unknown (--sysroot not / and no --cmdline)
	base     *sysroot.Deployment // the booted deployment, else the default
	baseMeta *ostree.Commit      // base's commit
	rep      progress.Reporter
}

// openSession loads the configuration and the trusted keys and opens the sysroot, which
// must have a deployment: the stateroot and the update's base are taken from it. needRemote
// requires a url and a ref in the configuration.
func openSession(c *cli.Context, needRemote bool) (*session, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	if needRemote && (cfg.URL == "" || cfg.Ref == "") {
		return nil, errors.New("configuration: the remote needs a url and a ref")
	}
	keys, err := cfg.TrustedPublicKeys()
	if err != nil {
		return nil, err
	}
	s, err := openSysroot(c)
	if err != nil {
		return nil, err
	}
	ss := &session{c: c, cfg: cfg, keys: keys, s: s, rep: otacli.Progress(c)}
	deps := s.Deployments()
	if len(deps) == 0 {
		s.Close()
		return nil, fmt.Errorf("%s: no deployment to update (flash an image made by ota-build first)", c.String("sysroot"))
	}
	ss.def, ss.base = deps[0], deps[0]
	if ss.booted, err = booted(c, s); err != nil {
		s.Close()
		return nil, err
	} else if ss.booted != nil {
		ss.base = ss.booted
	}
	cm, _, err := s.Repo().ReadCommit(ss.base.Commit)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("deployment %s: %w", ss.base.Name(), err)
	}
	ss.baseMeta = &cm
	return ss, nil
}

func (ss *session) close() { ss.s.Close() }

// client returns a client of the configured remote, reporting its bytes to ss.rep.
func (ss *session) client() (*remote.Client, error) {
	return remote.New(ss.cfg.URL, remote.Options{
		TLS:      remote.TLSOptions{CAFile: ss.cfg.TLS.CA, CertFile: ss.cfg.TLS.Cert, KeyFile: ss.cfg.TLS.Key},
		MaxRate:  ss.cfg.MaxRate,
		Progress: ss.rep,
	})
}

// pullOptions are the options of a pull from the configured remote.
func (ss *session) pullOptions() update.PullOptions {
	def := ss.def.Commit
	bases := []ostree.Checksum{ss.base.Commit}
	for _, d := range ss.s.Deployments() {
		if d.Commit != ss.base.Commit {
			bases = append(bases, d.Commit)
		}
	}
	return update.PullOptions{
		CheckOptions: update.CheckOptions{Ref: ss.cfg.Ref, TrustedKeys: ss.keys, AllowDowngrade: ss.cfg.AllowDowngrade,
			Default: &def, Base: ss.baseMeta},
		Bases:    bases,
		Progress: ss.rep,
	}
}

// deploy deploys commit as the new default deployment of the default's stateroot.
func (ss *session) deploy(commit ostree.Checksum) (*sysroot.Deployment, error) {
	refspec := ss.cfg.Ref
	if ss.cfg.Remote != "" && refspec != "" {
		refspec = ss.cfg.Remote + ":" + refspec
	}
	opts := update.DeployOptions{OSName: ss.def.OSName, Refspec: refspec, TrustedKeys: ss.keys,
		Base: ss.baseMeta, AllowDowngrade: ss.cfg.AllowDowngrade, Booted: ss.booted, Progress: ss.rep}
	// The counter lives on the boot partition; a device without one mounted has none.
	if st, err := os.Stat(filepath.Dir(ss.cfg.BootCounter)); err == nil && st.IsDir() {
		opts.Counter = &sysroot.BootCounter{Path: ss.cfg.BootCounter}
	}
	return update.Deploy(ss.c.Context, ss.s, commit, opts)
}

// record writes the last result of operation, which went from the default deployment to
// commit to (nil when it failed before knowing it) with outcome err.
func (ss *session) record(operation string, to *ostree.Checksum, err error) error {
	res := sysroot.Result{Operation: operation, From: ss.def.Commit.String(), Outcome: "success",
		Time: time.Now().UTC().Truncate(time.Second)}
	if to != nil {
		res.To = to.String()
	}
	if err != nil {
		res.Outcome, res.Error = "failure", otacli.OneLine(err.Error())
	}
	if rerr := ss.s.WriteResult(ss.def.OSName, res); rerr != nil {
		if err != nil {
			otacli.Warn(ss.c, []string{rerr.Error()})
			return err
		}
		return rerr
	}
	return err
}
