// Package machines holds the tests of the Yocto layer meta-ota that parse per MACHINE, in
// build directories that mask the recipes they do not read (seconds instead of minutes),
// and the offline build of ota-build-native.
package machines

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/meta-ota/internal/tests/yoctotest"
)

// varsMask keeps, of all the layers' recipes, the image and the U-Boot recipes the
// per-machine checks read: a recipe's variables depend on the configuration, its own files
// and its bbappends, not on the other recipes, and each machine then parses in seconds
// instead of minutes. The full parse is TestBitbakeParse's.
const varsMask = `BBMASK = "^(?!.*/(core-image-minimal|u-boot|u-boot-fslc|u-boot-imx)(_[^/]*)?\.bb(append)?$).*\.bb(append)?$"`

// exampleConf returns examples/yocto/MACHINE.conf, or "" when there is none.
func exampleConf(e *yoctotest.Env, machine string) string {
	p := filepath.Join(e.Repo, "examples", "yocto", machine+".conf")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// varsBuild is the build directory of machine for the tests that read variables: recipes
// masked but for those read, and configured by the machine's example when there is one.
func varsBuild(e *yoctotest.Env, machine string) yoctotest.Config {
	extra := []string{varsMask}
	if ex := exampleConf(e, machine); ex != "" {
		extra = append(extra, "require "+ex)
	}
	return yoctotest.Config{Name: "build-vars/" + machine, Machine: machine, Extra: extra}
}

// TestMachineVariables (acceptance 2): for each supported MACHINE, bitbake-getvar shows the
// board preset, the boot files, the raw blobs and the deploy tasks the image-writing task
// depends on, and that U-Boot gets the boot script's commands. The machines with an example
// in examples/yocto are configured by it (require MACHINE.conf), which is checked too.
func TestMachineVariables(t *testing.T) {
	e := yoctotest.Yocto(t)
	for _, c := range []struct {
		machine, board, uboot string
		files, notFiles       []string // words of OTA_BOOT_FILES
		raw                   string
		depends               []string // words of do_image_otaimg[depends]
	}{
		{machine: "raspberrypi4-64", board: "raspberrypi4-64", uboot: "u-boot",
			files:    []string{"bootfiles/*", "bcm2711-rpi-4-b.dtb", "u-boot.bin", "disable-bt.dtbo;overlays/disable-bt.dtbo"},
			notFiles: []string{"boot.scr", "Image", "u-boot.bin;kernel8.img"},
			depends:  []string{"ota-build-native:do_populate_sysroot", "rpi-bootfiles:do_deploy", "virtual/bootloader:do_deploy", "virtual/kernel:do_deploy"}},
		{machine: "raspberrypi5", board: "raspberrypi5", uboot: "u-boot",
			files:    []string{"bootfiles/*", "bcm2712-rpi-5-b.dtb", "u-boot.bin"},
			notFiles: []string{"boot.scr", "Image", "u-boot.bin;kernel_2712.img"},
			depends:  []string{"rpi-bootfiles:do_deploy", "virtual/bootloader:do_deploy", "virtual/kernel:do_deploy"}},
		{machine: "imx8mm-lpddr4-evk", board: "imx8mm", uboot: "u-boot-fslc",
			files:    []string{"imx-boot", "imx8mm-evk.dtb"},
			notFiles: []string{"Image", "extlinux.conf;extlinux/extlinux.conf"},
			raw:      "imx-boot@33KiB",
			depends:  []string{"virtual/bootloader:do_deploy", "virtual/kernel:do_deploy"}},
		{machine: "imx6qdlsabresd", board: "imx6", uboot: "u-boot-fslc",
			files:    []string{"SPL", "u-boot.img", "imx6q-sabresd.dtb"},
			notFiles: []string{"zImage"},
			raw:      "SPL@1KiB u-boot.img@69KiB",
			depends:  []string{"virtual/bootloader:do_deploy", "virtual/kernel:do_deploy"}},
		{machine: "qemuarm64", board: "qemu-aarch64", uboot: "u-boot",
			depends: []string{"ota-build-native:do_populate_sysroot"}},
	} {
		t.Run(c.machine, func(t *testing.T) {
			example := exampleConf(e, c.machine)
			dir := e.Build(t, varsBuild(e, c.machine))
			get := func(recipe, v string, flag ...string) string {
				args := []string{"-r", recipe, "--value", v}
				if len(flag) > 0 {
					args = append(args, "--flag", flag[0])
				}
				out := strings.TrimSpace(e.Bitbake(t, dir, "bitbake-getvar", args...))
				// --value prints the value last; bitbake may note things before it.
				return out[strings.LastIndex(out, "\n")+1:]
			}
			words := func(s string) map[string]bool {
				m := map[string]bool{}
				for _, w := range strings.Fields(s) {
					m[w] = true
				}
				return m
			}
			if got := get("core-image-minimal", "OTA_BOARD"); got != c.board {
				t.Errorf("OTA_BOARD = %q, want %q", got, c.board)
			}
			files := words(get("core-image-minimal", "OTA_BOOT_FILES"))
			for _, f := range c.files {
				if !files[f] {
					t.Errorf("OTA_BOOT_FILES lacks %q: %v", f, files)
				}
			}
			for _, f := range c.notFiles {
				if files[f] {
					t.Errorf("OTA_BOOT_FILES has %q: %v", f, files)
				}
			}
			if got := strings.Join(strings.Fields(get("core-image-minimal", "OTA_RAW")), " "); got != c.raw {
				t.Errorf("OTA_RAW = %q, want %q", got, c.raw)
			}
			fstypes := words(get("core-image-minimal", "IMAGE_FSTYPES"))
			if !fstypes["ota"] || !fstypes["otaimg"] {
				t.Errorf("IMAGE_FSTYPES lacks ota or otaimg: %v", fstypes)
			}
			deps := words(get("core-image-minimal", "do_image_otaimg", "depends"))
			for _, d := range c.depends {
				if !deps[d] {
					t.Errorf("do_image_otaimg[depends] lacks %s: %v", d, deps)
				}
			}
			if !words(get("core-image-minimal", "do_image_ota", "depends"))["ota-build-native:do_populate_sysroot"] {
				t.Error("do_image_ota[depends] lacks ota-build-native:do_populate_sysroot")
			}
			if src := get(c.uboot, "SRC_URI"); !strings.Contains(src, "file://ota-u-boot.cfg") {
				t.Errorf("SRC_URI of %s lacks file://ota-u-boot.cfg: %s", c.uboot, src)
			}
			if example == "" {
				return
			}
			// The example's settings: its branch, the initramfs the rootfs waits for, the daemon.
			if got, want := get("core-image-minimal", "OTA_BRANCH"), "example/"+c.machine+"/stable"; got != want {
				t.Errorf("with %s, OTA_BRANCH = %q, want %q", example, got, want)
			}
			if !words(get("core-image-minimal", "do_rootfs", "depends"))["ota-initramfs:do_image_complete"] {
				t.Errorf("with %s, do_rootfs[depends] lacks ota-initramfs:do_image_complete", example)
			}
			// A product's client: the update daemon beside it.
			if install := words(get("core-image-minimal", "IMAGE_INSTALL")); !install["ota-client"] || !install["ota-client-daemon"] {
				t.Errorf("with %s, IMAGE_INSTALL lacks ota-client or ota-client-daemon: %v", example, install)
			}
		})
	}
}

// nativeMask keeps meta-ota's recipes only, without bbappends: ota-build-native needs no
// other recipe (its go-native and quilt-native are the host's, ASSUME_PROVIDED).
const nativeMask = `BBMASK = "^(?!.*/meta-ota/).*\.bb$|\.bbappend$"`

// nativeBuild is the build directory of the native recipes: meta-ota and its test layer.
func nativeBuild(e *yoctotest.Env) yoctotest.Config {
	return yoctotest.Config{Name: "build-native", Machine: "qemuarm64", Extra: []string{nativeMask},
		Layers: []string{filepath.Join(e.Layer, "internal", "tests", "testdata", "meta-ota-test")}}
}

// TestOtaBuildNative (acceptance 4): bitbake ota-build-native builds offline with the host's
// Go from the recipe's own SRC_URI and module list: the test seeds DL_DIR with a clone of
// this repository (holding the recipe's SRCREV) and the module zips of
// ota-build-go-mods.inc, from Go's module cache or proxy. The binary runs and tells the
// recipe's version.
func TestOtaBuildNative(t *testing.T) {
	e := yoctotest.Yocto(t)
	dir := e.Build(t, nativeBuild(e))
	e.SeedDownloads(t, "ota-build")
	e.Bitbake(t, dir, "bitbake", "ota-build-native")

	bins, _ := filepath.Glob(filepath.Join(dir, "tmp", "sysroots-components", "*", "ota-build-native", "usr", "bin", "ota-build"))
	if len(bins) != 1 {
		t.Fatalf("ota-build-native staged %d ota-build binaries: %v", len(bins), bins)
	}
	out, err := e.Command(dir, bins[0], "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", bins[0], err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "ota-build version 0.1+git"; got != want {
		t.Errorf("ota-build --version printed %q, want %q (the recipe's PV)", got, want)
	}
}

// TestSignKeyFromEnvironment: a task that signs with OTA_SIGN_KEY = "env://NAME" (the test
// layer's ota-sign-env-test-native, built as ota-client's do_install derives the trusted key)
// gets NAME from the environment bitbake was started in through ota_sign_env, with no
// BB_ENV_PASSTHROUGH_ADDITIONS, and the key's text appears in none of the task's scripts or
// logs.
func TestSignKeyFromEnvironment(t *testing.T) {
	e := yoctotest.Yocto(t)
	dir := e.Build(t, nativeBuild(e))
	e.SeedDownloads(t, "ota-build")

	keys := t.TempDir()
	otaBuild := filepath.Join(keys, "ota-build")
	if out, err := exec.Command("go", "build", "-o", otaBuild, filepath.Join(e.Repo, "cmd", "ota-build")).CombinedOutput(); err != nil {
		t.Fatalf("building ota-build: %v\n%s", err, out)
	}
	if out, err := exec.Command(otaBuild, "keygen", "-o", filepath.Join(keys, "k")).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v: %s", err, out)
	}
	key, err := os.ReadFile(filepath.Join(keys, "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(keys, "k.ostree.pub"))
	if err != nil {
		t.Fatal(err)
	}

	cmd := e.Command(dir, "bitbake", "ota-sign-env-test-native", "-c", "compile")
	cmd.Env = append(cmd.Env, "OTA_TEST_SIGN_KEY="+string(key))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bitbake ota-sign-env-test-native -c compile: %v\n%s", err, yoctotest.Tail(string(out), 40))
	}
	work, _ := filepath.Glob(filepath.Join(dir, "tmp", "work", "*", "ota-sign-env-test-native", "*"))
	if len(work) != 1 {
		t.Fatalf("work directories of ota-sign-env-test-native: %v", work)
	}
	got, err := os.ReadFile(filepath.Join(work[0], "build", "ota.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(string(pub)) {
		t.Errorf("the task derived public key %q, want %q (the key of env://OTA_TEST_SIGN_KEY)", got, pub)
	}
	// The PEM body of the private key: no script or log of the task may hold a line of it.
	var secret []string
	for _, l := range strings.Split(string(key), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			secret = append(secret, l)
		}
	}
	temps, _ := filepath.Glob(filepath.Join(work[0], "temp", "*"))
	if len(temps) == 0 {
		t.Fatal("the task left no scripts or logs to look at")
	}
	for _, f := range temps {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a dangling log link
		}
		for _, s := range secret {
			if strings.Contains(string(data), s) {
				t.Errorf("%s holds the private key", f)
				break
			}
		}
	}
}
