package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAppSwitchKilled: ota-client app update killed by SIGKILL while it checks the new
// version out and while it swaps the links leaves a runnable application, the previous
// version or the new one, each time; running the update again then finishes, leaving
// exactly the two versions' checkouts and no temporary file.
func TestAppSwitchKilled(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	v1 := d.commitApp(t, "1.0", "", nil)
	d.signApp(t, key, v1)
	mustClient(t, "--sysroot", d.sysroot, "app", "install", "--ref", appRef, "hello")
	// Enough files for the checkout to take a while.
	extra := map[string]string{}
	for i := range 1500 {
		extra[fmt.Sprintf("share/data/%02d/f%04d", i%30, i)] = fmt.Sprintf("file %d of 2.0\n", i)
	}
	v2 := d.commitApp(t, "2.0", "", extra)
	d.signApp(t, key, v2)
	rel, err := filepath.Rel(d.sysroot, d.appDir())
	if err != nil {
		t.Fatal(err)
	}

	// Each kill waits for a step of the switch (internal/apps Switch), then up to a delay.
	for _, k := range []struct {
		name  string
		delay time.Duration
	}{
		{".tmp-" + v2 + ".0", 0}, {".tmp-" + v2 + ".0", 30 * time.Millisecond},
		{".tmp-" + v2 + ".0", 100 * time.Millisecond}, {".tmp-" + v2 + ".0", 250 * time.Millisecond},
		{v2 + ".0", 0}, {".tmp-ref", 0}, {".tmp-link-previous", 0}, {"previous", 0},
		{".tmp-link-current", 0},
	} {
		t.Run(fmt.Sprintf("%s+%v", strings.ReplaceAll(k.name, v2, "V2"), k.delay), func(t *testing.T) {
			dv := d
			dv.sysroot = filepath.Join(t.TempDir(), "sysroot")
			must(t, "cp", "-a", d.sysroot, dv.sysroot)
			w := watchFiles(t, filepath.Join(dv.sysroot, rel), []string{k.name})
			defer w.Close()
			cmd := exec.Command(otaClient, "--sysroot", dv.sysroot, "app", "update", "hello")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-w.fired:
				time.Sleep(k.delay)
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
			case err := <-done:
				t.Fatalf("the update ended before %s appeared: %v\n%s", k.name, err, stderr.String())
			}
			if got := dv.runApp(t); got != "hello 1.0" && got != "hello 2.0" {
				t.Errorf("after the kill the current application prints %q", got)
			}
			out := appReport(t, dv, "update", "hello")
			if out.App.Current != v2 || out.App.Previous != v1 || dv.runApp(t) != "hello 2.0" {
				t.Fatalf("update after the kill: %+v", out.App)
			}
			// The checkout a kill left renamed into place is replaced by one of the next serial.
			cur, err := os.Readlink(filepath.Join(dv.appDir(), "current"))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{v1 + ".0", cur, "current", "previous", "ref"}
			slices.Sort(want)
			if got := dirNames(t, dv.appDir()); !slices.Equal(got, want) || !strings.HasPrefix(cur, v2+".") {
				t.Errorf("application directory after the update: %v (current -> %s)", got, cur)
			}
		})
	}
}
