// Package yoctotest runs the real bitbake for the tests of the Yocto layer meta-ota:
// bitbake, openembedded-core and the BSP layers come from the snapshots of shared/sources
// (its README.md), unpacked by meta-ota/scripts/check-layer.sh into a cache outside the
// checkout, and run offline as an ordinary user.
//
// The tests skip with a message when a snapshot or a host tool is missing, and fail instead
// when OTA_REQUIRE_TOOLS=1 (CI). Environment: OTA_SOURCES (the snapshots; default
// shared/sources beside the checkout or one of its parents), OTA_CACHE (default
// ~/.cache/ota-tests of the build user), OTA_BUILD_USER (who runs bitbake when the tests run
// as root; default otabuild, which .ci/run creates).
package yoctotest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otakit/ota/internal/testsources"
)

// Tarballs are the snapshots the tests run, as shared/sources names them.
var Tarballs = []string{
	"bitbake-2.18.0.tar.xz",
	"openembedded-core-wrynose.tar.xz",
	"meta-raspberrypi-wrynose.tar.xz",
	"meta-freescale-wrynose.tar.xz",
}

// DefaultBuildUser runs bitbake, which refuses root, when the tests run as root.
const DefaultBuildUser = "otabuild"

// Env is where the unpacked trees, downloads, sstate and build directories are, and whom
// bitbake runs as.
type Env struct {
	Layer   string // the layer meta-ota
	Repo    string // the repository holding it
	Cache   string // $OTA_CACHE/yocto, else ~/.cache/ota-tests/yocto of the build user
	sources string
	cred    []string // setpriv arguments when running as root, else nil
	uid     int
	gid     int
	home    string
	path    string // PATH of bitbake's environment
	mu      sync.Mutex
}

var (
	setupOnce sync.Once
	setupEnv  *Env
	setupErr  error // a missing tool or snapshot: skip (fail under OTA_REQUIRE_TOOLS=1)
	setupFail error // anything else
)

// BuildUser returns the setpriv prefix that runs a command as the build user when the
// tests run as root (nil otherwise), and the uid and gid commands then run with.
func BuildUser(t *testing.T) ([]string, int, int) {
	t.Helper()
	cred, uid, gid, _, err := buildUser()
	if err != nil {
		testsources.Missing(t, "%v", err)
	}
	return cred, uid, gid
}

func buildUser() (cred []string, uid, gid int, home string, err error) {
	u, err := user.Current()
	if err != nil {
		return nil, 0, 0, "", err
	}
	if os.Geteuid() == 0 {
		name := os.Getenv("OTA_BUILD_USER")
		if name == "" {
			name = DefaultBuildUser
		}
		if u, err = user.Lookup(name); err != nil {
			return nil, 0, 0, "", fmt.Errorf("bitbake refuses root and user %s does not exist (useradd -m %s)", name, name)
		}
		cred = []string{"setpriv", "--reuid", u.Uid, "--regid", u.Gid, "--init-groups", "--"}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return cred, uid, gid, u.HomeDir, nil
}

// Yocto returns the environment, checking the first time that the snapshots and host tools
// are there.
func Yocto(t *testing.T) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("runs bitbake: not in -short mode")
	}
	setupOnce.Do(func() { setupEnv, setupErr, setupFail = setup() })
	if setupErr != nil {
		testsources.Missing(t, "%v", setupErr)
	}
	if setupFail != nil {
		t.Fatal(setupFail)
	}
	return setupEnv
}

func setup() (*Env, error, error) {
	layer, err := FindLayer()
	if err != nil {
		return nil, nil, err
	}
	e := &Env{Layer: layer, Repo: filepath.Dir(layer)}
	if e.sources, err = findSources(e.Repo); err != nil {
		return nil, err, nil
	}
	for _, tool := range []string{"/usr/bin/python3", "tar", "xz", "gawk", "chrpath", "diffstat", "go", "git", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (bitbake needs the host tools .ci/run installs)", tool), nil
		}
	}
	if out, _ := exec.Command("locale", "-a").Output(); !bytes.Contains(bytes.ToLower(out), []byte("en_us.utf8")) {
		return nil, fmt.Errorf("locale en_US.UTF-8 is missing (bitbake needs it: locale-gen)"), nil
	}
	if e.cred, e.uid, e.gid, e.home, err = buildUser(); err != nil {
		return nil, err, nil
	}
	cache, _ := testsources.Cache(e.home) // no error: home is set
	e.Cache = filepath.Join(cache, "yocto")
	goBin, _ := exec.LookPath("go")
	e.path = strings.Join([]string{filepath.Join(e.Cache, "src", "bitbake-2.18.0", "bin"), filepath.Dir(goBin),
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")
	if out, err := e.Command("", "mkdir", "-p", e.Cache).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("creating %s: %v: %s", e.Cache, err, out)
	}
	return e, nil, nil
}

