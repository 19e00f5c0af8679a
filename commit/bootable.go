package commit

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
)

// Bootable commits
//
// With Options.Bootable, Commit converts a plain root filesystem, as Yocto and Buildroot
// produce it, to the layout `ostree admin deploy` and ostree-prepare-root expect (the one
// `ostree commit --bootable`, rpm-ostree and meta-updater commits have). The conversion
// rearranges the tree in memory after every file is stored and before the directories are:
// moving a file costs nothing, since a content object's checksum does not depend on its path,
// and the few files it generates are stored like any other. The rules:
//
//   - Kernel modules: a real directory /lib/modules (Buildroot, no merged /usr) moves to
//     /usr/lib/modules and leaves a symlink /lib/modules -> ../usr/lib/modules behind.
//   - Kernel: when a /usr/lib/modules/<kver>/vmlinuz exists (already OSTree layout) it is
//     used as is; otherwise the kernel image in /boot moves to /usr/lib/modules/<kver>/vmlinuz.
//     Kernel names, in order of preference: vmlinuz, Image, zImage, bzImage, uImage,
//     fitImage, each bare or with a "-<kver>" suffix; symlinks (Yocto's /boot/Image ->
//     Image-<kver>) are resolved. <kver> is the name's suffix (or its link target's), else
//     KernelVersion, else the single directory in /usr/lib/modules. Several candidate
//     kernels, or several module directories and no version in the name, are errors that
//     ask for KernelVersion (which also selects among /boot/vmlinuz-<kver> files and must
//     agree with a version in the kernel's name). No kernel at all is an error.
//   - Initramfs: /boot/initramfs-<kver>.img, /boot/initrd.img-<kver>, /boot/initrd-<kver>.img,
//     else an unversioned /boot/initramfs.img, /boot/initrd.img or /boot/initramfs*.cpio[.gz,
//     .xz, .zst, ...] becomes /usr/lib/modules/<kver>/initramfs.img.
//   - Device trees: /boot/*.dtb and /boot/*.dtbo (symlinks resolved), the contents of
//     /boot/dtb/, /boot/overlays/ (Raspberry Pi) and any other /boot subdirectory holding
//     .dtb files (Yocto's vendor directories such as freescale/) go to
//     /usr/lib/modules/<kver>/dtb/, keeping subdirectories. Files already in the destination
//     win over those from /boot.
//   - /etc moves to /usr/etc, where ostree keeps the defaults it merges into each
//     deployment's /etc. Both /etc (non-empty) and /usr/etc is an error.
//   - /usr/lib/os-release, else /etc/os-release, must exist and set PRETTY_NAME or ID:
//     `ostree admin deploy` fails without them (it titles the boot entry with them).
//   - /home, /root, /opt, /srv and /mnt become the symlinks home -> var/home,
//     root -> var/roothome, opt -> var/opt, srv -> var/srv, mnt -> var/mnt, and /media
//     becomes media -> run/media; their contents join those of /var (or /run/media). An
//     existing symlink is kept.
//   - /var is committed empty: ostree never updates a deployment's /var, it mounts the
//     stateroot's. What the tree had there is recreated on the device by systemd-tmpfiles
//     from the generated /usr/lib/tmpfiles.d/ota-var.conf, sorted by path: "d" lines for
//     directories and "L" lines for symlinks, with the numeric owner and mode of the tree,
//     "f" lines for empty files without xattrs, and for other regular files, which a
//     tmpfiles line cannot hold, a "C" line copying the file from /usr/share/ota/<path>
//     (for instance /usr/share/ota/var/lib/opkg/status), where the file is moved; the copy
//     keeps the file's owner and mode. tmpfiles creates none of these if the path already
//     exists, so what a device changed is left alone, and later commits' /var contents
//     reach only devices (or stateroots) that lack the path. Directories and symlinks lose
//     their xattrs. The symlink targets above (/var/home ... /run/media) always get a "d"
//     line. systemd-tmpfiles must run at boot (systemd does so; other inits need to call
//     `systemd-tmpfiles --create`).
//   - /boot, /dev, /proc, /sys, /run and /tmp are committed as empty directories, keeping
//     their owner and mode (/tmp gets 1777, except in bare-user-only repositories, whose
//     canonical permissions have no sticky bit); other files in /boot (bootloader files,
//     further kernels) are left out. An empty /sysroot and the symlink
//     ostree -> sysroot/ostree, which ostree-prepare-root needs, are added.
//   - The commit gets the metadata ostree.bootable = true and ostree.linux = <kver>.
//
// Content objects of files the conversion leaves out (/boot leftovers, /dev, ...) were
// already stored; nothing references them, and `ostree prune` removes them.

