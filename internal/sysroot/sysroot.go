// Package sysroot creates and updates OSTree sysroots (the device's physical root: the bare
// repository, the deployments and the boot configuration) without the ostree binary, laid
// out exactly as `ostree admin init-fs`, `os-init` and `deploy` (2022.7) do; see
// docs/format.md, "Sysroot".
package sysroot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

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
	// Attrs, when non-nil, makes Deploy record file owners, modes and extended attributes
	// instead of setting them, so it runs as an ordinary user: it receives them for every
	// path whose attributes differ from "owned by 0:0, on-disk permission bits, no
	// xattrs", keyed by slash-separated path relative to the sysroot. Files on disk then
	// keep the caller's owner and get u+rw (directories u+rwx). Image builders apply the
	// map inside the filesystem they write (see image/ext4). Only a first deployment can
	// be recorded this way.
	Attrs map[string]ostree.DirMeta
	// Sparse, when non-nil, makes Deploy leave out of the sysroot on disk the content
	// objects it does not read itself (it reads /usr/etc, os-release, the kernel,
	// initramfs and device trees) and list them, with the checkout paths that would link
	// to them, in Sparse instead. Image builders write those objects straight from the
	// source repository into the image: decompressed once, and never staged. Needs Attrs.
	Sparse *Sparse
	// NoSync skips every fsync and syncfs, for a sysroot staged only to be copied into an
	// image: there is no power loss to survive, and flushing hundreds of megabytes costs
	// more than the rest of the deployment.
	NoSync bool
}

// ValidOSName reports whether name can be a stateroot: one path component without
// whitespace, as ostree admin os-init accepts.
func ValidOSName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/ \t\n")
}

func (o *Options) check() error {
	if !ValidOSName(o.OSName) {
		return fmt.Errorf("sysroot: invalid OS name %q", o.OSName)
	}
	switch o.Bootloader {
	case "", "none", "uboot":
	default:
		return fmt.Errorf("sysroot: unsupported bootloader %q (want uboot or none)", o.Bootloader)
	}
	return nil
}

// Sparse lists the content objects Deploy left out of a sysroot (see Options.Sparse).
type Sparse struct {
	// Objects are the objects left out, by checksum. Each belongs in the sysroot at
	// ObjectPath.
	Objects map[ostree.Checksum]SparseObject
	// Links are the paths of the deployment (relative to the sysroot) that are hard links
	// to them.
	Links map[string]ostree.Checksum
}