// FindLayer returns the directory of meta-ota: the first parent of the working directory
// (a test package's) that holds conf/layer.conf.
func FindLayer() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "conf", "layer.conf")); err == nil {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("no conf/layer.conf above the working directory")
		}
		dir = filepath.Dir(dir)
	}
}

// findSources returns $OTA_SOURCES, else the shared/sources directory beside the checkout
// or one of its parents (see testsources.Find), checking every snapshot is there.
func findSources(repo string) (string, error) {
	dir := os.Getenv("OTA_SOURCES")
	if dir == "" {
		var err error
		if dir, err = testsources.Find(filepath.Dir(repo), Tarballs[0]); err != nil {
			return "", fmt.Errorf("the bitbake and layer snapshots are absent (%v, and OTA_SOURCES is not set)", err)
		}
	}
	for _, f := range Tarballs {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("the snapshot %s is absent from %s", f, dir)
		}
	}
	return dir, nil
}

// Owner returns the uid and gid of the build user.
func (e *Env) Owner() (int, int) { return e.uid, e.gid }

// Command runs name as the build user in dir, with the environment bitbake expects.
func (e *Env) Command(dir string, name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, e.cred...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + e.home, "LANG=en_US.UTF-8", "LC_ALL=en_US.UTF-8", "PATH=" + e.path,
		"SHELL=/bin/sh", "TERM=dumb"}
	if dir != "" {
		cmd.Env = append(cmd.Env, "BBPATH="+dir, "BUILDDIR="+dir)
	}
	return cmd
}

// Bitbake runs a bitbake command (bitbake, bitbake-getvar, bitbake-layers) in a build
// directory and returns its combined output; it fails the test unless the command succeeds.
func (e *Env) Bitbake(t *testing.T, build string, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := e.Command(build, name, args...).CombinedOutput()
	t.Logf("%s %s: %s", name, strings.Join(args, " "), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), build, err, Tail(string(out), 60))
	}
	return string(out)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Config is a build directory: its name under the cache, MACHINE, more local.conf lines and
// more layers.
type Config struct {
	Name    string
	Machine string
	Extra   []string
	Layers  []string
}

// Dir is the build directory of c.
func (e *Env) Dir(c Config) string { return filepath.Join(e.Cache, c.Name) }

// CheckLayer runs scripts/check-layer.sh for the build directory of c, which unpacks the
// snapshots when needed and writes the configuration only when it changed (so bitbake's
// parse cache stays valid), and returns its output; it fails the test unless it succeeds.
func (e *Env) CheckLayer(t *testing.T, c Config, args ...string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	args = append(args, "--build", e.Dir(c), "--machine", c.Machine)
	for _, l := range c.Extra {
		args = append(args, "--conf", l)
	}
	for _, l := range c.Layers {
		args = append(args, "--layer", l)
	}
	cmd := e.Command("", filepath.Join(e.Layer, "scripts", "check-layer.sh"), args...)
	cmd.Env = append(cmd.Env, "OTA_SOURCES="+e.sources, "OTA_CACHE="+filepath.Dir(e.Cache))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("check-layer.sh %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("check-layer.sh %s: %v\n%s", strings.Join(args, " "), err, Tail(string(out), 60))
	}
	return string(out)
}

// Build writes the build directory of c (check-layer.sh --setup-only) and returns it.
func (e *Env) Build(t *testing.T, c Config) string {
	t.Helper()
	e.CheckLayer(t, c, "--setup-only")
	return e.Dir(c)
}
