package commit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/otakit/ota/internal/ostree"
)

// kernelNames are the kernel image names recognised in /boot, most preferred first.
var kernelNames = []string{"vmlinuz", "Image", "zImage", "bzImage", "uImage", "fitImage"}

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
