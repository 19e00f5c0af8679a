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

// kernelNames are the kernel image names recognised in /boot, most preferred first.
var kernelNames = []string{"vmlinuz", "Image", "zImage", "bzImage", "uImage", "fitImage"}

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

// bootFile is a candidate kernel or initramfs found in /boot.
type bootFile struct {
	path string    // where it was found, for messages
	node *fileNode // the regular file, symlinks resolved
	rank int       // preference, lower is better
	kver string    // version from its name or its link target's name, "" if none
}

// matcher tells whether a /boot file name is a candidate, with its rank and version.
type matcher func(name string) (rank int, kver string, ok bool)

func kernelMatch(name string) (int, string, bool) {
	for i, k := range kernelNames {
		if name == k {
			return i, "", true
		}
		if v, ok := strings.CutPrefix(name, k+"-"); ok && v != "" {
			return i, v, true
		}
	}
	return 0, "", false
}

// initramfsMatch ranks initramfs images for kernel kver: versioned names first.
func initramfsMatch(kver string) matcher {
	return func(name string) (int, string, bool) {
		switch name {
		case "initramfs-" + kver + ".img", "initrd.img-" + kver, "initrd-" + kver + ".img":
			return 0, kver, true
		case "initramfs.img", "initrd.img":
			return 1, "", true
		}
		if strings.HasPrefix(name, "initramfs") && isCpio(name) {
			return 1, "", true
		}
		return 0, "", false
	}
}

func isCpio(name string) bool {
	for _, z := range []string{".gz", ".xz", ".zst", ".lz4", ".lzma", ".lzo", ".bz2"} {
		if s, ok := strings.CutSuffix(name, z); ok {
			name = s
			break
		}
	}
	return strings.HasSuffix(name, ".cpio")
}

// candidates lists the regular files /boot holds (directly or through symlinks) under names
// match accepts, one entry per distinct content, sorted by name.
func (c *bootConv) candidates(boot *dirNode, match matcher) []bootFile {
	if boot == nil {
		return nil
	}
	var out []bootFile
	for _, name := range slices.Sorted(maps.Keys(boot.files)) {
		rank, kver, ok := match(name)
		if !ok {
			continue
		}
		n, target := resolveFile(c.root, "/boot/"+name)
		if n == nil {
			continue
		}
		if r, v, ok := match(target); ok {
			rank = min(rank, r)
			if kver == "" {
				kver = v
			}
		}
		i := slices.IndexFunc(out, func(f bootFile) bool { return f.node.checksum == n.checksum })
		if i < 0 {
			out = append(out, bootFile{path: "/boot/" + name, node: n, rank: rank, kver: kver})
			continue
		}
		out[i].rank = min(out[i].rank, rank)
		if out[i].kver == "" {
			out[i].kver = kver
		}
	}
	return out
}

// best returns the candidates of the best rank.
func best(files []bootFile) []bootFile {
	if len(files) == 0 {
		return nil
	}
	r := slices.MinFunc(files, func(a, b bootFile) int { return a.rank - b.rank }).rank
	return slices.DeleteFunc(slices.Clone(files), func(f bootFile) bool { return f.rank != r })
}

func paths(files []bootFile) string {
	var s []string
	for _, f := range files {
		s = append(s, f.path)
	}
	return strings.Join(s, ", ")
}

