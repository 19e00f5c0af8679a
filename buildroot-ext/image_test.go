package buildrootext

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/testsources"
)

// bootFiles are stand-ins for what a board's build puts in images/ (any content does: the
// image copies them), by board/ota directory.
var bootFiles = map[string]map[string]string{
	"raspberrypi4-64": {
		"rpi-firmware/start4.elf":             "start4",
		"rpi-firmware/fixup4.dat":             "fixup4",
		"rpi-firmware/config.txt":             "kernel=Image\n",
		"rpi-firmware/cmdline.txt":            "root=/dev/mmcblk0p2\n",
		"rpi-firmware/overlays/miniuart.dtbo": "overlay",
		"u-boot.bin":                          "U-Boot for the Pi 4",
		"bcm2711-rpi-4-b.dtb":                 "pi4 dtb",
	},
	"raspberrypi5": {
		"rpi-firmware/config.txt": "kernel=Image\n",
		"u-boot.bin":              "U-Boot for the Pi 5",
		"bcm2712-rpi-5-b.dtb":     "pi5 dtb",
	},
	"imx8mm-evk": {
		"flash.bin":                "SPL, DDR firmware, TF-A, U-Boot",
		"u-boot.bin":               "U-Boot proper",
		"freescale/imx8mm-evk.dtb": "evk dtb",
	},
	"qemu-aarch64-virt": {
		"u-boot.bin": "U-Boot for QEMU",
	},
}

