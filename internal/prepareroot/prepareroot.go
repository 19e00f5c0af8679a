// Package prepareroot sets up the root filesystem of the deployment the kernel booted, as
// ostree-prepare-root does: it finds the deployment from the ostree= kernel argument,
// mounts it as the new /, with the physical root at /sysroot, the stateroot's var at
// /var, /usr read-only and the physical /boot at /boot, then starts the deployment's init.
//
// It runs before the real init: from an initramfs (the physical root mounted at /sysroot),
// or as PID 1 itself (init=, the physical root mounted at / by the kernel). Every change
// to the mount table goes through a Mounter.
package prepareroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/otakit/ota/internal/sysroot"
)

// DefaultInit is the program Run starts in the deployment by default.
const DefaultInit = "/sbin/init"

// procDir is where proc is mounted; tests point it elsewhere.
var procDir = "/proc"

// Options configure Run.
type Options struct {
	// Sysroot is where the physical root filesystem is mounted: / when running as PID 1
	// (init=), /sysroot in an initramfs (ostree-prepare-root's SYSROOT argument).
	Sysroot string
	// Cmdline is a file holding the kernel command line. Empty means /proc/cmdline; proc
	// is mounted on /proc for the read (and unmounted after) when it is not, as when the
	// kernel starts init.
	Cmdline string
	// Init is the program of the deployment that Run starts (default DefaultInit), an
	// absolute path inside the deployment.
	Init string
	// InitArgs are passed to Init after its name (as PID 1, the words of the kernel
	// command line the kernel passes on to init, such as "single").
	InitArgs []string
	// NoExec leaves starting init to the caller, as ostree-prepare-root does in an
	// initramfs: the assembled deployment is moved onto Sysroot (which must not be /) and
	// Run returns; the initramfs then runs, say, `switch_root /sysroot /sbin/init`.
	NoExec bool
	// Mounter performs the mount operations; nil means Unix.
	Mounter Mounter
	// Log, when not nil, gets one line naming the deployment before anything is mounted.
	Log io.Writer
}

