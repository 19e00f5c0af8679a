package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	otacli "github.com/otakit/ota/internal/cli"
)

// requireUnshare skips the test when unshare cannot make a mount namespace here (not
// installed, or not permitted), or fails it when OTA_REQUIRE_TOOLS=1.
func requireUnshare(t *testing.T) {
	t.Helper()
	requireTool(t, "unshare")
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		msg := "unshare --mount is not permitted here: " + strings.TrimSpace(string(out))
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg + " (OTA_REQUIRE_TOOLS=1)")
		}
		t.Skip(msg)
	}
}

// goBuild builds package pkg (relative to this directory) into the binary out, with env
// added to the environment, and returns out.
func goBuild(t *testing.T, out, pkg string, env ...string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// mounts returns the mount points of a mountinfo report ("mount POINT ROOT OPTIONS" lines)
// with their root and options.
func mounts(report string) map[string][2]string {
	m := map[string][2]string{}
	for _, line := range strings.Split(report, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "mount" {
			m[f[1]] = [2]string{f[2], f[3]}
		}
	}
	return m
}

// checkMounts checks that the deployment of commit c, assembled at point, has the
// deployment as its root, /usr read-only, the physical root d.sysroot at /sysroot, the
// stateroot's var at /var and the physical /boot at /boot.
func checkMounts(t *testing.T, d device, c, point, report string) {
	t.Helper()
	// A mount's root is its path in its filesystem: the temporary directory's filesystem
	// may not be /, so only the end of it is known.
	phys := "/" + filepath.Base(d.sysroot)
	deploy := phys + "/ostree/deploy/myos/deploy/" + c + ".0"
	m := mounts(report)
	for _, want := range []struct{ point, root string }{
		{"", deploy},
		{"/usr", deploy + "/usr"},
		{"/sysroot", phys},
		{"/var", phys + "/ostree/deploy/myos/var"},
		{"/boot", phys + "/boot"},
	} {
		p := filepath.Join(point, want.point)
		got, ok := m[p]
		opts := strings.Split(got[1], ",")
		readOnly := want.point == "/usr"
		if !ok || !strings.HasSuffix(got[0], want.root) || slices.Contains(opts, "ro") != readOnly || slices.Contains(opts, "rw") == readOnly {
			t.Errorf("mount on %s: root %q, options %q; want the root ending in %s, read-only %v\n%s", p, got[0], got[1], want.root, readOnly, report)
		}
	}
}

// TestPrepareRootUnshare: in mount namespaces of their own, prepare-root mounts the
// deployment of the booted entry as / and executes init in it, which sees its /usr
// read-only, the stateroot's /var, the physical root at /sysroot and /boot: as PID 1 does
// with the physical root on / (the deployment the default boots), and as an initramfs does
// with it elsewhere (the rollback one); with --no-exec, the same root is assembled on
// --sysroot.
func TestPrepareRootUnshare(t *testing.T) {
	d := newDevice(t, 2) // skips unless root
	requireUnshare(t)
	requireTool(t, "sh", "mount", "chroot")
	// Both run in the sysroot as /, where there is no C library.
	otaClient := goBuild(t, filepath.Join(d.sysroot, "ota-client"), ".", "CGO_ENABLED=0")
	goBuild(t, filepath.Join(d.sysroot, "prepareroot-probe"), "./testdata/prepareroot-probe", "CGO_ENABLED=0")
	unshare := func(script string, args ...string) string {
		t.Helper()
		out, err := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	stateVar := filepath.Join(d.sysroot, "ostree/deploy/myos/var")
	loader, _ := os.Readlink(filepath.Join(d.sysroot, "boot/loader"))
	// probed checks what the probe, started as init in the deployment of commit c of the
	// physical root at root, reported.
	probed := func(root, c, version, report string) {
		t.Helper()
		deploy := filepath.Join(d.sysroot, "ostree/deploy/myos/deploy", c+".0")
		for _, line := range []string{
			"prepare-root: mounting deployment " + filepath.Join(root, "ostree/deploy/myos/deploy", c+".0") + " on /",
			"args single x",
			"cwd /",
			"version " + version,
			"usr-write open /usr/prepareroot-probe: read-only file system",
			"var-write ok",
			"sysroot-repo ok",
			"boot-loader " + loader,
		} {
			if !slices.Contains(strings.Split(report, "\n"), line) {
				t.Errorf("the probe did not report %q:\n%s", line, report)
			}
		}
		checkMounts(t, d, c, "/", report)
		if data, err := os.ReadFile(filepath.Join(stateVar, "prepareroot-probe")); string(data) != "written to /var\n" {
			t.Errorf("what the probe wrote to /var is not in the stateroot's var: %q, %v", data, err)
		}
		if _, err := os.Lstat(filepath.Join(deploy, "var/prepareroot-probe")); err == nil {
			t.Errorf("the probe wrote to the deployment's own var directory")
		}
		os.Remove(filepath.Join(stateVar, "prepareroot-probe"))
	}

	// As PID 1: the kernel mounted the physical root on /.
	cmdline, _ := os.ReadFile(d.cmdlineOf(t, d.commits[1]))
	writeFiles(t, d.sysroot, map[string]string{"cmdline": string(cmdline)})
	report := unshare(`mount --bind "$1" "$1" && cd "$1" && mount --move . / && exec chroot . /ota-client --cmdline /cmdline prepare-root --init /sysroot/prepareroot-probe -- single x`, d.sysroot)
	probed("/", d.commits[1], "2.0", report)

	// From an initramfs, with the physical root elsewhere.
	cmdlineFile := d.cmdlineOf(t, d.commits[0])
	report = unshare(`exec "$1" --sysroot "$2" --cmdline "$3" prepare-root --init /sysroot/prepareroot-probe -- single x`, otaClient, d.sysroot, cmdlineFile)
	probed(d.sysroot, d.commits[0], "1.0", report)

	// --no-exec, as in an initramfs that switches root itself: the shell that ran it sees
	// the deployment on --sysroot.
	report = unshare(`"$1" --sysroot "$2" --cmdline "$3" prepare-root --no-exec || exit 1
		sed -n 's/^[0-9]* [0-9]* [^ ]* \([^ ]*\) \([^ ]*\) \([^ ]*\).*/mount \2 \1 \3/p' /proc/self/mountinfo
		echo "version $(cat "$2/usr/share/app/version")"`, otaClient, d.sysroot, cmdlineFile)
	deploy := filepath.Join(d.sysroot, "ostree/deploy/myos/deploy", d.commits[0]+".0")
	if !strings.Contains(report, "prepare-root: mounting deployment "+deploy+" on "+d.sysroot+"\n") || !strings.Contains(report, "\nversion 1.0\n") {
		t.Errorf("prepare-root --no-exec:\n%s", report)
	}
	checkMounts(t, d, d.commits[0], d.sysroot, report)
}

// TestPrepareRootRefuses: without an ostree= argument prepare-root says so in one line
// and mounts nothing; arguments for init with --no-exec are a usage error.
func TestPrepareRootRefuses(t *testing.T) {
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(cmdline, []byte("root=/dev/mmcblk0p2 rw\n"), 0o644)
	r := client("--cmdline", cmdline, "prepare-root")
	if want := "ota-client: prepare-root: no ostree= argument in the kernel command line (" + cmdline + "): it names the deployment to boot\n"; r.code != otacli.ExitFailure || r.stdout != "" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", r.code, r.stdout, r.stderr, want)
	}
	r = client("--sysroot", t.TempDir(), "prepare-root", "--no-exec", "single")
	if want := `ota-client: prepare-root: --no-exec starts no init: unexpected argument "single" (see ota-client prepare-root --help)` + "\n"; r.code != otacli.ExitUsage || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, want)
	}
}

