package sysroot

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
)

type member struct {
	name, body string // body is the target of a symlink
	typ        byte
	uid        int
}

func baseTree(extra string) []member {
	return []member{
		{name: "boot/vmlinuz-5.15.0-test", body: "KERNEL\n"},
		{name: "usr/lib/modules/5.15.0-test", typ: tar.TypeDir},
		{name: "usr/lib/modules/5.15.0-test/modules.dep", body: ""},
		{name: "etc/os-release", body: "ID=myos\nPRETTY_NAME=\"My OS\"\n"},
		{name: "etc/hostname", body: "device\n"},
		{name: "usr/share/app/data", body: "owned by 1000\n", uid: 1000},
		{name: "usr/share/app/extra", body: extra},
	}
}

func tarSource(t *testing.T, ms []member) rootfs.Source {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o644, Uid: m.uid, Gid: m.uid, Size: int64(len(m.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		switch h.Typeflag {
		case tar.TypeDir:
			h.Mode, h.Size = 0o755, 0
		case tar.TypeSymlink:
			h.Mode, h.Size, h.Linkname = 0o777, 0, m.body
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(m.body))
		}
	}
	tw.Close()
	src, err := rootfs.OpenTar(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// fixture is a source repository with two bootable commits of the same kernel.
type fixture struct {
	src    *ostree.Repo
	c1, c2 ostree.Checksum
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatal("ostree is required (OTA_REQUIRE_TOOLS=1)")
		}
		t.Skip("ostree not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (bare repositories)")
	}
	src, err := ostree.Init(t.TempDir(), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{src: src}
	for i, extra := range []string{"one\n", "two\n"} {
		res, err := commit.Commit(context.Background(), src, tarSource(t, baseTree(extra)), commit.Options{
			Branch: "myos/stable", Bootable: true, Version: []string{"1.0", "2.0"}[i],
			Timestamp: time.Unix(1700000000+int64(i), 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.c1 = res.Commit
		} else {
			f.c2 = res.Commit
		}
	}
	return f
}

// newSysrootDir returns an empty directory whose deployments are made removable (chattr -i,
// as real ostree sets the immutable flag) when the test ends.
func newSysrootDir(t *testing.T) string {
	t.Helper()
	s := filepath.Join(t.TempDir(), "sysroot")
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(s, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			clearImmutable(d)
		}
	})
	return s
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// realSysroot makes a sysroot with the real ostree tools and deploys the commits in order.
func realSysroot(t *testing.T, f fixture, uboot bool, commits ...ostree.Checksum) string {
	t.Helper()
	s := newSysrootDir(t)
	os.MkdirAll(s, 0o755)
	run(t, "ostree", "admin", "init-fs", s)
	run(t, "ostree", "admin", "os-init", "--sysroot="+s, "myos")
	if uboot {
		run(t, "ostree", "config", "--repo="+s+"/ostree/repo", "set", "sysroot.bootloader", "uboot")
		os.MkdirAll(s+"/boot/loader.0", 0o755)
		os.WriteFile(s+"/boot/loader.0/uEnv.txt", nil, 0o644)
		os.Symlink("loader.0", s+"/boot/loader")
	}
	for _, c := range commits {
		run(t, "ostree", "pull-local", "--repo="+s+"/ostree/repo", f.src.Path, c.String())
		run(t, "ostree", "admin", "deploy", "--sysroot="+s, "--os=myos", "--karg=root=/dev/mmcblk0p2", "--karg=rw", c.String())
	}
	return s
}

// ourSysroot makes a sysroot with Init and Deploy.
func ourSysroot(t *testing.T, f fixture, bootloader string, commits ...ostree.Checksum) string {
	t.Helper()
	s := newSysrootDir(t)
	opts := Options{OSName: "myos", Kargs: []string{"root=/dev/mmcblk0p2", "rw"}, Bootloader: bootloader}
	if err := Init(s, opts); err != nil {
		t.Fatal(err)
	}
	for _, c := range commits {
		if err := Deploy(context.Background(), s, f.src, c, opts); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// layout lists the paths (and symlink targets) under boot/ and ostree/ except the repo.
func layout(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, top := range []string{"boot", "ostree"} {
		err := filepath.WalkDir(filepath.Join(s, top), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(s, p)
			if rel == "ostree/repo" {
				return fs.SkipDir
			}
			if rel == "ostree/lock" {
				return nil
			}
			line := rel
			if e.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				line += " -> " + target
			}
			out = append(out, line)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func compareWithReal(t *testing.T, ours, real string, files ...string) {
	t.Helper()
	if a, b := layout(t, ours), layout(t, real); !slices.Equal(a, b) {
		t.Errorf("layout differs from ostree's:\nours:\n%s\nostree:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for _, f := range files {
		if a, b := readFile(t, filepath.Join(ours, f)), readFile(t, filepath.Join(real, f)); a != b {
			t.Errorf("%s differs:\nours:\n%s\nostree:\n%s", f, a, b)
		}
	}
}

func statusDeployments(t *testing.T, s string) []string {
	t.Helper()
	out := run(t, "ostree", "admin", "status", "--sysroot="+s)
	return regexp.MustCompile(`(?m)^[* ] myos ([0-9a-f]{64}\.[0-9]+)`).FindAllString(out, -1)
}

func TestDeployMatchesOstree(t *testing.T) {
	f := newFixture(t)
	s := ourSysroot(t, f, "none", f.c1)
	real := realSysroot(t, f, false, f.c1)

	st := statusDeployments(t, s)
	if len(st) != 1 || !strings.HasSuffix(st[0], " myos "+f.c1.String()+".0") {
		t.Fatalf("ostree admin status: %q", st)
	}
	if out := run(t, "ostree", "fsck", "--repo="+s+"/ostree/repo"); !strings.Contains(out, "no errors found") {
		t.Errorf("fsck: %s", out)
	}
	entry := readFile(t, s+"/boot/loader/entries/ostree-1-myos.conf")
	for _, want := range []string{"\nlinux /ostree/myos-", "\noptions root=/dev/mmcblk0p2 rw ", " ostree=/ostree/boot.1/myos/"} {
		if !strings.Contains(entry, want) {
			t.Errorf("entry lacks %q:\n%s", want, entry)
		}
	}
	origin := "ostree/deploy/myos/deploy/" + f.c1.String() + ".0.origin"
	compareWithReal(t, s, real, "boot/loader/entries/ostree-1-myos.conf", origin,
		"ostree/deploy/myos/deploy/"+f.c1.String()+".0/etc/hostname")

	// Hardlinks into the repository, ownership from the commit.
	repo, err := ostree.Open(s + "/ostree/repo")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/share/app/data", "/usr/lib/modules/5.15.0-test/vmlinuz"} {
		var sum ostree.Checksum
		if err := repo.Walk(f.c1, p, false, func(e ostree.TreeEntry) error { sum = e.Checksum; return nil }); err != nil {
			t.Fatal(err)
		}
		a, err1 := os.Stat(repo.ObjectPath(sum, ostree.ObjFile))
		b, err2 := os.Stat(s + "/ostree/deploy/myos/deploy/" + f.c1.String() + ".0" + p)
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			t.Errorf("%s is not a hardlink to its object (%v, %v)", p, err1, err2)
		}
	}

	// The real tool deploys on top of our sysroot.
	run(t, "ostree", "pull-local", "--repo="+s+"/ostree/repo", f.src.Path, f.c2.String())
	run(t, "ostree", "admin", "deploy", "--sysroot="+s, "--os=myos", f.c2.String())
	st = statusDeployments(t, s)
	if len(st) != 2 || !strings.HasSuffix(st[0], f.c2.String()+".0") || !strings.HasSuffix(st[1], f.c1.String()+".0") {
		t.Errorf("status after ostree admin deploy: %q", st)
	}
	if out := run(t, "ostree", "fsck", "--repo="+s+"/ostree/repo"); !strings.Contains(out, "no errors found") {
		t.Errorf("fsck: %s", out)
	}
}

func TestDeployUpdateUBoot(t *testing.T) {
	f := newFixture(t)
	s := ourSysroot(t, f, "uboot", f.c1)
	// A local /etc change survives the update (three-way merge).
	if err := os.WriteFile(s+"/ostree/deploy/myos/deploy/"+f.c1.String()+".0/etc/hostname", []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{OSName: "myos", Bootloader: "uboot"} // kargs inherited
	if err := Deploy(context.Background(), s, f.src, f.c2, opts); err != nil {
		t.Fatal(err)
	}
	st := statusDeployments(t, s)
	if len(st) != 2 || !strings.HasSuffix(st[0], f.c2.String()+".0") || !strings.HasSuffix(st[1], f.c1.String()+".0") {
		t.Fatalf("status: %q", st)
	}
	env := readFile(t, s+"/boot/loader/uEnv.txt")
	for _, want := range []string{"kernel_image=/boot/ostree/myos-", "\nbootargs=root=/dev/mmcblk0p2 rw ", "\nkernel_image2=", "\nbootargs2="} {
		if !strings.Contains(env, want) {
			t.Errorf("uEnv.txt lacks %q:\n%s", want, env)
		}
	}
	if got := readFile(t, s+"/ostree/deploy/myos/deploy/"+f.c2.String()+".0/etc/hostname"); got != "changed\n" {
		t.Errorf("merged etc/hostname = %q", got)
	}
	if out := run(t, "ostree", "fsck", "--repo="+s+"/ostree/repo"); !strings.Contains(out, "no errors found") {
		t.Errorf("fsck: %s", out)
	}

	// The same two deployments made by ostree itself.
	real := realSysroot(t, f, true, f.c1, f.c2)
	compareWithReal(t, s, real, "boot/loader/uEnv.txt",
		"boot/loader/entries/ostree-1-myos.conf", "boot/loader/entries/ostree-2-myos.conf")

	// A third deployment drops the oldest one.
	if err := Deploy(context.Background(), s, f.src, f.c1, opts); err != nil {
		t.Fatal(err)
	}
	st = statusDeployments(t, s)
	if len(st) != 2 || !strings.HasSuffix(st[0], f.c1.String()+".1") || !strings.HasSuffix(st[1], f.c2.String()+".0") {
		t.Errorf("status after a third deployment: %q", st)
	}
	if _, err := os.Stat(s + "/ostree/deploy/myos/deploy/" + f.c1.String() + ".0"); err == nil {
		t.Error("the oldest deployment was not removed")
	}
}

// TestDeployRecordsAttrs deploys with a Record: nothing is chowned on disk, and the map
// holds the owners and modes the deployment must have, for the objects and their checkout.
func TestDeployRecordsAttrs(t *testing.T) {
	f := newFixture(t)
	s := newSysrootDir(t)
	rec := &Record{}
	opts := Options{OSName: "myos", Bootloader: "uboot", Kargs: []string{"rw"}, Attrs: rec}
	if err := Init(s, opts); err != nil {
		t.Fatal(err)
	}
	if err := Deploy(context.Background(), s, f.src, f.c1, opts); err != nil {
		t.Fatal(err)
	}
	attrs := rec.Attrs
	dep := "ostree/deploy/myos/deploy/" + f.c1.String() + ".0"
	p := filepath.Join(s, dep, "usr/share/app/data")
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != os.Geteuid() {
		t.Errorf("%s: on-disk owner %d, want the caller's (%d)", p, st.Uid, os.Geteuid())
	}
	if got := attrs[dep+"/usr/share/app/data"]; got.UID != 1000 || got.GID != 1000 || got.Mode != 0o644 {
		t.Errorf("recorded %+v for the uid-1000 file, want 1000:1000 0644", got)
	}
	var objKey string
	for k, m := range attrs {
		if strings.HasPrefix(k, "ostree/repo/objects/") && m.UID == 1000 {
			objKey = k
		}
	}
	var ost syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(s, objKey), &ost); objKey == "" || err != nil || ost.Ino != st.Ino {
		t.Errorf("object of the uid-1000 file not recorded as the deployment's inode (key %q, %v)", objKey, err)
	}
	// The copied /etc keeps what usr/etc records; a copy of a default file needs no entry.
	if _, ok := attrs[dep+"/etc/hostname"]; ok {
		t.Errorf("etc/hostname recorded (%+v) though it is 0:0 0644", attrs[dep+"/etc/hostname"])
	}
	if err := syscall.Lstat(filepath.Join(s, dep, "etc/hostname"), &st); err != nil || st.Ino == ost.Ino {
		t.Errorf("etc/hostname not a copy: %v", err)
	}
	for k := range attrs {
		if strings.Contains(k, ".tmp") {
			t.Errorf("attribute key %q names a temporary path", k)
		}
	}
}

// TestDeploySparse: with a Sparse, only what Deploy reads is on disk; the other
// objects are listed with their checkout paths.
func TestDeploySparse(t *testing.T) {
	f := newFixture(t)
	s := newSysrootDir(t)
	sparse := &Sparse{}
	opts := Options{OSName: "myos", Bootloader: "uboot", Kargs: []string{"rw"}, Attrs: sparse}
	if err := Init(s, opts); err != nil {
		t.Fatal(err)
	}
	if err := Deploy(context.Background(), s, f.src, f.c1, opts); err != nil {
		t.Fatal(err)
	}
	dep := "ostree/deploy/myos/deploy/" + f.c1.String() + ".0"
	if _, err := os.Lstat(filepath.Join(s, dep, "usr/share/app/data")); err == nil {
		t.Errorf("usr/share/app/data was staged")
	}
	c, ok := sparse.Links[dep+"/usr/share/app/data"]
	if o := sparse.Objects[c]; !ok || o.Size != int64(len("owned by 1000\n")) || o.Header.UID != 1000 {
		t.Errorf("usr/share/app/data: listed %v as %+v", ok, o)
	}
	if _, err := os.Lstat(filepath.Join(s, ObjectPath(c))); err == nil {
		t.Errorf("its object %s was staged", ObjectPath(c))
	}
	for _, p := range []string{"etc/hostname", "usr/etc/hostname"} {
		if got := readFile(t, filepath.Join(s, dep, p)); got != "device\n" {
			t.Errorf("%s: %q, want its content", p, got)
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(s, "boot/ostree/myos-*/vmlinuz-5.15.0-test"))
	if len(kernels) != 1 || readFile(t, kernels[0]) != "KERNEL\n" {
		t.Errorf("kernel in /boot: %v", kernels)
	}
}

// TestDeploySparseReadsEveryBootFile: every file findKernel reads is staged in full, so a
// sparse deployment installs the same boot files under the same boot checksum, here with
// an initramfs named "initramfs" (accepted by ostree) rather than "initramfs.img".
func TestDeploySparseReadsEveryBootFile(t *testing.T) {
	newFixture(t) // for its tool and root checks
	src, err := ostree.Init(t.TempDir(), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	res, err := commit.Commit(context.Background(), src, tarSource(t, []member{
		{name: "usr/lib/modules/5.15.0-test/vmlinuz", body: "KERNEL\n"},
		{name: "usr/lib/modules/5.15.0-test/initramfs", body: "INITRAMFS\n"},
		{name: "usr/lib/os-release", body: "ID=myos\n"},
		{name: "usr/etc/hostname", body: "device\n"},
	}), commit.Options{Branch: "myos/stable", Timestamp: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var boots []string
	for _, attrs := range []Attrs{&Record{}, &Sparse{}} {
		s := newSysrootDir(t)
		opts := Options{OSName: "myos", Bootloader: "uboot", Kargs: []string{"rw"}, Attrs: attrs}
		if err := Init(s, opts); err != nil {
			t.Fatal(err)
		}
		if err := Deploy(context.Background(), s, src, res.Commit, opts); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(s, "boot/ostree/myos-*/*"))
		for i, p := range files {
			files[i] = strings.TrimPrefix(p, s) + "=" + readFile(t, p)
		}
		boots = append(boots, strings.Join(files, " "))
	}
	if boots[0] != boots[1] || !strings.Contains(boots[1], "initramfs-5.15.0-test.img=INITRAMFS") {
		t.Errorf("boot files: full %q, sparse %q", boots[0], boots[1])
	}
}
