package buildrootext

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otakit/ota/image"
	"github.com/otakit/ota/internal/testsources"
)

// board is one defconfig of configs/.
type board struct {
	name     string   // configs/<name>_defconfig
	upstream string   // the Buildroot defconfig it is based on
	dir      string   // board/ota/<dir>/post-image.sh
	preset   string   // the ota-build image board preset that script uses
	dropped  []string // upstream symbols it replaces or leaves out (genimage, ext4 image)
}

// genimage is what the upstream defconfigs use to make their ext4/genimage SD card image,
// which ota-build image replaces.
var genimage = []string{"BR2_ROOTFS_POST_IMAGE_SCRIPT", "BR2_ROOTFS_POST_SCRIPT_ARGS",
	"BR2_TARGET_ROOTFS_EXT2", "BR2_PACKAGE_HOST_GENIMAGE", "BR2_PACKAGE_HOST_DOSFSTOOLS",
	"BR2_PACKAGE_HOST_MTOOLS"}

var boards = []board{
	{"ota_raspberrypi4_64", "raspberrypi4_64", "raspberrypi4-64", "raspberrypi4-64",
		// config.txt: the preset writes the one that starts U-Boot.
		append(slices.Clone(genimage), "BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE")},
	{"ota_raspberrypi5", "raspberrypi5", "raspberrypi5", "raspberrypi5",
		// The kernel fragment list is extended with ours.
		append(slices.Clone(genimage), "BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE",
			"BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE", "BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES")},
	{"ota_imx8mm_evk", "imx8mm-evk", "imx8mm-evk", "imx8mm",
		// Its post-build script writes genimage.cfg and an extlinux.conf.
		append(slices.Clone(genimage), "BR2_ROOTFS_POST_BUILD_SCRIPT")},
	{"ota_qemu_aarch64_virt", "qemu_aarch64_virt", "qemu-aarch64-virt", "qemu-aarch64",
		// Debian's qemu-system-aarch64 runs the image; no host QEMU build.
		append(slices.Clone(genimage), "BR2_PACKAGE_HOST_QEMU")},
}

var (
	loadOnce sync.Once
	loadDir  string
	loadOut  string
	loadErr  error
)

// loadDefconfigs runs scripts/check-external.sh -d: every defconfig loaded into its own
// output directory (loadDir/<name>), then olddefconfig, once per test run.
func loadDefconfigs(t *testing.T) string {
	t.Helper()
	br := buildroot(t)
	loadOnce.Do(func() {
		loadDir = filepath.Join(tmpRoot, "defconfigs")
		loadOut, loadErr = runErr(nil, filepath.Join(extDir, "scripts/check-external.sh"), "-d", "-o", loadDir, br)
	})
	if loadErr != nil {
		t.Fatalf("check-external.sh -d: %v\n%s", loadErr, loadOut)
	}
	return loadDir
}

// readConfig returns the lines of a .config.
func readConfig(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[l] = true
	}
	return lines
}

