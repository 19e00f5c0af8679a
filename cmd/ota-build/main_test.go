package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// otaBuild is the path of the ota-build binary built once for the tests that run it the way
// users and build systems do.
var otaBuild string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ota-build-test")
	if err != nil {
		panic(err)
	}
	// World-accessible, so tests can run the binary as an unprivileged user too.
	os.Chmod(dir, 0o755)
	otaBuild = filepath.Join(dir, "ota-build")
	if out, err := exec.Command("go", "build", "-o", otaBuild, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building ota-build: %v\n%s", err, out)
		os.Exit(1)
	}
	// The commands under test report no progress, as before stderr could show it when it is
	// not a terminal: the tests that look at progress ask for it.
	os.Setenv("OTA_PROGRESS", "none")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// lastLine returns the last non-empty line of stdout.
func (r result) lastLine() string {
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	return lines[len(lines)-1]
}

// runCmd runs a command with extra environment variables (KEY=VALUE) and optional stdin.
func runCmd(t *testing.T, env []string, stdin []byte, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return r
}

// ota runs ota-build and fails the test unless it succeeds.
func ota(t *testing.T, args ...string) result {
	t.Helper()
	r := runCmd(t, nil, nil, otaBuild, args...)
	if r.code != 0 {
		t.Fatalf("ota-build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// must runs a command and fails the test unless it succeeds.
func must(t *testing.T, name string, args ...string) result {
	t.Helper()
	r := runCmd(t, nil, nil, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d\n%s%s", name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// requireTool skips the test when a tool is missing, or fails it when OTA_REQUIRE_TOOLS=1
// (as CI sets after installing every tool).
func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is required (OTA_REQUIRE_TOOLS=1) but not installed", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}
