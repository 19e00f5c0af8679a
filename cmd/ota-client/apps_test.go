package main

// Issue 17: applications that update independently of the base OS.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/ota/internal/session"
)

const appRef = "apps/hello/testarch/stable"

// commitApp commits version of the application hello (apps/hello/testarch/stable) to the
// device's build repository: bin/hello prints "hello VERSION", plus extra files; it
// supports the OS versions osVersions. It returns the commit.
func (d device) commitApp(t *testing.T, version, osVersions string, extra map[string]string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "app-"+version)
	files := map[string]string{"bin/hello": "#!/bin/sh\necho hello " + version + "\n"}
	for p, data := range extra {
		files[p] = data
	}
	writeFiles(t, tree, files)
	if err := os.Chmod(filepath.Join(tree, "bin/hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseFloat(version, 64)
	out := strings.Fields(must(t, otaBuild, "commit", "--repo", d.repo, "--app", "hello", "--arch", "testarch",
		"--os-versions", osVersions, "--exec", "bin/hello", "--tree", "dir="+tree, "--version", version,
		"--timestamp", strconv.Itoa(1700000500+int(n*10))))
	return out[len(out)-1]
}

// signApp signs commits with key (the prefix publish returned) and signs the summary again.
func (d device) signApp(t *testing.T, key string, commits ...string) {
	t.Helper()
	for _, c := range commits {
		must(t, otaBuild, "sign", "--repo", d.repo, "--sign-key", key+".key", c)
	}
	must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
}

// serveRecorded serves the device's build repository with a server that records what it
// sends, and points client.yaml at it.
func (d device) serveRecorded(t *testing.T) *repoServer {
	t.Helper()
	s := newRepoServer(t, d.repo)
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + s.URL + "\nref: myos/stable\n"})
	return s
}

// appDir is the directory of application hello on the device.
func (d device) appDir() string {
	return filepath.Join(d.sysroot, "ostree/deploy/myos/var/lib/ota/apps/hello")
}

// runApp runs the current version of hello as the runners do and returns its output.
func (d device) runApp(t *testing.T) string {
	t.Helper()
	cur := filepath.Join(d.appDir(), "current")
	exe := strings.TrimSpace(readFile(t, filepath.Join(cur, ".ota-exec")))
	cmd := exec.Command("sh", "-c", "exec ./"+exe)
	cmd.Dir = cur
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the current hello: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// appReport runs an app subcommand with --json.
func appReport(t *testing.T, d device, args ...string) session.AppOutcome {
	t.Helper()
	var out session.AppOutcome
	r := mustClient(t, append([]string{"--sysroot", d.sysroot, "app"}, append(args[:1:1], append([]string{"--json"}, args[1:]...)...)...)...)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return out
}

// osState is what an app operation must not change: the deployments, the boot
// configuration and the OS refs.
func (d device) osState(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"ostree/deploy/myos/deploy", "boot", "ostree/repo/refs/heads/ostree"} {
		for _, l := range snapshot(t, filepath.Join(d.sysroot, dir)) {
			out = append(out, dir+"/"+l)
		}
	}
	return append(out, d.ostreeStatus(t)...)
}