// partitionTable is what sfdisk --json says about an image.
type partitionTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Start int64  `json:"start"`
			UUID  string `json:"uuid"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// partUUID is the PARTUUID Linux gives partition n (1-based), from sfdisk's reading.
func (p partitionTable) partUUID(n int) string {
	pt := p.PartitionTable
	if pt.Label == "gpt" {
		return strings.ToLower(pt.Partitions[n-1].UUID)
	}
	return strings.TrimPrefix(pt.ID, "0x") + "-0" + strconv.Itoa(n)
}

// The board post-image scripts write the board's disk image from the commit of the OTA
// filesystem (images/rootfs.ota) with the boot files of images/; the initramfs's partuuid
// function reads the same PARTUUID from it as sfdisk.
func TestBoardPostImage(t *testing.T) {
	testsources.RequireTools(t, "fakeroot", "tar", "setcap", "getfattr", "sfdisk", "mtype", "hexdump")
	commit, _ := fsCommands(t)
	_, hostDir := otaBuild(t)
	for _, b := range boards {
		t.Run(b.dir, func(t *testing.T) {
			r := newFsRun(t, filepath.Join("post-image", b.dir))
			for name, content := range bootFiles[b.dir] {
				p := filepath.Join(r.images, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			chownUser(t, r.work)
			r.commit(t, commit)

			name, args := asUser(t, filepath.Join(extDir, "board/ota", b.dir, "post-image.sh"), r.images)
			run(t, []string{"BINARIES_DIR=" + r.images, "BUILD_DIR=" + userDir(t, "post-image", b.dir, "build"),
				"HOST_DIR=" + hostDir}, name, args...)

			img := filepath.Join(r.images, "ota-sdcard.img")
			for _, f := range []string{img, img + ".bmap"} {
				if _, err := os.Stat(f); err != nil {
					t.Fatalf("post-image.sh did not write %s: %v", f, err)
				}
			}
			var pt partitionTable
			if err := json.Unmarshal([]byte(run(t, nil, "sfdisk", "--json", img)), &pt); err != nil {
				t.Fatal(err)
			}
			if len(pt.PartitionTable.Partitions) != 2 {
				t.Fatalf("sfdisk: %+v", pt)
			}
			boot := img + "@@" + strconv.FormatInt(pt.PartitionTable.Partitions[0].Start*int64(pt.PartitionTable.SectorSize), 10)
			mtype := func(file string) string {
				t.Helper()
				return run(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mtype", "-i", boot, "::"+file)
			}
			if !strings.Contains(mtype("boot.scr"), "ota-state.txt") {
				t.Error("the boot partition has no boot script counting boots")
			}
			switch b.dir {
			case "raspberrypi4-64", "raspberrypi5":
				kernel := map[string]string{"raspberrypi4-64": "kernel8.img", "raspberrypi5": "kernel_2712.img"}[b.dir]
				// The preset's config.txt starts U-Boot, not Buildroot's (kernel=Image).
				if c := mtype("config.txt"); !strings.Contains(c, "kernel="+kernel) || strings.Contains(c, "kernel=Image") {
					t.Errorf("config.txt:\n%s", c)
				}
				if got := mtype(kernel); got != bootFiles[b.dir]["u-boot.bin"] {
					t.Errorf("%s = %q, want u-boot.bin", kernel, got)
				}
				for name, content := range bootFiles[b.dir] {
					if strings.HasSuffix(name, ".dtb") || strings.HasSuffix(name, ".elf") {
						if got := mtype(filepath.Base(name)); got != content {
							t.Errorf("%s = %q, want %q", name, got, content)
						}
					}
				}
				if b.dir == "raspberrypi4-64" && mtype("overlays/miniuart.dtbo") != "overlay" {
					t.Error("the firmware's overlays are not on the boot partition")
				}
			case "imx8mm-evk":
				raw, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				want := bootFiles[b.dir]["flash.bin"]
				if !bytes.Equal(raw[33<<10:33<<10+len(want)], []byte(want)) {
					t.Error("flash.bin is not at 33 KiB")
				}
			case "qemu-aarch64-virt":
				if pt.PartitionTable.Label != "gpt" {
					t.Errorf("partition table %s, want gpt", pt.PartitionTable.Label)
				}
				start, err := os.ReadFile(filepath.Join(r.images, "start-qemu.sh"))
				if err != nil || !strings.Contains(string(start), "-bios u-boot.bin") ||
					!strings.Contains(string(start), "file=ota-sdcard.img,") {
					t.Errorf("start-qemu.sh: %v\n%s", err, start)
				}
			}

			// The initramfs finds the root partition by the PARTUUID the image's root=
			// names: its function must agree with sfdisk, for MBR and GPT.
			init := filepath.Join(extDir, "package/ota-initramfs/init")
			got := strings.TrimSpace(run(t, nil, "sh", "-c", `. "$1"; partuuid "$2" 2`, "sh", init, img))
			if want := pt.partUUID(2); got != want {
				t.Errorf("init's partuuid = %q, sfdisk reads %q", got, want)
			}
		})
	}
}

// mkinitramfs.sh packs BusyBox and ota-client with the libraries and loader they need,
// the applet links /init uses and /init, owned by root; a missing library is an error
// naming it.
func TestInitramfs(t *testing.T) {
	testsources.RequireTools(t, "readelf", "ldd", "cpio", "gzip")
	// A target directory holding host programs in Buildroot's layout: /bin/busybox and
	// /usr/bin/ota-client dynamically linked, their libraries in /lib, the loader where
	// their program header says.
	target := filepath.Join(tmpRoot, "initramfs", "target")
	sh, err := filepath.EvalSymlinks("/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, sh, filepath.Join(target, "bin/busybox"))
	copyFile(t, sh, filepath.Join(target, "usr/bin/ota-client"))
	interp := ""
	for _, l := range strings.Split(run(t, nil, "readelf", "-lW", sh), "\n") {
		if _, p, ok := strings.Cut(l, "program interpreter: "); ok {
			interp = strings.TrimSuffix(p, "]")
		}
	}
	if interp == "" {
		t.Skip("/bin/ls is not dynamically linked")
	}
	copyFile(t, interp, filepath.Join(target, interp))
	// Every library it needs, directly or not, as ldd lists them.
	var needed []string
	for _, l := range strings.Split(run(t, nil, "ldd", sh), "\n") {
		if lib, p, ok := strings.Cut(strings.TrimSpace(l), " => "); ok {
			p, _, _ = strings.Cut(p, " (")
			copyFile(t, p, filepath.Join(target, "lib", lib))
			needed = append(needed, lib)
		}
	}
	if len(needed) < 2 {
		t.Fatalf("ldd %s: %v", sh, needed)
	}

	out := filepath.Join(tmpRoot, "initramfs", "boot/initramfs.cpio.gz")
	script := filepath.Join(extDir, "package/ota-initramfs/mkinitramfs.sh")
	init := filepath.Join(extDir, "package/ota-initramfs/init")
	run(t, []string{"READELF=readelf", "STRIP=true"}, script, target, init, out)
	listing := run(t, nil, "sh", "-c", `gzip -dc "$1" | cpio -t -v --quiet`, "sh", out)
	entries := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 9 {
			t.Fatalf("cpio -tv: %q", l)
		}
		if f[2] != "root" || f[3] != "root" {
			t.Errorf("%s is owned by %s:%s, want root", l, f[2], f[3])
		}
		entries[f[8]] = f[0]
	}
	want := []string{"init", "bin/busybox", "usr/bin/ota-client", strings.TrimPrefix(interp, "/"),
		"bin/sh", "bin/mount", "bin/switch_root", "bin/hexdump", "dev", "proc", "sys", "sysroot"}
	for _, lib := range needed {
		want = append(want, "lib/"+lib)
	}
	for _, w := range want {
		if _, ok := entries[w]; !ok {
			t.Errorf("the initramfs lacks %s:\n%s", w, listing)
		}
	}
	if !strings.HasPrefix(entries["init"], "-rwx") || !strings.HasPrefix(entries["bin/sh"], "l") {
		t.Errorf("init is %s, bin/sh is %s", entries["init"], entries["bin/sh"])
	}
	// Nothing else: directories and applet links only.
	for e, mode := range entries {
		if !slices.Contains(want, e) && mode[0] != 'd' && !(strings.HasPrefix(e, "bin/") && mode[0] == 'l') {
			t.Errorf("the initramfs holds %s, which it does not need", e)
		}
	}

	// A library the target lacks (one that another library needs) is an error naming it,
	// and no initramfs is written.
	missingLib := needed[len(needed)-1]
	os.Remove(filepath.Join(target, "lib", missingLib))
	os.Remove(out)
	msg, err := runErr([]string{"READELF=readelf", "STRIP=true"}, script, target, init, out)
	if err == nil || !strings.Contains(msg, "needs "+missingLib+", which is not in "+target) {
		t.Errorf("a missing %s: %v\n%s", missingLib, err, msg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an initramfs was written anyway")
	}
}

// copyFile copies a file, creating the directories it goes in.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