// kernel finds the kernel, its version, initramfs and device trees and puts them where
// ostree looks for them: /usr/lib/modules/<kver>/.
func (c *bootConv) kernel() error {
	opt := c.b.opts.KernelVersion
	if opt != "" && !ostree.ValidName(opt) {
		return fmt.Errorf("invalid kernel version %q", opt)
	}
	mods, _ := lookupExisting(c.root, "usr/lib/modules")
	var kvers, have []string
	if mods != nil {
		kvers = slices.Sorted(maps.Keys(mods.dirs))
		for _, kv := range kvers {
			if f := mods.dirs[kv].files["vmlinuz"]; f != nil && f.header.Mode&ostree.ModeTypeMask == ostree.ModeRegular {
				have = append(have, kv)
			}
		}
	}
	switch {
	case len(have) > 1:
		return fmt.Errorf("several kernels in /usr/lib/modules (%s): ostree boots whichever it finds first, so keep one",
			strings.Join(have, ", "))
	case len(have) == 1 && opt != "" && opt != have[0]:
		return fmt.Errorf("kernel version %s requested, but the tree's kernel is /usr/lib/modules/%s/vmlinuz", opt, have[0])
	case len(have) == 1:
		c.kver = have[0]
		return nil
	}

	boot := c.root.dirs["boot"]
	all := c.candidates(boot, kernelMatch)
	found := all
	if opt != "" {
		found = slices.DeleteFunc(slices.Clone(all), func(f bootFile) bool { return f.kver != "" && f.kver != opt })
		if len(found) == 0 && len(all) > 0 {
			return fmt.Errorf("kernel version %s requested, but /boot has no kernel of that version (found %s)", opt, paths(all))
		}
	}
	found = best(found)
	switch {
	case len(found) == 0:
		return errors.New("no kernel found in /boot or /usr/lib/modules/*/vmlinuz; a bootable tree needs its kernel " +
			"image as /boot/vmlinuz-<kver>, /boot/Image[-<kver>], /boot/zImage[-<kver>], /boot/bzImage[-<kver>] or " +
			"/boot/uImage, or as /usr/lib/modules/<kver>/vmlinuz")
	case len(found) > 1:
		return fmt.Errorf("several kernels in /boot (%s): pass the kernel version (--kernel-version) to choose one", paths(found))
	}
	k := found[0]
	kver := k.kver
	if opt != "" {
		kver = opt
	}
	if kver == "" {
		switch len(kvers) {
		case 0:
			return fmt.Errorf("cannot tell the version of kernel %s: its name has none and there is no "+
				"/lib/modules/<kver> or /usr/lib/modules/<kver> directory; pass --kernel-version", k.path)
		case 1:
			kver = kvers[0]
		default:
			return fmt.Errorf("cannot tell the version of kernel %s: its name has none and /usr/lib/modules has "+
				"several versions (%s); pass --kernel-version", k.path, strings.Join(kvers, ", "))
		}
	}
	dst, err := lookupDir(c.root, "usr/lib/modules/"+kver)
	if err != nil {
		return err
	}
	if dst.dirs["vmlinuz"] != nil {
		return fmt.Errorf("/usr/lib/modules/%s/vmlinuz is a directory", kver)
	}
	dst.files["vmlinuz"] = k.node
	c.kver = kver

	if dst.files["initramfs.img"] == nil && dst.files["initramfs"] == nil && dst.dirs["initramfs.img"] == nil {
		found = best(c.candidates(boot, initramfsMatch(kver)))
		if len(found) > 1 {
			return fmt.Errorf("several initramfs images in /boot (%s): keep one", paths(found))
		}
		if len(found) == 1 {
			dst.files["initramfs.img"] = found[0].node
		}
	}
	return c.deviceTrees(boot, dst, "/usr/lib/modules/"+kver)
}

