package apps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sysroot"
)

// Switch makes commit c, complete and verified in s's repository, the application's
// current version, the current one becoming the previous: c is checked out hardlinked
// into a temporary directory renamed COMMIT.SERIAL once complete and synced, then the link
// previous and the link current are each replaced by a rename. A kill before the second
// rename leaves the version that was current current; after it, the new one. The refs
// follow the links, the pending ref goes, and the checkouts no link names are removed.
// ref is recorded as the ref to update from.
func (a *App) Switch(ctx context.Context, s *sysroot.Sysroot, c ostree.Checksum, ref string) error {
	cm, _, err := s.Repo().ReadCommit(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.Dir, 0o755); err != nil {
		return err
	}
	name, err := a.nextDir(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(a.Dir, ".tmp-"+name)
	if err := s.Checkout(ctx, c, tmp); err != nil {
		return err
	}
	// O_EXCL: a file of the tree of that name is a hardlink to a repository object.
	f, err := os.OpenFile(filepath.Join(tmp, ExecFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("application %s: %w", a.Name, err)
	}
	_, err = f.WriteString(metaString(&cm, MetaExec) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(a.Dir, name)); err != nil {
		return err
	}
	if err := a.writeFile("ref", ref+"\n"); err != nil {
		return err
	}
	if err := syncfs(a.Dir); err != nil {
		return err
	}
	if _, cur, ok, err := a.Link("current"); err != nil {
		return err
	} else if ok {
		if err := a.setLink("previous", cur); err != nil {
			return err
		}
	}
	if err := a.setLink("current", name); err != nil {
		return err
	}
	return a.settle()
}

// Rollback makes the previous version current and the current one previous.
func (a *App) Rollback() error {
	_, prev, ok, err := a.Link("previous")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("application %s: no previous version to roll back to", a.Name)
	}
	_, cur, _, err := a.Link("current")
	if err != nil {
		return err
	}
	// current first: a kill between the renames leaves the version asked for running.
	if err := a.setLink("current", prev); err != nil {
		return err
	}
	if err := a.setLink("previous", cur); err != nil {
		return err
	}
	return a.settle()
}

// Remove removes the application: its current link first (it is no longer installed),
// then its checkouts and refs; Repair finishes a removal a kill interrupted.
func (a *App) Remove() error {
	if err := os.Remove(filepath.Join(a.Dir, "current")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := syncDir(a.Dir); err != nil {
		return err
	}
	return a.Repair()
}

// settle syncs the directory, points the refs at what the links name, drops the pending
// ref and removes the checkouts that no link names.
func (a *App) settle() error {
	if err := syncDir(a.Dir); err != nil {
		return err
	}
	if err := a.syncRefs(); err != nil {
		return err
	}
	if err := a.deleteRef("pending"); err != nil {
		return err
	}
	_, cur, _, err := a.Link("current")
	if err != nil {
		return err
	}
	_, prev, _, err := a.Link("previous")
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(a.Dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if dirRE.MatchString(e.Name()) && e.Name() != cur && e.Name() != prev {
			if err := removeAll(filepath.Join(a.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// setLink replaces the link which by one to target with a rename.
func (a *App) setLink(which, target string) error {
	tmp := filepath.Join(a.Dir, ".tmp-link-"+which)
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(a.Dir, which)); err != nil {
		return err
	}
	return syncDir(a.Dir)
}

// writeFile replaces the application directory's file name with data with a rename.
func (a *App) writeFile(name, data string) error {
	tmp := filepath.Join(a.Dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(a.Dir, name))
}

// Info describes the application, or returns nil when it is not installed.
func (a *App) Info() (*Info, error) {
	c, cur, ok, err := a.Link("current")
	if err != nil || !ok {
		return nil, err
	}
	ref, err := a.InstalledRef()
	if err != nil {
		return nil, err
	}
	cm, _, err := a.repo.ReadCommit(c)
	if err != nil {
		return nil, fmt.Errorf("application %s: %w", a.Name, err)
	}
	info := &Info{Name: a.Name, Ref: ref, Current: c.String(), Version: cm.Version(),
		Exec: metaString(&cm, MetaExec), Path: filepath.Join(a.Dir, cur)}
	if p, _, ok, err := a.Link("previous"); err != nil {
		return nil, err
	} else if ok {
		info.Previous = p.String()
		if pm, _, err := a.repo.ReadCommit(p); err == nil {
			info.PreviousVersion = pm.Version()
		}
	}
	return info, nil
}

// List describes the applications installed in dir.
func List(repo *ostree.Repo, dir string) ([]Info, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	out := []Info{}
	for _, e := range ents {
		if CheckName(e.Name()) != nil || !e.IsDir() {
			continue
		}
		a := &App{Name: e.Name(), Dir: filepath.Join(dir, e.Name()), repo: repo}
		info, err := a.Info()
		if err != nil {
			return nil, err
		}
		if info != nil {
			out = append(out, *info)
		}
	}
	return out, nil
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncfs flushes the filesystem that holds p: the checkout's hardlinks and directories.
func syncfs(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
