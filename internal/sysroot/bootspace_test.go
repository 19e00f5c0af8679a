package sysroot

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDeployChecksBootSpace: with /boot on its own small filesystem, a deployment whose
// kernel does not fit with BootMinFree to spare is refused before anything is written to
// /boot, and goes through once the filesystem is large enough.
func TestDeployChecksBootSpace(t *testing.T) {
	f := newFixture(t)
	s := newSysrootDir(t)
	boot := filepath.Join(s, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", boot).CombinedOutput(); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("mounting a tmpfs (OTA_REQUIRE_TOOLS=1): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", boot).Run() })
	opts := Options{OSName: "myos", Kargs: []string{"rw"}, Bootloader: "uboot"}
	if err := Init(s, opts); err != nil {
		t.Fatal(err)
	}
	bootFiles := func() []string {
		var out []string
		for _, l := range layout(t, s) {
			if strings.HasPrefix(l, "boot/") {
				out = append(out, l)
			}
		}
		return out
	}
	before := bootFiles()
	err := Deploy(context.Background(), s, f.src, f.c1, opts)
	if err == nil || !strings.Contains(err.Error(), "not enough space in "+boot) {
		t.Fatalf("deploy onto a full /boot: %v", err)
	}
	if after := bootFiles(); !slices.Equal(after, before) {
		t.Errorf("a refused deployment changed /boot: %v, was %v", after, before)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=4m", boot).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	if err := Deploy(context.Background(), s, f.src, f.c1, opts); err != nil {
		t.Fatalf("deploy once /boot has room: %v", err)
	}
}