// deviceTrees moves the device trees of /boot into the dtb directory of the kernel
// directory dst (at dstPath).
func (c *bootConv) deviceTrees(boot, dst *dirNode, dstPath string) error {
	if boot == nil {
		return nil
	}
	var dtb *dirNode
	dtbDir := func() (*dirNode, error) {
		if dtb != nil {
			return dtb, nil
		}
		if dst.files["dtb"] != nil {
			return nil, fmt.Errorf("%s/dtb is not a directory", dstPath)
		}
		if dtb = dst.dirs["dtb"]; dtb == nil {
			dtb = newDir(defaultDirMeta())
			dst.dirs["dtb"] = dtb
		}
		return dtb, nil
	}
	keep := func(string) error { return nil } // files already there win
	for _, name := range slices.Sorted(maps.Keys(boot.files)) {
		if !isDeviceTree(name) {
			continue
		}
		n, _ := resolveFile(c.root, "/boot/"+name)
		if n == nil {
			continue
		}
		d, err := dtbDir()
		if err != nil {
			return err
		}
		if d.files[name] == nil && d.dirs[name] == nil {
			d.files[name] = n
		}
	}
	for _, name := range slices.Sorted(maps.Keys(boot.dirs)) {
		sub := boot.dirs[name]
		if name != "dtb" && name != "overlays" && !holdsDeviceTrees(sub) {
			continue
		}
		d, err := dtbDir()
		if err != nil {
			return err
		}
		if name == "dtb" {
			err = mergeDirs(d, sub, dstPath+"/dtb", keep)
		} else if old := d.dirs[name]; old != nil {
			err = mergeDirs(old, sub, dstPath+"/dtb/"+name, keep)
		} else if d.files[name] == nil {
			d.dirs[name] = sub
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func isDeviceTree(name string) bool {
	return strings.HasSuffix(name, ".dtb") || strings.HasSuffix(name, ".dtbo")
}

func holdsDeviceTrees(d *dirNode) bool {
	for name := range d.files {
		if isDeviceTree(name) {
			return true
		}
	}
	for _, sub := range d.dirs {
		if holdsDeviceTrees(sub) {
			return true
		}
	}
	return false
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

// tmpLine is one line of the generated tmpfiles.d file.
type tmpLine struct{ path, text string }

// volatile empties /var, turns /home, /root, ... into symlinks to mutable storage and
// writes the tmpfiles.d file that recreates what these directories held.
func (c *bootConv) volatile() error {
	// vol gathers, as a tree rooted at /, what the device must recreate under /var and /run.
	vol := newDir(defaultDirMeta())
	switch v := c.root.dirs["var"]; {
	case c.root.files["var"] != nil:
		return errors.New("/var is not a directory")
	case v != nil:
		vol.dirs["var"] = v
		c.root.dirs["var"] = newDir(v.meta)
	default:
		vol.dirs["var"] = newDir(defaultDirMeta())
		c.root.dirs["var"] = newDir(defaultDirMeta())
	}
	for _, r := range relocations {
		if f := c.root.files[r.name]; f != nil && !f.header.IsSymlink() {
			return fmt.Errorf("/%s is a regular file; want a directory or a symlink", r.name)
		} else if f == nil {
			if d := c.root.dirs[r.name]; d != nil {
				delete(c.root.dirs, r.name)
				if err := graft(vol, r.target, d, "/"+r.name); err != nil {
					return err
				}
			}
			n, err := c.symlink(r.target)
			if err != nil {
				return err
			}
			c.root.files[r.name] = n
		}
		// The symlink's target must exist on the device.
		parent, err := lookupDir(vol, path.Dir(r.target))
		if err != nil {
			return fmt.Errorf("/%s: %w", r.target, err)
		}
		name := path.Base(r.target)
		if parent.files[name] != nil {
			return fmt.Errorf("/%s is not a directory", r.target)
		}
		if parent.dirs[name] == nil {
			m := defaultDirMeta()
			if r.name == "root" {
				m.Mode = ostree.ModeDir | 0o700
			}
			parent.dirs[name] = newDir(m)
		}
	}

	var lines []tmpLine
	err := walkTree(vol, "", func(p string, d *dirNode, f *fileNode) error {
		if p == "/var" || p == "/run" {
			return nil // /var is in the commit (empty); /run is a tmpfs
		}
		qp, err := tmpfilesPath(p)
		if err != nil {
			return err
		}
		switch {
		case d != nil:
			m := d.meta
			lines = append(lines, tmpLine{p, fmt.Sprintf("d %s %04o %d %d -", qp, m.Mode&ostree.ModePermMask, m.UID, m.GID)})
		case f.header.IsSymlink():
			lines = append(lines, tmpLine{p, fmt.Sprintf("L %s - - - - %s", qp, tmpfilesArg(f.header.LinkTarget))})
		case len(f.header.Xattrs) == 0 && f.checksum == ostree.Sum(f.header.Stream()): // empty file
			h := f.header
			lines = append(lines, tmpLine{p, fmt.Sprintf("f %s %04o %d %d -", qp, h.Mode&ostree.ModePermMask, h.UID, h.GID)})
		default:
			dir, err := c.copiesDir(vol, path.Dir(p))
			if err != nil {
				return err
			}
			name := path.Base(p)
			if dir.dirs[name] != nil {
				return fmt.Errorf("/%s/%s: is a directory, cannot hold the copy of %s", copiesDir, p[1:], p)
			}
			dir.files[name] = f
			lines = append(lines, tmpLine{p, fmt.Sprintf("C %s - - - - %s", qp, tmpfilesArg("/"+copiesDir+p))})
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(lines, func(a, b tmpLine) int { return strings.Compare(a.path, b.path) })
	var buf strings.Builder
	buf.WriteString("# Generated by ota-build commit --bootable. An OSTree commit carries no /var: these\n" +
		"# lines recreate what the root filesystem had under /var (and /run/media) on the device.\n" +
		"# Files are copied from /usr/share/ota; nothing that exists already is changed.\n")
	for _, l := range lines {
		buf.WriteString(l.text + "\n")
	}
	return c.writeFile(tmpfilesConf, []byte(buf.String()))
}

// copiesDir returns the directory of /usr/share/ota mirroring the directory p of vol,
// creating it (with p's metadata) and its parents.
func (c *bootConv) copiesDir(vol *dirNode, p string) (*dirNode, error) {
	d, err := lookupDir(c.root, copiesDir)
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", copiesDir, err)
	}
	v := vol
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		v = v.dirs[name]
		next := d.dirs[name]
		if next == nil {
			if d.files[name] != nil {
				return nil, fmt.Errorf("/%s%s: a parent directory is not a directory", copiesDir, p)
			}
			next = newDir(v.meta)
			d.dirs[name] = next
		}
		d = next
	}
	return d, nil
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

// tmpfilesPath quotes a path for the path field of a tmpfiles.d line. systemd-tmpfiles
// expands % specifiers there; it honours quotes and backslash escapes, but only newer
// versions undo C escapes such as \x20 (systemd 252 reads them as "x20"), so a path with
// blanks or quotes is double-quoted, with \ and " escaped, which every version reads alike.
func tmpfilesPath(p string) (string, error) {
	if strings.ContainsAny(p, "\n\r") {
		return "", fmt.Errorf("%q: a tmpfiles.d line cannot name a path with a line break", p)
	}
	p = strings.ReplaceAll(p, "%", "%%")
	if !strings.ContainsAny(p, " \t\v\f\"'\\") {
		return p, nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`, nil
}

// tmpfilesArg escapes the argument field (the rest of the line) of a tmpfiles.d line:
// systemd-tmpfiles undoes C escapes there, then expands % specifiers.
func tmpfilesArg(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '%':
			b.WriteString("%%")
		case ch == '\\':
			b.WriteString(`\\`)
		case ch <= ' ' || ch == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", ch)
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