// TestAppLifecycle (acceptance 1 and 2): with OS v1 deployed, app v1 is installed, every
// file it shares with the OS neither downloaded nor stored twice; app v2 is installed by app
// update through its static delta while the OS deployments stay byte-identical; rollback
// returns to v1; an OS update to v2 and a cleanup keep the app installed and runnable.
func TestAppLifecycle(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	srv := d.serveRecorded(t)
	// The OS's 3 MiB data file, in the app too: same content, mode and owner.
	data := blob(3<<20, 1) + blob(64<<10, 2) // newDevice's v1
	v1 := d.commitApp(t, "1.0", "1.*,2.*", map[string]string{"share/data.bin": data})
	d.signApp(t, key, v1)
	osBefore := d.osState(t)

	out := appReport(t, d, "install", "--ref", appRef, "hello")
	if !out.Changed || out.App == nil || out.App.Current != v1 || out.App.Version != "1.0" || out.Pull.Method != "objects" {
		t.Fatalf("install: %+v %+v", out.App, out.Pull)
	}
	if got := d.runApp(t); got != "hello 1.0" {
		t.Errorf("app v1 prints %q", got)
	}
	var sent int64
	for _, rs := range srv.files() {
		for _, r := range rs {
			sent += r.sent
		}
	}
	if sent > 1<<20 {
		t.Errorf("installing an app that shares a 3 MiB file with the OS downloaded %d bytes", sent)
	}
	var appSt, osSt syscall.Stat_t
	deps, _ := filepath.Glob(filepath.Join(d.sysroot, "ostree/deploy/myos/deploy/*.0"))
	syscall.Stat(filepath.Join(d.appDir(), "current/share/data.bin"), &appSt)
	syscall.Stat(filepath.Join(deps[0], "usr/share/app/data.bin"), &osSt)
	if appSt.Ino == 0 || appSt.Ino != osSt.Ino {
		t.Errorf("the app's data.bin is inode %d, the OS's %d: stored twice", appSt.Ino, osSt.Ino)
	}

	v2 := d.commitApp(t, "2.0", "1.*,2.*", map[string]string{"share/data.bin": data, "share/new": "new in 2"})
	must(t, otaBuild, "delta", "--repo", d.repo, "--from", v1, "--to", v2)
	d.signApp(t, key, v2)
	out = appReport(t, d, "update", "hello")
	if !out.Changed || out.App.Current != v2 || out.App.Previous != v1 || out.Pull.Method != "delta" {
		t.Fatalf("update: %+v %+v", out.App, out.Pull)
	}
	if got := d.runApp(t); got != "hello 2.0" {
		t.Errorf("app v2 prints %q", got)
	}
	if after := d.osState(t); !slices.Equal(after, osBefore) {
		t.Errorf("the app update changed the OS:\n%s", diffLines(osBefore, after))
	}
	if out := appReport(t, d, "update", "hello"); out.Changed {
		t.Errorf("second update: %+v", out.App)
	}
	out = appReport(t, d, "rollback", "hello")
	if out.App.Current != v1 || out.App.Previous != v2 || d.runApp(t) != "hello 1.0" {
		t.Errorf("rollback: %+v", out.App)
	}
	appReport(t, d, "rollback", "hello") // back to v2

	// An OS update keeps the app, in the shared /var, and cleanup keeps its commits.
	updateReport(t, d, "update")
	if got, want := d.ostreeStatus(t), []string{d.commits[1] + ".0", d.commits[0] + ".0"}; !slices.Equal(got, want) {
		t.Fatalf("OS update: %v", got)
	}
	mustClient(t, "--sysroot", d.sysroot, "cleanup")
	must(t, "ostree", "fsck", "--repo="+filepath.Join(d.sysroot, "ostree/repo"))
	for _, c := range []string{v1, v2} {
		must(t, "ostree", "show", "--repo="+filepath.Join(d.sysroot, "ostree/repo"), c)
	}
	if got := d.runApp(t); got != "hello 2.0" {
		t.Errorf("after the OS update the app prints %q", got)
	}
	var rep struct {
		Apps []struct{ Name, Current string }
	}
	json.Unmarshal([]byte(mustClient(t, "--sysroot", d.sysroot, "app", "list", "--json").stdout), &rep)
	if list := rep.Apps; len(list) != 1 || list[0].Name != "hello" || list[0].Current != v2 {
		t.Errorf("app list: %+v", rep)
	}
	appReport(t, d, "rollback", "hello")
	if got := d.runApp(t); got != "hello 1.0" {
		t.Errorf("rollback after the OS update: the app prints %q", got)
	}

	// Removal leaves no trace but the objects, which cleanup frees.
	mustClient(t, "--sysroot", d.sysroot, "app", "remove", "hello")
	if fileExists(d.appDir()) || fileExists(filepath.Join(d.sysroot, "ostree/repo/refs/heads/ota/apps/hello")) {
		t.Errorf("remove left %s or its refs", d.appDir())
	}
	mustClient(t, "--sysroot", d.sysroot, "cleanup")
	if fileExists(filepath.Join(d.sysroot, "ostree/repo/objects", v2[:2], v2[2:]+".commit")) {
		t.Errorf("cleanup kept the removed app's commit")
	}
}

