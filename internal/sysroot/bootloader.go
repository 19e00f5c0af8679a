package sysroot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// kernel describes the boot files of a deployment (modules layout; docs/format.md, "Kernel
// and boot checksum").
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
func (w *attrWriter) installKernel(osName string, k *kernel) error {
	final := filepath.Join(w.root, "boot", k.bootDir(osName))
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("sysroot: %w", err)
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
		if err := w.linkOrCopy(f[0], filepath.Join(tmp, f[1])); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if k.dtb != "" {
		if err := w.copyTree(k.dtb, filepath.Join(tmp, "dtb")); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if err := w.syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	w.moved(tmp, final)
	return nil
}

func (w *attrWriter) linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	return w.copyTree(src, dst)
}

func (w *attrWriter) syncDir(p string) error {
	if w.nosync {
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

// entry is the boot configuration of one deployment in the new list.
type entry struct {
	d                                 *deployment
	title, version, options           string
	linux, initrd, devicetree, fdtdir string
	uEnvExtra                         string
}

// bls renders the BLS entry file in ostree's key order.
func (e *entry) bls() string {
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			b.WriteString(k + " " + v + "\n")
		}
	}
	add("title", e.title)
	add("version", e.version)
	add("options", e.options)
	add("devicetree", e.devicetree)
	add("linux", e.linux)
	add("initrd", e.initrd)
	add("fdtdir", e.fdtdir)
	return b.String()
}

