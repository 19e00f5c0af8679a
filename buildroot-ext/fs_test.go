package buildrootext

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/sign"
	"github.com/otakit/ota/internal/testsources"
)

var (
	fsOnce sync.Once
	fsVals map[string]string
	fsErr  string
)

// fsInstallVars are the install steps of ota-client that fsVars also computes.
var fsInstallVars = []string{"OTA_CLIENT_INSTALL_HELPERS", "OTA_CLIENT_INSTALL_CONFIG",
	"OTA_CLIENT_INSTALL_DAEMON", "OTA_CLIENT_INSTALL_TRUSTED_KEY", "OTA_CLIENT_INSTALL_INIT_SYSV",
	"OTA_CLIENT_INSTALL_INIT_SYSTEMD"}

// fsVars returns, for ota_qemu_aarch64_virt_defconfig, the two commands of the OTA
// filesystem type (ROOTFS_OTA_CMD and ROOTFS_OTA_RELEASE) and ota-client's install steps
// (fsInstallVars) as Buildroot computes them (make printvars), with the paths a test
// chooses left to the shell: $OTA_TEST_TARGET (TARGET_DIR), $OTA_TEST_IMAGES
// (BINARIES_DIR), $OTA_TEST_REPO, $OTA_TEST_VERSION, $OTA_TEST_KEYS, $OTA_TEST_DELTA_FROM
// and $OTA_TEST_PUBKEY (the client's trusted key). HOST_DIR is the one holding otaBuild's
// binary and, standing for host-zstd's, a link to the machine's zstd; the deltas have zstd
// parts (BR2_TARGET_ROOTFS_OTA_DELTA_ZSTD's default); the bundle is on; the client's server URL is https://updates.example.com/repo.
func fsVars(t *testing.T) map[string]string {
	t.Helper()
	dir := loadDefconfigs(t)
	br := buildroot(t)
	_, hostDir := otaBuild(t)
	fsOnce.Do(func() {
		if zstd, err := exec.LookPath("zstd"); err == nil {
			link := filepath.Join(hostDir, "bin", "zstd")
			os.Remove(link)
			if err := os.Symlink(zstd, link); err != nil {
				fsErr = err.Error()
				return
			}
		}
		vars := append([]string{"ROOTFS_OTA_CMD", "ROOTFS_OTA_RELEASE", "ROOTFS_OTA_DEPENDENCIES"}, fsInstallVars...)
		fsVals, _ = brVars(t, br, filepath.Join(dir, "ota_qemu_aarch64_virt"), vars, false,
			"TARGET_DIR=$${OTA_TEST_TARGET}", "BINARIES_DIR=$${OTA_TEST_IMAGES}",
			"HOST_DIR="+hostDir, "TAR=tar",
			"BR2_TARGET_ROOTFS_OTA_REPO=$${OTA_TEST_REPO}", "OTA_VERSION=$${OTA_TEST_VERSION}",
			"BR2_TARGET_ROOTFS_OTA_SIGN_KEYS=$${OTA_TEST_KEYS}",
			"BR2_TARGET_ROOTFS_OTA_DELTA_FROM=$${OTA_TEST_DELTA_FROM}",
			"BR2_TARGET_ROOTFS_OTA_BUNDLE=y",
			"BR2_PACKAGE_OTA_CLIENT_URL=https://updates.example.com/repo",
			"BR2_PACKAGE_OTA_CLIENT_TRUSTED_KEY=$${OTA_TEST_PUBKEY}")
		if !strings.Contains(fsVals["ROOTFS_OTA_CMD"], "${OTA_TEST_TARGET}") {
			fsErr = "ROOTFS_OTA_CMD ignores TARGET_DIR: " + fsVals["ROOTFS_OTA_CMD"]
		}
	})
	if fsErr != "" {
		t.Fatal(fsErr)
	}
	return fsVals
}

// fsCommands returns the commit and release commands of fsVars.
func fsCommands(t *testing.T) (commit, release string) {
	t.Helper()
	v := fsVars(t)
	return v["ROOTFS_OTA_CMD"], v["ROOTFS_OTA_RELEASE"]
}

// fsRun is one use of the OTA filesystem type: its working directory (target/, images/,
// repo) and the values of the $OTA_TEST_* variables.
type fsRun struct {
	work, target, images, repo string
	version, keys, deltaFrom   string
}