// SparseObject is a content object left out of a sysroot.
type SparseObject struct {
	// Header holds the owner, mode, xattrs and symlink target.
	Header ostree.FileHeader
	// Size is the content's length.
	Size int64
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
		env := filepath.Join(path, "boot/loader/uEnv.txt")
		if _, err := os.Stat(env); errors.Is(err, fs.ErrNotExist) {
			if err := os.WriteFile(env, nil, 0o644); err != nil {
				return fmt.Errorf("sysroot: %w", err)
			}
		}
		if repo.Config["sysroot.bootloader"] == "" {
			cfg, err := os.ReadFile(filepath.Join(repo.Path, "config"))
			if err != nil {
				return fmt.Errorf("sysroot: %w", err)
			}
			cfg = append(bytes.TrimRight(cfg, "\n"), "\n\n[sysroot]\nbootloader=uboot\n"...)
			if err := repo.WriteFileAtomic("config", cfg, 0o644); err != nil {
				return fmt.Errorf("sysroot: %w", err)
			}
		}
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

// deployment is one entry of the boot configuration.
type deployment struct {
	OS       string
	Commit   ostree.Checksum
	Serial   int
	BootCsum string
	// Kargs are the kernel arguments without ostree= and the generated init=.
	Kargs []string
}

func (d *deployment) name() string { return fmt.Sprintf("%s.%d", d.Commit, d.Serial) }

func (d *deployment) dir(sysroot string) string {
	return filepath.Join(sysroot, "ostree/deploy", d.OS, "deploy", d.name())
}

var (
	ostreeArg = regexp.MustCompile(`^/ostree/boot\.([01])/([^/]+)/([^/]+)/([0-9]+)$`)
	deployRE  = regexp.MustCompile(`^\.\./\.\./\.\./deploy/([^/]+)/deploy/([0-9a-f]{64})\.([0-9]+)$`)
)

// currentBootversion returns N of boot/loader -> loader.N (0 when there is none).
func currentBootversion(sysroot string) (int, error) {
	t, err := os.Readlink(filepath.Join(sysroot, "boot/loader"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("sysroot: %w", err)
	}
	switch t {
	case "loader.0":
		return 0, nil
	case "loader.1":
		return 1, nil
	}
	return 0, fmt.Errorf("sysroot: boot/loader points to %q, want loader.0 or loader.1", t)
}

// loadDeployments reads the current deployment list from the BLS entries of the current
// bootversion, default (index 0) first.
func loadDeployments(sysroot string, bootversion int) ([]deployment, error) {
	dir := filepath.Join(sysroot, fmt.Sprintf("boot/loader.%d/entries", bootversion))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	type versioned struct {
		version int
		d       deployment
	}
	var list []versioned
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "ostree-") || !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sysroot: %w", err)
		}
		keys := parseEntry(string(data))
		var d deployment
		var link string
		for _, a := range strings.Fields(keys["options"]) {
			if v, ok := strings.CutPrefix(a, "ostree="); ok {
				link = v
				continue
			}
			if strings.HasPrefix(a, "init=/ostree/boot.") && strings.HasSuffix(a, "/usr/lib/ostree/ostree-prepare-root") {
				continue
			}
			d.Kargs = append(d.Kargs, a)
		}
		m := ostreeArg.FindStringSubmatch(link)
		if m == nil {
			return nil, fmt.Errorf("sysroot: %s: no valid ostree= kernel argument", e.Name())
		}
		d.BootCsum = m[3]
		target, err := os.Readlink(filepath.Join(sysroot, link))
		if err != nil {
			return nil, fmt.Errorf("sysroot: %s: %w", e.Name(), err)
		}
		dm := deployRE.FindStringSubmatch(target)
		if dm == nil {
			return nil, fmt.Errorf("sysroot: %s: unexpected boot link target %q", link, target)
		}
		d.OS = dm[1]
		d.Commit, _ = ostree.ParseChecksum(dm[2])
		d.Serial, _ = strconv.Atoi(dm[3])
		v, err := strconv.Atoi(keys["version"])
		if err != nil {
			return nil, fmt.Errorf("sysroot: %s: invalid version %q", e.Name(), keys["version"])
		}
		list = append(list, versioned{v, d})
	}
	slices.SortStableFunc(list, func(a, b versioned) int { return b.version - a.version })
	out := make([]deployment, len(list))
	for i, v := range list {
		out[i] = v.d
	}
	return out, nil
}

func parseEntry(s string) map[string]string {
	keys := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k != "" && !strings.HasPrefix(k, "#") {
			keys[k] = strings.TrimSpace(v)
		}
	}
	return keys
}