// configValue returns the value of symbol sym in .config lines ("" when unset).
func configValue(lines map[string]bool, sym string) string {
	for l := range lines {
		if v, ok := strings.CutPrefix(l, sym+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// Acceptance 1: every defconfig loads with make BR2_EXTERNAL=... O=... <defconfig>, and
// after olddefconfig every symbol it sets is kept (check-external.sh checks that), in
// particular our packages, U-Boot, the initramfs and the rootfs type; and it is the
// upstream board defconfig but for what the OTA image replaces.
func TestDefconfigsLoad(t *testing.T) {
	dir := loadDefconfigs(t)
	br := buildroot(t)
	entries, err := filepath.Glob(filepath.Join(extDir, "configs", "*_defconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(boards) {
		t.Errorf("configs/ has %d defconfigs, the test knows %d", len(entries), len(boards))
	}
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			if !strings.Contains(loadOut, b.name+"_defconfig: loads, every symbol kept") {
				t.Fatalf("check-external.sh did not load %s:\n%s", b.name, loadOut)
			}
			cfg := readConfig(t, filepath.Join(dir, b.name, ".config"))
			for _, want := range []string{
				"BR2_PACKAGE_HOST_OTA_BUILD=y",
				"BR2_PACKAGE_OTA_CLIENT=y",
				"BR2_PACKAGE_OTA_INITRAMFS=y",
				"BR2_PACKAGE_BUSYBOX=y",
				"BR2_TARGET_ROOTFS_OTA=y",
				"BR2_TARGET_ROOTFS_OTA_BOOTABLE=y",
				"BR2_TARGET_UBOOT=y",
				"BR2_LINUX_KERNEL=y",
				"BR2_LINUX_KERNEL_INSTALL_TARGET=y",
				`BR2_ROOTFS_POST_IMAGE_SCRIPT="$(BR2_EXTERNAL_OTA_PATH)/board/ota/` + b.dir + `/post-image.sh"`,
			} {
				if !cfg[want] {
					t.Errorf(".config lacks %s", want)
				}
			}
			for sym, file := range map[string]string{
				"BR2_TARGET_UBOOT_CONFIG_FRAGMENT_FILES": "$(BR2_EXTERNAL_OTA_PATH)/board/ota/common/uboot.fragment",
				"BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES": "$(BR2_EXTERNAL_OTA_PATH)/board/ota/common/linux.fragment",
			} {
				if !slices.Contains(strings.Fields(configValue(cfg, sym)), file) {
					t.Errorf("%s = %q lacks %s", sym, configValue(cfg, sym), file)
				}
			}
			// The QEMU example runs the update daemon, which brings the D-Bus system bus.
			if b.name == "ota_qemu_aarch64_virt" && (!cfg["BR2_PACKAGE_OTA_CLIENT_DAEMON=y"] || !cfg["BR2_PACKAGE_DBUS=y"]) {
				t.Error(".config lacks BR2_PACKAGE_OTA_CLIENT_DAEMON=y or the BR2_PACKAGE_DBUS=y it selects")
			}
			if branch := configValue(cfg, "BR2_TARGET_ROOTFS_OTA_BRANCH"); !strings.Contains(branch, b.dir) {
				t.Errorf("BR2_TARGET_ROOTFS_OTA_BRANCH = %q, want the board's name in it", branch)
			}
			// Based on the upstream defconfig: every line of it is in ours, but those the
			// OTA image replaces.
			up, err := os.ReadFile(filepath.Join(br, "configs", b.upstream+"_defconfig"))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(up)), "\n") {
				sym, _, _ := strings.Cut(strings.TrimPrefix(l, "# "), "=")
				sym, _, _ = strings.Cut(sym, " is not set")
				if slices.ContainsFunc(b.dropped, func(p string) bool { return strings.HasPrefix(sym, p) }) {
					continue
				}
				if !cfg[l] {
					t.Errorf("upstream %s_defconfig sets %q; .config does not", b.upstream, l)
				}
			}
		})
	}
}

