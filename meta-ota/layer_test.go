package metaota

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fullBuild is the build directory with every recipe of openembedded-core, meta-raspberrypi,
// meta-freescale and meta-ota: the parse, the task graph and ota-build-native share it (and
// so its parse cache).
var fullBuild = buildConfig{name: "build-full", machine: "raspberrypi4-64"}

// ourFiles matches what names a file of this layer in bitbake's messages.
var ourFiles = regexp.MustCompile(`meta-ota|ota\.bbclass|ota-build|ota-client|ota-initramfs|ota-settings|ota-u-boot|ota-source`)

// TestBitbakeParse (acceptance 1): scripts/check-layer.sh (its default mode) runs bitbake -p
// with meta-ota added to openembedded-core and the BSP layers: every recipe parses with no
// error, and no warning names a file of the layer (the script fails otherwise); its README,
// SECURITY.md and LAYERSERIES_COMPAT checks pass.
func TestBitbakeParse(t *testing.T) {
	e := yocto(t)
	out := e.checkLayer(t, fullBuild)
	if !strings.Contains(out, "meta-ota parses with no error and no warning") || !strings.Contains(out, "Parsing of ") {
		t.Fatalf("check-layer.sh did not parse:\n%s", out)
	}
	dir := e.dir(fullBuild)
	log, err := os.ReadFile(filepath.Join(dir, "bitbake-p.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.HasPrefix(line, "ERROR:") || (strings.HasPrefix(line, "WARNING:") && ourFiles.MatchString(line)) {
			t.Errorf("bitbake -p: %s", line)
		}
	}
	// The layer's recipes are among those parsed.
	recipes := e.bitbake(t, dir, "bitbake-layers", "show-recipes", "-l", "meta-ota")
	for _, r := range []string{"ota-build:", "ota-client:", "ota-initramfs:", "ota-initramfs-init:"} {
		if !strings.Contains(recipes, "\n"+r) {
			t.Errorf("bitbake-layers show-recipes -l meta-ota lists no %s\n%s", strings.TrimSuffix(r, ":"), tail(recipes, 20))
		}
	}
}

// TestTaskGraph (acceptance 2): in the task graph of an image with the ota class, both image
// tasks depend on ota-build-native:do_populate_sysroot, and the image-writing task on the
// commit task and on the deploy tasks of the boot files (Raspberry Pi 4: firmware, U-Boot,
// kernel and device trees).
func TestTaskGraph(t *testing.T) {
	e := yocto(t)
	dir := e.build(t, fullBuild)
	e.bitbake(t, dir, "bitbake", "-g", "core-image-minimal")
	edges := dotEdges(t, filepath.Join(dir, "task-depends.dot"))
	for _, want := range [][2]string{
		{"core-image-minimal.do_image_ota", "ota-build-native.do_populate_sysroot"},
		{"core-image-minimal.do_image_otaimg", "ota-build-native.do_populate_sysroot"},
		{"core-image-minimal.do_image_otaimg", "core-image-minimal.do_image_ota"},
		{"core-image-minimal.do_image_otaimg", "rpi-bootfiles.do_deploy"},
		{"core-image-minimal.do_image_otaimg", "u-boot.do_deploy"},
		{"core-image-minimal.do_image_otaimg", "linux-raspberrypi.do_deploy"},
		{"core-image-minimal.do_image_complete", "core-image-minimal.do_image_otaimg"},
	} {
		if !edges[want] {
			t.Errorf("task graph: no edge %s -> %s", want[0], want[1])
		}
	}
	// The rootfs has the client and the kernel the commit boots.
	pn := e.bitbake(t, dir, "bitbake-getvar", "-r", "core-image-minimal", "--value", "IMAGE_INSTALL")
	for _, p := range []string{"ota-client", "kernel-image", "kernel-devicetree"} {
		if !strings.Contains(" "+pn+" ", " "+p+" ") && !strings.Contains(pn, " "+p) {
			t.Errorf("IMAGE_INSTALL of core-image-minimal lacks %s: %s", p, pn)
		}
	}
}

// dotEdges reads the "A" -> "B" lines of a bitbake -g graph.
func dotEdges(t *testing.T, file string) map[[2]string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	edge := regexp.MustCompile(`^"([^"]+)" -> "([^"]+)"`)
	edges := map[[2]string]bool{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if m := edge.FindStringSubmatch(s.Text()); m != nil {
			edges[[2]string{m[1], m[2]}] = true
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(edges) == 0 {
		t.Fatalf("%s has no edges", file)
	}
	return edges
}

// varsMask keeps, of all the layers' recipes, the image and the U-Boot recipes the
// per-machine checks read: a recipe's variables depend on the configuration, its own files
// and its bbappends, not on the other recipes, and each machine then parses in seconds
// instead of minutes. The full parse is TestBitbakeParse's.
const varsMask = `BBMASK = "^(?!.*/(core-image-minimal|u-boot|u-boot-fslc|u-boot-imx)(_[^/]*)?\.bb(append)?$).*\.bb(append)?$"`

// TestMachineVariables (acceptance 2): for each supported MACHINE, bitbake-getvar shows the
// board preset, the boot files, the raw blobs and the deploy tasks the image-writing task
// depends on, and that U-Boot gets the boot script's commands.
func TestMachineVariables(t *testing.T) {
	e := yocto(t)
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
			dir := e.build(t, buildConfig{name: "build-vars/" + c.machine, machine: c.machine, extra: []string{varsMask}})
			get := func(recipe, v string, flag ...string) string {
				args := []string{"-r", recipe, "--value", v}
				if len(flag) > 0 {
					args = append(args, "--flag", flag[0])
				}
				out := strings.TrimSpace(e.bitbake(t, dir, "bitbake-getvar", args...))
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
		})
	}
}

// TestOtaBuildNative (acceptance 4): bitbake ota-build-native builds offline with the host's
// Go from the recipe's own SRC_URI and module list: the test seeds DL_DIR with a mirror of
// this repository (holding the recipe's SRCREV) and the module zips and go.mod files of
// ota-build-go-mods.inc, from Go's module cache or proxy. The binary runs and tells the
// recipe's version.
func TestOtaBuildNative(t *testing.T) {
	e := yocto(t)
	dir := e.build(t, fullBuild)
	e.seedDownloads(t, "ota-build")
	e.bitbake(t, dir, "bitbake", "ota-build-native")

	bins, _ := filepath.Glob(filepath.Join(dir, "tmp", "sysroots-components", "*", "ota-build-native", "usr", "bin", "ota-build"))
	if len(bins) != 1 {
		t.Fatalf("ota-build-native staged %d ota-build binaries: %v", len(bins), bins)
	}
	out, err := e.command(dir, bins[0], "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", bins[0], err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "ota-build version 0.1+git"; got != want {
		t.Errorf("ota-build --version printed %q, want %q (the recipe's PV)", got, want)
	}
}
