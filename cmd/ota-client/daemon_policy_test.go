package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/daemon"
)

// TestDaemonAutoInstall (acceptance 4): a daemon with download: auto, install: auto, reboot:
// never and a 1-second interval finds its device up to date, then, once v2 is published
// while it runs, downloads and installs it by itself: v2 is the default as the real ostree
// sees it, and RestartRequired turns true (v1 is still the booted system).
func TestDaemonAutoInstall(t *testing.T) {
	e := newRefusalEnv(t, 1, false)
	d := e.d
	publishV2 := e.setRef(t, d.commits[0])
	appendConfig(t, d, "daemon:\n  interval: 1s\n  download: auto\n  install: auto\n  reboot: never\n")
	b := startBus(t, d)
	c := dialBus(t, b)
	startDaemon(t, b, d, "--cmdline", d.cmdlineOf(t, d.commits[0]))

	// Two periodic checks find nothing.
	f, i := c.waitFinished(t, 0, "check", 20*time.Second)
	if f, _ = c.waitFinished(t, i+1, "check", 20*time.Second); !f.success || !strings.HasPrefix(f.message, "up to date: 1.0") {
		t.Fatalf("periodic check: %+v", f)
	}
	if c.prop(t, "RestartRequired") != false || c.prop(t, "UpdateAvailable") != false {
		t.Fatal("restart required or update available before v2 is published")
	}
	publishV2()
	start := time.Now()
	f, _ = c.waitFinished(t, 0, "install", 60*time.Second)
	t.Logf("installed %v after v2 was published", time.Since(start))
	if !f.success {
		t.Fatalf("install: %+v", f)
	}
	c.waitProperty(t, 0, "RestartRequired", true, 10*time.Second)
	if got := d.ostreeStatus(t); len(got) != 2 || got[0] != d.commits[1]+".0" || got[1] != d.commits[0]+".0" {
		t.Errorf("ostree admin status: %v", got)
	}
	for name, want := range map[string]any{"BootedRevision": d.commits[0], "DefaultRevision": d.commits[1], "RollbackRevision": d.commits[0],
		"DefaultVersion": "2.0", "BootedVersion": "1.0", "UpdateAvailable": false, "RollbackAvailable": true} {
		if got := c.prop(t, name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if got := c.prop(t, "LastResult").(string); !strings.Contains(got, `"operation":"deploy"`) || !strings.Contains(got, `"outcome":"success"`) {
		t.Errorf("LastResult: %s", got)
	}
	if got := c.prop(t, "DefaultMetadata").(string); !strings.Contains(got, `"version":"2.0"`) || !strings.Contains(got, `"ostree.ref-binding":["myos/stable"]`) {
		t.Errorf("DefaultMetadata: %s", got)
	}
}

// appendConfig adds lines to the device's client.yaml.
func appendConfig(t *testing.T, d device, lines string) {
	t.Helper()
	p := filepath.Join(d.sysroot, "etc/ota/client.yaml")
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": readFile(t, p) + lines})
}

// stubReboot puts a reboot command that records its runs in a file on the PATH of the
// processes the test starts, and returns the file.
func stubReboot(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	marker := filepath.Join(t.TempDir(), "rebooted")
	writeFiles(t, bin, map[string]string{"reboot": "#!/bin/sh\necho rebooted >> " + marker + "\n"})
	os.Chmod(filepath.Join(bin, "reboot"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return marker
}

// TestDaemonRebootWindow (acceptance 5): with reboot: window, a daemon that installed an
// update by itself reboots at once when now is in the maintenance window, and not when the
// window is hours away, which its log plans instead.
func TestDaemonRebootWindow(t *testing.T) {
	hm := func(t time.Time) string { return t.Format("15:04") }
	now := time.Now()
	for _, tc := range []struct {
		name, window string
		reboots      bool
	}{
		{"in", hm(now.Add(-time.Minute)) + "-" + hm(now.Add(10*time.Minute)), true},
		{"out", hm(now.Add(2*time.Hour)) + "-" + hm(now.Add(3*time.Hour)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, 1)
			d.publish(t)
			marker := stubReboot(t)
			appendConfig(t, d, "daemon:\n  interval: 1s\n  download: auto\n  install: auto\n  reboot: window\n  maintenance-window: "+tc.window+"\n")
			b := startBus(t, d)
			c := dialBus(t, b)
			p := startDaemon(t, b, d, "--cmdline", d.cmdlineOf(t, d.commits[0]))
			if f, _ := c.waitFinished(t, 0, "install", 60*time.Second); !f.success {
				t.Fatalf("install: %+v", f)
			}
			if tc.reboots {
				if f, _ := c.waitFinished(t, 0, "reboot", 20*time.Second); !f.success {
					t.Fatalf("reboot: %+v", f)
				}
				if got := readFile(t, marker); got != "rebooted\n" {
					t.Errorf("reboot ran %q", got)
				}
				return
			}
			time.Sleep(3 * time.Second)
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("rebooted outside the maintenance window %s", tc.window)
			}
			if !strings.Contains(p.log(), "reboot planned at ") {
				t.Errorf("no reboot planned in the log:\n%s", p.log())
			}
		})
	}
}

// TestDaemonMaxRate (acceptance 5): the daemon's download of the 3 MiB object, capped at
// 1 MiB/s by max-rate, takes at least the time the rate allows; meanwhile every thread of
// the daemon runs at nice 10 in the idle I/O class, and after it at the priority it had.
func TestDaemonMaxRate(t *testing.T) {
	const rate = 1 << 20
	d, s := resumeDevice(t, "objects")
	appendConfig(t, d, "max-rate: 1MiB\n")
	b := startBus(t, d)
	p := startDaemon(t, b, d)
	c := dialBus(t, b)
	pid := p.cmd.Process.Pid
	if nice, io := priorities(t, pid); !allEqual(nice, 0) || allEqual(io, daemon.IdleIOPriority) {
		t.Errorf("before the download: nice %v, I/O priority %v", nice, io)
	}
	start := time.Now()
	c.mustCall(t, "Download")
	c.waitProperty(t, 0, "Status", "downloading", 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if nice, io := priorities(t, pid); !allEqual(nice, 10) || !allEqual(io, daemon.IdleIOPriority) {
		t.Errorf("during the download: nice %v, I/O priority %v; want 10 and the idle class (%d) for every thread", nice, io, daemon.IdleIOPriority)
	}
	f, _ := c.waitFinished(t, 0, "download", 60*time.Second)
	elapsed := time.Since(start)
	if !f.success || !strings.HasPrefix(f.message, "downloaded: 2.0") {
		t.Fatalf("download: %+v", f)
	}
	var received int64
	for _, rs := range s.files() {
		for _, r := range rs {
			received += r.sent
		}
	}
	least := time.Duration(float64(received-32<<10) / rate * float64(time.Second))
	t.Logf("%d bytes in %v (at least %v at %d bytes/s)", received, elapsed, least, rate)
	if received < 3<<20 || elapsed < least*9/10 {
		t.Errorf("%d bytes in %v: faster than %d bytes/s", received, elapsed, rate)
	}
	if nice, _ := priorities(t, pid); !allEqual(nice, 0) {
		t.Errorf("after the download: nice %v", nice)
	}
}

// priorities returns the nice value and the I/O priority of every thread of process pid.
func priorities(t *testing.T, pid int) (nice, io []int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			continue // the thread ended
		}
		// Field 19 is the nice value; the fields after the command's ")" start at 3.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		n, _ := strconv.Atoi(fields[19-3])
		prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, 1, uintptr(tid), 0)
		if errno != 0 {
			continue
		}
		nice, io = append(nice, n), append(io, int(prio))
	}
	return nice, io
}

