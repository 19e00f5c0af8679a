package sysroot

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// kernel describes the boot files of a deployment (the usr/lib/modules/<kver>/ layout;
// docs/format.md, "Kernel and boot checksum").
type kernel struct {
	kver                           string
	vmlinuz, initramfs, devicetree string // paths in the deployment, "" when absent
	dtb                            string // dtb/ directory in the deployment
	bootCsum                       string
}

// The boot files of a kernel directory usr/lib/modules/<kver>/ that findKernel reads.
const (
	kernelFile     = "vmlinuz"
	devicetreeFile = "devicetree"
	dtbDir         = "dtb"
)

var initramfsFiles = []string{"initramfs.img", "initramfs"}

// findKernel locates the kernel in deployment dir and computes the boot checksum.
func findKernel(dir string) (*kernel, error) {
	mods := filepath.Join(dir, "usr/lib/modules")
	ents, _ := os.ReadDir(mods)
	for _, e := range ents {
		kd := filepath.Join(mods, e.Name())
		if st, err := os.Lstat(filepath.Join(kd, kernelFile)); err != nil || !st.Mode().IsRegular() {
			continue
		}
		k := &kernel{kver: e.Name(), vmlinuz: filepath.Join(kd, kernelFile)}
		for _, n := range initramfsFiles {
			if st, err := os.Lstat(filepath.Join(kd, n)); err == nil && st.Mode().IsRegular() {
				k.initramfs = filepath.Join(kd, n)
				break
			}
		}
		if st, err := os.Lstat(filepath.Join(kd, devicetreeFile)); err == nil && st.Mode().IsRegular() {
			k.devicetree = filepath.Join(kd, devicetreeFile)
		} else if st, err := os.Lstat(filepath.Join(kd, dtbDir)); err == nil && st.IsDir() {
			k.dtb = filepath.Join(kd, dtbDir)
		}
		h := sha256.New()
		for _, p := range []string{k.vmlinuz, k.initramfs, k.devicetree} {
			if p != "" {
				if err := hashFile(h, p); err != nil {
					return nil, err
				}
			}
		}
		if k.dtb != "" {
			if err := hashDir(h, k.dtb); err != nil {
				return nil, err
			}
		}
		k.bootCsum = fmt.Sprintf("%x", h.Sum(nil))
		return k, nil
	}
	return nil, errors.New("sysroot: Failed to find kernel in /usr/lib/modules (the legacy /usr/lib/ostree-boot and /boot layouts are not supported)")
}

func hashFile(h io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}

func hashDir(h io.Writer, dir string) error {
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := hashDir(h, p); err != nil {
				return err
			}
		} else if e.Type().IsRegular() {
			if err := hashFile(h, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *kernel) bootDir(osName string) string { return "/ostree/" + osName + "-" + k.bootCsum }

// installKernel copies (hardlinks when possible) the boot files to
// boot/ostree/<os>-<bootcsum>/ unless that directory exists.
func (s *Sysroot) installKernel(osName string, k *kernel) error {
	final := filepath.Join(s.path, "boot", k.bootDir(osName))
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := s.checkBootSpace(k); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	files := [][2]string{{k.vmlinuz, "vmlinuz-" + k.kver}}
	if k.initramfs != "" {
		files = append(files, [2]string{k.initramfs, "initramfs-" + k.kver + ".img"})
	}
	if k.devicetree != "" {
		files = append(files, [2]string{k.devicetree, "devicetree-" + k.kver})
	}
	for _, f := range files {
		if err := s.linkOrCopy(f[0], filepath.Join(tmp, f[1])); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if k.dtb != "" {
		if err := s.copyTree(k.dtb, filepath.Join(tmp, "dtb")); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if err := s.syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	s.attrs.moved(tmp, final)
	return nil
}

// BootMinFree is the space that must stay free in /boot once a kernel is installed.
const BootMinFree = 1 << 20

// checkBootSpace returns an error, before anything is written, when /boot is another
// filesystem than the deployments (the boot files are copied, not hardlinked) and k's
// files do not fit in it with BootMinFree to spare.
func (s *Sysroot) checkBootSpace(k *kernel) error {
	boot := filepath.Join(s.path, "boot")
	var bst, kst unix.Stat_t
	if unix.Stat(boot, &bst) != nil || unix.Stat(k.vmlinuz, &kst) != nil || bst.Dev == kst.Dev {
		return nil
	}
	var need int64
	for _, p := range []string{k.vmlinuz, k.initramfs, k.devicetree, k.dtb} {
		if p == "" {
			continue
		}
		err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err == nil {
				need += info.Size() + 4096 // a block of slack per file
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(boot, &st); err != nil {
		return fmt.Errorf("sysroot: statfs %s: %w", boot, err)
	}
	if avail := int64(st.Bavail) * int64(st.Bsize); need+BootMinFree > avail {
		return fmt.Errorf("sysroot: not enough space in %s for kernel %s: it needs %d bytes and %d must stay free, %d are", boot, k.kver, need, BootMinFree, avail)
	}
	return nil
}

func (s *Sysroot) linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	return s.copyTree(src, dst)
}