func newFsRun(t *testing.T, name string) *fsRun {
	t.Helper()
	w := userDir(t, name)
	r := &fsRun{work: w, target: filepath.Join(w, "target"), images: filepath.Join(w, "images"),
		repo: filepath.Join(w, "repo"), deltaFrom: "previous scratch"}
	writeTree(t, r.target)
	if err := os.MkdirAll(r.images, 0o755); err != nil {
		t.Fatal(err)
	}
	chownUser(t, w)
	return r
}

func (r *fsRun) env() []string {
	return []string{"OTA_TEST_TARGET=" + r.target, "OTA_TEST_IMAGES=" + r.images,
		"OTA_TEST_REPO=" + r.repo, "OTA_TEST_VERSION=" + r.version, "OTA_TEST_KEYS=" + r.keys,
		"OTA_TEST_DELTA_FROM=" + r.deltaFrom}
}

// fakerootPrelude is what Buildroot's fakeroot script does before the filesystem command
// (every file owned by root), followed by what a device table and a package's permissions
// would do: a file owned by 123:456, a setuid file, a file capability, a device node.
const fakerootPrelude = `set -e
chown -h -R 0:0 "$OTA_TEST_TARGET"
chown 123:456 "$OTA_TEST_TARGET/usr/bin/owned" "$OTA_TEST_TARGET/var/lib/misc"
chmod 4755 "$OTA_TEST_TARGET/usr/bin/suid"
setcap cap_net_raw+ep "$OTA_TEST_TARGET/usr/bin/ping"
getfattr --absolute-names --only-values -n security.capability "$OTA_TEST_TARGET/usr/bin/ping" >"$OTA_TEST_TARGET/../ping.cap"
rm -f "$OTA_TEST_TARGET/dev/console"
mknod "$OTA_TEST_TARGET/dev/console" c 5 1
`

// commit runs the commit command (ROOTFS_OTA_CMD) under Debian's fakeroot, after the
// prelude, as Buildroot's fakeroot script does, as an unprivileged user.
func (r *fsRun) commit(t *testing.T, cmd string) string {
	t.Helper()
	script := filepath.Join(r.work, "fakeroot.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+fakerootPrelude+cmd+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	name, args := asUser(t, "fakeroot", "--", "/bin/sh", script)
	return run(t, r.env(), name, args...)
}

// release runs the release hook (ROOTFS_OTA_RELEASE) as an unprivileged user.
func (r *fsRun) release(t *testing.T, cmd string) (string, error) {
	t.Helper()
	name, args := asUser(t, "/bin/sh", "-c", cmd)
	return runErr(r.env(), name, args...)
}

// description reads images/rootfs.ota.
func (r *fsRun) description(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.images, "rootfs.ota"))
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "='"); ok {
			d[k] = strings.TrimSuffix(v, "'")
		}
	}
	return d
}

// writeTree writes a small Buildroot-like target directory: BusyBox layout, a kernel in
// /boot and its modules, os-release, /var with a symlink, and the files the prelude gives
// an owner, setuid bit and capability.
func writeTree(t *testing.T, root string) {
	t.Helper()
	files := map[string]string{
		"bin/busybox":                    "busybox\n",
		"usr/bin/owned":                  "owned by 123:456\n",
		"usr/bin/suid":                   "setuid\n",
		"usr/bin/ping":                   "ping\n",
		"usr/bin/greeting":               "version 1\n",
		"boot/Image":                     "an arm64 kernel\n",
		"boot/initramfs.cpio.gz":         "an initramfs\n",
		"lib/modules/6.18.7/modules.dep": "",
		"usr/lib/os-release":             "NAME=Buildroot\nID=buildroot\n",
		"etc/hostname":                   "buildroot\n",
		"var/lib/misc/.keep":             "",
		"var/lib/data.txt":               "state\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"etc/os-release": "../usr/lib/os-release", "var/log": "../tmp", "bin/sh": "busybox"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
}

// chownUser gives a directory tree to the user asUser runs commands as.
func chownUser(t *testing.T, dir string) {
	t.Helper()
	if os.Getuid() == 0 {
		run(t, nil, "chown", "-R", "65534:65534", dir)
	}
}

// ostreeEntry is a line of `ostree ls -X`.
type ostreeEntry struct{ mode, uid, gid, xattrs string }

var ostreeLsLine = regexp.MustCompile(`^(\S+) (\d+) (\d+) +\d+ \{ (.*) \} (\S+)$`)

// ostreeLs lists a commit's files with the real ostree.
func ostreeLs(t *testing.T, repo, rev string) map[string]ostreeEntry {
	t.Helper()
	out := run(t, nil, "ostree", "--repo="+repo, "ls", "-R", "-X", rev)
	entries := map[string]ostreeEntry{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		m := ostreeLsLine.FindStringSubmatch(l)
		if m == nil {
			if !strings.HasPrefix(l, "l") { // symlinks print "-> target"
				t.Fatalf("ostree ls: unexpected line %q", l)
			}
			continue
		}
		entries[m[5]] = ostreeEntry{m[1], m[2], m[3], m[4]}
	}
	return entries
}

// gvariantBytes formats bytes as ostree prints an ay in an xattr list.
func gvariantBytes(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = fmt.Sprintf("0x%02x", c)
	}
	return "[byte " + strings.Join(s, ", ") + "]"
}

