// Package apps manages applications that update independently of the base OS: each is a
// signed commit on its own ref (apps/NAME/ARCH/CHANNEL) of the OS's repository, checked out
// hardlinked from the device's repository under the stateroot's shared /var
// (var/lib/ota/apps/NAME/COMMIT.SERIAL), a `current` symlink naming the version that runs
// and a `previous` one the version a rollback returns to. Both switch by the rename of a
// temporary symlink, so a kill leaves one complete version current.
package apps

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// Commit metadata keys of an application (ota-build commit --app sets them).
const (
	// MetaName is the application's name, which must be the NAME of its ref.
	MetaName = "ota.app.name"
	// MetaOSVersions lists the OS versions the application supports: comma-separated
	// patterns in the syntax of path.Match (e.g. "1.*,2.0"); empty or missing: any.
	MetaOSVersions = "ota.app.os-versions"
	// MetaExec is how to run the application: a command line whose first word is a path
	// relative to the application's tree.
	MetaExec = "ota.app.exec"
)

// ExecFile is the file ota-client writes at the root of every checkout, holding MetaExec:
// what the runners in examples/apps start (the metadata is in the repository, the checkout
// is what a runner can read).
const ExecFile = ".ota-exec"

// RefPrefix starts every application ref: apps/NAME/ARCH/CHANNEL.
const RefPrefix = "apps/"

// DefaultChannel is the channel of the default application ref.
const DefaultChannel = "stable"

var (
	nameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	componentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	dirRE       = regexp.MustCompile(`^([0-9a-f]{64})\.([0-9]+)$`)
)

// CheckName returns an error unless name is a valid application name: a single path
// component of letters, digits, '.', '_' and '-' that cannot escape the applications'
// directory.
func CheckName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("application name %q: want letters, digits, '.', '_' and '-' (no '..', no '/')", name)
	}
	return nil
}

// Ref returns the ref of application name for arch and channel.
func Ref(name, arch, channel string) string {
	return RefPrefix + name + "/" + arch + "/" + channel
}

// CheckRef returns an error unless ref is apps/NAME/ARCH/CHANNEL for application name.
func CheckRef(name, ref string) error {
	parts := strings.Split(ref, "/")
	if len(parts) != 4 || parts[0]+"/" != RefPrefix || parts[1] != name {
		return fmt.Errorf("application ref %q: want %sARCH/CHANNEL", ref, RefPrefix+name+"/")
	}
	for _, p := range parts[2:] {
		if !componentRE.MatchString(p) || strings.Contains(p, "..") {
			return fmt.Errorf("application ref %q: component %q is not a plain name", ref, p)
		}
	}
	return nil
}

// Machine returns the device's architecture as uname -m says it (x86_64, aarch64…): the
// ARCH of the default application ref.
func Machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Machine[:])
}

// metaString returns the string metadata key of cm ("" when missing).
func metaString(cm *ostree.Commit, key string) string {
	if v, ok := ostree.Lookup(cm.Metadata, key); ok {
		if s, ok := v.Value.(string); ok {
			return s
		}
	}
	return ""
}

// Accept returns the check an application's commit passes before it is pulled: it must
// name the application name and support osVersion, the version of the OS the device runs.
func Accept(name, osVersion string) func(*ostree.Commit) error {
	return func(cm *ostree.Commit) error {
		if got := metaString(cm, MetaName); got != name {
			return fmt.Errorf("not a commit of application %s (%s is %q)", name, MetaName, got)
		}
		return Supports(metaString(cm, MetaOSVersions), osVersion)
	}
}

