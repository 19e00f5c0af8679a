package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	otacli "github.com/otakit/ota/internal/cli"
)

// otaBuild is the ota-build binary, built once, that makes the commits the tests deploy;
// otaClient is this command built, for the tests that run it as a process (to kill it).
var otaBuild, otaClient string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ota-client-test")
	if err != nil {
		panic(err)
	}
	otaBuild, otaClient = filepath.Join(dir, "ota-build"), filepath.Join(dir, "ota-client")
	for bin, pkg := range map[string]string{otaBuild: "../ota-build", otaClient: "."} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
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

// client runs ota-client in the test's process.
func client(args ...string) result {
	var stdout, stderr bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &stdout, &stderr
	code := otacli.Run(app, append([]string{"ota-client"}, args...))
	return result{stdout.String(), stderr.String(), code}
}

// mustClient runs ota-client and fails the test unless it succeeds.
func mustClient(t *testing.T, args ...string) result {
	t.Helper()
	r := client(args...)
	if r.code != 0 {
		t.Fatalf("ota-client %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// must runs a tool and fails the test unless it succeeds; it returns its output.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// requireTool skips the test when a tool is missing, or fails it when OTA_REQUIRE_TOOLS=1.
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

// TestUsageAndVersion: usage errors exit 2 with one line; --version prints the version.
func TestUsageAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `ota-client: unknown command "nope" (see ota-client --help)`},
		{[]string{"status", "extra"}, `ota-client: status: unexpected argument "extra" (see ota-client status --help)`},
		{[]string{"rollback", "--force"}, `ota-client: rollback: flag provided but not defined: -force (see ota-client rollback --help)`},
		{[]string{"--progress", "bar", "status"}, `ota-client: --progress "bar": want auto, plain, json, none (see ota-client --help)`},
	} {
		r := client(tc.args...)
		if r.code != otacli.ExitUsage || r.stdout != "" || r.stderr != tc.want+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if r := mustClient(t, "--version"); r.stdout != "ota-client version "+otacli.VersionString()+"\n" {
		t.Errorf("--version printed %q", r.stdout)
	}
}
