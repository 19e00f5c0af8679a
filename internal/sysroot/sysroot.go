// Package sysroot creates and updates OSTree sysroots (the device's physical root: the bare
// repository, the deployments and the boot configuration) without the ostree binary, laid
// out exactly as `ostree admin init-fs`, `os-init` and `deploy` (2022.7) do.
//
// The package follows libostree's split of its sysroot code:
//
//   - Init creates a sysroot (ostree admin init-fs and os-init);
//   - Open locks a sysroot and loads its boot version and deployment list
//     (ostree_sysroot_load), Sysroot.Pull copies a commit into its repository;
//   - Sysroot.DeployTree checks a commit out as a new deployment, with the /etc of the
//     stateroot's current deployment merged in (ostree_sysroot_deploy_tree);
//   - Sysroot.WriteDeployments installs the kernels of a deployment list, writes its boot
//     entries and bootloader configuration at the other boot version and swaps boot/loader
//     to it (ostree_sysroot_write_deployments), and Sysroot.WriteDefault chooses that list
//     for a new default deployment, keeping the previous one as the rollback;
//   - Sysroot.Cleanup removes what the deployment list no longer uses and prunes the
//     repository (ostree_sysroot_cleanup);
//   - BootLinkArg and ResolveBootLink find the deployment an ostree= kernel argument
//     names (Sysroot.Booted; ota-client prepare-root at boot, internal/prepareroot);
//   - a Bootloader renders the files its bootloader reads (OstreeBootloader); UBoot
//     writes uEnv.txt;
//   - an Attrs decides how files get their owners, modes and extended attributes: set on
//     disk (as root), or recorded for an image (Record, Sparse).
//
// Deploy composes them as `ostree admin deploy` does. docs/format.md, "Sysroot", describes
// the layout this package reads and writes.
package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/otakit/ota/internal/ostree"
)

// Options describe the stateroot and boot configuration of a sysroot.
type Options struct {
	// OSName is the stateroot, e.g. "myos".
	OSName string
	// Kargs are the kernel arguments, e.g. "root=/dev/mmcblk0p2", "rw". When nil, Deploy
	// inherits the arguments of the current default deployment of the stateroot.
	Kargs []string
	// Bootloader is "uboot" (uEnv.txt is written next to the BLS entries) or "none" (BLS
	// entries only). When empty, Deploy uses U-Boot if the repository config says
	// sysroot.bootloader=uboot or boot/loader/uEnv.txt exists.
	Bootloader string
	// Refspec is written to the deployment's .origin file (default: the commit checksum).
	Refspec string
	// Attrs decides how files get their owners, modes and extended attributes: nil sets
	// them on disk, which needs root; a *Record or *Sparse records them for an image.
	Attrs Attrs
	// NoSync skips every fsync and syncfs, for a sysroot staged only to be copied into an
	// image: there is no power loss to survive, and flushing hundreds of megabytes costs
	// more than the rest of the deployment.
	NoSync bool
}

func (o *Options) check() error {
	if err := checkOSName(o.OSName); err != nil {
		return err
	}
	_, err := bootloaderNamed(o.Bootloader)
	return err
}

// ValidOSName reports whether name can be a stateroot: one path component without
// whitespace, as ostree admin os-init accepts.
func ValidOSName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/ \t\n")
}

func checkOSName(name string) error {
	if !ValidOSName(name) {
		return fmt.Errorf("sysroot: invalid OS name %q", name)
	}
	return nil
}

// ObjectPath is the path of content object c in a sysroot, relative to the sysroot.
func ObjectPath(c ostree.Checksum) string {
	h := c.String()
	return "ostree/repo/objects/" + h[:2] + "/" + h[2:] + ".file"
}

