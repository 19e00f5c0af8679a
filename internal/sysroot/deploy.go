package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// DeployOptions describe a new deployment.
type DeployOptions struct {
	// OSName is the stateroot, initialised by Init.
	OSName string
	// Kargs are the kernel arguments; nil inherits those of the stateroot's current
	// default deployment.
	Kargs []string
	// Refspec is written to the deployment's .origin file (default: the commit checksum).
	Refspec string
}

// DeployTree checks out commit, which must be in the sysroot's repository (see Pull), as a
// new deployment of stateroot opts.OSName, as ostree_sysroot_deploy_tree does: files are
// hard links to the repository's objects, directories get their owners, modes and xattrs;
// etc is a copy of usr/etc with the changes of the stateroot's current default deployment
// merged in (see mergeEtc); the .origin file is written and the kernel installed in
// boot/ostree/<os>-<bootcsum>/. The deployment is not booted until WriteDeployments (or
// WriteDefault) lists it.
func (s *Sysroot) DeployTree(ctx context.Context, commit ostree.Checksum, opts DeployOptions) (*Deployment, error) {
	if err := s.writable(); err != nil {
		return nil, err
	}
	if err := s.requireStateroot(opts.OSName); err != nil {
		return nil, err
	}
	merge := s.mergeDeployment(opts.OSName)
	d := &Deployment{OSName: opts.OSName, Commit: commit, Kargs: opts.Kargs}
	for _, o := range s.deployments {
		if o.OSName == d.OSName && o.Commit == d.Commit && o.Serial >= d.Serial {
			d.Serial = o.Serial + 1
		}
	}
	if d.Kargs == nil && merge != nil {
		d.Kargs = merge.Kargs
	}
	dir := s.DeploymentDir(d)
	if err := removeTree(dir); err != nil { // leftover of an interrupted deployment
		return nil, err
	}
	if err := s.Checkout(ctx, commit, dir); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(filepath.Join(dir, "usr/etc")); err == nil {
		if err := s.copyTree(filepath.Join(dir, "usr/etc"), filepath.Join(dir, "etc")); err != nil {
			return nil, fmt.Errorf("sysroot: copying usr/etc: %w", err)
		}
		if merge != nil {
			md := s.DeploymentDir(merge)
			if err := s.mergeEtc(filepath.Join(md, "usr/etc"), filepath.Join(md, "etc"), filepath.Join(dir, "etc")); err != nil {
				return nil, fmt.Errorf("sysroot: merging /etc: %w", err)
			}
		}
	}
	refspec := opts.Refspec
	if refspec == "" {
		refspec = commit.String()
	}
	if err := s.writeFile(dir+".origin", []byte("[origin]\nrefspec="+refspec+"\n")); err != nil {
		return nil, err
	}
	sel := filepath.Join(s.path, "ostree/deploy", d.OSName, "var/.ostree-selabeled")
	if _, err := os.Stat(sel); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(sel, nil, 0o644); err != nil {
			return nil, fmt.Errorf("sysroot: %w", err)
		}
	}
	kern, err := findKernel(dir)
	if err != nil {
		return nil, err
	}
	d.BootCsum = kern.bootCsum
	if err := s.installKernel(d.OSName, kern); err != nil {
		return nil, err
	}
	return d, nil
}

// Checkout checks out commit, which must be in the sysroot's repository, at dir, which must
// not exist, as DeployTree checks out a deployment: files and symlinks are hardlinks to the
// repository's objects (no second copy), directories get the commit's owners, modes and
// xattrs. Applications are checked out with it (internal/apps).
func (s *Sysroot) Checkout(ctx context.Context, commit ostree.Checksum, dir string) error {
	cm, _, err := s.repo.ReadCommit(commit)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := s.checkout(ctx, cm.RootTree, cm.RootMeta, dir); err != nil {
		return fmt.Errorf("sysroot: checking out %s: %w", commit, err)
	}
	return nil
}

// checkout materialises a tree at dir: files and symlinks are hardlinks to the bare
// repository's objects; directories get their dirmeta's owner, mode and xattrs and mtime 0.
// When the attributes go to disk (a device's deploy), subdirectories are checked out on
// several goroutines: the hard links of a Debian system take most of a deploy's time.
func (s *Sysroot) checkout(ctx context.Context, tree, meta ostree.Checksum, dir string) error {
	var sem chan struct{} // nil: one goroutine (recording attributes is not safe for more)
	if _, ok := s.attrs.(onDisk); ok {
		sem = make(chan struct{}, 2*runtime.NumCPU())
	}
	return s.checkoutDir(ctx, tree, meta, dir, sem)
}

// checkoutDir checks out one directory, its subdirectories on a goroutine of their own
// while sem has room.
func (s *Sysroot) checkoutDir(ctx context.Context, tree, meta ostree.Checksum, dir string, sem chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := s.repo.ReadDirMeta(meta)
	if err != nil {
		return err
	}
	t, err := s.repo.ReadDirTree(tree)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for _, f := range t.Files {
		obj := s.repo.ObjectPath(f.Checksum, ostree.ObjFile)
		if err := s.attrs.link(f.Checksum, obj, filepath.Join(dir, f.Name)); err != nil {
			return err
		}
	}
	errs := make([]error, len(t.Dirs))
	var wg sync.WaitGroup
	for i, sub := range t.Dirs {
		p := filepath.Join(dir, sub.Name)
		select {
		case sem <- struct{}{}:
			wg.Go(func() {
				errs[i] = s.checkoutDir(ctx, sub.Tree, sub.Meta, p, sem)
				<-sem
			})
			continue
		default:
		}
		if errs[i] = s.checkoutDir(ctx, sub.Tree, sub.Meta, p, sem); errs[i] != nil {
			break
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := s.attrs.set(dir, unix.S_IFDIR, m); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{{}, {}}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyTree copies a directory tree with owners, modes and xattrs (real copies, no links).
func (s *Sysroot) copyTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := s.copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported file type", src)
	}
	return s.copyAttrs(src, dst, &st)
}

func (s *Sysroot) copyAttrs(src, dst string, st *unix.Stat_t) error {
	m, err := s.attrs.get(src, st)
	if err != nil {
		return err
	}
	return s.attrs.set(dst, st.Mode&unix.S_IFMT, m)
}

// writeFile writes a file and, unless nosync, flushes it to disk.
func (s *Sysroot) writeFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && !s.nosync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}