func allEqual(values []int, v int) bool {
	for _, x := range values {
		if x != v {
			return false
		}
	}
	return len(values) > 0
}

// TestDaemonStall: a download that receives no byte for the stall timeout is cancelled by
// the watchdog, with an error that says so.
func TestDaemonStall(t *testing.T) {
	d, s := resumeDevice(t, "delta")
	holdLargeFile(s)
	appendConfig(t, d, "daemon:\n  stall-timeout: 2s\n")
	b := startBus(t, d)
	startDaemon(t, b, d)
	c := dialBus(t, b)
	start := time.Now()
	c.mustCall(t, "Update")
	f, _ := c.waitFinished(t, 0, "update", 30*time.Second)
	if want := "update: stalled: no progress for 2s"; f.success || f.message != want {
		t.Errorf("Finished: %+v, want the failure %q", f, want)
	}
	if elapsed := time.Since(start); elapsed < 2*time.Second {
		t.Errorf("stalled after %v", elapsed)
	}
}

// TestDaemonBusPolicy: the policy file that `ota-client daemon --print-dbus-policy` makes
// for the configured group lets root and that group's members call the daemon, and the
// bus refuses anyone else (uid 65534 without the group).
func TestDaemonBusPolicy(t *testing.T) {
	requireTool(t, "setpriv")
	d := newDevice(t, 1)
	d.publish(t)
	appendConfig(t, d, "daemon:\n  group: users\n")
	b := startBus(t, d)
	startDaemon(t, b, d)
	introspect := []string{"call", "--system", "--dest", "org.otakit.OtaClient1", "--object-path", "/org/otakit/OtaClient1",
		"--method", "org.freedesktop.DBus.Properties.Get", "org.otakit.OtaClient1", "Status"}
	for _, tc := range []struct {
		who     string
		setpriv []string
		ok      bool
	}{
		{"root", nil, true},
		{"uid 65534 in group users", []string{"--reuid=65534", "--regid=65534", "--groups=100"}, true},
		{"uid 65534", []string{"--reuid=65534", "--regid=65534", "--clear-groups"}, false},
	} {
		args := append(append(tc.setpriv, "gdbus"), introspect...)
		name := "gdbus"
		if tc.setpriv != nil {
			name = "setpriv"
		} else {
			args = args[1:]
		}
		cmd := exec.Command(name, args...)
		cmd.Env = b.env()
		out, err := cmd.CombinedOutput()
		if ok := err == nil && strings.Contains(string(out), "<'idle'>"); ok != tc.ok {
			t.Errorf("%s: %v %s", tc.who, err, out)
		}
		if !tc.ok && !strings.Contains(string(out), "AccessDenied") {
			t.Errorf("%s: refused without AccessDenied: %s", tc.who, out)
		}
	}
}