// Deploy deploys commit from src as the new default deployment of the stateroot
// opts.OSName in the sysroot at sysroot (created by Init or by `ostree admin`), in the
// steps docs/format.md describes in "Deployments" and "Boot versions and the swap":
//
//   - every object of the commit, the commit and its detached metadata are copied into
//     ostree/repo (objects already present are skipped; the commit is written last);
//   - the commit is checked out as ostree/deploy/<os>/deploy/<commit>.<serial>, files
//     hardlinked to the repository's objects; etc is a copy of usr/etc with the changes of
//     the previous default deployment's /etc merged in (three-way merge); the .origin file
//     is written;
//   - the kernel, initramfs and device trees go to boot/ostree/<os>-<bootcsum>/;
//   - BLS entries (and uEnv.txt for U-Boot) are written to boot/loader.<new>/, the
//     ostree/boot.<new>.<m> links and the ostree/<new>/<m>/<i> refs are created, and
//     boot/loader is swapped to loader.<new> with one rename, the commit point;
//   - finally the old boot directories, unused kernels and dropped deployments are removed.
//
// The deployment list becomes [new, previous default of the stateroot] plus the
// deployments of other stateroots; older deployments of the stateroot are removed.
//
// The sysroot repository is in bare mode, so Deploy needs root (to chown files and set
// extended attributes) and returns an error otherwise, unless Options.Attrs records them
// instead (for images). Deploy does not set the immutable
// flag on the deployment directory, and only supports kernels in the
// usr/lib/modules/<kver>/vmlinuz layout.
func Deploy(ctx context.Context, sysroot string, src *ostree.Repo, commit ostree.Checksum, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	if os.Geteuid() != 0 && opts.Attrs == nil {
		return errors.New("sysroot: creating a bare repository needs root (to set file owners and extended attributes); run Deploy as root or record them with Options.Attrs")
	}
	repo, err := ostree.Open(filepath.Join(sysroot, "ostree/repo"))
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if opts.Sparse != nil {
		if opts.Attrs == nil {
			return errors.New("sysroot: Options.Sparse needs Options.Attrs")
		}
		opts.Sparse.Objects, opts.Sparse.Links = map[ostree.Checksum]SparseObject{}, map[string]ostree.Checksum{}
	}
	w := &attrWriter{root: sysroot, attrs: opts.Attrs, nosync: opts.NoSync, sparse: opts.Sparse}
	if w.attrs != nil {
		var mu sync.Mutex // objects are written in parallel
		repo.DeferOwnership = func(rel string, h *ostree.FileHeader) {
			mu.Lock()
			defer mu.Unlock()
			w.attrs[path.Join("ostree/repo", rel)] = ostree.DirMeta{UID: h.UID, GID: h.GID, Mode: h.Mode & ostree.ModePermMask, Xattrs: h.Xattrs}
		}
	}
	if repo.Mode != ostree.ModeBare {
		return fmt.Errorf("sysroot: %s is a %s repository, want bare", repo.Path, repo.Mode)
	}
	if _, err := os.Stat(filepath.Join(sysroot, "ostree/deploy", opts.OSName, "var")); err != nil {
		return fmt.Errorf("sysroot: stateroot %q is not initialised: %w", opts.OSName, err)
	}
	unlock, err := lockSysroot(sysroot)
	if err != nil {
		return err
	}
	defer unlock()

	if err := w.pull(ctx, src, repo, commit); err != nil {
		return fmt.Errorf("sysroot: pulling %s: %w", commit, err)
	}
	bootversion, err := currentBootversion(sysroot)
	if err != nil {
		return err
	}
	old, err := loadDeployments(sysroot, bootversion)
	if err != nil {
		return err
	}
	var merge *deployment
	for i := range old {
		if old[i].OS == opts.OSName {
			merge = &old[i]
			break
		}
	}
	if w.attrs != nil && len(old) > 0 {
		return errors.New("sysroot: recording attributes (Options.Attrs) needs a sysroot without deployments")
	}

	// 2. Check out the commit.
	d := deployment{OS: opts.OSName, Commit: commit}
	for _, o := range old {
		if o.OS == d.OS && o.Commit == d.Commit && o.Serial >= d.Serial {
			d.Serial = o.Serial + 1
		}
	}
	d.Kargs = opts.Kargs
	if d.Kargs == nil && merge != nil {
		d.Kargs = merge.Kargs
	}
	dir := d.dir(sysroot)
	if err := removeTree(dir); err != nil { // leftover of an interrupted Deploy
		return err
	}
	cm, _, err := repo.ReadCommit(commit)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := w.checkout(ctx, repo, cm.RootTree, cm.RootMeta, dir); err != nil {
		return fmt.Errorf("sysroot: checking out %s: %w", commit, err)
	}
	// 3. /etc.
	if _, err := os.Lstat(filepath.Join(dir, "usr/etc")); err == nil {
		if err := w.copyTree(filepath.Join(dir, "usr/etc"), filepath.Join(dir, "etc")); err != nil {
			return fmt.Errorf("sysroot: copying usr/etc: %w", err)
		}
		if merge != nil {
			md := merge.dir(sysroot)
			if err := w.mergeEtc(filepath.Join(md, "usr/etc"), filepath.Join(md, "etc"), filepath.Join(dir, "etc")); err != nil {
				return fmt.Errorf("sysroot: merging /etc: %w", err)
			}
		}
	}
	refspec := opts.Refspec
	if refspec == "" {
		refspec = commit.String()
	}
	if err := w.writeFile(dir+".origin", []byte("[origin]\nrefspec="+refspec+"\n")); err != nil {
		return err
	}
	sel := filepath.Join(sysroot, "ostree/deploy", d.OS, "var/.ostree-selabeled")
	if _, err := os.Stat(sel); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(sel, nil, 0o644); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	// 4. Kernel.
	kern, err := findKernel(dir)
	if err != nil {
		return err
	}
	d.BootCsum = kern.bootCsum
	if err := w.installKernel(d.OS, kern); err != nil {
		return err
	}

	// 5. New list.
	list := []deployment{d}
	keptMerge := false
	for _, o := range old {
		if o.OS != d.OS {
			list = append(list, o)
		} else if !keptMerge {
			list = append(list, o)
			keptMerge = true
		}
	}
	uboot := opts.Bootloader == "uboot"
	if opts.Bootloader == "" {
		_, err := os.Stat(filepath.Join(sysroot, "boot/loader/uEnv.txt"))
		uboot = repo.Config["sysroot.bootloader"] == "uboot" || err == nil
	}
	return writeBootConfig(ctx, w, repo, bootversion, list, uboot)
}

