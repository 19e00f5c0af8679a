package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// Sysroot is a sysroot opened for changing its deployments (libostree's OstreeSysroot). It
// holds the sysroot's lock from Open to Close, so its view of the boot version and the
// deployments stays current: only its own methods change them.
type Sysroot struct {
	path           string
	repo           *ostree.Repo
	bootversion    int // N of boot/loader -> loader.N
	subbootversion int // M of ostree/boot.N -> boot.N.M
	deployments    []*Deployment
	bootloader     Bootloader // nil: BLS entries only
	attrs          Attrs
	nosync         bool
	lock           *os.File // nil when read-only
}

// OpenOptions configure how a Sysroot writes.
type OpenOptions struct {
	// Bootloader is "uboot", "none" or empty to detect it as Options.Bootloader says.
	Bootloader string
	// Attrs decides how files get their owners, modes and extended attributes (see
	// Options.Attrs); nil sets them on disk, which needs root.
	Attrs Attrs
	// NoSync skips every fsync and syncfs (see Options.NoSync).
	NoSync bool
	// Waiting, when set, is called before Open waits for the lock that another process
	// holds.
	Waiting func()
	// ReadOnly opens the sysroot for reading only, without its lock, as `ostree admin
	// status` does, so that a report need not wait for an update that holds the lock.
	// Writers swap the boot configuration with one rename, so a reader sees the
	// deployments before or after a change. The methods that write return ErrReadOnly.
	ReadOnly bool
}

// ErrReadOnly is returned by the methods that write a sysroot opened read-only.
var ErrReadOnly = errors.New("sysroot: opened read-only")

// Deployment is a commit checked out in a stateroot of a sysroot.
type Deployment struct {
	// OSName is the stateroot.
	OSName string
	// Commit is the deployed commit.
	Commit ostree.Checksum
	// Serial tells deployments of the same commit in a stateroot apart (ostree's
	// deployserial).
	Serial int
	// BootCsum is the SHA-256 of the deployment's kernel, initramfs and device trees,
	// which are installed in boot/ostree/<os>-<bootcsum>/.
	BootCsum string
	// Kargs are the kernel arguments without ostree= and the generated init=.
	Kargs []string
}

// Name is the name of the deployment's directory: <commit>.<serial>.
func (d *Deployment) Name() string { return fmt.Sprintf("%s.%d", d.Commit, d.Serial) }

// Open locks the sysroot at path (created by Init or by `ostree admin`) with the lock
// ostree takes, and loads its boot version and deployments.
func Open(path string, opts OpenOptions) (*Sysroot, error) {
	bl, err := bootloaderNamed(opts.Bootloader)
	if err != nil {
		return nil, err
	}
	repo, err := ostree.Open(filepath.Join(path, "ostree/repo"))
	if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	if repo.Mode != ostree.ModeBare {
		return nil, fmt.Errorf("sysroot: %s is a %s repository, want bare", repo.Path, repo.Mode)
	}
	s := &Sysroot{path: path, repo: repo, bootloader: bl, attrs: opts.Attrs, nosync: opts.NoSync}
	if s.attrs == nil {
		s.attrs = onDisk{}
	}
	if !opts.ReadOnly {
		if s.lock, err = lockSysroot(path, opts.Waiting); err != nil {
			return nil, err
		}
	}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	if opts.Bootloader == "" {
		s.bootloader = detectBootloader(path, repo)
	}
	if err := s.attrs.open(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the sysroot's lock.
func (s *Sysroot) Close() error {
	if s.lock == nil {
		return nil
	}
	return s.lock.Close()
}

// writable returns ErrReadOnly unless the sysroot was opened to be written.
func (s *Sysroot) writable() error {
	if s.lock == nil {
		return ErrReadOnly
	}
	return nil
}

// Repo returns the sysroot's repository, ostree/repo.
func (s *Sysroot) Repo() *ostree.Repo { return s.repo }

// Bootversion returns N of the current boot configuration, boot/loader -> loader.N.
func (s *Sysroot) Bootversion() int { return s.bootversion }

// Deployments returns the deployments of the current boot configuration, default first.
func (s *Sysroot) Deployments() []*Deployment { return slices.Clone(s.deployments) }

// DeploymentDir returns the directory of deployment d.
func (s *Sysroot) DeploymentDir(d *Deployment) string {
	return filepath.Join(s.path, "ostree/deploy", d.OSName, "deploy", d.Name())
}

// requireStateroot checks that stateroot osName has been initialised (by Init or `ostree
// admin os-init`).
func (s *Sysroot) requireStateroot(osName string) error {
	if err := checkOSName(osName); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.path, "ostree/deploy", osName, "var")); err != nil {
		return fmt.Errorf("sysroot: stateroot %q is not initialised: %w", osName, err)
	}
	return nil
}

// mergeDeployment returns the deployment whose /etc and kernel arguments a new deployment
// of stateroot osName starts from: the stateroot's current default, or nil.
func (s *Sysroot) mergeDeployment(osName string) *Deployment {
	for _, d := range s.deployments {
		if d.OSName == osName {
			return d
		}
	}
	return nil
}

// load reads the boot version, the sub-boot version and the deployment list.
func (s *Sysroot) load() error {
	var err error
	if s.bootversion, err = currentBootversion(s.path); err != nil {
		return err
	}
	t, _ := os.Readlink(filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d", s.bootversion)))
	s.subbootversion = 0
	if t == fmt.Sprintf("boot.%d.1", s.bootversion) {
		s.subbootversion = 1
	}
	s.deployments, err = loadDeployments(s.path, s.bootversion)
	return err
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
func loadDeployments(sysroot string, bootversion int) ([]*Deployment, error) {
	dir := filepath.Join(sysroot, fmt.Sprintf("boot/loader.%d/entries", bootversion))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	type versioned struct {
		version int
		d       *Deployment
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
		d := &Deployment{}
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
		d.OSName = dm[1]
		d.Commit, _ = ostree.ParseChecksum(dm[2])
		d.Serial, _ = strconv.Atoi(dm[3])
		v, err := strconv.Atoi(keys["version"])
		if err != nil {
			return nil, fmt.Errorf("sysroot: %s: invalid version %q", e.Name(), keys["version"])
		}
		list = append(list, versioned{v, d})
	}
	slices.SortStableFunc(list, func(a, b versioned) int { return b.version - a.version })
	out := make([]*Deployment, len(list))
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

// lockSysroot takes the exclusive lock ostree uses (flock on ostree/lock), calling waiting
// (when not nil) before it waits for another process's.
func lockSysroot(sysroot string, waiting func()) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(sysroot, "ostree/lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		if waiting != nil {
			waiting()
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sysroot: locking: %w", err)
	}
	return f, nil
}
