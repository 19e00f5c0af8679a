package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// CleanupResult counts what Sysroot.Cleanup removed.
type CleanupResult struct {
	// Deployments is the number of deployment directories removed: trees deployed but
	// never written into a deployment list, or dropped from it.
	Deployments int
	// BootFiles is the number of boot configurations (boot/loader.N), boot links
	// (ostree/boot.N, ostree/boot.N.M) and kernel directories (boot/ostree/<os>-<bootcsum>)
	// removed.
	BootFiles int
	// Refs is the number of deployment refs (ostree/N/M/I) of earlier lists removed.
	Refs int
	// Bytes is the disk space the removed deployments, boot files and refs held alone: a
	// file hardlinked elsewhere (a repository object) frees nothing and counts nothing here.
	Bytes int64
	// Repo is what pruning the repository removed.
	Repo *ostree.PruneResult
}

// Cleanup removes what the current deployment list does not use, as ostree_sysroot_cleanup
// (`ostree admin cleanup`) does: the boot configuration of the other boot version, the
// unused ostree/boot.N.M links, kernels in boot/ostree that no deployment boots,
// deployments not in the list (a tree deployed but never written, or dropped from the
// list) and the deployment refs ostree/N/M/I of earlier lists. Then it prunes the
// repository as ostree does after it, with depth 0 (Repo.Prune with NoHistory: the commits
// of the refs and of every deployment are kept, not their ancestors), keeping the objects
// of a commit being pulled (PruneOptions.KeepPartial) and removing stale temporary files.
// WriteDeployments ends with the first part; calling Cleanup again finishes a cleanup an
// interruption stopped.
func (s *Sysroot) Cleanup(ctx context.Context) (*CleanupResult, error) {
	res, err := s.CleanupBoot()
	if err != nil {
		return nil, err
	}
	roots := make([]ostree.Ref, len(s.deployments))
	for i, d := range s.deployments {
		roots[i] = ostree.Ref{Name: "deployment " + d.OSName + "/" + d.Name(), Commit: d.Commit}
	}
	res.Repo, err = s.repo.Prune(ctx, ostree.PruneOptions{Roots: roots, NoHistory: true, KeepPartial: true})
	if err != nil {
		return nil, fmt.Errorf("sysroot: pruning %s: %w", s.repo.Path, err)
	}
	return res, nil
}

// CleanupBoot is the first part of Cleanup alone, which WriteDeployments ends with: the
// boot configuration, boot links, kernels, deployments and deployment refs the list no
// longer uses go; the repository is not pruned. It finishes what an interruption of
// WriteDeployments after its swap left.
func (s *Sysroot) CleanupBoot() (*CleanupResult, error) {
	if err := s.writable(); err != nil {
		return nil, err
	}
	res := &CleanupResult{}
	if err := s.cleanup(res); err != nil {
		return nil, fmt.Errorf("sysroot: cleaning up: %w", err)
	}
	return res, nil
}

var kernelDirRE = regexp.MustCompile(`^(.+)-([0-9a-f]{64})$`)

// cleanup is the first part of Cleanup, counting what it removes in res.
func (s *Sysroot) cleanup(res *CleanupResult) error {
	var errs []error
	rm := func(p string, n *int) {
		if _, err := os.Lstat(p); err != nil {
			return
		}
		size := aloneSize(p)
		if err := removeTree(p); err != nil {
			errs = append(errs, err)
			return
		}
		*n++
		res.Bytes += size
	}
	bv, m, other := s.bootversion, s.subbootversion, 1-s.bootversion
	rm(filepath.Join(s.path, fmt.Sprintf("boot/loader.%d", other)), &res.BootFiles)
	ostreeDir := filepath.Join(s.path, "ostree")
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", other)), &res.BootFiles)
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.0", other)), &res.BootFiles)
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.1", other)), &res.BootFiles)
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.%d", bv, 1-m)), &res.BootFiles)

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
			rm(filepath.Join(kdir, e.Name()), &res.BootFiles)
		}
	}
	roots, _ := os.ReadDir(filepath.Join(ostreeDir, "deploy"))
	for _, r := range roots {
		dd := filepath.Join(ostreeDir, "deploy", r.Name(), "deploy")
		ents, _ := os.ReadDir(dd)
		for _, e := range ents {
			name, origin := strings.CutSuffix(e.Name(), ".origin")
			if !deployRE.MatchString("../../../deploy/"+r.Name()+"/deploy/"+name) || keepDeploys[r.Name()+"/"+name] {
				continue
			}
			var n int
			rm(filepath.Join(dd, e.Name()), &n)
			if !origin {
				res.Deployments += n
			}
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
		p := filepath.Join(s.repo.Path, "refs/heads", r)
		size := aloneSize(p)
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		} else {
			res.Refs++
			res.Bytes += size
		}
	}
	// Remove the emptied ref directories (deepest first).
	for _, d := range []string{"ostree/0/0", "ostree/0/1", "ostree/1/0", "ostree/1/1", "ostree/0", "ostree/1"} {
		os.Remove(filepath.Join(s.repo.Path, "refs/heads", d))
	}
	return errors.Join(errs...)
}

// aloneSize returns the size of the regular files at or below p that have no other link:
// the space removing p frees.
func aloneSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink == 1 {
				n += info.Size()
			}
		}
		return nil
	})
	return n
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