// The generated tmpfiles.d file and the directory holding the files it copies into /var.
const (
	tmpfilesConf = "usr/lib/tmpfiles.d/ota-var.conf"
	copiesDir    = "usr/share/ota"
)

// relocations are the top-level directories that become symlinks to mutable storage.
var relocations = []struct{ name, target string }{
	{"home", "var/home"}, {"root", "var/roothome"}, {"opt", "var/opt"}, {"srv", "var/srv"},
	{"mnt", "var/mnt"}, {"media", "run/media"},
}

// emptied are the mount points committed as empty directories.
var emptied = []string{"boot", "dev", "proc", "run", "sys", "tmp"}

// bootConv is one conversion of a tree to the bootable layout.
type bootConv struct {
	b    *builder
	root *dirNode
	kver string
}

// makeBootable converts the tree at root to the layout ostree deploys (see the rules
// above) and returns the kernel version.
func (b *builder) makeBootable(root *dirNode) (string, error) {
	// The commit stage has ended; the few objects written here are not worth reporting.
	b.progress = progress.Discard
	c := &bootConv{b: b, root: root}
	for _, step := range []func() error{c.moveModules, c.kernel, c.moveEtc, c.osRelease, c.volatile, c.mountPoints} {
		if err := step(); err != nil {
			return "", fmt.Errorf("bootable commit: %w", err)
		}
	}
	b.files = countFiles(root)
	return c.kver, nil
}

// moveModules moves a real /lib/modules directory to /usr/lib/modules.
func (c *bootConv) moveModules() error {
	lib, ok := c.root.dirs["lib"]
	if !ok {
		return nil // no /lib, or a symlink to usr/lib (merged /usr)
	}
	mods, ok := lib.dirs["modules"]
	if !ok {
		return nil
	}
	usrLib, err := lookupDir(c.root, "usr/lib")
	if err != nil {
		return err
	}
	switch old, isDir := usrLib.dirs["modules"]; {
	case isDir:
		err := mergeDirs(old, mods, "/usr/lib/modules", func(p string) error {
			return fmt.Errorf("%s: in both /lib/modules and /usr/lib/modules", p)
		})
		if err != nil {
			return err
		}
	case usrLib.files["modules"] != nil:
		return errors.New("/usr/lib/modules is not a directory")
	default:
		usrLib.dirs["modules"] = mods
	}
	delete(lib.dirs, "modules")
	// Tools that look in /lib/modules (busybox modprobe) still find the modules.
	n, err := c.symlink("../usr/lib/modules")
	lib.files["modules"] = n
	return err
}

// moveEtc moves /etc to /usr/etc.
func (c *bootConv) moveEtc() error {
	if c.root.files["etc"] != nil {
		return errors.New("/etc is not a directory")
	}
	etc, ok := c.root.dirs["etc"]
	if !ok {
		return nil
	}
	usr, err := lookupDir(c.root, "usr")
	if err != nil {
		return err
	}
	switch {
	case usr.dirs["etc"] != nil:
		if len(etc.dirs)+len(etc.files) > 0 {
			return errors.New("the tree has both /usr/etc and a non-empty /etc; ostree keeps the default " +
				"configuration in /usr/etc only: merge /etc into it")
		}
	case usr.files["etc"] != nil:
		return errors.New("/usr/etc is not a directory")
	default:
		usr.dirs["etc"] = etc
	}
	delete(c.root.dirs, "etc")
	return nil
}