// TestOstreePrepareRootArgs: started as ostree-prepare-root, ota-client takes its
// arguments: SYSROOT in an initramfs, the kernel's words for init as PID 1.
func TestOstreePrepareRootArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pid1 bool
		want []string
	}{
		{[]string{"ota-client", "status"}, true, []string{"ota-client", "status"}},
		{[]string{"/usr/lib/ostree/ostree-prepare-root", "/sysroot"}, false,
			[]string{"/usr/lib/ostree/ostree-prepare-root", "--sysroot", "/sysroot", "prepare-root", "--no-exec", "--"}},
		{[]string{"ostree-prepare-root", "/sysroot", "ostree=/ostree/boot.1/os/c/0"}, false,
			[]string{"ostree-prepare-root", "--sysroot", "/sysroot", "prepare-root", "--no-exec", "--", "ostree=/ostree/boot.1/os/c/0"}},
		{[]string{"ostree-prepare-root"}, false, []string{"ostree-prepare-root", "prepare-root", "--no-exec"}},
		{[]string{"/ostree/boot.1/os/c/0/usr/lib/ostree/ostree-prepare-root"}, true,
			[]string{"/ostree/boot.1/os/c/0/usr/lib/ostree/ostree-prepare-root", "prepare-root", "--"}},
		{[]string{"ostree-prepare-root", "single", "--x"}, true, []string{"ostree-prepare-root", "prepare-root", "--", "single", "--x"}},
	} {
		if got := ostreePrepareRootArgs(tc.args, tc.pid1); !slices.Equal(got, tc.want) {
			t.Errorf("ostreePrepareRootArgs(%q, %v) = %q, want %q", tc.args, tc.pid1, got, tc.want)
		}
	}
	// ostree-prepare-root's KERNEL_CMDLINE argument is refused, not ignored.
	r := client(ostreePrepareRootArgs([]string{"ostree-prepare-root", t.TempDir(), "ostree=/x"}, false)[1:]...)
	if r.code != otacli.ExitUsage || !strings.Contains(r.stderr, `unexpected argument "ostree=/x"`) {
		t.Errorf("ostree-prepare-root SYSROOT CMDLINE: exit %d, %q", r.code, r.stderr)
	}
}
