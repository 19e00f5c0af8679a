package prepareroot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
	"github.com/otakit/ota/internal/sysroot"
)

// fakeMounter records the operations Run asks for, and fails the first one that starts
// with fail.
type fakeMounter struct {
	ops  []string
	fail string
	// proc, when set, runs on MountProc and Unmount with whether proc is being mounted.
	proc func(dir string, mounted bool)
}

func (f *fakeMounter) do(format string, args ...any) error {
	op := fmt.Sprintf(format, args...)
	f.ops = append(f.ops, op)
	if f.fail != "" && strings.HasPrefix(op, f.fail) {
		return errors.New(op + ": injected failure")
	}
	return nil
}

func (f *fakeMounter) MakeRPrivate(p string) error { return f.do("make-rprivate %s", p) }
func (f *fakeMounter) Bind(src, dst string) error  { return f.do("bind %s %s", src, dst) }
func (f *fakeMounter) ReadOnly(p string) error     { return f.do("ro %s", p) }
func (f *fakeMounter) Move(src, dst string) error  { return f.do("move %s %s", src, dst) }
func (f *fakeMounter) Chdir(dir string) error      { return f.do("chdir %s", dir) }
func (f *fakeMounter) Chroot(dir string) error     { return f.do("chroot %s", dir) }
func (f *fakeMounter) Exec(p string, argv []string) error {
	return f.do("exec %s %q", p, argv)
}

func (f *fakeMounter) MountProc(dir string) error {
	if err := f.do("proc %s", dir); err != nil {
		return err
	}
	if f.proc != nil {
		f.proc(dir, true)
	}
	return nil
}

func (f *fakeMounter) Unmount(dir string) error {
	if f.proc != nil {
		f.proc(dir, false)
	}
	return f.do("umount %s", dir)
}

// device is a sysroot deployed by package sysroot, as ota-build stages an image.
type device struct {
	root    string // the physical root
	deploy  string // the deployment directory
	cmdline string // a file with the kernel command line of its boot entry
	link    string // the ostree= argument
}