// pull copies the commit and everything it references from src to dst.
func (w *attrWriter) pull(ctx context.Context, src, dst *ostree.Repo, c ostree.Checksum) error {
	if src.Path == dst.Path && dst.HasObject(c, ostree.ObjCommit) {
		return nil
	}
	cm, data, err := src.ReadCommit(c)
	if err != nil {
		return err
	}
	partial := filepath.Join(dst.Path, "state", c.String()+".commitpartial")
	if _, err := os.Stat(partial); dst.HasObject(c, ostree.ObjCommit) && err != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(partial, nil, 0o644); err != nil {
		return err
	}
	if err := copyMeta(src, dst, ostree.ObjDirMeta, cm.RootMeta); err != nil {
		return err
	}
	if err := pullObjects(ctx, src, dst, cm.RootTree, w.sparse); err != nil {
		return err
	}
	meta, err := src.ReadDetachedMetadata(c)
	if err != nil {
		return err
	}
	if meta != nil {
		if err := dst.WriteDetachedMetadata(c, meta); err != nil {
			return err
		}
	}
	if err := w.syncRepo(dst); err != nil {
		return err
	}
	if got, err := dst.WriteObject(ostree.ObjCommit, data); err != nil {
		return err
	} else if got != c {
		return fmt.Errorf("commit checksum mismatch: %s", got)
	}
	return os.Remove(partial)
}

func copyMeta(src, dst *ostree.Repo, t ostree.ObjectType, c ostree.Checksum) error {
	if dst.HasObject(c, t) {
		return nil
	}
	data, err := src.ReadObject(t, c) // verified
	if err != nil {
		return err
	}
	_, err = dst.WriteObject(t, data)
	return err
}