// Run mounts the deployment that the kernel command line's ostree= argument names as the
// new root and starts its init; it returns only on failure, or with Options.NoExec.
//
// With S the physical root and D = S/ostree/deploy/<os>/deploy/<commit>.<serial>, the
// deployment the boot link leads to, it checks that D and its usr, sysroot and var
// directories and the stateroot's S/ostree/deploy/<os>/var exist, then:
//
//  1. makes / and every mount under it private, since shared mounts cannot be moved;
//  2. bind-mounts D on itself, so that it is a mount of its own;
//  3. bind-mounts D/usr on itself and makes it read-only;
//  4. bind-mounts S on D/sysroot, and S/ostree/deploy/<os>/var on D/var;
//  5. when S/boot/loader is a symbolic link (/boot is not a partition of its own, as in
//     the images ota-build makes), bind-mounts S/boot on D/boot, as ostree-prepare-root
//     does without systemd;
//  6. enters D, moves its mount onto / and changes the root to it, as switch_root does
//     (ostree pivots the root as PID 1; a move works there and in an initramfs, whose
//     rootfs cannot be pivoted), and executes Init with InitArgs.
//
// With NoExec, step 6 is instead: move D's mount onto S, and return.
//
// Errors are one line saying what is missing: the ostree= argument, the boot link, the
// deployment or one of its directories. Before step 1 nothing has changed.
func Run(opts Options) error {
	m := opts.Mounter
	if m == nil {
		m = Unix{}
	}
	initPath := opts.Init
	if initPath == "" {
		initPath = DefaultInit
	}
	if !filepath.IsAbs(initPath) {
		return fmt.Errorf("prepare-root: init %q is not an absolute path", initPath)
	}
	root, err := filepath.Abs(opts.Sysroot)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return fmt.Errorf("prepare-root: the physical root: %w", err)
	}
	if opts.NoExec && root == "/" {
		return errors.New("prepare-root: without exec, the deployment is moved onto the physical root, which must then be mounted elsewhere than / (in an initramfs, at /sysroot)")
	}
	cmdline, file, err := readCmdline(m, opts.Cmdline)
	if err != nil {
		return fmt.Errorf("prepare-root: reading the kernel command line: %w", err)
	}
	link, ok := sysroot.BootLinkArg(cmdline)
	if !ok {
		return fmt.Errorf("prepare-root: no ostree= argument in the kernel command line (%s): it names the deployment to boot", file)
	}
	osName, name, err := sysroot.ResolveBootLink(root, link)
	if err != nil {
		return fmt.Errorf("prepare-root: %w", err)
	}
	deploy := filepath.Join(root, "ostree/deploy", osName, "deploy", name)
	stateVar := filepath.Join(root, "ostree/deploy", osName, "var")
	if !isDir(deploy) {
		return fmt.Errorf("prepare-root: deployment %s, which ostree=%s leads to, is missing", deploy, link)
	}
	for _, sub := range []string{"usr", "sysroot", "var"} {
		if !isDir(filepath.Join(deploy, sub)) {
			return fmt.Errorf("prepare-root: deployment %s has no /%s directory", deploy, sub)
		}
	}
	if !isDir(stateVar) {
		return fmt.Errorf("prepare-root: stateroot %s has no var directory %s, which is mounted as /var", osName, stateVar)
	}
	bootLoader, err := os.Lstat(filepath.Join(root, "boot/loader"))
	bindBoot := err == nil && bootLoader.Mode()&fs.ModeSymlink != 0 && isDir(filepath.Join(deploy, "boot"))

	if opts.Log != nil {
		target := "/"
		if opts.NoExec {
			target = root
		}
		fmt.Fprintf(opts.Log, "prepare-root: mounting deployment %s on %s\n", deploy, target)
	}
	steps := []func() error{
		func() error { return m.MakeRPrivate("/") },
		func() error { return m.Bind(deploy, deploy) },
		func() error { return m.Bind(filepath.Join(deploy, "usr"), filepath.Join(deploy, "usr")) },
		func() error { return m.ReadOnly(filepath.Join(deploy, "usr")) },
		func() error { return m.Bind(root, filepath.Join(deploy, "sysroot")) },
		func() error { return m.Bind(stateVar, filepath.Join(deploy, "var")) },
	}
	if bindBoot {
		steps = append(steps, func() error { return m.Bind(filepath.Join(root, "boot"), filepath.Join(deploy, "boot")) })
	}
	if opts.NoExec {
		steps = append(steps, func() error { return m.Move(deploy, root) })
	} else {
		// The working directory keeps hold of the deployment's mount once it covers /,
		// where a lookup of "/" would not reach it: chroot(".") makes it the root.
		steps = append(steps,
			func() error { return m.Chdir(deploy) },
			func() error { return m.Move(deploy, "/") },
			func() error { return m.Chroot(".") },
			func() error { return m.Chdir("/") },
			func() error { return m.Exec(initPath, append([]string{initPath}, opts.InitArgs...)) },
		)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("prepare-root: %w", err)
		}
	}
	return nil
}

// readCmdline returns the kernel command line in file, or in /proc/cmdline when file is
// empty, and the file it read.
func readCmdline(m Mounter, file string) (cmdline, read string, err error) {
	if file != "" {
		data, err := os.ReadFile(file)
		return string(data), file, err
	}
	file = filepath.Join(procDir, "cmdline")
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		// The kernel starts init without /proc: mount it for the read and leave the
		// system as it was, as ostree-prepare-root does.
		if err := m.MountProc(procDir); err != nil {
			return "", file, err
		}
		data, err = os.ReadFile(file)
		if uerr := m.Unmount(procDir); err == nil {
			err = uerr
		}
	}
	return string(data), file, err
}

// isDir reports whether p is a directory, not a symbolic link to one: a mount follows
// symbolic links, which could lead out of the deployment.
func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
