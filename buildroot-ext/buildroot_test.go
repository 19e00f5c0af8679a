// Package buildrootext holds the tests of the Buildroot external tree in this directory
// (buildroot-ext): they load its defconfigs into a real Buildroot, read what Buildroot
// computes from its .mk files (make printvars, show-info), run utils/check-package, the
// scripts of the tree, and the commands of the OTA filesystem type under fakeroot.
//
// Buildroot comes from its source tarball (buildroot-2026.05.x.tar.xz: $OTA_BUILDROOT_TARBALL,
// else shared/sources/ in a directory above the checkout), unpacked once into the test
// cache ($OTA_CACHE, else the user cache directory's ota-tests/), never into the checkout.
// Without it, or without a tool, a test skips saying so; OTA_REQUIRE_TOOLS=1 (CI) makes it
// fail instead. Nothing is downloaded but the Go modules `go mod vendor` fetches for the
// release tarball.
package buildrootext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/otakit/ota/internal/testsources"
)

// buildrootTarball is the Buildroot release the tree is checked against.
const buildrootTarball = "buildroot-2026.05.x.tar.xz"

var (
	extDir  string // this directory: the external tree
	repoDir string // the checkout
	tmpRoot string // scratch space of this test run, world-readable
)

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	extDir, repoDir = wd, filepath.Dir(wd)
	if tmpRoot, err = os.MkdirTemp("", "buildroot-ext-test"); err != nil {
		panic(err)
	}
	// Tests run commands as uid 65534 when they run as root: let it in.
	os.Chmod(tmpRoot, 0o755)
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// run runs a command with extra environment variables (KEY=VALUE) and returns its
// combined output, failing the test unless it succeeds.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr runs a command and returns its combined output and error.
func runErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// asUser returns the command line that runs name as uid/gid 65534 when the test runs as
// root (through setpriv), and as is otherwise: what these tests run must need no privilege.
func asUser(t *testing.T, name string, args ...string) (string, []string) {
	t.Helper()
	if os.Getuid() != 0 {
		return name, args
	}
	testsources.RequireTools(t, "setpriv")
	return "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", name}, args...)
}

