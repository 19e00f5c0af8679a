package machines

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/testsources"
	"github.com/otakit/ota/meta-ota/internal/tests/yoctotest"
)

// getVars returns variables of a recipe as bitbake expands them (internal/tests/testdata/getvars.py,
// bitbake's tinfoil: one parse for all of them).
func getVars(t *testing.T, e *yoctotest.Env, dir, recipe string, names ...string) map[string]string {
	t.Helper()
	script := filepath.Join(e.Layer, "internal", "tests", "testdata", "getvars.py")
	out := e.Bitbake(t, dir, "/usr/bin/python3", append([]string{script, recipe}, names...)...)
	var vars map[string]*string
	last := strings.TrimSpace(out)
	last = last[strings.LastIndex(last, "\n")+1:]
	if err := json.Unmarshal([]byte(last), &vars); err != nil {
		t.Fatalf("getvars.py: %v\n%s", err, yoctotest.Tail(out, 20))
	}
	m := map[string]string{}
	for _, n := range names {
		if vars[n] == nil {
			t.Fatalf("%s sets no %s", recipe, n)
		}
		m[n] = *vars[n]
	}
	return m
}

// TestImageCommands: the shell of the ota and otaimg image types, as bitbake expands it for
// core-image-minimal on each example machine (examples/yocto), run as the image tasks run it
// but outside bitbake: IMAGE_CMD:ota under Debian's pseudo on a small bootable rootfs made
// under pseudo, IMAGE_CMD:otaimg on boot files placed in DEPLOY_DIR_IMAGE under the names
// the BSP layers deploy them with. The commit carries the example's signature, the bundle is
// written, and the flash image has the board's firmware, device trees and raw blobs where
// the board's boot ROM and firmware look for them.
func TestImageCommands(t *testing.T) {
	e := yoctotest.Yocto(t)
	testsources.RequireTools(t, "pseudo", "mdir", "mtype")
	uid, gid := e.Owner()
	bin, err := os.MkdirTemp("", "ota-image-commands-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	os.Chmod(bin, 0o755)
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "ota-build"), filepath.Join(e.Repo, "cmd", "ota-build")).CombinedOutput(); err != nil {
		t.Fatalf("building ota-build: %v\n%s", err, out)
	}
	if err := yoctotest.ChownR(bin, uid, gid); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		machine string
		fat     map[string]string // file of the boot partition: the deploy file it holds ("" any)
		raw     map[int64]string  // offset: the deploy file there
	}{
		{machine: "raspberrypi4-64",
			fat: map[string]string{"kernel8.img": "u-boot.bin", "start4.elf": "bootfiles/start4.elf", "config.txt": "bootfiles/config.txt",
				"bcm2711-rpi-4-b.dtb": "bcm2711-rpi-4-b.dtb", "overlays/disable-bt.dtbo": "disable-bt.dtbo", "boot.scr": ""}},
		{machine: "imx8mm-lpddr4-evk",
			fat: map[string]string{"imx8mm-evk.dtb": "imx8mm-evk.dtb", "boot.scr": ""},
			raw: map[int64]string{33 << 10: "imx-boot"}},
		{machine: "qemuarm64", fat: map[string]string{"boot.scr": ""}},
	} {
		t.Run(c.machine, func(t *testing.T) {
			dir := e.Build(t, varsBuild(e, c.machine))
			v := getVars(t, e, dir, "core-image-minimal", "IMAGE_CMD:ota", "IMAGE_CMD:otaimg", "IMAGE_ROOTFS",
				"IMGDEPLOYDIR", "DEPLOY_DIR_IMAGE", "OTA_BOOT_FILES", "OTA_IMAGE_REPORT", "OTA_SIGN_KEY", "OTA_REPO",
				"OTA_BUNDLE_FILE", "OTA_COMMIT_FILE", "WORKDIR")
			deploy := v["DEPLOY_DIR_IMAGE"]
			key := strings.TrimSuffix(v["OTA_SIGN_KEY"], ".key")

			// The state the image tasks start from: the rootfs (made under pseudo below), the
			// deploy directory with the boot files, the example's signing key.
			var files strings.Builder
			for _, entry := range strings.Fields(v["OTA_BOOT_FILES"]) {
				src := strings.SplitN(entry, ";", 2)[0]
				if src == "bootfiles/*" {
					for _, f := range []string{"start4.elf", "fixup4.dat", "config.txt", "cmdline.txt"} {
						fmt.Fprintf(&files, " bootfiles/%s", f)
					}
					continue
				}
				fmt.Fprintf(&files, " %s", src)
			}
			prepare := `set -e
rm -rf "$IMAGE_ROOTFS" "$IMGDEPLOYDIR" "$OTA_REPO" "$DEPLOY" "$PSEUDO_STATE"
mkdir -p "$IMGDEPLOYDIR" "$DEPLOY" "$(dirname "$KEY")"
[ -e "$KEY.key" ] || ota-build keygen -o "$KEY" >/dev/null
for f in $FILES; do mkdir -p "$DEPLOY/$(dirname "$f")"; echo "deployed $f" >"$DEPLOY/$f"; done
`
			run := func(what string, pseudo bool, script string, env ...string) {
				t.Helper()
				argv := []string{"bash", "-c", "bbfatal() { echo \"ERROR: $*\" >&2; exit 1; }\nset -e\n" + script}
				if pseudo {
					argv = append([]string{"pseudo"}, argv...)
				}
				cmd := e.Command(dir, argv[0], argv[1:]...)
				cmd.Env = append(cmd.Env, env...)
				cmd.Env = append(cmd.Env, "PATH="+bin+":"+strings.TrimPrefix(cmdPath(cmd.Env), "PATH="), "OTA_PROGRESS=none",
					"PSEUDO_PREFIX=/usr", "PSEUDO_LOCALSTATEDIR="+filepath.Join(v["WORKDIR"], "pseudo-test"))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", what, err, yoctotest.Tail(string(out), 40))
				}
			}
			run("preparing", false, prepare, "IMAGE_ROOTFS="+v["IMAGE_ROOTFS"], "IMGDEPLOYDIR="+v["IMGDEPLOYDIR"],
				"OTA_REPO="+v["OTA_REPO"], "DEPLOY="+deploy, "KEY="+key, "FILES="+files.String(),
				"PSEUDO_STATE="+filepath.Join(v["WORKDIR"], "pseudo-test")) // files deleted outside pseudo: a new database
			t.Cleanup(func() {
				stop := e.Command(dir, "pseudo", "-S")
				stop.Env = append(stop.Env, "PSEUDO_PREFIX=/usr", "PSEUDO_LOCALSTATEDIR="+filepath.Join(v["WORKDIR"], "pseudo-test"))
				stop.Run()
			})
			rootfs := `r="$IMAGE_ROOTFS"
mkdir -p "$r/boot" "$r/etc" "$r/usr/bin" "$r/var/lib"
echo "KERNEL $(head -c 4000 /dev/zero | tr '\0' k)" >"$r/boot/Image-6.6.0-test"
ln -s Image-6.6.0-test "$r/boot/Image"
echo DTB >"$r/boot/board.dtb"
printf 'ID=nodistro\nVERSION_ID=1.0.0\n' >"$r/etc/os-release"
echo prog >"$r/usr/bin/prog"
chown 123:456 "$r/usr/bin/prog"
`
			run("IMAGE_CMD:ota", true, rootfs+v["IMAGE_CMD:ota"], "IMAGE_ROOTFS="+v["IMAGE_ROOTFS"])
			run("IMAGE_CMD:otaimg", true, "cd \"$IMGDEPLOYDIR\"\n"+v["IMAGE_CMD:otaimg"], "IMGDEPLOYDIR="+v["IMGDEPLOYDIR"])

			commit, err := os.ReadFile(v["OTA_COMMIT_FILE"])
			if err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(filepath.Join(bin, "ota-build"), "verify", "--repo", v["OTA_REPO"], "--pubkey", key+".pub",
				strings.TrimSpace(string(commit))).CombinedOutput(); err != nil {
				t.Errorf("the commit is not signed with the example's key: %v: %s", err, out)
			}
			if fi, err := os.Stat(v["OTA_BUNDLE_FILE"]); err != nil || fi.Size() == 0 {
				t.Errorf("no bundle (OTA_BUNDLE = \"1\" in the example): %v", err)
			}
			data, err := os.ReadFile(v["OTA_IMAGE_REPORT"])
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Image, Bmap, Zstd string
				Partitions        []struct {
					Name        string
					Start, Size int64
				}
			}
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatalf("%s: %v", v["OTA_IMAGE_REPORT"], err)
			}
			for _, f := range []string{rep.Image, rep.Bmap, rep.Zstd} {
				if _, err := os.Stat(f); f == "" || err != nil {
					t.Errorf("the image, .bmap or .zst is missing: %q: %v", f, err)
				}
			}
			img, err := os.ReadFile(rep.Image)
			if err != nil {
				t.Fatal(err)
			}
			for off, name := range c.raw {
				want, _ := os.ReadFile(filepath.Join(deploy, name))
				if len(want) == 0 || int(off)+len(want) > len(img) || !bytes.Equal(img[off:off+int64(len(want))], want) {
					t.Errorf("%s is not at offset %d of the image", name, off)
				}
			}
			if len(rep.Partitions) == 0 || rep.Partitions[0].Name != "boot" {
				t.Fatalf("the image's first partition is not boot: %+v", rep.Partitions)
			}
			fat := fmt.Sprintf("%s@@%d", rep.Image, rep.Partitions[0].Start)
			for name, src := range c.fat {
				out, err := exec.Command("mtype", "-i", fat, "::"+name).Output()
				if err != nil {
					t.Errorf("the boot partition has no %s: %v", name, err)
					continue
				}
				if want, _ := os.ReadFile(filepath.Join(deploy, src)); src != "" && !bytes.Equal(out, want) {
					t.Errorf("the boot partition's %s holds %q, want %s's %q", name, out, src, want)
				}
			}
			if out, _ := exec.Command("mdir", "-i", fat, "-b", "-/", "::").Output(); bytes.Contains(out, []byte("/Image")) {
				t.Errorf("the kernel went to the boot partition (it boots from the commit):\n%s", out)
			}
		})
	}
}

// cmdPath returns the PATH entry of an environment.
func cmdPath(env []string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return kv
		}
	}
	return "PATH=/usr/bin:/bin"
}