// TestAppRefusals (acceptance 3): an unsigned app, one signed by an untrusted key, one
// that requires another OS version and names that would escape the applications' directory
// are refused with one line, and the device is unchanged.
func TestAppRefusals(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	other := filepath.Join(t.TempDir(), "other")
	must(t, otaBuild, "keygen", "-o", other)
	for _, tc := range []struct {
		name    string
		prepare func() // publishes the app
		args    []string
		want    string
	}{
		{"unsigned", func() { c := d.commitApp(t, "1.0", "", nil); d.signApp(t, key); _ = c }, nil, "is not signed"},
		{"untrusted key", func() {
			c := d.commitApp(t, "1.1", "", nil)
			must(t, otaBuild, "sign", "--repo", d.repo, "--sign-key", other+".key", c)
			d.signApp(t, key)
		}, nil, "no signature by a trusted key"},
		{"other OS version", func() { d.signApp(t, key, d.commitApp(t, "1.2", "2.*,3.0", nil)) }, nil,
			`supports OS versions 2.*,3.0, the device runs "1.0"`},
		{"name escaping", nil, []string{"install", "--ref", appRef, "../hello"}, `application name "../hello"`},
		{"ref escaping", nil, []string{"install", "--ref", "apps/hello/../../../etc", "hello"}, "want apps/hello/ARCH/CHANNEL"},
		{"ref of another app", nil, []string{"install", "--ref", "apps/other/testarch/stable", "hello"}, "want apps/hello/ARCH/CHANNEL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare()
			}
			args := tc.args
			if args == nil {
				args = []string{"install", "--ref", appRef, "hello"}
			}
			before := snapshot(t, d.sysroot)
			r := client(append([]string{"--sysroot", d.sysroot, "app"}, args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want one line with %q", r.code, r.stderr, tc.want)
			}
			if after := snapshot(t, d.sysroot); !slices.Equal(before, after) {
				t.Errorf("the refusal changed the device:\n%s", diffLines(before, after))
			}
		})
	}
}

// TestAppUpdateKilled (acceptance 4): ota-client app update killed by SIGKILL at several
// points of its download leaves the previous version current and runnable each time;
// running it again finishes, leaving no partial checkout.
func TestAppUpdateKilled(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	v1 := d.commitApp(t, "1.0", "", nil)
	d.signApp(t, key, v1)
	mustClient(t, "--sysroot", d.sysroot, "app", "install", "--ref", appRef, "hello")
	v2 := d.commitApp(t, "2.0", "", map[string]string{"share/big.bin": blob(12<<20, 7)})
	d.signApp(t, key, v2)
	appendConfig(t, d, "max-rate: 2MiB\n") // about 6 s of download
	for i, delay := range []time.Duration{300 * time.Millisecond, 800 * time.Millisecond, 1200 * time.Millisecond, 1600 * time.Millisecond} {
		cmd := exec.Command(otaClient, "--sysroot", d.sysroot, "app", "update", "hello")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err == nil {
			t.Fatalf("kill %d: the update finished within %v; slow the download", i, delay)
		}
		if got := d.runApp(t); got != "hello 1.0" {
			t.Errorf("kill %d after %v: current app prints %q, want the previous version's", i, delay, got)
		}
	}
	out := appReport(t, d, "update", "hello")
	if out.App.Current != v2 || out.App.Previous != v1 || d.runApp(t) != "hello 2.0" {
		t.Fatalf("update after the kills: %+v", out.App)
	}
	want := []string{v1 + ".0", v2 + ".0", "current", "previous", "ref"}
	slices.Sort(want)
	if got := dirNames(t, d.appDir()); !slices.Equal(got, want) {
		t.Errorf("app directory after the update: %v", got)
	}
}