// The board presets the post-image scripts name exist in ota-build.
func TestPostImagePresets(t *testing.T) {
	for _, b := range boards {
		script, err := os.ReadFile(filepath.Join(extDir, "board/ota", b.dir, "post-image.sh"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(script), "common/post-image.sh\" "+b.preset+" ") {
			t.Errorf("board/ota/%s/post-image.sh does not run the %s preset:\n%s", b.dir, b.preset, script)
		}
		if !slices.Contains(image.Boards(), b.preset) {
			t.Errorf("ota-build image has no preset %s (it has %s)", b.preset, image.Boards())
		}
	}
}

// Acceptance 2: make printvars and show-info show the build commands (vendored modules, no
// proxy, the version linked in), the Go module paths, host-ota-build among the dependencies
// of rootfs-ota, the client's install steps, and the image outputs.
func TestPrintvarsShowInfo(t *testing.T) {
	dir := loadDefconfigs(t)
	br := buildroot(t)
	vars := []string{
		"HOST_OTA_BUILD_GOMOD", "OTA_CLIENT_GOMOD",
		"HOST_OTA_BUILD_BUILD_CMDS", "OTA_CLIENT_BUILD_CMDS",
		"HOST_OTA_BUILD_INSTALL_CMDS", "OTA_CLIENT_INSTALL_TARGET_CMDS",
		"OTA_CLIENT_INSTALL_INIT_SYSV", "OTA_CLIENT_INSTALL_INIT_SYSTEMD",
		"ROOTFS_OTA_CMD", "ROOTFS_OTA_DEPENDENCIES", "ROOTFS_OTA_POST_GEN_HOOKS",
		"ROOTFS_OTA_IMAGE", "TARGETS_ROOTFS", "TARGET_FINALIZE_HOOKS", "OTA_INITRAMFS_BUILD",
		"BINARIES_DIR", "TARGET_DIR", "BR2_ROOTFS_POST_IMAGE_SCRIPT", "BR2_TARGET_ROOTFS_OTA_BRANCH",
		"OTA_SOURCE_CHECK", "HOST_OTA_BUILD_PRE_DOWNLOAD_HOOKS", "OTA_CLIENT_PRE_DOWNLOAD_HOOKS",
	}
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			v, info := brVars(t, br, filepath.Join(dir, b.name), vars, true)
			for _, name := range []string{"HOST_OTA_BUILD_GOMOD", "OTA_CLIENT_GOMOD"} {
				if v[name] != "github.com/otakit/ota" {
					t.Errorf("%s = %q", name, v[name])
				}
			}
			contains := func(name string, want ...string) {
				t.Helper()
				for _, w := range want {
					if !strings.Contains(v[name], w) {
						t.Errorf("%s lacks %q:\n%s", name, w, v[name])
					}
				}
			}
			build := []string{"GOFLAGS=-mod=vendor", "GOPROXY=off", "/bin/go build", "-trimpath",
				"-X github.com/otakit/ota/internal/cli.Version="}
			contains("HOST_OTA_BUILD_BUILD_CMDS", append(build, `GOARCH=""`,
				"-o ./bin/ota-build github.com/otakit/ota/cmd/ota-build")...)
			contains("OTA_CLIENT_BUILD_CMDS", append(build, "GOARCH=arm64",
				"-o ./bin/ota-client github.com/otakit/ota/cmd/ota-client")...)
			contains("HOST_OTA_BUILD_INSTALL_CMDS", "/bin/ota-build", "/host/bin/ota-build")
			contains("OTA_CLIENT_INSTALL_TARGET_CMDS", "/target/usr/bin/ota-client")
			contains("OTA_CLIENT_INSTALL_INIT_SYSV", "/etc/init.d/S99ota-client")
			contains("OTA_CLIENT_INSTALL_INIT_SYSTEMD", "ota-client-mark-good.service", "80-ota-client.preset")
			contains("ROOTFS_OTA_CMD", "/host/bin/ota-build", `OTA_BRANCH=`+v["BR2_TARGET_ROOTFS_OTA_BRANCH"],
				`OTA_BOOTABLE="y"`, "fs/ota/ota-rootfs.sh", "commit "+v["TARGET_DIR"]+" "+v["BINARIES_DIR"]+"/rootfs.ota")
			contains("ROOTFS_OTA_POST_GEN_HOOKS", "ROOTFS_OTA_RELEASE")
			// The defconfigs name no source tarball: downloading the packages fails, saying so.
			contains("HOST_OTA_BUILD_PRE_DOWNLOAD_HOOKS", "OTA_SOURCE_CHECK")
			contains("OTA_CLIENT_PRE_DOWNLOAD_HOOKS", "OTA_SOURCE_CHECK")
			contains("OTA_SOURCE_CHECK", "BR2_OTA_SOURCE_TARBALL is empty", "scripts/make-release-tarball.sh", "exit 1")
			contains("TARGET_FINALIZE_HOOKS", "OTA_INITRAMFS_BUILD")
			contains("OTA_INITRAMFS_BUILD", "mkinitramfs.sh", v["TARGET_DIR"]+"/boot/initramfs.cpio.gz")
			if !slices.Contains(strings.Fields(v["ROOTFS_OTA_DEPENDENCIES"]), "host-ota-build") {
				t.Errorf("ROOTFS_OTA_DEPENDENCIES = %q lacks host-ota-build", v["ROOTFS_OTA_DEPENDENCIES"])
			}
			if v["TARGETS_ROOTFS"] != "rootfs-ota" {
				t.Errorf("TARGETS_ROOTFS = %q, want rootfs-ota only", v["TARGETS_ROOTFS"])
			}
			if want := v["BINARIES_DIR"] + "/ota-sdcard.img"; v["ROOTFS_OTA_IMAGE"] != want {
				t.Errorf("ROOTFS_OTA_IMAGE = %q, want %q", v["ROOTFS_OTA_IMAGE"], want)
			}
			if want := extDir + "/board/ota/" + b.dir + "/post-image.sh"; v["BR2_ROOTFS_POST_IMAGE_SCRIPT"] != `"`+want+`"` {
				t.Errorf("BR2_ROOTFS_POST_IMAGE_SCRIPT = %s, want %q", v["BR2_ROOTFS_POST_IMAGE_SCRIPT"], want)
			}

			fs, ok := info["rootfs-ota"]
			if !ok || fs.Type != "rootfs" || fs.ImageName != "rootfs.ota" {
				t.Errorf("show-info rootfs-ota = %+v", fs)
			}
			if !slices.Contains(fs.Dependencies, "host-ota-build") {
				t.Errorf("show-info: rootfs-ota does not depend on host-ota-build: %v", fs.Dependencies)
			}
			for pkg, deps := range map[string][]string{
				"host-ota-build": {"host-go"},
				"ota-client":     {"host-go"},
				"ota-initramfs":  {"busybox", "ota-client"},
			} {
				p, ok := info[pkg]
				if !ok {
					t.Errorf("show-info lists no %s", pkg)
					continue
				}
				for _, d := range deps {
					if !slices.Contains(p.Dependencies, d) {
						t.Errorf("show-info: %s does not depend on %s: %v", pkg, d, p.Dependencies)
					}
				}
			}
		})
	}
}

