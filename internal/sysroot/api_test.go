package sysroot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// TestWriteDeploymentsRollback drives the deployment API as a device client would: deploy
// two commits, roll back by writing the list in the other order, drop one, and clean up
// a tree that was deployed but never written. ostree itself reads each result.
func TestWriteDeploymentsRollback(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	path := newSysrootDir(t)
	if err := Init(path, Options{OSName: "myos", Bootloader: "uboot"}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deploy := func(c ostree.Checksum) *Deployment {
		t.Helper()
		if err := s.Pull(ctx, f.src, c); err != nil {
			t.Fatal(err)
		}
		d, err := s.DeployTree(ctx, c, DeployOptions{OSName: "myos", Kargs: []string{"root=/dev/mmcblk0p2", "rw"}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// status checks ostree's view and the sysroot's: the deployments, default first.
	status := func(want ...*Deployment) {
		t.Helper()
		var names []string
		for _, d := range want {
			names = append(names, d.Name())
		}
		var got []string
		for _, line := range statusDeployments(t, path) {
			got = append(got, line[strings.LastIndex(line, " ")+1:])
		}
		if !slices.Equal(got, names) {
			t.Errorf("ostree admin status: %q, want %q", got, names)
		}
		got = got[:0]
		for _, d := range s.Deployments() {
			got = append(got, d.Name())
		}
		if !slices.Equal(got, names) {
			t.Errorf("Deployments: %q, want %q", got, names)
		}
	}

	d1 := deploy(f.c1)
	if err := s.WriteDeployments(ctx, []*Deployment{d1}); err != nil {
		t.Fatal(err)
	}
	status(d1)
	if s.Bootversion() != 1 {
		t.Errorf("boot version %d after the first write, want 1", s.Bootversion())
	}
	d2 := deploy(f.c2)
	if err := s.WriteDeployments(ctx, []*Deployment{d2, d1}); err != nil {
		t.Fatal(err)
	}
	status(d2, d1)

	// A reopened sysroot loads the same list.
	s.Close()
	if s, err = Open(path, OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	for i, d := range s.Deployments() {
		want := []*Deployment{d2, d1}[i]
		if d.OSName != want.OSName || d.Commit != want.Commit || d.Serial != want.Serial || d.BootCsum != want.BootCsum || !slices.Equal(d.Kargs, want.Kargs) {
			t.Errorf("loaded deployment %d: %+v, want %+v", i, d, want)
		}
	}

	// Rollback: the previous default becomes the default, the other one its fallback.
	list := s.Deployments()
	slices.Reverse(list)
	if err := s.WriteDeployments(ctx, list); err != nil {
		t.Fatal(err)
	}
	status(d1, d2)
	// U-Boot boots the new default first and the other one as its fallback.
	env := readFile(t, filepath.Join(path, "boot/loader/uEnv.txt"))
	for i, key := range []string{"\nbootargs=", "\nbootargs2="} {
		_, args, _ := strings.Cut(env, key)
		args, _, _ = strings.Cut(args, "\n")
		_, link, _ := strings.Cut(args, " ostree=")
		target, err := filepath.EvalSymlinks(filepath.Join(path, link))
		want := s.DeploymentDir([]*Deployment{d1, d2}[i])
		if err != nil || target != want {
			t.Errorf("uEnv.txt%s boots %q (%v), want %s:\n%s", key[1:], target, err, want, env)
		}
	}

	// A tree deployed but not written is what Cleanup removes; so is a dropped deployment.
	d3 := deploy(f.c2)
	if d3.Serial != 1 {
		t.Errorf("second deployment of c2 has serial %d, want 1", d3.Serial)
	}
	if res, err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	} else if res.Deployments != 1 {
		t.Errorf("Cleanup removed %d deployments, want 1", res.Deployments)
	}
	if _, err := os.Stat(s.DeploymentDir(d3)); !os.IsNotExist(err) {
		t.Errorf("unwritten deployment %s left: %v", d3.Name(), err)
	}
	if err := s.WriteDeployments(ctx, []*Deployment{s.Deployments()[0]}); err != nil {
		t.Fatal(err)
	}
	status(d1)
	if _, err := os.Stat(s.DeploymentDir(d2)); !os.IsNotExist(err) {
		t.Errorf("dropped deployment %s left: %v", d2.Name(), err)
	}
	if out := run(t, "ostree", "fsck", "--repo="+path+"/ostree/repo"); !strings.Contains(out, "no errors found") {
		t.Errorf("fsck: %s", out)
	}
	if err := s.WriteDeployments(ctx, nil); err == nil {
		t.Error("WriteDeployments accepted an empty list")
	}
}

// TestUBootConfig checks the uEnv.txt U-Boot gets for a deployment list: one set of
// variables per entry, suffixed from the second on, and the default deployment's own
// usr/lib/ostree-boot/uEnv.txt appended.
func TestUBootConfig(t *testing.T) {
	withEnv := t.TempDir()
	if err := os.MkdirAll(filepath.Join(withEnv, "usr/lib/ostree-boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withEnv, "usr/lib/ostree-boot/uEnv.txt"), []byte("\n\nconsole=ttyS0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := BootEntry{Dir: withEnv, Options: "rw ostree=/ostree/boot.1/os/aa/0", Linux: "/ostree/os-aa/vmlinuz-6.1",
		Initrd: "/ostree/os-aa/initramfs-6.1.img", Devicetree: "/ostree/os-aa/devicetree-6.1"}
	b := BootEntry{Dir: t.TempDir(), Options: "rw init=/x ostree=/ostree/boot.1/os/bb/0", Linux: "/ostree/os-bb/vmlinuz-6.0",
		FDTDir: "/ostree/os-bb/dtb"}
	for _, tc := range []struct {
		name    string
		entries []BootEntry
		want    string
	}{
		{"one entry", []BootEntry{b}, "kernel_image=/boot/ostree/os-bb/vmlinuz-6.0\nfdtdir=/boot/ostree/os-bb/dtb\n" +
			"bootargs=rw init=/x ostree=/ostree/boot.1/os/bb/0\n"},
		{"default and rollback", []BootEntry{a, b}, "kernel_image=/boot/ostree/os-aa/vmlinuz-6.1\n" +
			"ramdisk_image=/boot/ostree/os-aa/initramfs-6.1.img\nfdt_file=/boot/ostree/os-aa/devicetree-6.1\n" +
			"bootargs=rw ostree=/ostree/boot.1/os/aa/0\n\nconsole=ttyS0\n\n" +
			"kernel_image2=/boot/ostree/os-bb/vmlinuz-6.0\nfdtdir2=/boot/ostree/os-bb/dtb\n" +
			"bootargs2=rw init=/x ostree=/ostree/boot.1/os/bb/0\n"},
		{"extra file of a rollback only", []BootEntry{b, a}, "kernel_image=/boot/ostree/os-bb/vmlinuz-6.0\n" +
			"fdtdir=/boot/ostree/os-bb/dtb\nbootargs=rw init=/x ostree=/ostree/boot.1/os/bb/0\n" +
			"kernel_image2=/boot/ostree/os-aa/vmlinuz-6.1\nramdisk_image2=/boot/ostree/os-aa/initramfs-6.1.img\n" +
			"fdt_file2=/boot/ostree/os-aa/devicetree-6.1\nbootargs2=rw ostree=/ostree/boot.1/os/aa/0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := UBoot{}.Config(tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || string(files["uEnv.txt"]) != tc.want {
				t.Errorf("files %q, want uEnv.txt:\n%s", files, tc.want)
			}
		})
	}
}