// userDir makes a directory the commands asUser runs can write.
func userDir(t *testing.T, parts ...string) string {
	t.Helper()
	d := filepath.Join(append([]string{tmpRoot}, parts...)...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

var (
	brOnce sync.Once
	brDir  string
	brErr  error
	brSkip string
)

// buildroot returns the Buildroot source tree, unpacked into the cache on first use.
func buildroot(t *testing.T) string {
	t.Helper()
	testsources.RequireTools(t, "make", "tar", "xz")
	brOnce.Do(func() { brDir, brSkip, brErr = unpackBuildroot() })
	if brSkip != "" {
		testsources.Missing(t, "%s", brSkip)
	}
	if brErr != nil {
		t.Fatal(brErr)
	}
	return brDir
}

// unpackBuildroot unpacks the Buildroot tarball ($OTA_BUILDROOT_TARBALL, else the first
// shared/sources/buildroot-2026.05.x.tar.xz in a directory above the checkout) into the
// test cache, or says why it cannot (skip).
func unpackBuildroot() (dir, skip string, err error) {
	tarball := os.Getenv("OTA_BUILDROOT_TARBALL")
	if tarball == "" {
		sources, err := testsources.Find(repoDir, buildrootTarball)
		if err != nil {
			return "", fmt.Sprintf("the Buildroot tarball is absent: %v (set OTA_BUILDROOT_TARBALL)", err), nil
		}
		tarball = filepath.Join(sources, buildrootTarball)
	}
	cache, err := testsources.Cache("")
	if err != nil {
		return "", "", err
	}
	dir, err = testsources.Unpack(tarball, cache, "buildroot")
	return dir, "", err
}

// brMake runs make in the Buildroot tree and returns its combined output.
func brMake(t *testing.T, br string, args ...string) string {
	t.Helper()
	return run(t, nil, "make", append([]string{"-s", "-C", br}, args...)...)
}

// pkgInfo is what show-info tells about a package or filesystem.
type pkgInfo struct {
	Type         string   `json:"type"`
	Version      string   `json:"version"`
	Dependencies []string `json:"dependencies"`
	ImageName    string   `json:"image_name"`
	Hashes       []string `json:"hashes"`
	Downloads    []struct {
		Source string   `json:"source"`
		URIs   []string `json:"uris"`
	} `json:"downloads"`
}

// brVars runs "make printvars" for vars in output directory o (with show-info too when
// showInfo is set) and returns the variables' values and the show-info report. extra are
// more make arguments (variable overrides).
func brVars(t *testing.T, br, o string, vars []string, showInfo bool, extra ...string) (map[string]string, map[string]pkgInfo) {
	t.Helper()
	args := append([]string{"O=" + o, "printvars", "VARS=" + strings.Join(vars, " "), "QUOTED_VARS=YES"}, extra...)
	if showInfo {
		args = append(args, "show-info")
	}
	out := brMake(t, br, args...)
	values, info, err := parsePrintvars(out)
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, v := range vars {
		if _, ok := values[v]; !ok {
			t.Fatalf("make printvars did not print %s:\n%s", v, out)
		}
	}
	if showInfo && info == nil {
		t.Fatalf("make show-info printed no report:\n%s", out)
	}
	return values, info
}

var varStart = regexp.MustCompile(`^([A-Za-z0-9_]+)='`)

// parsePrintvars reads the output of "make printvars QUOTED_VARS=YES [show-info]":
// NAME='value' entries (values quoted as the shell does, possibly over several lines) and
// the one-line JSON report of show-info.
func parsePrintvars(out string) (map[string]string, map[string]pkgInfo, error) {
	values := map[string]string{}
	var info map[string]pkgInfo
	for s := out; s != ""; {
		line, _, _ := strings.Cut(s, "\n")
		switch m := varStart.FindStringSubmatch(line); {
		case strings.HasPrefix(line, "{"):
			if err := json.Unmarshal([]byte(line), &info); err != nil {
				return nil, nil, fmt.Errorf("show-info: %v", err)
			}
		case m != nil:
			var v strings.Builder
			i := len(m[0])
			for ; ; i++ {
				if i >= len(s) {
					return nil, nil, fmt.Errorf("%s: unterminated value", m[1])
				}
				if s[i] != '\'' {
					v.WriteByte(s[i])
				} else if strings.HasPrefix(s[i:], `'\''`) {
					v.WriteByte('\'')
					i += 3
				} else {
					break
				}
			}
			values[m[1]] = v.String()
			s = s[i+1:]
			continue
		}
		if len(line) == len(s) {
			break
		}
		s = s[len(line)+1:]
	}
	return values, info, nil
}

var (
	otaBuildOnce sync.Once
	otaBuildPath string
	otaBuildErr  error
)

// otaBuild returns an ota-build binary built from the checkout, in a Buildroot-like host
// directory (HOST_DIR/bin/ota-build), built once per test run.
func otaBuild(t *testing.T) (bin, hostDir string) {
	t.Helper()
	testsources.RequireTools(t, "go")
	hostDir = filepath.Join(tmpRoot, "host")
	otaBuildOnce.Do(func() {
		otaBuildPath = filepath.Join(hostDir, "bin", "ota-build")
		cmd := exec.Command("go", "build", "-o", otaBuildPath, "./cmd/ota-build")
		cmd.Dir = repoDir
		if out, err := cmd.CombinedOutput(); err != nil {
			otaBuildErr = fmt.Errorf("building ota-build: %v\n%s", err, out)
		}
		os.Chmod(hostDir, 0o755)
		os.Chmod(filepath.Dir(otaBuildPath), 0o755)
	})
	if otaBuildErr != nil {
		t.Fatal(otaBuildErr)
	}
	return otaBuildPath, hostDir
}

func TestParsePrintvars(t *testing.T) {
	out := "A='one'\nB='it'\\''s\n\tmulti'\n{ \"rootfs-ota\": { \"type\": \"rootfs\", \"image_name\": \"rootfs.ota\" } }\nC=''\n"
	values, info, err := parsePrintvars(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "one", "B": "it's\n\tmulti", "C": ""}
	for k, v := range want {
		if values[k] != v {
			t.Errorf("%s = %q, want %q", k, values[k], v)
		}
	}
	if info["rootfs-ota"].ImageName != "rootfs.ota" {
		t.Errorf("show-info: %+v", info)
	}
	if _, _, err := parsePrintvars("A='open\n"); err == nil {
		t.Error("an unterminated value parsed")
	}
}