// Acceptance 3: utils/check-package reports nothing for our files (check-external.sh -p),
// and it does report a broken one.
func TestCheckPackage(t *testing.T) {
	br := buildroot(t)
	testsources.RequireTools(t, "flake8", "shellcheck")
	script := filepath.Join(extDir, "scripts/check-external.sh")
	out, err := runErr(nil, script, "-p", br)
	if strings.Contains(out, "no python3 with the magic module") {
		testsources.Missing(t, "python3-magic is not installed")
	}
	if err != nil || !strings.Contains(out, "check-package: no warnings") || !strings.Contains(out, "0 warnings generated") {
		t.Fatalf("check-external.sh -p: %v\n%s", err, out)
	}

	// A copy with a trailing space, a misspelt package variable and an init script
	// shellcheck warns about.
	cp := filepath.Join(tmpRoot, "broken-ext")
	run(t, nil, "cp", "-a", extDir, cp)
	edit := func(file, old, new string) {
		t.Helper()
		p := filepath.Join(cp, file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q", file, old)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("fs/ota/ota.mk", "$(BR2_TAR_HOST_DEPENDENCY)\n", "$(BR2_TAR_HOST_DEPENDENCY) \n")
	edit("package/ota-client/ota-client.mk", "OTA_CLIENT_DL_SUBDIR", "OTA_CLIEN_DL_SUBDIR")
	edit("package/ota-client/S99ota-client", `"/usr/bin/$DAEMON" mark-good`, `/usr/bin/$DAEMON mark-good $UNSET`)
	out, err = runErr(nil, filepath.Join(cp, "scripts/check-external.sh"), "-p", br)
	if err == nil {
		t.Fatalf("check-external.sh -p passed a broken tree:\n%s", out)
	}
	for _, want := range []string{
		"./fs/ota/ota.mk:7: line contains trailing whitespace",
		"./package/ota-client/ota-client.mk:12: possible typo, variable not properly prefixed: OTA_CLIEN_DL_SUBDIR",
		"./package/ota-client/S99ota-client:0: run 'shellcheck'",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check-package did not report %q:\n%s", want, out)
		}
	}
}