// Acceptance 4: the fs/ota command Buildroot computes, run under Debian's fakeroot (as an
// unprivileged user) on a tree with a file chowned to 123:456, a setuid file and a
// capability xattr, produces a commit with exactly that ownership, mode and xattr, as the
// real ostree reads it.
func TestFsOtaCommitUnderFakeroot(t *testing.T) {
	testsources.RequireTools(t, "fakeroot", "tar", "setcap", "getfattr", "ostree")
	commit, _ := fsCommands(t)
	r := newFsRun(t, "fs-commit")
	r.version = "1.0"
	r.commit(t, commit)

	d := r.description(t)
	branch := "buildroot/qemu-aarch64-virt/stable"
	if d["OTA_REPO"] != r.repo || d["OTA_BRANCH"] != branch || d["OTA_VERSION"] != "1.0" ||
		d["OTA_IMAGE"] != filepath.Join(r.images, "ota-sdcard.img") || d["OTA_IMAGE_SIZE"] != "auto" {
		t.Errorf("rootfs.ota = %v", d)
	}
	head := strings.TrimSpace(run(t, nil, "ostree", "--repo="+r.repo, "rev-parse", branch))
	if d["OTA_COMMIT"] != head {
		t.Errorf("rootfs.ota names commit %s; the branch is at %s", d["OTA_COMMIT"], head)
	}
	if out := run(t, nil, "ostree", "--repo="+r.repo, "fsck"); !strings.Contains(out, "Verifying content integrity of 1 commit") {
		t.Errorf("ostree fsck:\n%s", out)
	}

	capb, err := os.ReadFile(filepath.Join(r.work, "ping.cap"))
	if err != nil || len(capb) < 20 {
		t.Fatalf("the capability fakeroot set: %q %v", capb, err)
	}
	files := ostreeLs(t, r.repo, branch)
	want := map[string]ostreeEntry{
		"/usr/bin/owned": {"-00755", "123", "456", "@a(ayay) []"},
		"/usr/bin/suid":  {"-04755", "0", "0", "@a(ayay) []"},
		"/usr/bin/ping":  {"-00755", "0", "0", "[(b'security.capability', " + gvariantBytes(capb) + ")]"},
		// chown -R 0:0 under fakeroot: the real owner (uid 65534 or the test's) is not seen.
		"/usr/etc/hostname":                     {"-00755", "0", "0", "@a(ayay) []"},
		"/usr/lib/modules/6.18.7/vmlinuz":       {"-00755", "0", "0", "@a(ayay) []"},
		"/usr/lib/modules/6.18.7/initramfs.img": {"-00755", "0", "0", "@a(ayay) []"},
		"/dev":                                  {"d00755", "0", "0", "@a(ayay) []"},
	}
	for path, w := range want {
		if got, ok := files[path]; !ok {
			t.Errorf("%s is not in the commit", path)
		} else if got != w {
			t.Errorf("%s: ostree ls says %+v, want %+v", path, got, w)
		}
	}
	if _, ok := files["/dev/console"]; ok {
		t.Error("the device node /dev/console was committed")
	}
}

