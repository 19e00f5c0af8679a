package prepareroot

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mounter performs the operations of Run on the mount table and the process. Unix is the
// real one; tests record the calls instead. Errors name the operation, as the mount(8)
// command that does the same.
type Mounter interface {
	// MakeRPrivate makes the mount at path and every mount under it private (mount
	// --make-rprivate): the kernel refuses to move a mount whose parent is shared.
	MakeRPrivate(path string) error
	// Bind mounts the tree at src on dst (mount --bind, without the mounts under src).
	Bind(src, dst string) error
	// ReadOnly makes the bind mount at path read-only (mount -o remount,bind,ro).
	ReadOnly(path string) error
	// Move moves the mount at src onto dst (mount --move).
	Move(src, dst string) error
	// MountProc mounts a proc filesystem on dir.
	MountProc(dir string) error
	// Unmount unmounts the filesystem at dir.
	Unmount(dir string) error
	// Chdir changes the process's working directory.
	Chdir(dir string) error
	// Chroot changes the process's root directory.
	Chroot(dir string) error
	// Exec replaces the process by the program at path, with arguments argv and the
	// process's environment; it returns only on failure.
	Exec(path string, argv []string) error
}

// Unix is the Mounter of the running system, on mount(2), chroot(2) and execve(2). It needs
// CAP_SYS_ADMIN (root, or a user and mount namespace of one's own).
type Unix struct{}

// MakeRPrivate implements Mounter.
func (Unix) MakeRPrivate(path string) error {
	return opErr("mount --make-rprivate "+path, unix.Mount("", path, "", unix.MS_REC|unix.MS_PRIVATE|unix.MS_SILENT, ""))
}

// Bind implements Mounter.
func (Unix) Bind(src, dst string) error {
	return opErr("mount --bind "+src+" "+dst, unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_SILENT, ""))
}

// ReadOnly implements Mounter.
func (Unix) ReadOnly(path string) error {
	return opErr("mount -o remount,bind,ro "+path, unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_SILENT, ""))
}

// Move implements Mounter.
func (Unix) Move(src, dst string) error {
	return opErr("mount --move "+src+" "+dst, unix.Mount(src, dst, "", unix.MS_MOVE|unix.MS_SILENT, ""))
}

// MountProc implements Mounter.
func (Unix) MountProc(dir string) error {
	return opErr("mount -t proc proc "+dir, unix.Mount("proc", dir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_SILENT, ""))
}

// Unmount implements Mounter.
func (Unix) Unmount(dir string) error {
	return opErr("umount "+dir, unix.Unmount(dir, 0))
}

// Chdir implements Mounter.
func (Unix) Chdir(dir string) error { return os.Chdir(dir) }

// Chroot implements Mounter.
func (Unix) Chroot(dir string) error {
	return opErr("chroot "+dir, unix.Chroot(dir))
}

// Exec implements Mounter.
func (Unix) Exec(path string, argv []string) error {
	return opErr("exec "+path, unix.Exec(path, argv, os.Environ()))
}

func opErr(op string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