// osRelease checks the tree's os-release file, as `ostree admin deploy` reads it for the
// boot menu title: without the file, or with neither PRETTY_NAME nor ID in it, deploying
// fails ("Installing kernel: No PRETTY_NAME or ID in /etc/os-release"), better found here
// than on the device.
func (c *bootConv) osRelease() error {
	f, _ := resolveFile(c.root, "/usr/lib/os-release")
	if f == nil {
		if f = c.etcFile("os-release"); f == nil {
			return errors.New("the tree has no /usr/lib/os-release or /etc/os-release, which ostree admin " +
				"deploy reads the OS name for the boot menu from")
		}
	}
	obj, err := c.b.repo.OpenContent(f.checksum)
	if err != nil {
		return err
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, 1<<20))
	if err == nil {
		_, err = io.Copy(io.Discard, obj) // to the end, which verifies the object
	}
	if err != nil {
		return fmt.Errorf("reading os-release: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "ID=") || strings.HasPrefix(line, "PRETTY_NAME=") {
			return nil
		}
	}
	return errors.New("os-release has neither PRETTY_NAME nor ID, which ostree admin deploy needs for the boot menu")
}

// etcFile returns the regular file name of /usr/etc, following a symlink there as it
// resolves on the device, where the directory is /etc (Buildroot's and Yocto's
// /etc/os-release -> ../usr/lib/os-release).
func (c *bootConv) etcFile(name string) *fileNode {
	etc, err := lookupExisting(c.root, "usr/etc")
	if err != nil {
		return nil
	}
	f := etc.files[name]
	if f == nil || !f.header.IsSymlink() {
		return f
	}
	t := f.header.LinkTarget
	if !strings.HasPrefix(t, "/") {
		t = path.Join("/etc", t)
	}
	if strings.HasPrefix(t+"/", "/etc/") {
		t = "/usr" + t
	}
	n, _ := resolveFile(c.root, t)
	return n
}

// mountPoints empties /boot, /dev, ... and adds /sysroot and /ostree.
func (c *bootConv) mountPoints() error {
	for _, name := range emptied {
		m := defaultDirMeta()
		if d := c.root.dirs[name]; d != nil {
			m = d.meta
		}
		if name == "tmp" {
			m.Mode = ostree.ModeDir | 0o1777
			if c.b.repo.Mode == ostree.ModeBareUserOnly {
				m.Mode &= ostree.ModeTypeMask | 0o755 // canonical permissions
			}
		}
		delete(c.root.files, name)
		c.root.dirs[name] = newDir(m)
	}
	if c.root.files["sysroot"] != nil {
		return errors.New("/sysroot is not a directory; ostree mounts the physical root there")
	}
	if d := c.root.dirs["sysroot"]; d == nil {
		c.root.dirs["sysroot"] = newDir(defaultDirMeta())
	} else if len(d.dirs)+len(d.files) > 0 {
		return errors.New("/sysroot is not empty; ostree mounts the physical root there")
	}
	if d := c.root.dirs["ostree"]; d != nil {
		if len(d.dirs)+len(d.files) > 0 {
			return errors.New("/ostree is not empty; a bootable tree has the symlink ostree -> sysroot/ostree there")
		}
		delete(c.root.dirs, "ostree")
	}
	n, err := c.symlink("sysroot/ostree")
	c.root.files["ostree"] = n
	return err
}

// symlink stores and returns a root-owned symlink to target.
func (c *bootConv) symlink(target string) (*fileNode, error) {
	n := &fileNode{header: ostree.FileHeader{Mode: ostree.ModeSymlink | 0o777, LinkTarget: target}}
	return n, c.b.put(n, nil, 0)
}