// The release hook makes the static deltas ("previous", "scratch", a version), the signed
// bundle and the signed summary; an unchanged tree makes no new commit; a version that the
// branch lacks fails, naming it.
func TestFsOtaRelease(t *testing.T) {
	testsources.RequireTools(t, "fakeroot", "tar", "setcap", "getfattr", "ostree", "zstd")
	commit, release := fsCommands(t)
	if deps := strings.Fields(fsVars(t)["ROOTFS_OTA_DEPENDENCIES"]); !slices.Contains(deps, "host-zstd") {
		t.Errorf("ROOTFS_OTA_DEPENDENCIES = %q lacks host-zstd (BR2_TARGET_ROOTFS_OTA_DELTA_ZSTD, on by default)", deps)
	}
	bin, _ := otaBuild(t)
	r := newFsRun(t, "fs-release")
	keys := filepath.Join(r.work, "release")
	run(t, nil, bin, "keygen", "-o", keys)
	chownUser(t, r.work)
	r.keys = keys + ".key"
	branch := "buildroot/qemu-aarch64-virt/stable"
	deltas := func() []string {
		return strings.Fields(run(t, nil, "ostree", "--repo="+r.repo, "static-delta", "list"))
	}

	r.version = "1.0"
	r.commit(t, commit)
	c1 := r.description(t)["OTA_COMMIT"]
	out, err := r.release(t, release)
	if err != nil {
		t.Fatalf("release 1.0: %v\n%s", err, out)
	}
	if !strings.Contains(out, "no delta from previous") {
		t.Errorf("release of a first commit does not say it has no previous one:\n%s", out)
	}
	if got := deltas(); !slices.Equal(got, []string{c1}) {
		t.Errorf("deltas after 1.0: %v, want the one from scratch %s", got, c1)
	}

	// Version 2.0 changes a file; deltas from version 1.0 and from scratch.
	if err := os.WriteFile(filepath.Join(r.target, "usr/bin/greeting"), []byte("version 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.version, r.deltaFrom = "2.0", "1.0 scratch"
	r.commit(t, commit)
	c2 := r.description(t)["OTA_COMMIT"]
	if c2 == c1 {
		t.Fatal("a changed tree made no new commit")
	}
	if out, err := r.release(t, release); err != nil {
		t.Fatalf("release 2.0: %v\n%s", err, out)
	}
	got := deltas()
	slices.Sort(got)
	want := []string{c1, c1 + "-" + c2, c2}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("deltas after 2.0: %v, want %v", got, want)
	}
	// BR2_TARGET_ROOTFS_OTA_DELTA_ZSTD: every delta has zstd parts, made by host-zstd's zstd.
	for _, d := range got {
		var show struct {
			ZstdBytes int64 `json:"zstd_bytes"`
		}
		if err := json.Unmarshal([]byte(run(t, nil, bin, "delta", "show", "--repo", r.repo, "--json", d)), &show); err != nil {
			t.Fatal(err)
		}
		if show.ZstdBytes == 0 {
			t.Errorf("delta %s has no zstd parts", d)
		}
	}
	if out := run(t, nil, "ostree", "--repo="+r.repo, "fsck"); !strings.Contains(out, "2 commits") {
		t.Errorf("ostree fsck:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(r.repo, "summary.sig")); err != nil {
		t.Errorf("the summary is not signed after the deltas rewrote it: %v", err)
	}

	// The bundle (from scratch) updates an empty repository to 2.0, trusted by the key.
	device := filepath.Join(r.work, "device")
	run(t, nil, bin, "init", "--repo", device, "--mode", "bare-user")
	run(t, nil, bin, "delta", "apply", "--repo", device, "--pubkey", keys+".pub", "-b", branch,
		filepath.Join(r.images, "rootfs.ota.bundle"))
	if head := strings.TrimSpace(run(t, nil, "ostree", "--repo="+device, "rev-parse", branch)); head != c2 {
		t.Errorf("the bundle brought %s, want 2.0's %s", head, c2)
	}

	// The same tree again: no new commit, rootfs.ota unchanged.
	before, _ := os.Stat(filepath.Join(r.images, "rootfs.ota"))
	r.commit(t, commit)
	after, _ := os.Stat(filepath.Join(r.images, "rootfs.ota"))
	if r.description(t)["OTA_COMMIT"] != c2 || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("an unchanged tree changed rootfs.ota: %v", r.description(t))
	}

	r.deltaFrom = "9.9"
	out, err = r.release(t, release)
	if err == nil || !strings.Contains(out, "delta from 9.9: no commit of version 9.9 on "+branch) {
		t.Errorf("a delta from a missing version: %v\n%s", err, out)
	}
}

// ota-tmpfiles (the BusyBox init systems' systemd-tmpfiles) recreates what the commit had
// under /var from the ota-var.conf the bootable commit carries: directories with their
// owner and mode, empty files, symbolic links, copies of files; it changes nothing that
// exists.
func TestTmpfiles(t *testing.T) {
	testsources.RequireTools(t, "fakeroot", "tar", "setcap", "getfattr", "ostree")
	if os.Getuid() != 0 {
		t.Skip("ota-tmpfiles sets owners: run as root")
	}
	commit, _ := fsCommands(t)
	r := newFsRun(t, "tmpfiles")
	r.commit(t, commit)
	root := filepath.Join(r.work, "root")
	for _, f := range []string{"/usr/lib/tmpfiles.d/ota-var.conf", "/usr/share/ota/var/lib/data.txt"} {
		b := run(t, nil, "ostree", "--repo="+r.repo, "cat", "buildroot/qemu-aarch64-virt/stable", f)
		if err := os.MkdirAll(filepath.Dir(root+f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+f, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What the image's sysroot starts /var with.
	if err := os.MkdirAll(filepath.Join(root, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfiles := filepath.Join(extDir, "package/ota-client/ota-tmpfiles")
	run(t, nil, tmpfiles, root)

	st, err := os.Stat(filepath.Join(root, "var/lib/misc"))
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
		t.Fatalf("/var/lib/misc: %v %v", st, err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 123 || sys.Gid != 456 {
		t.Errorf("/var/lib/misc is owned by %d:%d, want 123:456", sys.Uid, sys.Gid)
	}
	if b, err := os.ReadFile(filepath.Join(root, "var/lib/misc/.keep")); err != nil || len(b) != 0 {
		t.Errorf("/var/lib/misc/.keep: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "var/log")); err != nil || l != "../tmp" {
		t.Errorf("/var/log -> %q %v, want ../tmp", l, err)
	}
	data := filepath.Join(root, "var/lib/data.txt")
	if b, err := os.ReadFile(data); err != nil || string(b) != "state\n" {
		t.Errorf("/var/lib/data.txt: %q %v", b, err)
	}

	// The device's changes stay.
	if err := os.WriteFile(data, []byte("changed on the device\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, nil, tmpfiles, root)
	if b, _ := os.ReadFile(data); string(b) != "changed on the device\n" {
		t.Errorf("ota-tmpfiles overwrote /var/lib/data.txt: %q", b)
	}
}

// ota-client's install steps, as Buildroot computes them from the options, install the
// client's configuration (server URL, the branch as ref), the trusted key, the helpers and
// the start scripts; the client's own configuration loader reads them back.
func TestClientInstall(t *testing.T) {
	v := fsVars(t)
	bin, _ := otaBuild(t)
	w := userDir(t, "client-install")
	target := filepath.Join(w, "target")
	run(t, nil, bin, "keygen", "-o", filepath.Join(w, "release"))
	env := []string{"OTA_TEST_TARGET=" + target, "OTA_TEST_PUBKEY=" + filepath.Join(w, "release.ostree.pub")}
	for _, step := range fsInstallVars {
		run(t, env, "sh", "-e", "-c", v[step])
	}

	cfg, err := clientconfig.Load(target, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != filepath.Join(target, "etc/ota/client.yaml") || cfg.URL != "https://updates.example.com/repo" ||
		cfg.Ref != "buildroot/qemu-aarch64-virt/stable" || cfg.BootCounter != filepath.Join(target, "boot/firmware/ota-state.txt") {
		t.Errorf("client.yaml: %+v", cfg)
	}
	keys, err := cfg.TrustedPublicKeys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("trusted keys: %v %v", keys, err)
	}
	pub, err := sign.LoadPublicKeys(filepath.Join(w, "release.pub"))
	if err != nil || !keys[0].Equal(pub[0]) {
		t.Errorf("the installed key is not the release key (%v)", err)
	}
	for path, mode := range map[string]os.FileMode{
		"etc/init.d/S01ota-tmpfiles":                          0o755,
		"etc/init.d/S99ota-client":                            0o755,
		"usr/libexec/ota-client/ota-mount-boot":               0o755,
		"usr/libexec/ota-client/ota-tmpfiles":                 0o755,
		"usr/lib/systemd/system/ota-client-mark-good.service": 0o644,
		"usr/lib/systemd/system-preset/80-ota-client.preset":  0o644,
		"etc/ostree/trusted.ed25519.d/ota.pub":                0o644,
		// The defconfig enables the update daemon.
		"etc/init.d/S99ota-client-daemon":                      0o755,
		"usr/lib/systemd/system/ota-client-daemon.service":     0o644,
		"usr/share/dbus-1/system.d/org.otakit.OtaClient1.conf": 0o644,
	} {
		st, err := os.Stat(filepath.Join(target, path))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %o", path, st, err, mode)
		}
	}
	if l, err := os.Readlink(filepath.Join(target, "usr/lib/ostree/ostree-prepare-root")); err != nil || l != "../../bin/ota-client" {
		t.Errorf("ostree-prepare-root -> %q %v", l, err)
	}
}