// newDevice commits a bootable tree and deploys it into a new sysroot, recording the
// files' owners instead of setting them, so that it needs no root.
func newDevice(t *testing.T) device {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for p, data := range map[string]string{
		"boot/vmlinuz-6.1.0-test":                "KERNEL",
		"usr/lib/modules/6.1.0-test/modules.dep": "",
		"etc/os-release":                         "ID=myos\nVERSION_ID=1.0\n",
		"usr/share/app/version":                  "1.0",
	} {
		os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := ostree.Init(filepath.Join(dir, "repo"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	src, err := rootfs.WalkDir(tree)
	if err != nil {
		t.Fatal(err)
	}
	res, err := commit.Commit(context.Background(), repo, src, commit.Options{Branch: "myos/stable", Bootable: true,
		Version: "1.0", Timestamp: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	d := device{root: filepath.Join(dir, "sysroot")}
	opts := sysroot.Options{OSName: "myos", Kargs: []string{"root=/dev/mmcblk0p2", "rw"}, Bootloader: "uboot",
		Attrs: &sysroot.Record{}, NoSync: true}
	if err := sysroot.Init(d.root, opts); err != nil {
		t.Fatal(err)
	}
	if err := sysroot.Deploy(context.Background(), d.root, repo, res.Commit, opts); err != nil {
		t.Fatal(err)
	}
	d.deploy = filepath.Join(d.root, "ostree/deploy/myos/deploy", res.Commit.String()+".0")
	entries, _ := filepath.Glob(filepath.Join(d.root, "boot/loader/entries/*.conf"))
	if len(entries) != 1 {
		t.Fatalf("boot entries %q, want one", entries)
	}
	data, _ := os.ReadFile(entries[0])
	m := regexp.MustCompile(`(?m)^options (.*ostree=(\S+).*)$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no ostree= argument in %s:\n%s", entries[0], data)
	}
	d.link = string(m[2])
	d.cmdline = filepath.Join(dir, "cmdline")
	if err := os.WriteFile(d.cmdline, append(m[1], '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// ops returns the operations of f with the paths of d written as D (the deployment) and
// S (the physical root).
func (d device) ops(f *fakeMounter) []string {
	r := strings.NewReplacer(d.deploy, "D", d.root, "S")
	var out []string
	for _, op := range f.ops {
		out = append(out, r.Replace(op))
	}
	return out
}

// assembled are the operations that assemble the deployment of an ota-build image.
var assembled = []string{
	"make-rprivate /",
	"bind D D",
	"bind D/usr D/usr",
	"ro D/usr",
	"bind S D/sysroot",
	"bind S/ostree/deploy/myos/var D/var",
	"bind S/boot D/boot",
}

// TestRunSequence: Run mounts the deployment the boot link leads to, with the physical
// root, the stateroot's var, a read-only /usr and /boot, then switches to it and starts
// init; with NoExec it moves it onto the physical root instead; a /boot of its own
// partition (no boot/loader symlink in the physical root) is left to the system.
func TestRunSequence(t *testing.T) {
	switched := []string{"chdir D", "move D /", "chroot .", "chdir /"}
	for _, tc := range []struct {
		name     string
		opts     Options
		separate bool // /boot is a partition of its own
		want     []string
	}{
		{"exec", Options{}, false, concat(assembled, switched, []string{`exec /sbin/init ["/sbin/init"]`})},
		{"init", Options{Init: "/usr/lib/systemd/systemd", InitArgs: []string{"single", "--log-level=debug"}}, false,
			concat(assembled, switched, []string{`exec /usr/lib/systemd/systemd ["/usr/lib/systemd/systemd" "single" "--log-level=debug"]`})},
		{"no-exec", Options{NoExec: true, Init: "/not/run"}, false, concat(assembled, []string{"move D S"})},
		{"boot partition", Options{}, true, concat(assembled[:6], switched, []string{`exec /sbin/init ["/sbin/init"]`})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			if tc.separate {
				os.Remove(filepath.Join(d.root, "boot/loader"))
			}
			f := &fakeMounter{}
			var log bytes.Buffer
			opts := tc.opts
			opts.Sysroot, opts.Cmdline, opts.Mounter, opts.Log = d.root, d.cmdline, f, &log
			if err := Run(opts); err != nil {
				t.Fatal(err)
			}
			if got := d.ops(f); !slices.Equal(got, tc.want) {
				t.Errorf("operations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			target := "/"
			if opts.NoExec {
				target = d.root
			}
			if want := "prepare-root: mounting deployment " + d.deploy + " on " + target + "\n"; log.String() != want {
				t.Errorf("log %q, want %q", log.String(), want)
			}
		})
	}
}

func concat(lists ...[]string) []string { return slices.Concat(lists...) }

// TestRunRefuses: whatever is missing, Run says it in one line and mounts nothing.
func TestRunRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, d *device, o *Options)
		want  string // with $D the deployment, $S the physical root, $L the boot link, $C the cmdline file
	}{
		{"no ostree=", func(t *testing.T, d *device, o *Options) {
			os.WriteFile(d.cmdline, []byte("root=/dev/mmcblk0p2 rw init=/sbin/init\n"), 0o644)
		}, "prepare-root: no ostree= argument in the kernel command line ($C): it names the deployment to boot"},
		{"not a boot link", func(t *testing.T, d *device, o *Options) {
			os.WriteFile(d.cmdline, []byte("rw ostree=/ostree/deploy/myos\n"), 0o644)
		}, "prepare-root: ostree=/ostree/deploy/myos is not a boot link /ostree/boot.N/<os>/<bootcsum>/<serial>"},
		{"boot link missing", func(t *testing.T, d *device, o *Options) {
			os.Remove(filepath.Join(d.root, d.link))
		}, "prepare-root: boot link ostree=$L does not resolve: readlink $S$L: no such file or directory"},
		{"boot link elsewhere", func(t *testing.T, d *device, o *Options) {
			p := filepath.Join(d.root, d.link)
			os.Remove(p)
			os.Symlink("../../../deploy/myos/var", p)
		}, `prepare-root: boot link ostree=$L points to "../../../deploy/myos/var", not to a deployment ../../../deploy/<os>/deploy/<commit>.<serial>`},
		{"boot link not a link", func(t *testing.T, d *device, o *Options) {
			p := filepath.Join(d.root, d.link)
			os.Remove(p)
			os.Mkdir(p, 0o755)
		}, "prepare-root: boot link ostree=$L: $S$L is not a symbolic link"},
		{"deployment missing", func(t *testing.T, d *device, o *Options) {
			os.Rename(d.deploy, d.deploy+".gone")
		}, "prepare-root: deployment $D, which ostree=$L leads to, is missing"},
		{"no usr", func(t *testing.T, d *device, o *Options) {
			os.Rename(filepath.Join(d.deploy, "usr"), filepath.Join(d.deploy, "usr.gone"))
		}, "prepare-root: deployment $D has no /usr directory"},
		{"no sysroot", func(t *testing.T, d *device, o *Options) {
			os.Remove(filepath.Join(d.deploy, "sysroot"))
		}, "prepare-root: deployment $D has no /sysroot directory"},
		{"var a symlink", func(t *testing.T, d *device, o *Options) {
			os.Remove(filepath.Join(d.deploy, "var"))
			os.Symlink("/var", filepath.Join(d.deploy, "var"))
		}, "prepare-root: deployment $D has no /var directory"},
		{"no stateroot var", func(t *testing.T, d *device, o *Options) {
			os.Rename(filepath.Join(d.root, "ostree/deploy/myos/var"), filepath.Join(d.root, "ostree/deploy/myos/var.gone"))
		}, "prepare-root: stateroot myos has no var directory $S/ostree/deploy/myos/var, which is mounted as /var"},
		{"no cmdline file", func(t *testing.T, d *device, o *Options) {
			os.Remove(d.cmdline)
		}, "prepare-root: reading the kernel command line: open $C: no such file or directory"},
		{"no physical root", func(t *testing.T, d *device, o *Options) {
			o.Sysroot = d.root + "/missing"
		}, "prepare-root: the physical root: lstat $S/missing: no such file or directory"},
		{"no-exec on /", func(t *testing.T, d *device, o *Options) {
			o.Sysroot, o.NoExec = "/", true
		}, "prepare-root: without exec, the deployment is moved onto the physical root, which must then be mounted elsewhere than / (in an initramfs, at /sysroot)"},
		{"relative init", func(t *testing.T, d *device, o *Options) {
			o.Init = "sbin/init"
		}, `prepare-root: init "sbin/init" is not an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			f := &fakeMounter{}
			opts := Options{Sysroot: d.root, Cmdline: d.cmdline, Mounter: f}
			tc.setup(t, &d, &opts)
			err := Run(opts)
			want := strings.NewReplacer("$D", d.deploy, "$S", d.root, "$L", d.link, "$C", d.cmdline).Replace(tc.want)
			if err == nil || err.Error() != want {
				t.Errorf("error %v\nwant  %s", err, want)
			}
			if len(f.ops) != 0 {
				t.Errorf("operations before the refusal: %q", f.ops)
			}
		})
	}
}

// TestRunMountFails: a failed mount operation ends Run with an error naming it; nothing
// after it is done, least of all the switch to the half-assembled root.
func TestRunMountFails(t *testing.T) {
	d := newDevice(t)
	f := &fakeMounter{fail: "ro "}
	err := Run(Options{Sysroot: d.root, Cmdline: d.cmdline, Mounter: f})
	if want := "prepare-root: ro " + d.deploy + "/usr: injected failure"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if got, want := d.ops(f), assembled[:4]; !slices.Equal(got, want) {
		t.Errorf("operations %q, want %q", got, want)
	}
}

// TestRunMountsProc: as PID 1, /proc is not mounted yet: Run mounts it to read the
// kernel command line and unmounts it before assembling the root.
func TestRunMountsProc(t *testing.T) {
	d := newDevice(t)
	procDir = filepath.Join(t.TempDir(), "proc")
	t.Cleanup(func() { procDir = "/proc" })
	os.Mkdir(procDir, 0o555)
	cmdline, _ := os.ReadFile(d.cmdline)
	f := &fakeMounter{proc: func(dir string, mounted bool) {
		// A stand-in for proc: the directory gets its cmdline while mounted.
		os.Chmod(dir, 0o755)
		if mounted {
			os.WriteFile(filepath.Join(dir, "cmdline"), cmdline, 0o444)
		} else {
			os.Remove(filepath.Join(dir, "cmdline"))
		}
	}}
	if err := Run(Options{Sysroot: d.root, Mounter: f}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(d.ops(f), "\n")
	want := "proc " + procDir + "\numount " + procDir + "\n" + strings.Join(assembled, "\n") + "\n"
	if !strings.HasPrefix(got, want) {
		t.Errorf("operations:\n%s\nwant them to start with:\n%s", got, want)
	}

	// Without proc, the error says so and nothing else happens.
	f = &fakeMounter{fail: "proc"}
	err := Run(Options{Sysroot: d.root, Mounter: f})
	if want := "prepare-root: reading the kernel command line: proc " + procDir + ": injected failure"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if len(f.ops) != 1 {
		t.Errorf("operations %q after proc failed", f.ops)
	}
}