// Supports returns an error unless osVersion matches one of the comma-separated patterns
// (MetaOSVersions); no pattern matches any version.
func Supports(patterns, osVersion string) error {
	if strings.TrimSpace(patterns) == "" {
		return nil
	}
	for _, p := range strings.Split(patterns, ",") {
		if ok, err := path.Match(strings.TrimSpace(p), osVersion); err == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("supports OS versions %s, the device runs %q", patterns, osVersion)
}

// Info describes an application as it is checked out.
type Info struct {
	Name    string `json:"name"`
	Ref     string `json:"ref"`
	Current string `json:"current"`
	Version string `json:"version,omitempty"`
	Exec    string `json:"exec,omitempty"`
	// Path is the checkout of the current version.
	Path string `json:"path"`
	// Previous is the commit a rollback returns to ("" when none).
	Previous        string `json:"previous,omitempty"`
	PreviousVersion string `json:"previous_version,omitempty"`
}

// Dir is the applications' directory of the stateroot osName in sysroot.
func Dir(sysroot, osName string) string {
	return filepath.Join(sysroot, "ostree/deploy", osName, "var/lib/ota/apps")
}

// App is an application's directory on the device, with the refs that keep its commits in
// the repository: ota/apps/NAME/current, previous and pending.
type App struct {
	Name string
	Dir  string
	repo *ostree.Repo
}

// Open returns application name in the applications' directory dir of repo's sysroot, and
// finishes what an interrupted operation left (see Repair).
func Open(repo *ostree.Repo, dir, name string) (*App, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	a := &App{Name: name, Dir: filepath.Join(dir, name), repo: repo}
	return a, a.Repair()
}

// RefName is the repository ref of the application's link (current, previous) or of its
// pulled commit (pending).
func (a *App) RefName(which string) string { return "ota/apps/" + a.Name + "/" + which }

// Link returns the commit and the checkout directory name the link current or previous
// names; ok is false when it does not exist.
func (a *App) Link(which string) (c ostree.Checksum, dir string, ok bool, err error) {
	target, err := os.Readlink(filepath.Join(a.Dir, which))
	if errors.Is(err, fs.ErrNotExist) {
		return c, "", false, nil
	} else if err != nil {
		return c, "", false, err
	}
	m := dirRE.FindStringSubmatch(target)
	if m == nil {
		return c, "", false, fmt.Errorf("%s: unexpected target %q", filepath.Join(a.Dir, which), target)
	}
	c, err = ostree.ParseChecksum(m[1])
	return c, target, err == nil, err
}

// Installed reports whether the application has a current version.
func (a *App) Installed() (bool, error) {
	_, _, ok, err := a.Link("current")
	return ok, err
}

// InstalledRef returns the ref the application was installed from.
func (a *App) InstalledRef() (string, error) {
	data, err := os.ReadFile(filepath.Join(a.Dir, "ref"))
	if err != nil {
		return "", err
	}
	ref := strings.TrimSpace(string(data))
	return ref, CheckRef(a.Name, ref)
}

// Repair finishes what an interrupted install, update, rollback or remove left: partial
// checkouts (.tmp-*) go; without a current link (an install or a removal killed) the whole
// directory and the refs go; else the refs current and previous are pointed at what the
// links name, so that cleanup keeps exactly those commits.
func (a *App) Repair() error {
	ents, err := os.ReadDir(a.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return a.dropRefs()
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if err := removeAll(filepath.Join(a.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	ok, err := a.Installed()
	if err != nil {
		return err
	}
	if !ok {
		if err := removeAll(a.Dir); err != nil {
			return err
		}
		return a.dropRefs()
	}
	return a.syncRefs()
}

// syncRefs points the refs current and previous at the commits the links name.
func (a *App) syncRefs() error {
	for _, which := range []string{"current", "previous"} {
		c, _, ok, err := a.Link(which)
		if err != nil {
			return err
		}
		if !ok {
			err = a.deleteRef(which)
		} else {
			err = a.repo.WriteRef(a.RefName(which), c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *App) dropRefs() error {
	for _, which := range []string{"current", "previous", "pending"} {
		if err := a.deleteRef(which); err != nil {
			return err
		}
	}
	for _, d := range []string{"refs/heads/ota/apps/" + a.Name} {
		os.Remove(filepath.Join(a.repo.Path, d)) // when empty
	}
	return nil
}

func (a *App) deleteRef(which string) error {
	err := os.Remove(filepath.Join(a.repo.Path, "refs/heads", a.RefName(which)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// removeAll removes a tree, making it writable first where a checkout made it read-only.
func removeAll(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// nextDir returns the name of a new checkout of commit c: COMMIT.SERIAL, the serial one
// above those present.
func (a *App) nextDir(c ostree.Checksum) (string, error) {
	ents, err := os.ReadDir(a.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	serial := 0
	for _, e := range ents {
		if m := dirRE.FindStringSubmatch(e.Name()); m != nil && m[1] == c.String() {
			n, _ := strconv.Atoi(m[2])
			serial = max(serial, n+1)
		}
	}
	return fmt.Sprintf("%s.%d", c, serial), nil
}
