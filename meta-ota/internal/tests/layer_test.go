// Package tests holds the tests of the Yocto layer meta-ota that need its full parse
// (every recipe of openembedded-core, meta-raspberrypi, meta-freescale and meta-ota) and the
// commit step under pseudo; internal/tests/machines has those that parse per MACHINE.
package tests

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/otakit/ota/meta-ota/internal/tests/yoctotest"
)

// fullBuild is the build directory with every recipe of openembedded-core, meta-raspberrypi,
// meta-freescale and meta-ota: the parse and the task graph share it (and so its parse
// cache).
var fullBuild = yoctotest.Config{Name: "build-full", Machine: "raspberrypi4-64"}

// ourFiles matches what names a file of this layer in bitbake's messages.
var ourFiles = regexp.MustCompile(`meta-ota|ota\.bbclass|ota-build|ota-client|ota-initramfs|ota-settings|ota-u-boot|ota-source`)

// TestBitbakeParse (acceptance 1): scripts/check-layer.sh (its default mode) runs bitbake -p
// with meta-ota added to openembedded-core and the BSP layers: every recipe parses with no
// error, and no warning names a file of the layer (the script fails otherwise); its README,
// SECURITY.md and LAYERSERIES_COMPAT checks pass.
func TestBitbakeParse(t *testing.T) {
	e := yoctotest.Yocto(t)
	out := e.CheckLayer(t, fullBuild)
	if !strings.Contains(out, "meta-ota parses with no error and no warning") ||
		!(strings.Contains(out, "Parsing of ") || strings.Contains(out, "entries from dependency cache")) {
		t.Fatalf("check-layer.sh did not parse:\n%s", out)
	}
	dir := e.Dir(fullBuild)
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
	recipes := e.Bitbake(t, dir, "bitbake-layers", "show-recipes", "-l", "meta-ota")
	for _, r := range []string{"ota-build:", "ota-client:", "ota-initramfs:", "ota-initramfs-init:"} {
		if !strings.Contains(recipes, "\n"+r) {
			t.Errorf("bitbake-layers show-recipes -l meta-ota lists no %s\n%s", strings.TrimSuffix(r, ":"), yoctotest.Tail(recipes, 20))
		}
	}
}

// TestTaskGraph (acceptance 2): in the task graph of an image with the ota class, both image
// tasks depend on ota-build-native:do_populate_sysroot, and the image-writing task on the
// commit task and on the deploy tasks of the boot files (Raspberry Pi 4: firmware, U-Boot,
// kernel and device trees).
func TestTaskGraph(t *testing.T) {
	e := yoctotest.Yocto(t)
	dir := e.Build(t, fullBuild)
	e.Bitbake(t, dir, "bitbake", "-g", "core-image-minimal")
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
	install := strings.Fields(e.Bitbake(t, dir, "bitbake-getvar", "-r", "core-image-minimal", "--value", "IMAGE_INSTALL"))
	for _, p := range []string{"ota-client", "kernel-image", "kernel-devicetree"} {
		if !slices.Contains(install, p) {
			t.Errorf("IMAGE_INSTALL of core-image-minimal lacks %s: %v", p, install)
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
