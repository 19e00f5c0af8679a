package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// imageFixture is an archive repository with two bootable commits on myos/stable and a
// boot files directory with (fake) firmware for every board.
type imageFixture struct {
	dir, repo, bootFiles string
	c1, c2               string
	raw                  map[string][]byte // raw blob sources by name
}

// capValue is a security.capability xattr (cap_net_raw+ep, VFS_CAP_REVISION_2).
var capValue = []byte{0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func newImageFixture(t *testing.T) imageFixture {
	t.Helper()
	requireTool(t, "ostree", "mke2fs", "debugfs", "e2fsck", "sfdisk", "fsck.vfat")
	dir := t.TempDir()
	// Let uid 65534 reach the test's directory (t.TempDir makes it and its parent 0700).
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := imageFixture{dir: dir, repo: filepath.Join(dir, "repo"), bootFiles: filepath.Join(dir, "deploy"), raw: map[string][]byte{}}
	otaInit(t, f.repo)
	for i, version := range []string{"1.0", "2.0"} {
		tarFile := filepath.Join(dir, "rootfs-"+version+".tar")
		writeRootfsTar(t, tarFile, version)
		out := ota(t, "commit", "--repo", f.repo, "-b", "myos/stable", "--tree", "tar="+tarFile, "--bootable",
			"--version", version, "--timestamp", strconv.Itoa(1700000000+i), "-s", "release "+version).lastLine()
		if i == 0 {
			f.c1 = out
		} else {
			f.c2 = out
		}
	}
	files := map[string][]byte{
		"bootcode.bin": []byte("bootcode"), "start.elf": []byte("start"), "fixup.dat": []byte("fixup"),
		"start4.elf": []byte("start4"), "fixup4.dat": []byte("fixup4"), "u-boot.bin": []byte("U-Boot"),
		"bcm2710-rpi-3-b.dtb": []byte("dtb3"), "bcm2711-rpi-4-b.dtb": []byte("dtb4"), "bcm2712-rpi-5-b.dtb": []byte("dtb5"),
		"overlays/uart.dtbo": []byte("overlay"), "imx8mm-evk.dtb": []byte("imx dtb"),
	}
	for name, size := range map[string]int{"flash.bin": 1500 << 10, "SPL": 40 << 10, "u-boot.img": 700 << 10} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*7 + len(name))
		}
		files[name] = b
		f.raw[name] = b
	}
	for name, data := range files {
		p := filepath.Join(f.bootFiles, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// writeRootfsTar writes a Yocto-like root filesystem as a tarball with owners, a setuid
// binary, a file capability and a hardlink, as tar run under pseudo would record them.
func writeRootfsTar(t *testing.T, path, version string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		t.Helper()
		h.Size = int64(len(body))
		h.Format = tar.FormatPAX
		if h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	for _, d := range []string{"boot", "etc", "usr", "usr/bin", "usr/lib", "usr/lib/modules", "usr/lib/modules/6.1.0-test", "usr/share", "var", "var/lib", "home"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	}
	add(&tar.Header{Name: "home/user/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000}, "")
	add(&tar.Header{Name: "home/user/notes.txt", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 1000, Gid: 1000}, "owned by 1000\n")
	add(&tar.Header{Name: "boot/vmlinuz-6.1.0-test", Typeflag: tar.TypeReg, Mode: 0o644}, "KERNEL "+strings.Repeat("k", 5000))
	add(&tar.Header{Name: "boot/initrd.img-6.1.0-test", Typeflag: tar.TypeReg, Mode: 0o644}, "INITRAMFS")
	add(&tar.Header{Name: "boot/imx8mm-evk.dtb", Typeflag: tar.TypeReg, Mode: 0o644}, "DTB")
	add(&tar.Header{Name: "usr/lib/modules/6.1.0-test/modules.dep", Typeflag: tar.TypeReg, Mode: 0o644}, "")
	add(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644}, "ID=myos\nPRETTY_NAME=\"My OS\"\nVERSION_ID="+version+"\n")
	add(&tar.Header{Name: "etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42}, "root:*:19000::::::\n")
	add(&tar.Header{Name: "etc/unreadable", Typeflag: tar.TypeReg, Mode: 0o000}, "secret\n")
	add(&tar.Header{Name: "usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755}, "setuid root\n")
	add(&tar.Header{Name: "usr/bin/ping", Typeflag: tar.TypeReg, Mode: 0o755,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": string(capValue)}}, "needs cap_net_raw\n")
	add(&tar.Header{Name: "usr/bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, "busybox "+version)
	add(&tar.Header{Name: "usr/bin/sh", Typeflag: tar.TypeLink, Linkname: "usr/bin/busybox"}, "")
	add(&tar.Header{Name: "usr/bin/ls", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, "")
	add(&tar.Header{Name: "var/lib/app/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000}, "")
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageReport is the part of image --json the tests read.
type imageReport struct {
	Image, Bmap, Zstd string
	Size, Allocated   int64
	Partitions, Raw   []struct {
		Name, FS    string
		Start, Size int64
		PartUUID    string `json:"partuuid"`
	}
	Kargs []string
}

// buildImage runs ota-build image of rev, as uid 65534 when asNobody, and returns its report.
func (f imageFixture) buildImage(t *testing.T, asNobody bool, out, rev string, args ...string) imageReport {
	t.Helper()
	all := append(append([]string{"image", "--repo", f.repo, "--boot-files", f.bootFiles, "-o", out, "--json"}, args...), rev)
	var r result
	dir := filepath.Dir(out)
	os.MkdirAll(dir, 0o755)
	if asNobody {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		r = runCmd(t, nil, nil, "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", otaBuild}, all...)...)
	} else {
		r = runCmd(t, nil, nil, otaBuild, all...)
	}
	if r.code != 0 {
		t.Fatalf("ota-build %s: exit %d\n%s", strings.Join(all, " "), r.code, r.stderr)
	}
	var rep imageReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("image --json: %v\n%s", err, r.stdout)
	}
	return rep
}

// extract copies a region of an image into its own (sparse) file, for tools without an
// offset option.
func extract(t *testing.T, img string, start, size int64) string {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), "part")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := in.ReadAt(buf[:min(int64(len(buf)), size-off)], start+off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p
}

// debugfsStat returns inode, uid, gid and mode of a path in an ext4 image file.
func debugfsStat(t *testing.T, fsImage, path string) (ino, uid, gid, mode int) {
	t.Helper()
	out := must(t, "debugfs", "-R", "stat "+path, fsImage).stdout
	m := regexp.MustCompile(`Inode: (\d+) .*Mode:\s+(\d+)[\s\S]*?User:\s+(\d+)\s+Group:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs stat %s:\n%s", path, out)
	}
	ino, _ = strconv.Atoi(m[1])
	mode64, _ := strconv.ParseInt(m[2], 8, 32)
	uid, _ = strconv.Atoi(m[3])
	gid, _ = strconv.Atoi(m[4])
	return ino, uid, gid, int(mode64)
}

// TestImagePresets builds every board's image as an unprivileged user and checks it with
// sfdisk, e2fsck, fsck.vfat, debugfs and bmaptool (acceptance 2 and 4 of issue 4).
func TestImagePresets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to uid 65534")
	}
	requireTool(t, "setpriv", "bmaptool", "zstd", "mdir")
	f := newImageFixture(t)
	deploy := "/ostree/deploy/myos/deploy/" + f.c2 + ".0"
	objects := objectPaths(t, f.repo, f.c2)
	for _, tc := range []struct {
		board, table string
		raw          map[string]int64
		fatFiles     []string
	}{
		{"raspberrypi3-64", "dos", nil, []string{"bootcode.bin", "kernel8.img", "config.txt", "bcm2710-rpi-3-b.dtb", "boot.scr"}},
		{"raspberrypi4-64", "dos", nil, []string{"start4.elf", "fixup4.dat", "kernel8.img", "bcm2711-rpi-4-b.dtb", "boot.scr"}},
		{"raspberrypi5", "dos", nil, []string{"kernel_2712.img", "bcm2712-rpi-5-b.dtb", "config.txt", "boot.scr"}},
		{"imx8mm", "dos", map[string]int64{"flash.bin": 33 << 10}, []string{"boot.scr", "imx8mm-evk.dtb"}},
		{"imx8mq", "dos", map[string]int64{"flash.bin": 33 << 10}, []string{"boot.scr"}},
		{"imx8mn", "dos", map[string]int64{"flash.bin": 32 << 10}, []string{"boot.scr"}},
		{"imx8mp", "dos", map[string]int64{"flash.bin": 32 << 10}, []string{"boot.scr"}},
		{"imx6", "dos", map[string]int64{"SPL": 1 << 10, "u-boot.img": 69 << 10}, []string{"boot.scr"}},
		{"qemu-aarch64", "gpt", nil, []string{"boot.scr"}},
	} {
		t.Run(tc.board, func(t *testing.T) {
			out := filepath.Join(f.dir, tc.board, "disk.img")
			rep := f.buildImage(t, true, out, "myos/stable", "--board", tc.board, "--bmap", "--zstd")
			if rep.Allocated >= rep.Size/2 {
				t.Errorf("image not sparse: %d of %d bytes allocated", rep.Allocated, rep.Size)
			}
			must(t, "sfdisk", "--verify", out)
			var pt struct {
				PartitionTable struct {
					Label      string
					Partitions []struct{ Start, Size int64 }
				}
			}
			if err := json.Unmarshal([]byte(must(t, "sfdisk", "--json", out).stdout), &pt); err != nil {
				t.Fatal(err)
			}
			if pt.PartitionTable.Label != tc.table || len(pt.PartitionTable.Partitions) != len(rep.Partitions) {
				t.Fatalf("sfdisk sees %+v, report %+v", pt, rep.Partitions)
			}
			for i, p := range pt.PartitionTable.Partitions {
				if p.Start*512 != rep.Partitions[i].Start || p.Size*512 != rep.Partitions[i].Size || rep.Partitions[i].Start%(4<<20) != 0 {
					t.Errorf("partition %d: sfdisk %+v, report %+v (want 4 MiB alignment)", i, p, rep.Partitions[i])
				}
			}
			img, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for name, off := range tc.raw {
				if got := img[off : off+int64(len(f.raw[name]))]; !bytes.Equal(got, f.raw[name]) {
					t.Errorf("raw blob %s not found at offset %d", name, off)
				}
			}
			boot := extract(t, out, rep.Partitions[0].Start, rep.Partitions[0].Size)
			must(t, "fsck.vfat", "-n", boot)
			dir := must(t, "mdir", "-i", boot, "-b", "-/", "::").stdout
			for _, name := range tc.fatFiles {
				if !strings.Contains(dir, "/"+name+"\n") {
					t.Errorf("boot partition lacks %s:\n%s", name, dir)
				}
			}
			root := extract(t, out, rep.Partitions[1].Start, rep.Partitions[1].Size)
			must(t, "e2fsck", "-fn", root)
			checkOwnership(t, root, deploy, objects)

			// bmaptool copy of image + bmap reproduces it; the .zst decompresses to it.
			copyOut := filepath.Join(t.TempDir(), "copy.img")
			must(t, "bmaptool", "copy", "--bmap", rep.Bmap, out, copyOut)
			must(t, "cmp", out, copyOut)
			must(t, "zstd", "-q", "-d", rep.Zstd, "-o", copyOut, "-f")
			must(t, "cmp", out, copyOut)
		})
	}
}

// objectPaths maps paths of the commit's files to their object paths in a bare repository.
func objectPaths(t *testing.T, repo, commit string) map[string]string {
	t.Helper()
	out := must(t, "ostree", "ls", "-R", "-C", "--repo="+repo, commit).stdout
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 6 && fields[0][0] == '-' {
			cs := fields[4]
			m[fields[5]] = "/ostree/repo/objects/" + cs[:2] + "/" + cs[2:] + ".file"
		}
	}
	return m
}

// checkOwnership checks sample files of the deployment in an ext4 image with debugfs.
func checkOwnership(t *testing.T, fsImage, deploy string, objects map[string]string) {
	t.Helper()
	for _, tc := range []struct {
		path          string
		uid, gid, mod int
	}{
		{"/usr/etc/shadow", 0, 42, 0o640},
		{"/etc/shadow", 0, 42, 0o640},
		{"/usr/etc/unreadable", 0, 0, 0o000},
		{"/usr/bin/su", 0, 0, 0o4755},
		{"/usr/bin/ls", 0, 0, 0o777},
		{"/usr/share/ota/var/home/user/notes.txt", 1000, 1000, 0o640},
		{"/usr/share/ota/var/home/user", 1000, 1000, 0o700},
	} {
		_, uid, gid, mode := debugfsStat(t, fsImage, deploy+tc.path)
		if uid != tc.uid || gid != tc.gid || mode != tc.mod {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", tc.path, uid, gid, mode, tc.uid, tc.gid, tc.mod)
		}
	}
	for _, p := range []string{"/usr/bin/su", "/usr/bin/busybox", "/usr/share/ota/var/home/user/notes.txt"} {
		obj, ok := objects[p]
		if !ok {
			t.Fatalf("no object for %s", p)
		}
		a, _, _, _ := debugfsStat(t, fsImage, deploy+p)
		b, _, _, _ := debugfsStat(t, fsImage, obj)
		if a != b {
			t.Errorf("%s (inode %d) and its object %s (inode %d) are not hardlinks", p, a, obj, b)
		}
	}
	// Content comes from the source repository's objects (the staging tree has none).
	if got := must(t, "debugfs", "-R", "cat "+deploy+"/usr/bin/sh", fsImage).stdout; got != "busybox 2.0" {
		t.Errorf("usr/bin/sh holds %q, want %q", got, "busybox 2.0")
	}
	a, _, _, _ := debugfsStat(t, fsImage, deploy+"/usr/bin/sh")
	b, _, _, _ := debugfsStat(t, fsImage, deploy+"/usr/bin/busybox")
	if a != b {
		t.Errorf("usr/bin/sh and usr/bin/busybox are not one inode")
	}
	got := must(t, "debugfs", "-R", "ea_get -x "+deploy+"/usr/bin/ping security.capability", fsImage).stdout
	if want := fmt.Sprintf("% x", capValue); !strings.Contains(strings.ReplaceAll(got, "\n", " "), want) {
		t.Errorf("security.capability of usr/bin/ping: %q, want %s", got, want)
	}
}

// TestImageSysrootWithRealOstree mounts the root partition of an image built as an
// unprivileged user and checks it with the real ostree: admin status, fsck, and a later
// admin deploy of the next commit (acceptance 1); then the same image built as root has
// the same owners, modes and xattrs (acceptance 3).
func TestImageSysrootWithRealOstree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users and mount the image")
	}
	requireTool(t, "setpriv", "mount", "umount")
	f := newImageFixture(t)
	// The image deploys the first commit; ostree deploys the second on top of it.
	must(t, "ostree", "--repo="+f.repo, "refs", "--create=myos/first", f.c1)
	out := filepath.Join(f.dir, "nobody", "disk.img")
	rep := f.buildImage(t, true, out, "myos/first", "--board", "qemu-aarch64", "--size", "1GiB")
	if rep.Size != 1<<30 {
		t.Errorf("image size %d, want 1 GiB", rep.Size)
	}
	mnt, unmount := mountPartition(t, out, rep.Partitions[1].Start, rep.Partitions[1].Size)
	status := must(t, "ostree", "admin", "status", "--sysroot="+mnt).stdout
	if !regexp.MustCompile(`^  myos ` + f.c1 + `\.0\n`).MatchString(status) {
		t.Errorf("ostree admin status does not show %s.0 as the default deployment:\n%s", f.c1, status)
	}
	must(t, "ostree", "fsck", "--repo="+mnt+"/ostree/repo")
	uEnv, err := os.ReadFile(filepath.Join(mnt, "boot/loader/uEnv.txt"))
	if err != nil || !strings.Contains(string(uEnv), "root=PARTUUID="+rep.Partitions[1].PartUUID) {
		t.Errorf("uEnv.txt lacks root=PARTUUID=%s: %s %v", rep.Partitions[1].PartUUID, uEnv, err)
	}

	rootOut := filepath.Join(f.dir, "root", "disk.img")
	rootRep := f.buildImage(t, false, rootOut, "myos/first", "--board", "qemu-aarch64", "--size", "1GiB")
	rootMnt, _ := mountPartition(t, rootOut, rootRep.Partitions[1].Start, rootRep.Partitions[1].Size)
	compareTrees(t, snapshot(t, rootMnt, snapshotOpts{owners: true, special: true, xattrs: true}), snapshot(t, mnt, snapshotOpts{owners: true, special: true, xattrs: true}))

	must(t, "ostree", "--repo="+mnt+"/ostree/repo", "pull-local", f.repo, f.c2)
	must(t, "ostree", "admin", "deploy", "--sysroot="+mnt, "--os=myos", f.c2)
	status = must(t, "ostree", "admin", "status", "--sysroot="+mnt).stdout
	if !regexp.MustCompile(`(?s)^  myos ` + f.c2 + `\.0\n.*\n  myos ` + f.c1 + `\.0\n`).MatchString(status) {
		t.Errorf("after ostree admin deploy:\n%s", status)
	}
	unmount()
	must(t, "e2fsck", "-fn", extract(t, out, rep.Partitions[1].Start, rep.Partitions[1].Size))

	// The boot script counts attempts on the FAT partition and, after three failed
	// boots of the new default deployment, boots the rollback one.
	requireTool(t, "qemu-system-aarch64", "mtype")
	if _, err := os.Stat(qemuUBoot); err != nil {
		requireTool(t, qemuUBoot)
	}
	for boot := 1; boot <= 4; boot++ {
		log := bootQEMU(t, out)
		want := fmt.Sprintf("ota: boot attempt 0x%x (limit 3)", boot)
		if !strings.Contains(log, "Found U-Boot script /boot.scr") || !strings.Contains(log, want) {
			t.Fatalf("boot %d: no %q:\n%s", boot, want, log)
		}
		rollback := strings.Contains(log, "ota: boot limit 3 exceeded; booting rollback entry")
		if rollback != (boot == 4) || !strings.Contains(log, "ota: loading /boot/ostree/myos-") || !strings.Contains(log, "Bad Linux ARM64 Image magic") {
			t.Errorf("boot %d (rollback %v):\n%s", boot, rollback, log)
		}
	}
	state := must(t, "mtype", "-i", out+"@@"+strconv.FormatInt(rep.Partitions[0].Start, 10), "::ota-state.txt").stdout
	if !strings.HasPrefix(state, "bootcount=4\n") {
		t.Errorf("ota-state.txt after 4 boots: %q", state)
	}
}

// mountPartition loop-mounts a partition of an image and unmounts it when the test ends.
func mountPartition(t *testing.T, img string, start, size int64) (string, func()) {
	t.Helper()
	mnt := t.TempDir()
	r := runCmd(t, nil, nil, "mount", "-o", fmt.Sprintf("loop,offset=%d,sizelimit=%d", start, size), img, mnt)
	if r.code != 0 {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("mount: %s", r.stderr)
		}
		t.Skipf("cannot loop-mount: %s", r.stderr)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			must(t, "umount", mnt)
		}
	})
	return mnt, func() { must(t, "umount", mnt); mounted = false }
}

// bootQEMU boots an image in QEMU's virt machine with Debian's u-boot-qemu until the boot
// script has run (our test kernels are not real ones, so booti fails), and returns the
// serial console output.
func bootQEMU(t *testing.T, img string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "256",
		"-nographic", "-bios", qemuUBoot, "-nic", "none", "-no-reboot",
		"-drive", "if=none,file="+img+",format=raw,id=hd0", "-device", "virtio-blk-device,drive=hd0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "ota: booti failed") || strings.Contains(sc.Text(), "ota: cannot") {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not run the boot script in time:\n%s", log.String())
	}
	return log.String()
}

// qemuUBoot is Debian's u-boot-qemu build for QEMU's arm64 virt machine.
const qemuUBoot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// TestImageErrors: bad layouts and missing inputs fail with one clear message and leave
// no output behind, and an existing output file untouched (acceptance 6).
func TestImageErrors(t *testing.T) {
	f := newImageFixture(t)
	emptyBoot := filepath.Join(f.dir, "empty")
	os.Mkdir(emptyBoot, 0o755)
	overlap := filepath.Join(f.dir, "overlap.yaml")
	os.WriteFile(overlap, []byte("board: imx8mm\npartitions:\n  - {name: boot, fs: fat, size: 64MiB, offset: 1MiB}\n  - {name: root, fs: sysroot}\n"), 0o644)
	unknownKey := filepath.Join(f.dir, "typo.yaml")
	os.WriteFile(unknownKey, []byte("board: imx8mm\nraw:\n  - {source: flash.bin, ofset: 33KiB}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing boot files", []string{"--board", "raspberrypi4-64", "--boot-files", emptyBoot}, "boot files for partition boot: start4*.elf not found in " + emptyBoot},
		{"missing raw blob", []string{"--board", "imx8mm", "--boot-files", emptyBoot}, "flash.bin"},
		{"overlap", []string{"--layout", overlap}, "partition boot (bytes 1048576-68157440) overlaps raw blob flash.bin (bytes 33792-1569792)"},
		{"root too small", []string{"--board", "qemu-aarch64", "--size", "70MiB"}, "too small for the sysroot"},
		{"unknown board", []string{"--board", "beaglebone"}, `unknown board "beaglebone" (known: imx6,`},
		{"unknown layout key", []string{"--layout", unknownKey}, "typo.yaml: line 3: field ofset not found"},
		{"bad size", []string{"--board", "qemu-aarch64", "--size", "big"}, `--size: invalid size "big"`},
		{"smaller than the layout", []string{"--board", "qemu-aarch64", "--size", "1MiB"}, "image size 1.0 MiB leaves no room for partition root, which starts at 68.0 MiB"},
		{"karg with a newline", []string{"--board", "qemu-aarch64", "--karg", "quiet\nbootcmd=x"}, `kernel argument "quiet\nbootcmd=x" holds the control character`},
		{"not bootable", []string{"--board", "qemu-aarch64"}, "kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "not bootable" {
				tree := filepath.Join(f.dir, "plain-tree")
				os.MkdirAll(tree+"/usr/bin", 0o755)
				os.WriteFile(tree+"/usr/bin/x", []byte("x"), 0o755)
				ota(t, "commit", "--repo", f.repo, "-b", "plain", "--tree", "dir="+tree)
			}
			outDir := filepath.Join(f.dir, "err-"+strings.ReplaceAll(tc.name, " ", "-"))
			os.Mkdir(outDir, 0o755)
			out := filepath.Join(outDir, "disk.img")
			os.WriteFile(out, []byte("previous image"), 0o644)
			rev := "myos/stable"
			if tc.name == "not bootable" {
				rev = "plain"
			}
			args := append(append([]string{"image", "--repo", f.repo, "--boot-files", f.bootFiles, "-o", out, "--bmap"}, tc.args...), rev)
			tmp := t.TempDir()
			r := runCmd(t, []string{"TMPDIR=" + tmp}, nil, otaBuild, args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want one line containing %q", r.code, r.stderr, tc.want)
			}
			ents, _ := os.ReadDir(outDir)
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("left behind: %v", names)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("staging left behind in TMPDIR: %v", ents)
			}
			if data, _ := os.ReadFile(out); string(data) != "previous image" {
				t.Errorf("existing output changed")
			}
		})
	}
}

// TestImageInterrupted: SIGINT at any moment leaves either a complete image or nothing,
// and no staging tree or temporary file.
func TestImageInterrupted(t *testing.T) {
	f := newImageFixture(t)
	for i, delay := range []time.Duration{20 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond} {
		dir, tmp := filepath.Join(f.dir, fmt.Sprint("int", i)), t.TempDir()
		os.Mkdir(dir, 0o755)
		out := filepath.Join(dir, "disk.img")
		cmd := exec.Command(otaBuild, "image", "--repo", f.repo, "--board", "qemu-aarch64", "-o", out, "--bmap", "myos/stable")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		ents, _ := os.ReadDir(dir)
		if err == nil {
			if len(ents) != 2 { // the image and its bmap
				t.Errorf("after %v: finished but the directory holds %d files", delay, len(ents))
			}
			must(t, "sfdisk", "--verify", out)
		} else if len(ents) != 0 {
			t.Errorf("after %v: interrupted (%v) but left %v behind", delay, err, ents)
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Errorf("after %v: staging left in TMPDIR: %v", delay, ents)
		}
	}
}
