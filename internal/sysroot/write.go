package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// BootEntry is the boot configuration of one deployment of a deployment list: the keys of
// its BLS entry, boot/loader.N/entries/ostree-<version>-<os>.conf, from which bootloaders
// render their own configuration.
type BootEntry struct {
	// Deployment is the deployment the entry boots.
	Deployment *Deployment
	// Dir is the deployment's directory.
	Dir string
	// Title names the entry in boot menus; Version orders the entries, highest first.
	Title, Version string
	// Options are the kernel arguments, ending with ostree=/ostree/boot.N/<os>/<bootcsum>/<serial>.
	Options string
	// Linux, Initrd and Devicetree are the paths of the kernel, the initramfs and the
	// device tree in the boot directory (/ostree/<os>-<bootcsum>/...), and FDTDir that of
	// its directory of device trees; "" when absent.
	Linux, Initrd, Devicetree, FDTDir string
}

// bls renders the BLS entry file in ostree's key order.
func (e *BootEntry) bls() string {
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			b.WriteString(k + " " + v + "\n")
		}
	}
	add("title", e.Title)
	add("version", e.Version)
	add("options", e.Options)
	add("devicetree", e.Devicetree)
	add("linux", e.Linux)
	add("initrd", e.Initrd)
	add("fdtdir", e.FDTDir)
	return b.String()
}

// WriteDefault makes d (from DeployTree) the default deployment, as `ostree admin deploy`
// does (ostree_sysroot_simple_write_deployment): the new list is d, then the previous
// default of d's stateroot, the rollback, then the deployments of other stateroots. The
// stateroot's older deployments are dropped, and removed by WriteDeployments, but for
// those in keep: the booted deployment must stay, as ostree keeps it, when it is neither
// the default nor the rollback (a device that fell back and was not marked good yet).
func (s *Sysroot) WriteDefault(ctx context.Context, d *Deployment, keep ...*Deployment) error {
	if err := s.writable(); err != nil {
		return err
	}
	list := []*Deployment{d}
	keptRollback := false
	for _, o := range s.deployments {
		switch {
		case o.OSName != d.OSName:
			list = append(list, o)
		case !keptRollback:
			list = append(list, o)
			keptRollback = true
		case slices.Contains(keep, o):
			list = append(list, o)
		}
	}
	return s.WriteDeployments(ctx, list)
}

// WriteDeployments makes list, default first, the sysroot's deployments, as
// ostree_sysroot_write_deployments does: the kernels are installed; the BLS entries and
// the bootloader's configuration are written to boot/loader.<new>/, where new is the boot
// version not in use; the ostree/boot.<new>.<m> links and the ostree/<new>/<m>/<i> refs
// are created; the filesystem is flushed and boot/loader is swapped to loader.<new> with
// one rename, the commit point. An interruption before it leaves the previous
// configuration booting (docs/format.md, "Boot versions and the swap"). Cleanup then
// removes what only the previous list used.
func (s *Sysroot) WriteDeployments(ctx context.Context, list []*Deployment) error {
	if err := s.writable(); err != nil {
		return err
	}
	if len(list) == 0 {
		return errors.New("sysroot: an empty deployment list would boot nothing")
	}
	nb := 1 - s.bootversion
	entries, err := s.bootEntries(ctx, nb, list)
	if err != nil {
		return err
	}
	if err := s.writeLoader(nb, entries); err != nil {
		return err
	}
	m, err := s.writeBootlinks(nb, list)
	if err != nil {
		return err
	}
	for i, d := range list {
		if err := s.repo.WriteRef(fmt.Sprintf("ostree/%d/%d/%d", nb, m, i), d.Commit); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}

	// The commit point.
	if err := s.syncfs(); err != nil {
		return err
	}
	boot := filepath.Join(s.path, "boot")
	if _, err := os.Lstat(filepath.Join(boot, "boot")); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(".", filepath.Join(boot, "boot")); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if err := replaceSymlink(fmt.Sprintf("loader.%d", nb), filepath.Join(boot, "loader")); err != nil {
		return err
	}
	if err := s.syncDir(boot); err != nil {
		return err
	}
	s.bootversion, s.subbootversion, s.deployments = nb, m, slices.Clone(list)
	if err := s.cleanup(&CleanupResult{}); err != nil {
		return fmt.Errorf("sysroot: deployed, but cleaning up failed: %w", err)
	}
	return nil
}

