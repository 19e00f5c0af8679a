package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/testsources"
	"github.com/otakit/ota/meta-ota/internal/tests/yoctotest"
)

// TestCommitUnderPseudo (acceptance 5): the commit step of the ota image type
// (scripts/ota-commit-rootfs), run under Debian's pseudo on a tree with a file chowned to
// 123:456 that has a security.capability xattr and a setuid file, produces a commit with
// exactly that ownership, mode and xattr, although ota-build itself never sees pseudo.
// The first run makes a delta from empty without zstd parts (OTA_DELTA_ZSTD=0); the second
// makes the deltas of OTA_DELTA_FROM (previous, a version, empty), with zstd parts
// (OTA_DELTA_ZSTD's default), and a signed bundle from a version.
func TestCommitUnderPseudo(t *testing.T) {
	testsources.RequireTools(t, "pseudo", "setfattr", "tar", "python3", "ostree", "zstd")
	cred, uid, gid := yoctotest.BuildUser(t)
	layer, err := yoctotest.FindLayer()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is private to root, and the build user works here.
	dir, err := os.MkdirTemp("", "ota-pseudo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	otaBuild := filepath.Join(dir, "ota-build")
	if out, err := exec.Command("go", "build", "-o", otaBuild, filepath.Join(filepath.Dir(layer), "cmd", "ota-build")).CombinedOutput(); err != nil {
		t.Fatalf("building ota-build: %v\n%s", err, out)
	}
	if out, err := exec.Command(otaBuild, "keygen", "-o", filepath.Join(dir, "release")).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v: %s", err, out)
	}
	if err := yoctotest.ChownR(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(layer, "scripts", "ota-commit-rootfs")

	// The tree is made inside pseudo, as do_rootfs makes IMAGE_ROOTFS.
	const cap = "0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=" // cap_net_raw+ep
	steps := `set -e
mkdir -p rootfs/usr/bin rootfs/etc
echo prog >rootfs/usr/bin/prog
chown 123:456 rootfs/usr/bin/prog
setfattr -n security.capability -v ` + cap + ` rootfs/usr/bin/prog
echo suid >rootfs/usr/bin/suid
chmod 4755 rootfs/usr/bin/suid
export OTA_ROOTFS=rootfs OTA_REPO=repo OTA_BRANCH=test/pseudo OTA_BOOTABLE=0 OTA_BUILD=./ota-build OTA_SIGN_KEY=release.key
OTA_VERSION=1.0 OTA_DELTA_FROM="previous empty" OTA_DELTA_ZSTD=0 OTA_COMMIT_FILE=commit1 bash "$1"
echo v2 >>rootfs/usr/bin/prog
OTA_VERSION=2.0 OTA_DELTA_FROM="previous 1.0 empty" OTA_BUNDLE=1 OTA_BUNDLE_FROM=1.0 OTA_BUNDLE_FILE=update.bundle OTA_COMMIT_FILE=commit2 bash "$1"
`
	argv := append(append([]string{}, cred...), "pseudo", "sh", "-c", steps, "sh", script)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PSEUDO_PREFIX=/usr", "PSEUDO_LOCALSTATEDIR="+filepath.Join(dir, "pseudo"), "HOME="+dir, "OTA_PROGRESS=none")
	t.Cleanup(func() { // stop the pseudo server of this state directory
		argv := append(append([]string{}, cred...), "pseudo", "-S")
		stop := exec.Command(argv[0], argv[1:]...)
		stop.Dir, stop.Env = dir, cmd.Env
		stop.Run()
	})
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ota-commit-rootfs under pseudo: %v\n%s", err, out)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	c1, c2 := read("commit1"), read("commit2")
	repo := filepath.Join(dir, "repo")

	// The real ostree is the judge of ownership, modes and xattrs.
	ls, err := exec.Command("ostree", "ls", "--repo="+repo, "-X", c2, "/usr/bin/prog", "/usr/bin/suid", "/usr/bin").CombinedOutput()
	if err != nil {
		t.Fatalf("ostree ls: %v: %s", err, ls)
	}
	lines := strings.Split(strings.TrimSpace(string(ls)), "\n")
	want := map[string][]string{
		"/usr/bin/prog": {"-00644", "123", "456", "(b'security.capability', [byte 0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])"},
		"/usr/bin/suid": {"-04755", "0", "0"},
		"/usr/bin":      {"d00755", "0", "0"},
	}
	for path, fields := range want {
		var line string
		for _, l := range lines {
			if strings.HasSuffix(l, " "+path) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("ostree ls shows no %s:\n%s", path, ls)
			continue
		}
		got := strings.Fields(line)
		if got[0] != fields[0] || got[1] != fields[1] || got[2] != fields[2] {
			t.Errorf("%s: ostree ls %q, want mode %s owner %s:%s", path, line, fields[0], fields[1], fields[2])
		}
		for _, f := range fields[3:] {
			if !strings.Contains(line, f) {
				t.Errorf("%s: ostree ls %q lacks %s", path, line, f)
			}
		}
		if path == "/usr/bin/suid" && strings.Contains(line, "security.capability") {
			t.Errorf("%s carries an xattr it never had: %q", path, line)
		}
	}
	if out, err := exec.Command("ostree", "fsck", "--repo="+repo).CombinedOutput(); err != nil {
		t.Errorf("ostree fsck: %v: %s", err, out)
	}

	// Deltas: previous and 1.0 are both c1; empty is the full one. The bundle is signed.
	out, err := exec.Command(otaBuild, "delta", "list", "--repo", repo, "--json").Output()
	if err != nil {
		t.Fatalf("delta list: %v", err)
	}
	var list struct{ Deltas []struct{ Name string } }
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("delta list --json: %v: %s", err, out)
	}
	have := map[string]bool{}
	for _, d := range list.Deltas {
		have[d.Name] = true
	}
	for _, d := range []string{c1, c1 + "-" + c2, c2} {
		if !have[d] {
			t.Errorf("deltas %v lack %s", have, d)
		}
	}
	// OTA_DELTA_ZSTD unset (1): the deltas of the second run have zstd parts; 0: the first
	// run's delta from empty has none.
	for _, d := range []struct {
		name string
		zstd bool
	}{{c1, false}, {c1 + "-" + c2, true}, {c2, true}} {
		out, err = exec.Command(otaBuild, "delta", "show", "--repo", repo, "--json", d.name).Output()
		var show struct {
			ZstdBytes int64 `json:"zstd_bytes"`
		}
		if err != nil || json.Unmarshal(out, &show) != nil || (show.ZstdBytes != 0) != d.zstd {
			t.Errorf("delta show %s: %v: %s, want zstd parts %v", d.name, err, out, d.zstd)
		}
	}
	pub := filepath.Join(dir, "release.pub")
	if out, err := exec.Command(otaBuild, "verify", "--repo", repo, "--pubkey", pub, c2).CombinedOutput(); err != nil {
		t.Errorf("ota-build verify: %v: %s", err, out)
	}
	// The bundle (from version 1.0, signed) brings a device holding 1.0 to c2.
	device := filepath.Join(dir, "device")
	for _, argv := range [][]string{
		{"ostree", "init", "--repo=" + device, "--mode=bare-user"},
		{"ostree", "pull-local", "--repo=" + device, repo, c1},
		{otaBuild, "delta", "apply", "--repo", device, "--pubkey", pub, "-b", "test/pseudo", filepath.Join(dir, "update.bundle")},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	if out, err := exec.Command("ostree", "rev-parse", "--repo="+device, "test/pseudo").Output(); err != nil || strings.TrimSpace(string(out)) != c2 {
		t.Errorf("after the bundle, the device's test/pseudo is %q (%v), want %s", out, err, c2)
	}
}