// pullObjects copies the objects of a tree that dst lacks. The tree is walked in parallel
// and feeds the content objects to workers on all cores as it finds them: decompressing and
// checksumming them is most of a deployment's work. With sparse non-nil, the objects the
// deployment does not read are only listed there (see Options.Sparse).
func pullObjects(ctx context.Context, src, dst *ostree.Repo, tree ostree.Checksum, sparse *Sparse) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type job struct {
		c    ostree.Checksum
		full bool // copy the object, else (sparse) only list it
	}
	todo := make(chan job, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	// More workers than cores: reading objects from a cold cache waits on the disk.
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range todo {
				if ctx.Err() != nil {
					continue
				}
				if j.full {
					if err := pullFile(src, dst, j.c); err != nil {
						cancel(err)
					}
					continue
				}
				h, size, err := src.ReadHeader(j.c)
				if err != nil {
					cancel(err)
					continue
				}
				mu.Lock()
				sparse.Objects[j.c] = SparseObject{h, size}
				mu.Unlock()
			}
		})
	}
	// What was queued per object: listed (sparse), copied, or both when a path the
	// deployment reads turns up after one it does not.
	const listed, copied = 1, 2
	queued := map[ostree.Checksum]int{}
	var qmu sync.Mutex
	found := func(c ostree.Checksum, p string) error {
		want := copied
		if sparse != nil && !readByDeploy(p) {
			want = listed
		}
		qmu.Lock()
		had := queued[c]
		queued[c] = had | want
		qmu.Unlock()
		if had&copied != 0 || (had != 0 && want == listed) {
			return nil
		}
		select {
		case todo <- job{c, want == copied}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	w := &treeWalk{ctx: ctx, src: src, dst: dst, found: found, sem: make(chan struct{}, 8)}
	err := w.walk(tree, "")
	close(todo)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	if sparse != nil {
		for c, q := range queued {
			if q&copied != 0 {
				delete(sparse.Objects, c)
			}
		}
	}
	return err
}

// readByDeploy reports whether Deploy reads the file at p (a path in the commit): the
// defaults of /etc, os-release (osTitle), and the kernel, initramfs and device trees
// (findKernel).
func readByDeploy(p string) bool {
	if strings.HasPrefix(p, "usr/etc/") || p == "usr/lib/os-release" {
		return true
	}
	rest, ok := strings.CutPrefix(p, "usr/lib/modules/")
	if !ok {
		return false
	}
	_, name, _ := strings.Cut(rest, "/")
	return name == kernelFile || slices.Contains(initramfsFiles, name) || name == devicetreeFile ||
		strings.HasPrefix(name, dtbDir+"/")
}

// treeWalk copies the dirtree and dirmeta objects of a tree, walking subdirectories in
// parallel, and calls found for each content object dst lacks.
type treeWalk struct {
	ctx      context.Context
	src, dst *ostree.Repo
	found    func(c ostree.Checksum, path string) error
	sem      chan struct{} // bounds the goroutines walking subdirectories
}

// walk handles the tree at path p of the commit.
func (w *treeWalk) walk(tree ostree.Checksum, p string) error {
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	data, err := w.src.ReadObject(ostree.ObjDirTree, tree) // verified
	if err != nil {
		return err
	}
	t, err := ostree.ParseDirTree(data)
	if err != nil {
		return err
	}
	for _, f := range t.Files {
		if w.dst.HasObject(f.Checksum, ostree.ObjFile) {
			continue
		}
		if err := w.found(f.Checksum, path.Join(p, f.Name)); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(t.Dirs))
	for i, sub := range t.Dirs {
		if err := copyMeta(w.src, w.dst, ostree.ObjDirMeta, sub.Meta); err != nil {
			return err
		}
		sp := path.Join(p, sub.Name)
		select {
		case w.sem <- struct{}{}:
			wg.Go(func() {
				errs[i] = w.walk(sub.Tree, sp)
				<-w.sem
			})
		default:
			errs[i] = w.walk(sub.Tree, sp)
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if w.dst.HasObject(tree, ostree.ObjDirTree) {
		return nil
	}
	_, err = w.dst.WriteObject(ostree.ObjDirTree, data)
	return err
}

// pullFile copies one content object. OpenContent's reader verifies it as it is written:
// a corrupt object fails the write, and nothing is stored.
func pullFile(src, dst *ostree.Repo, c ostree.Checksum) error {
	o, err := src.OpenContent(c)
	if err != nil {
		return err
	}
	defer o.Close()
	_, err = dst.WriteContent(c, &o.Header, o, o.Size, 0)
	return err
}

// attrWriter sets the owners, modes and extended attributes of paths in a sysroot, or
// records them in attrs (see Options.Attrs); it also makes the sysroot's writes durable
// unless nosync.
type attrWriter struct {
	root   string
	attrs  map[string]ostree.DirMeta
	nosync bool    // see Options.NoSync
	sparse *Sparse // see Options.Sparse
}

func (w *attrWriter) key(p string) string {
	rel, _ := filepath.Rel(w.root, p)
	return filepath.ToSlash(rel)
}

func (w *attrWriter) syncRepo(r *ostree.Repo) error {
	if w.nosync {
		return nil
	}
	return r.Sync()
}

// moved renames the recorded attributes of the tree at from after a rename to to.
func (w *attrWriter) moved(from, to string) {
	if w.attrs == nil {
		return
	}
	f, t := w.key(from), w.key(to)
	var keys []string
	for k := range w.attrs {
		if rest, ok := strings.CutPrefix(k, f); ok && (rest == "" || rest[0] == '/') {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		w.attrs[t+k[len(f):]] = w.attrs[k]
		delete(w.attrs, k)
	}
}

// set gives p (a file of type typ, unix.S_IF*) the attributes m.
func (w *attrWriter) set(p string, typ uint32, m ostree.DirMeta) error {
	perm := m.Mode & ostree.ModePermMask
	if w.attrs != nil {
		disk := perm | 0o600 // readable and writable by the caller, who owns the files
		switch typ {
		case unix.S_IFDIR:
			disk = perm | 0o700
		case unix.S_IFLNK:
			disk = perm
		}
		if m.UID != 0 || m.GID != 0 || len(m.Xattrs) > 0 || disk != perm {
			w.attrs[w.key(p)] = ostree.DirMeta{UID: m.UID, GID: m.GID, Mode: perm, Xattrs: m.Xattrs}
		}
		if typ == unix.S_IFLNK {
			return nil
		}
		return chmod(p, disk)
	}
	if err := os.Lchown(p, int(m.UID), int(m.GID)); err != nil {
		return err
	}
	for _, x := range m.Xattrs {
		if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("%s: setting xattr %s: %w", p, x.Name, err)
		}
	}
	if typ == unix.S_IFLNK {
		return nil
	}
	return chmod(p, perm) // after chown, which clears setuid bits
}

func chmod(p string, perm uint32) error {
	if err := unix.Chmod(p, perm); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}

// get returns the attributes of p, whose lstat result is st.
func (w *attrWriter) get(p string, st *unix.Stat_t) (ostree.DirMeta, error) {
	if w.attrs != nil {
		if m, ok := w.attrs[w.key(p)]; ok {
			return m, nil
		}
		return ostree.DirMeta{Mode: st.Mode & ostree.ModePermMask}, nil
	}
	xattrs, err := ostree.ReadXattrs(p)
	if err != nil {
		return ostree.DirMeta{}, err
	}
	return ostree.DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode & ostree.ModePermMask, Xattrs: xattrs}, nil
}

// checkout materialises a tree at dir: files and symlinks are hardlinks to the bare
// repository's objects; directories get their dirmeta's owner, mode and xattrs and mtime 0.
func (w *attrWriter) checkout(ctx context.Context, repo *ostree.Repo, tree, meta ostree.Checksum, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := repo.ReadDirMeta(meta)
	if err != nil {
		return err
	}
	t, err := repo.ReadDirTree(tree)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for _, f := range t.Files {
		obj, p := repo.ObjectPath(f.Checksum, ostree.ObjFile), filepath.Join(dir, f.Name)
		if w.sparse != nil {
			if _, ok := w.sparse.Objects[f.Checksum]; ok {
				w.sparse.Links[w.key(p)] = f.Checksum
				continue
			}
		}
		if err := os.Link(obj, p); err != nil {
			return err
		}
		if w.attrs == nil {
			continue
		}
		// Recorded under the checkout's name too, for copies made from it (/etc).
		a, ok := w.attrs[w.key(obj)]
		if !ok {
			var st unix.Stat_t
			if err := unix.Lstat(obj, &st); err != nil {
				return err
			}
			if a, err = w.get(obj, &st); err != nil {
				return err
			}
		}
		w.attrs[w.key(p)] = a
	}
	for _, sub := range t.Dirs {
		if err := w.checkout(ctx, repo, sub.Tree, sub.Meta, filepath.Join(dir, sub.Name)); err != nil {
			return err
		}
	}
	if err := w.set(dir, unix.S_IFDIR, m); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{{}, {}}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyTree copies a directory tree with owners, modes and xattrs (real copies, no links).
func (w *attrWriter) copyTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := w.copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported file type", src)
	}
	return w.copyAttrs(src, dst, &st)
}

func (w *attrWriter) copyAttrs(src, dst string, st *unix.Stat_t) error {
	m, err := w.get(src, st)
	if err != nil {
		return err
	}
	return w.set(dst, st.Mode&unix.S_IFMT, m)
}

// mergeEtc applies the changes between oldUsrEtc (the defaults) and oldEtc (the live
// configuration) of the merge deployment to newEtc: removed paths are removed, modified and
// added ones are copied over.
func (w *attrWriter) mergeEtc(oldUsrEtc, oldEtc, newEtc string) error {
	if _, err := os.Lstat(oldEtc); err != nil {
		return nil
	}
	// Removals: in the old defaults, gone from the old /etc.
	err := filepath.WalkDir(oldUsrEtc, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(oldUsrEtc, p)
		if rel == "." {
			return nil
		}
		if _, err := os.Lstat(filepath.Join(oldEtc, rel)); errors.Is(err, fs.ErrNotExist) {
			if err := os.RemoveAll(filepath.Join(newEtc, rel)); err != nil {
				return err
			}
			if e.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Modifications and additions.
	return filepath.WalkDir(oldEtc, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(oldEtc, p)
		if rel == "." {
			return nil
		}
		same, err := sameFile(filepath.Join(oldUsrEtc, rel), p)
		if err != nil || same {
			return err
		}
		dst := filepath.Join(newEtc, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var dt unix.Stat_t
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if unix.Lstat(dst, &dt) == nil && dt.Mode&unix.S_IFMT == unix.S_IFDIR {
				return w.copyAttrs(p, dst, &st) // modified directory: metadata only
			}
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := w.copyTree(p, dst); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fs.SkipDir
		}
		return nil
	})
}

// sameFile reports whether a and b have the same type, owner, mode, xattrs and content.
func sameFile(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Lstat(a, &sa); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(b, &sb); err != nil {
		return false, err
	}
	if sa.Mode != sb.Mode || sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		return false, nil
	}
	switch sa.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ta, err1 := os.Readlink(a)
		tb, err2 := os.Readlink(b)
		return ta == tb, errors.Join(err1, err2)
	case unix.S_IFREG:
		if sa.Size != sb.Size {
			return false, nil
		}
		da, err1 := os.ReadFile(a)
		db, err2 := os.ReadFile(b)
		if err := errors.Join(err1, err2); err != nil {
			return false, err
		}
		if !bytes.Equal(da, db) {
			return false, nil
		}
	}
	return true, nil
}

// writeFile writes a file and, unless nosync, flushes it to disk.
func (w *attrWriter) writeFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && !w.nosync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}

// lockSysroot takes the exclusive lock ostree uses (flock on ostree/lock).
func lockSysroot(sysroot string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(sysroot, "ostree/lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("sysroot: locking: %w", err)
	}
	return func() { f.Close() }, nil
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
