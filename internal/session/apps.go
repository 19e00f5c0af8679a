package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/otakit/ota/internal/apps"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/update"
)

// AppOutcome is what an application install, update, rollback or removal did.
type AppOutcome struct {
	// Pull is what was pulled (install and update).
	Pull *update.PullResult `json:"pull,omitempty"`
	// App is the application now (nil once removed).
	App *apps.Info `json:"app"`
	// Changed is true when the current version changed.
	Changed bool `json:"changed"`
}

// openApp opens the session and the application name of the default deployment's
// stateroot.
func openApp(opts Options, name string) (*Session, *apps.App, error) {
	if err := apps.CheckName(name); err != nil {
		return nil, nil, err
	}
	ss, err := Open(opts, false)
	if err != nil {
		return nil, nil, err
	}
	a, err := apps.Open(ss.Sysroot.Repo(), ss.appsDir(), name)
	if err != nil {
		ss.Close()
		return nil, nil, err
	}
	return ss, a, nil
}

func (ss *Session) appsDir() string { return apps.Dir(ss.opts.Sysroot, ss.Default.OSName) }

// ListApps describes the applications installed in the default deployment's stateroot.
func ListApps(opts Options) ([]apps.Info, error) {
	s, err := opts.ReadSysroot()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	deps := s.Deployments()
	if len(deps) == 0 {
		return []apps.Info{}, nil
	}
	return apps.List(s.Repo(), apps.Dir(opts.Sysroot, deps[0].OSName))
}

// InstallApp pulls application name from ref (default: apps/NAME/MACHINE/stable) into the
// sysroot's repository, verified as an OS commit is, and makes it current; an installed
// application is updated from ref.
func InstallApp(ctx context.Context, opts Options, name, ref string) (*AppOutcome, error) {
	if ref == "" {
		ref = apps.Ref(name, apps.Machine(), apps.DefaultChannel)
	}
	return pullApp(ctx, opts, name, ref)
}

// UpdateApp pulls the commit of the ref application name was installed from and makes it
// current when it is not already.
func UpdateApp(ctx context.Context, opts Options, name string) (*AppOutcome, error) {
	return pullApp(ctx, opts, name, "")
}

func pullApp(ctx context.Context, opts Options, name, ref string) (*AppOutcome, error) {
	ss, a, err := openApp(opts, name)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	installed, err := a.Installed()
	if err != nil {
		return nil, err
	}
	if ref == "" {
		if !installed {
			return nil, fmt.Errorf("application %s is not installed", name)
		}
		if ref, err = a.InstalledRef(); err != nil {
			return nil, fmt.Errorf("application %s: %w", name, err)
		}
	}
	if err := apps.CheckRef(name, ref); err != nil {
		return nil, err
	}
	if ss.Config.URL == "" {
		return nil, errors.New("configuration: the remote needs a url")
	}
	client, err := newClient(ss.Config, ss.opts.progress())
	if err != nil {
		return nil, err
	}
	popts := update.PullOptions{
		CheckOptions: update.CheckOptions{Ref: ref, TrustedKeys: ss.keys, AllowDowngrade: ss.Config.AllowDowngrade,
			Accept: apps.Accept(name, ss.baseMeta.Version())},
		PendingRef: a.RefName("pending"),
		Progress:   ss.opts.progress(),
	}
	// The bases of a static delta are the application's versions; without any, the OS's
	// commits, of which no delta is made: the objects the OS shares are not fetched again.
	for _, which := range []string{"current", "previous"} {
		if c, _, ok, err := a.Link(which); err != nil {
			return nil, err
		} else if ok {
			popts.Bases = append(popts.Bases, c)
		}
	}
	if len(popts.Bases) > 0 {
		cur := popts.Bases[0]
		popts.Default = &cur
		cm, _, err := ss.Sysroot.Repo().ReadCommit(cur)
		if err != nil {
			return nil, fmt.Errorf("application %s: %w", name, err)
		}
		popts.Base = &cm
	} else {
		for _, d := range ss.Sysroot.Deployments() {
			popts.Bases = append(popts.Bases, d.Commit)
		}
	}
	res, err := update.Pull(ctx, client, ss.Sysroot.Repo(), popts)
	if err != nil {
		return nil, err
	}
	out := &AppOutcome{Pull: res}
	if res.Available {
		c, err := ostree.ParseChecksum(res.Remote.Checksum)
		if err != nil {
			return nil, err
		}
		if err := update.VerifyCommit(ss.Sysroot.Repo(), c, ss.keys); err != nil {
			return nil, err
		}
		if err := a.Switch(ctx, ss.Sysroot, c, ref); err != nil {
			return nil, fmt.Errorf("application %s: %w", name, err)
		}
		out.Changed = true
	}
	out.App, err = a.Info()
	return out, err
}

// RollbackApp makes the previous version of application name current again.
func RollbackApp(opts Options, name string) (*AppOutcome, error) {
	ss, a, err := openApp(opts, name)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	if err := a.Rollback(); err != nil {
		return nil, err
	}
	info, err := a.Info()
	return &AppOutcome{App: info, Changed: true}, err
}

// RemoveApp removes application name: its checkouts and the refs that kept its commits
// (cleanup then frees the objects no one else uses).
func RemoveApp(opts Options, name string) (*AppOutcome, error) {
	ss, a, err := openApp(opts, name)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	installed, err := a.Installed()
	if err != nil {
		return nil, err
	}
	if !installed {
		return nil, fmt.Errorf("application %s is not installed", name)
	}
	return &AppOutcome{Changed: true}, a.Remove()
}
