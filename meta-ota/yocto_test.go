// Package metaota holds the tests of the Yocto layer meta-ota: they run the real bitbake,
// openembedded-core and the BSP layers from the tarballs of shared/sources (README.md of
// that directory), offline, as an ordinary user.
package metaota

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
)

// The snapshots the tests run, as shared/sources names them (a git archive each, without a
// top-level directory).
var tarballs = map[string]string{
	"bitbake":           "bitbake-2.18.0.tar.xz",
	"openembedded-core": "openembedded-core-wrynose.tar.xz",
	"meta-raspberrypi":  "meta-raspberrypi-wrynose.tar.xz",
	"meta-freescale":    "meta-freescale-wrynose.tar.xz",
}

// buildUser runs bitbake, which refuses root, when the tests run as root (.ci/run creates
// it); $OTA_BUILD_USER names another.
const buildUser = "otabuild"

// yoctoEnv is where the unpacked trees, downloads, sstate and build directories are, and
// whom bitbake runs as.
type yoctoEnv struct {
	layer   string   // this layer (meta-ota)
	repo    string   // the repository holding it
	cache   string   // $OTA_CACHE/yocto, else ~/.cache/ota-tests/yocto of the build user
	sources string   // the snapshots
	cred    []string // setpriv arguments when running as root, else nil
	home    string
	path    string // PATH of bitbake's environment
	mu      sync.Mutex
}

var (
	setupOnce sync.Once
	setupEnv  *yoctoEnv
	setupErr  error // a missing tool or tarball: skip (fail under OTA_REQUIRE_TOOLS=1)
	setupFail error // anything else
)

// missing skips the test, or fails it when OTA_REQUIRE_TOOLS=1 (CI installs everything).
func missing(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%v (OTA_REQUIRE_TOOLS=1)", err)
	}
	t.Skipf("%v; set OTA_REQUIRE_TOOLS=1 to fail instead", err)
}

// yocto returns the prepared environment, unpacking the tarballs into the cache the first
// time (and again when a tarball changes).
func yocto(t *testing.T) *yoctoEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("runs bitbake: not in -short mode")
	}
	setupOnce.Do(func() { setupEnv, setupErr, setupFail = setup() })
	if setupErr != nil {
		missing(t, setupErr)
	}
	if setupFail != nil {
		t.Fatal(setupFail)
	}
	return setupEnv
}

func setup() (*yoctoEnv, error, error) {
	layer, err := filepath.Abs(".")
	if err != nil {
		return nil, nil, err
	}
	e := &yoctoEnv{layer: layer, repo: filepath.Dir(layer)}

	sources, err := findSources(e.repo)
	if err != nil {
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
	goBin, _ := exec.LookPath("go")
	e.path = strings.Join([]string{"", filepath.Dir(goBin), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")

	u, err := user.Current()
	if err != nil {
		return nil, nil, err
	}
	if os.Geteuid() == 0 {
		name := os.Getenv("OTA_BUILD_USER")
		if name == "" {
			name = buildUser
		}
		u, err = user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("bitbake refuses root and user %s does not exist (useradd -m %s)", name, name), nil
		}
		e.cred = []string{"setpriv", "--reuid", u.Uid, "--regid", u.Gid, "--init-groups", "--"}
	}
	e.home = u.HomeDir
	if c := os.Getenv("OTA_CACHE"); c != "" {
		e.cache = filepath.Join(c, "yocto")
	} else {
		e.cache = filepath.Join(u.HomeDir, ".cache", "ota-tests", "yocto")
	}
	if out, err := e.command("", "mkdir", "-p", e.cache).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("creating %s: %v: %s", e.cache, err, out)
	}
	for _, f := range tarballs {
		if _, err := os.Stat(filepath.Join(sources, f)); err != nil {
			return nil, fmt.Errorf("the snapshot %s is absent from %s", f, sources), nil
		}
	}
	e.sources = sources
	e.path = filepath.Join(e.cache, "src", strings.TrimSuffix(tarballs["bitbake"], ".tar.xz"), "bin") + e.path
	return e, nil, nil
}

// findSources returns $OTA_SOURCES, else the shared/sources directory beside the checkout
// or one of its parents (CI lays shared/ beside the clone).
func findSources(repo string) (string, error) {
	has := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, tarballs["bitbake"]))
		return err == nil
	}
	if s := os.Getenv("OTA_SOURCES"); s != "" {
		if !has(s) {
			return "", fmt.Errorf("OTA_SOURCES=%s holds no %s", s, tarballs["bitbake"])
		}
		return s, nil
	}
	for dir := filepath.Dir(repo); ; dir = filepath.Dir(dir) {
		if s := filepath.Join(dir, "shared", "sources"); has(s) {
			return s, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("the bitbake and layer tarballs are absent (no shared/sources/%s beside %s or its parents, and OTA_SOURCES is not set)", tarballs["bitbake"], repo)
		}
	}
}

// command runs name as the build user in dir, with the environment bitbake expects.
func (e *yoctoEnv) command(dir string, name string, args ...string) *exec.Cmd {
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

// bitbake runs a bitbake command (bitbake, bitbake-getvar ...) in a build directory and
// returns its combined output; it fails the test unless the command succeeds.
func (e *yoctoEnv) bitbake(t *testing.T, build string, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := e.command(build, name, args...).CombinedOutput()
	t.Logf("%s %s: %s", name, strings.Join(args, " "), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), build, err, tail(string(out), 60))
	}
	return string(out)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildConfig is a build directory: its machine and what local.conf adds.
type buildConfig struct {
	name    string // directory under the cache
	machine string
	extra   []string // more local.conf lines
}

// checkLayer runs scripts/check-layer.sh for a build directory (unpacking the snapshots
// when needed and writing the configuration only when it changed, so the parse cache stays
// valid) and returns its output.
func (e *yoctoEnv) checkLayer(t *testing.T, c buildConfig, args ...string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	args = append(args, "--build", e.dir(c), "--machine", c.machine)
	for _, l := range c.extra {
		args = append(args, "--conf", l)
	}
	cmd := e.command("", filepath.Join(e.layer, "scripts", "check-layer.sh"), args...)
	cmd.Env = append(cmd.Env, "OTA_SOURCES="+e.sources, "OTA_CACHE="+filepath.Dir(e.cache))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("check-layer.sh %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("check-layer.sh %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 60))
	}
	return string(out)
}

// dir is the build directory of c.
func (e *yoctoEnv) dir(c buildConfig) string { return filepath.Join(e.cache, c.name) }

// build writes the build directory of c (check-layer.sh --setup-only) and returns it.
func (e *yoctoEnv) build(t *testing.T, c buildConfig) string {
	t.Helper()
	e.checkLayer(t, c, "--setup-only")
	return e.dir(c)
}

// ownedBy returns the uid and gid files the build user creates have.
func (e *yoctoEnv) owner() (int, int) {
	if len(e.cred) == 0 {
		return os.Getuid(), os.Getgid()
	}
	uid, _ := strconv.Atoi(e.cred[2])
	gid, _ := strconv.Atoi(e.cred[4])
	return uid, gid
}