// Init creates an empty sysroot at path, as `ostree admin init-fs` and `ostree admin
// os-init` do: the top-level directories, a bare repository at ostree/repo, the stateroot
// ostree/deploy/<os> with its var skeleton, and boot/loader.0 with boot/loader -> loader.0
// (plus an empty loader.0/uEnv.txt and sysroot.bootloader=uboot in the repository config for
// U-Boot, which ostree 2022.7 needs before its first deployment). Existing parts are kept.
func Init(path string, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	dirs := []struct {
		name string
		mode os.FileMode
	}{
		{"boot", 0o755}, {"dev", 0o755}, {"home", 0o755}, {"ostree", 0o755}, {"proc", 0o755},
		{"root", 0o700}, {"run", 0o755}, {"sys", 0o755}, {"tmp", 0o777 | os.ModeSticky},
		{"ostree/deploy", 0o755},
		{filepath.Join("ostree/deploy", opts.OSName), 0o755},
		{filepath.Join("ostree/deploy", opts.OSName, "deploy"), 0o755},
		{filepath.Join("ostree/deploy", opts.OSName, "var"), 0o755},
		{filepath.Join("ostree/deploy", opts.OSName, "var/tmp"), 0o777 | os.ModeSticky},
		{filepath.Join("ostree/deploy", opts.OSName, "var/lib"), 0o755},
		{filepath.Join("ostree/deploy", opts.OSName, "var/log"), 0o755},
		{"boot/loader.0", 0o755},
	}
	for _, d := range dirs {
		p := filepath.Join(path, d.name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	vr := filepath.Join(path, "ostree/deploy", opts.OSName, "var")
	for _, l := range [][2]string{{"../run", "run"}, {"../run/lock", "lock"}} {
		if err := symlinkIfAbsent(l[0], filepath.Join(vr, l[1])); err != nil {
			return err
		}
	}
	repo, err := ostree.Init(filepath.Join(path, "ostree/repo"), ostree.ModeBare)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(path, "boot/loader")); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink("loader.0", filepath.Join(path, "boot/loader")); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if opts.Bootloader == "uboot" {
		return initUBoot(path, repo)
	}
	return nil
}

func symlinkIfAbsent(target, p string) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}

// Deploy deploys commit from src as the new default deployment of the stateroot
// opts.OSName in the sysroot at sysroot (created by Init or by `ostree admin`), as
// `ostree admin deploy` does:
//
//   - every object of the commit, the commit and its detached metadata are copied into
//     ostree/repo (objects already present are skipped; the commit is written last; see
//     Sysroot.Pull);
//   - the commit is checked out as ostree/deploy/<os>/deploy/<commit>.<serial>, files
//     hardlinked to the repository's objects; etc is a copy of usr/etc with the changes of
//     the previous default deployment's /etc merged in (three-way merge); the .origin file
//     is written (see Sysroot.DeployTree);
//   - the kernel, initramfs and device trees go to boot/ostree/<os>-<bootcsum>/;
//   - BLS entries (and uEnv.txt for U-Boot) are written to boot/loader.<new>/, the
//     ostree/boot.<new>.<m> links and the ostree/<new>/<m>/<i> refs are created, and
//     boot/loader is swapped to loader.<new> with one rename, the commit point (see
//     Sysroot.WriteDeployments);
//   - finally the old boot directories, unused kernels and dropped deployments are removed
//     (see Sysroot.Cleanup).
//
// The deployment list becomes [new, previous default of the stateroot] plus the
// deployments of other stateroots; older deployments of the stateroot are removed (see
// Sysroot.WriteDefault).
//
// The sysroot repository is in bare mode, so Deploy needs root (to chown files and set
// extended attributes) and returns an error otherwise, unless Options.Attrs records them
// instead (for images). Deploy does not set the immutable flag on the deployment
// directory, and only supports kernels in the usr/lib/modules/<kver>/vmlinuz layout.
func Deploy(ctx context.Context, sysroot string, src *ostree.Repo, commit ostree.Checksum, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	s, err := Open(sysroot, OpenOptions{Bootloader: opts.Bootloader, Attrs: opts.Attrs, NoSync: opts.NoSync})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.requireStateroot(opts.OSName); err != nil {
		return err
	}
	if err := s.Pull(ctx, src, commit); err != nil {
		return err
	}
	d, err := s.DeployTree(ctx, commit, DeployOptions{OSName: opts.OSName, Kargs: opts.Kargs, Refspec: opts.Refspec})
	if err != nil {
		return err
	}
	return s.WriteDefault(ctx, d)
}