// writeFile stores a root-owned file of mode 0644 at p, replacing a file there.
func (c *bootConv) writeFile(p string, data []byte) error {
	dir, err := lookupDir(c.root, path.Dir(p))
	if err != nil {
		return fmt.Errorf("/%s: %w", p, err)
	}
	name := path.Base(p)
	if dir.dirs[name] != nil {
		return fmt.Errorf("/%s is a directory", p)
	}
	n := &fileNode{header: ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}}
	if err := c.b.put(n, data, int64(len(data))); err != nil {
		return err
	}
	dir.files[name] = n
	return nil
}

// graft puts directory d at p (relative to root), merging it into a directory already
// there; from names d's old place for errors.
func graft(root *dirNode, p string, d *dirNode, from string) error {
	parent, err := lookupDir(root, path.Dir(p))
	if err != nil {
		return fmt.Errorf("/%s: %w", p, err)
	}
	name := path.Base(p)
	switch old := parent.dirs[name]; {
	case parent.files[name] != nil:
		return fmt.Errorf("/%s is not a directory, cannot take the contents of %s", p, from)
	case old != nil:
		return mergeDirs(old, d, "/"+p, func(q string) error {
			return fmt.Errorf("%s: in both %s and /%s", q, from, p)
		})
	}
	parent.dirs[name] = d
	return nil
}

// mergeDirs moves the entries of src into dst (at path p), recursively. An entry present in
// both (other than two directories) is handed to conflict with its path: dst's entry stays
// unless conflict returns an error. Conflicts are reported in name order.
func mergeDirs(dst, src *dirNode, p string, conflict func(p string) error) error {
	for _, name := range slices.Sorted(maps.Keys(src.files)) {
		if dst.files[name] != nil || dst.dirs[name] != nil {
			if err := conflict(p + "/" + name); err != nil {
				return err
			}
			continue
		}
		dst.files[name] = src.files[name]
	}
	for _, name := range slices.Sorted(maps.Keys(src.dirs)) {
		switch old := dst.dirs[name]; {
		case old != nil:
			if err := mergeDirs(old, src.dirs[name], p+"/"+name, conflict); err != nil {
				return err
			}
		case dst.files[name] != nil:
			if err := conflict(p + "/" + name); err != nil {
				return err
			}
		default:
			dst.dirs[name] = src.dirs[name]
		}
	}
	return nil
}

// walkTree calls fn for every entry below d (at path p, "" for the root), files of a
// directory before its subdirectories, each in name order.
func walkTree(d *dirNode, p string, fn func(p string, d *dirNode, f *fileNode) error) error {
	for _, name := range slices.Sorted(maps.Keys(d.files)) {
		if err := fn(p+"/"+name, nil, d.files[name]); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.dirs)) {
		sub := d.dirs[name]
		if err := fn(p+"/"+name, sub, nil); err != nil {
			return err
		}
		if err := walkTree(sub, p+"/"+name, fn); err != nil {
			return err
		}
	}
	return nil
}

func countFiles(d *dirNode) int64 {
	n := int64(len(d.files))
	for _, sub := range d.dirs {
		n += countFiles(sub)
	}
	return n
}

// resolveFile follows the absolute path p through the tree, resolving symlinks as the
// kernel would with the tree as root, and returns the regular file there and its name, or
// nil.
func resolveFile(root *dirNode, p string) (*fileNode, string) {
	stack := []*dirNode{root} // the directories walked through; the last is the current one
	todo := strings.Split(p, "/")
	for hops := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if sub := cur.dirs[name]; sub != nil {
			stack = append(stack, sub)
			continue
		}
		f := cur.files[name]
		if f == nil {
			return nil, ""
		}
		if !f.header.IsSymlink() {
			if slices.ContainsFunc(todo, func(s string) bool { return s != "" && s != "." }) {
				return nil, "" // a file used as a directory
			}
			return f, name
		}
		if hops++; hops > 40 {
			return nil, ""
		}
		t := f.header.LinkTarget
		if strings.HasPrefix(t, "/") {
			stack = stack[:1]
		}
		todo = append(strings.Split(t, "/"), todo...)
	}
	return nil, "" // a directory
}
