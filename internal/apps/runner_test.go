package apps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runnerApp lays out application hello in dir as Switch does: a checkout per version with
// its .ota-exec, the link current naming the first. Each version's program writes its
// version to dir/ran and stays up.
func runnerApp(t *testing.T, dir string, versions ...string) {
	t.Helper()
	for _, v := range versions {
		co := filepath.Join(dir, "hello", v)
		if err := os.MkdirAll(filepath.Join(co, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		prog := "#!/bin/sh\necho " + v + " >> " + filepath.Join(dir, "ran") + "\nexec sleep 60\n"
		if err := os.WriteFile(filepath.Join(co, "bin/hello"), []byte(prog), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(co, ExecFile), []byte("bin/hello\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(versions[0], filepath.Join(dir, "hello/current")); err != nil {
		t.Fatal(err)
	}
}

// startRunner starts examples/apps/ota-app-run for hello, polling every 0.1 s.
func startRunner(t *testing.T, dir string) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command("sh", "../../examples/apps/ota-app-run", "hello")
	cmd.Env = append(os.Environ(), "OTA_APPS_DIR="+dir, "OTA_APP_POLL=0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, done
}

// waitRan waits until dir/ran lists want, one version a line.
func waitRan(t *testing.T, dir, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, _ := os.ReadFile(filepath.Join(dir, "ran"))
		if string(got) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the application ran %q, want %q", got, want)
		}
	}
}

// TestRunnerRestartsOnSwitch: the BusyBox runner (examples/apps/ota-app-run) starts the
// current version by its .ota-exec, stops it and exits 0 for init to respawn it when the
// link current changes (as Switch and Rollback change it), and stops it on SIGTERM.
func TestRunnerRestartsOnSwitch(t *testing.T) {
	dir := t.TempDir()
	runnerApp(t, dir, "v1.0", "v2.0")
	_, done := startRunner(t, dir)
	waitRan(t, dir, "v1.0\n")

	a := &App{Name: "hello", Dir: filepath.Join(dir, "hello")}
	if err := a.setLink("current", "v2.0"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the runner ended with %v after the switch, want exit 0 (init respawns it)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not notice the switch")
	}
	if ps := runningIn(dir); len(ps) != 0 {
		t.Errorf("version 1.0 is left running: %v", ps)
	}

	// Respawned, it runs the new version; SIGTERM stops both.
	cmd, done := startRunner(t, dir)
	waitRan(t, dir, "v1.0\nv2.0\n")
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the runner ended with %v on SIGTERM, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the runner ignored SIGTERM")
	}
	if ps := runningIn(dir); len(ps) != 0 {
		t.Errorf("version 2.0 is left running after SIGTERM: %v", ps)
	}
}

// runningIn lists the processes (PID: working directory) working in a directory under dir:
// the applications the runner started. A killed one may take a moment to go.
func runningIn(dir string) []string {
	var out []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out = out[:0]
		procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
		for _, p := range procs {
			if cwd, err := os.Readlink(p); err == nil && strings.HasPrefix(cwd, dir+"/") {
				out = append(out, strings.Split(p, "/")[2]+": "+cwd)
			}
		}
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
	}
}

// TestRunnerNotInstalled: without a current version the runner says so and exits 1 after a
// pause (init's respawn does not spin).
func TestRunnerNotInstalled(t *testing.T) {
	cmd := exec.Command("sh", "../../examples/apps/ota-app-run", "hello")
	cmd.Env = append(os.Environ(), "OTA_APPS_DIR="+t.TempDir(), "OTA_APP_POLL=0.1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "hello is not installed") {
		t.Errorf("runner without the application: %v, %q", err, out)
	}
}