// uEnv renders boot/loader.N/uEnv.txt for U-Boot (docs/format.md, "U-Boot environment
// (uEnv.txt)").
func uEnv(entries []entry) string {
	var lines []string
	for i, e := range entries {
		suffix := ""
		if i > 0 {
			suffix = fmt.Sprint(i + 1)
		}
		lines = append(lines, "kernel_image"+suffix+"=/boot"+e.linux)
		if e.initrd != "" {
			lines = append(lines, "ramdisk_image"+suffix+"=/boot"+e.initrd)
		}
		if e.devicetree != "" {
			lines = append(lines, "fdt_file"+suffix+"=/boot"+e.devicetree)
		}
		if e.fdtdir != "" {
			lines = append(lines, "fdtdir"+suffix+"=/boot"+e.fdtdir)
		}
		lines = append(lines, "bootargs"+suffix+"="+e.options)
		if i == 0 && e.uEnvExtra != "" {
			lines = append(lines, e.uEnvExtra)
		}
	}
	out := strings.Join(lines, "\n") + "\n"
	for strings.Contains(out, "\n\n\n") {
		out = strings.ReplaceAll(out, "\n\n\n", "\n\n")
	}
	return out
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

// writeBootConfig writes the boot configuration of list at the other bootversion, swaps
// boot/loader to it and removes what the old configuration alone used (docs/format.md,
// "Boot versions and the swap").
func writeBootConfig(ctx context.Context, w *attrWriter, repo *ostree.Repo, bootversion int, list []deployment, uboot bool) error {
	sysroot := w.root
	nb := 1 - bootversion
	n := len(list)
	oses := map[string]bool{}
	for _, d := range list {
		oses[d.OS] = true
	}
	serials := map[string]int{}
	entries := make([]entry, n)
	for i := range list {
		d := &list[i]
		dir := d.dir(sysroot)
		k, err := findKernel(dir)
		if err != nil {
			return err
		}
		if k.bootCsum != d.BootCsum {
			return fmt.Errorf("sysroot: deployment %s: boot checksum %s does not match its boot link %s", d.name(), k.bootCsum, d.BootCsum)
		}
		if err := w.installKernel(d.OS, k); err != nil {
			return err
		}
		serial := serials[d.BootCsum]
		serials[d.BootCsum]++
		e := entry{d: d, version: fmt.Sprint(n - i)}
		title := osTitle(dir)
		if cm, _, err := repo.ReadCommit(d.Commit); err == nil {
			if v := cm.Version(); v != "" && !strings.Contains(title, v) {
				title += " " + v
			}
		}
		if len(oses) > 1 {
			title += fmt.Sprintf(" (ostree:%s:%d)", d.OS, i)
		} else {
			title += fmt.Sprintf(" (ostree:%d)", i)
		}
		e.title = title
		link := fmt.Sprintf("/ostree/boot.%d/%s/%s/%d", nb, d.OS, d.BootCsum, serial)
		opts := append([]string(nil), d.Kargs...)
		if k.initramfs == "" {
			opts = append(opts, "init="+link+"/usr/lib/ostree/ostree-prepare-root")
		}
		e.options = strings.Join(append(opts, "ostree="+link), " ")
		bd := k.bootDir(d.OS)
		e.linux = bd + "/vmlinuz-" + k.kver
		if k.initramfs != "" {
			e.initrd = bd + "/initramfs-" + k.kver + ".img"
		}
		if k.devicetree != "" {
			e.devicetree = bd + "/devicetree-" + k.kver
		}
		if k.dtb != "" {
			e.fdtdir = bd + "/dtb"
		}
		if data, err := os.ReadFile(filepath.Join(dir, "usr/lib/ostree-boot/uEnv.txt")); err == nil {
			e.uEnvExtra = string(data)
		}
		entries[i] = e
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// boot/loader.<nb>/
	loader := filepath.Join(sysroot, fmt.Sprintf("boot/loader.%d", nb))
	if err := os.RemoveAll(loader); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(loader, "entries"), 0o755); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	for i, e := range entries {
		name := fmt.Sprintf("ostree-%d-%s.conf", n-i, e.d.OS)
		if err := w.writeFile(filepath.Join(loader, "entries", name), []byte(e.bls())); err != nil {
			return err
		}
	}
	if uboot {
		if err := w.writeFile(filepath.Join(loader, "uEnv.txt"), []byte(uEnv(entries))); err != nil {
			return err
		}
	}

	// ostree/boot.<nb>.<m>/ and ostree/boot.<nb>
	ostreeDir := filepath.Join(sysroot, "ostree")
	m := 1
	if t, _ := os.Readlink(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", nb))); t == fmt.Sprintf("boot.%d.1", nb) {
		m = 0
	}
	farm := filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.%d", nb, m))
	if err := os.RemoveAll(farm); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	serials = map[string]int{}
	for _, d := range list {
		serial := serials[d.BootCsum]
		serials[d.BootCsum]++
		p := filepath.Join(farm, d.OS, d.BootCsum)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
		if err := os.Symlink("../../../deploy/"+d.OS+"/deploy/"+d.name(), filepath.Join(p, fmt.Sprint(serial))); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if err := replaceSymlink(fmt.Sprintf("boot.%d.%d", nb, m), filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", nb))); err != nil {
		return err
	}

	// Deploy refs.
	keepRefs := map[string]bool{}
	for i, d := range list {
		name := fmt.Sprintf("ostree/%d/%d/%d", nb, m, i)
		keepRefs[name] = true
		if err := repo.WriteRef(name, d.Commit); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}

	// The commit point.
	if err := w.syncfs(); err != nil {
		return err
	}
	boot := filepath.Join(sysroot, "boot")
	if _, err := os.Lstat(filepath.Join(boot, "boot")); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(".", filepath.Join(boot, "boot")); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if err := replaceSymlink(fmt.Sprintf("loader.%d", nb), filepath.Join(boot, "loader")); err != nil {
		return err
	}
	if err := w.syncDir(boot); err != nil {
		return err
	}
	return cleanup(sysroot, repo, bootversion, nb, m, list, keepRefs)
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
func (w *attrWriter) syncfs() error {
	if w.nosync {
		return nil
	}
	fd, err := unix.Open(w.root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sysroot: syncfs: %w", err)
	}
	return nil
}

var kernelDirRE = regexp.MustCompile(`^(.+)-([0-9a-f]{64})$`)

// cleanup removes the old boot configuration, unused kernels, dropped deployments and
// stale deploy refs.
func cleanup(sysroot string, repo *ostree.Repo, oldB, nb, m int, list []deployment, keepRefs map[string]bool) error {
	var errs []error
	rm := func(p string) {
		if err := removeTree(p); err != nil {
			errs = append(errs, err)
		}
	}
	rm(filepath.Join(sysroot, fmt.Sprintf("boot/loader.%d", oldB)))
	ostreeDir := filepath.Join(sysroot, "ostree")
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d", oldB)))
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.0", oldB)))
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.1", oldB)))
	rm(filepath.Join(ostreeDir, fmt.Sprintf("boot.%d.%d", nb, 1-m)))

	keepKernels := map[string]bool{}
	keepDeploys := map[string]bool{}
	for _, d := range list {
		keepKernels[d.OS+"-"+d.BootCsum] = true
		keepDeploys[d.OS+"/"+d.name()] = true
	}
	kdir := filepath.Join(sysroot, "boot/ostree")
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

	refs, err := repo.ListRefs()
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
		if err := os.Remove(filepath.Join(repo.Path, "refs/heads", r)); err != nil {
			errs = append(errs, err)
		}
	}
	// Remove the emptied ref directories (deepest first).
	for _, d := range []string{"ostree/0/0", "ostree/0/1", "ostree/1/0", "ostree/1/1", "ostree/0", "ostree/1"} {
		os.Remove(filepath.Join(repo.Path, "refs/heads", d))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sysroot: deployed, but cleaning up failed: %w", err)
	}
	return nil
}