// bootEntries installs the kernels of list and returns its boot entries at boot version nb.
func (s *Sysroot) bootEntries(ctx context.Context, nb int, list []*Deployment) ([]BootEntry, error) {
	n := len(list)
	oses := map[string]bool{}
	for _, d := range list {
		oses[d.OSName] = true
	}
	serials := map[string]int{}
	entries := make([]BootEntry, n)
	for i, d := range list {
		dir := s.DeploymentDir(d)
		k, err := findKernel(dir)
		if err != nil {
			return nil, err
		}
		if k.bootCsum != d.BootCsum {
			return nil, fmt.Errorf("sysroot: deployment %s: boot checksum %s does not match its boot link %s", d.Name(), k.bootCsum, d.BootCsum)
		}
		if err := s.installKernel(d.OSName, k); err != nil {
			return nil, err
		}
		serial := serials[d.BootCsum]
		serials[d.BootCsum]++
		e := BootEntry{Deployment: d, Dir: dir, Version: fmt.Sprint(n - i)}
		title := osTitle(dir)
		if cm, _, err := s.repo.ReadCommit(d.Commit); err == nil {
			if v := cm.Version(); v != "" && !strings.Contains(title, v) {
				title += " " + v
			}
		}
		if len(oses) > 1 {
			title += fmt.Sprintf(" (ostree:%s:%d)", d.OSName, i)
		} else {
			title += fmt.Sprintf(" (ostree:%d)", i)
		}
		e.Title = title
		link := fmt.Sprintf("/ostree/boot.%d/%s/%s/%d", nb, d.OSName, d.BootCsum, serial)
		opts := slices.Clone(d.Kargs)
		if k.initramfs == "" {
			opts = append(opts, "init="+link+"/usr/lib/ostree/ostree-prepare-root")
		}
		e.Options = strings.Join(append(opts, "ostree="+link), " ")
		bd := k.bootDir(d.OSName)
		e.Linux = bd + "/vmlinuz-" + k.kver
		if k.initramfs != "" {
			e.Initrd = bd + "/initramfs-" + k.kver + ".img"
		}
		if k.devicetree != "" {
			e.Devicetree = bd + "/devicetree-" + k.kver
		}
		if k.dtb != "" {
			e.FDTDir = bd + "/dtb"
		}
		entries[i] = e
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return entries, nil
}

// writeLoader writes boot/loader.<nb>/: the BLS entries and the bootloader's files.
func (s *Sysroot) writeLoader(nb int, entries []BootEntry) error {
	loader := filepath.Join(s.path, fmt.Sprintf("boot/loader.%d", nb))
	if err := os.RemoveAll(loader); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(loader, "entries"), 0o755); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	for _, e := range entries {
		name := fmt.Sprintf("ostree-%s-%s.conf", e.Version, e.Deployment.OSName)
		if err := s.writeFile(filepath.Join(loader, "entries", name), []byte(e.bls())); err != nil {
			return err
		}
	}
	if s.bootloader == nil {
		return nil
	}
	files, err := s.bootloader.Config(entries)
	if err != nil {
		return fmt.Errorf("sysroot: %s: %w", s.bootloader.Name(), err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := s.writeFile(filepath.Join(loader, name), files[name]); err != nil {
			return err
		}
	}
	return nil
}

// writeBootlinks creates the links ostree=/ostree/boot.<nb>/... names, in a new
// ostree/boot.<nb>.<m>, points ostree/boot.<nb> to it and returns m.
func (s *Sysroot) writeBootlinks(nb int, list []*Deployment) (int, error) {
	ostreeDir := filepath.Join(s.path, "ostree")
	m := 1
	if t, _ := os.Readlink(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", nb))); t == fmt.Sprintf("boot.%d.1", nb) {
		m = 0
	}
	farm := filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.%d", nb, m))
	if err := os.RemoveAll(farm); err != nil {
		return 0, fmt.Errorf("sysroot: %w", err)
	}
	serials := map[string]int{}
	for _, d := range list {
		serial := serials[d.BootCsum]
		serials[d.BootCsum]++
		p := filepath.Join(farm, d.OSName, d.BootCsum)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return 0, fmt.Errorf("sysroot: %w", err)
		}
		if err := os.Symlink("../../../deploy/"+d.OSName+"/deploy/"+d.Name(), filepath.Join(p, fmt.Sprint(serial))); err != nil {
			return 0, fmt.Errorf("sysroot: %w", err)
		}
	}
	if err := replaceSymlink(fmt.Sprintf("boot.%d.%d", nb, m), filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", nb))); err != nil {
		return 0, err
	}
	return m, nil
}

var osReleaseLine = regexp.MustCompile(`^(PRETTY_NAME|ID)=(.*)$`)

// osTitle returns PRETTY_NAME (else ID) of the deployment's os-release.
func osTitle(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "usr/lib/os-release"))
	if err != nil {
		data, _ = os.ReadFile(filepath.Join(dir, "etc/os-release"))
	}
	vals := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if m := osReleaseLine.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			v := m[2]
			if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			vals[m[1]] = v
		}
	}
	if vals["PRETTY_NAME"] != "" {
		return vals["PRETTY_NAME"]
	}
	return vals["ID"]
}

// replaceSymlink points p at target atomically (symlink p.tmp, rename over p).
func replaceSymlink(target, p string) error {
	tmp := strings.TrimSuffix(p, "/") + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}

// syncfs flushes the sysroot's filesystem unless nosync.
func (s *Sysroot) syncfs() error {
	if s.nosync {
		return nil
	}
	fd, err := unix.Open(s.path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sysroot: syncfs: %w", err)
	}
	return nil
}

// syncDir flushes a directory unless nosync.
func (s *Sysroot) syncDir(p string) error {
	if s.nosync {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}
