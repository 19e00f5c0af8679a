package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Cleanup removes what the current deployment list does not use, as ostree_sysroot_cleanup
// does: the boot configuration of the other boot version, the unused ostree/boot.N.M
// links, kernels in boot/ostree that no deployment boots, deployments not in the list
// (a tree deployed but never written, or dropped from the list) and the deployment refs
// ostree/N/M/I of earlier lists. WriteDeployments ends with it; calling it again finishes
// a cleanup an interruption stopped.
func (s *Sysroot) Cleanup() error {
	if err := s.cleanup(); err != nil {
		return fmt.Errorf("sysroot: cleaning up: %w", err)
	}
	return nil
}

var kernelDirRE = regexp.MustCompile(`^(.+)-([0-9a-f]{64})$`)

func (s *Sysroot) cleanup() error {
	var errs []error
	rm := func(p string) {
		if err := removeTree(p); err != nil {
			errs = append(errs, err)
		}
	}
	bv, m, other := s.bootversion, s.subbootversion, 1-s.bootversion
	rm(filepath.Join(s.path, fmt.Sprintf("boot/loader.%d", other)))
	ostreeDir := filepath.Join(s.path, "ostree")
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", other)))
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.0", other)))
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.1", other)))
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.%d", bv, 1-m)))

	keepKernels := map[string]bool{}
	keepDeploys := map[string]bool{}
	keepRefs := map[string]bool{}
	for i, d := range s.deployments {
		keepKernels[d.OSName+"-"+d.BootCsum] = true
		keepDeploys[d.OSName+"/"+d.Name()] = true
		keepRefs[fmt.Sprintf("ostree/%d/%d/%d", bv, m, i)] = true
	}
	kdir := filepath.Join(s.path, "boot/ostree")
	ents, _ := os.ReadDir(kdir)
	for _, e := range ents {
		if kernelDirRE.MatchString(e.Name()) && !keepKernels[e.Name()] {
			rm(filepath.Join(kdir, e.Name()))
		}
	}
	roots, _ := os.ReadDir(filepath.Join(ostreeDir, "deploy"))
	for _, r := range roots {
		dd := filepath.Join(ostreeDir, "deploy", r.Name(), "deploy")
		ents, _ := os.ReadDir(dd)
		for _, e := range ents {
			name := strings.TrimSuffix(e.Name(), ".origin")
			if !deployRE.MatchString("../../../deploy/"+r.Name()+"/deploy/"+name) || keepDeploys[r.Name()+"/"+name] {
				continue
			}
			rm(filepath.Join(dd, e.Name()))
		}
	}

	refs, err := s.repo.ListRefs()
	if err != nil {
		errs = append(errs, err)
	}
	var stale []string
	for _, r := range refs {
		if strings.HasPrefix(r.Name, "ostree/") && !keepRefs[r.Name] {
			stale = append(stale, r.Name)
		}
	}
	sort.Strings(stale)
	for _, r := range stale {
		if err := os.Remove(filepath.Join(s.repo.Path, "refs/heads", r)); err != nil {
			errs = append(errs, err)
		}
	}
	// Remove the emptied ref directories (deepest first).
	for _, d := range []string{"ostree/0/0", "ostree/0/1", "ostree/1/0", "ostree/1/1", "ostree/0", "ostree/1"} {
		os.Remove(filepath.Join(s.repo.Path, "refs/heads", d))
	}
	return errors.Join(errs...)
}

// removeTree removes a directory tree, clearing the immutable flag ostree sets on
// deployment roots first.
func removeTree(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	clearImmutable(p)
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}

// clearImmutable clears the immutable inode flag of a directory (chattr -i), ignoring
// errors (filesystems without inode flags).
func clearImmutable(p string) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsImmutableFl == 0 {
		return
	}
	flags &^= fsImmutableFl
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags)
}

// fsImmutableFl is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFl = 0x10
