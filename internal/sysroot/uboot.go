package sysroot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/otakit/ota/internal/ostree"
)

// UBoot is the U-Boot bootloader, as libostree's ostree-bootloader-uboot.c writes for it:
// boot/loader/uEnv.txt names the default deployment's kernel, initramfs, device tree
// (or directory of device trees) and kernel arguments in kernel_image, ramdisk_image,
// fdt_file (fdtdir) and bootargs, and those of the following deployments in the same
// variables suffixed 2, 3, ... The boot script of an image (image/bootscript) imports it
// and boots the second, the rollback, when the default fails to boot.
type UBoot struct{}

// Name returns "uboot".
func (UBoot) Name() string { return "uboot" }

// Config returns uEnv.txt (docs/format.md, "U-Boot environment (uEnv.txt)"), with the default deployment's usr/lib/ostree-boot/uEnv.txt
// appended when it has one.
func (UBoot) Config(entries []BootEntry) (map[string][]byte, error) {
	var lines []string
	for i, e := range entries {
		suffix := ""
		if i > 0 {
			suffix = fmt.Sprint(i + 1)
		}
		lines = append(lines, "kernel_image"+suffix+"=/boot"+e.Linux)
		if e.Initrd != "" {
			lines = append(lines, "ramdisk_image"+suffix+"=/boot"+e.Initrd)
		}
		if e.Devicetree != "" {
			lines = append(lines, "fdt_file"+suffix+"=/boot"+e.Devicetree)
		}
		if e.FDTDir != "" {
			lines = append(lines, "fdtdir"+suffix+"=/boot"+e.FDTDir)
		}
		lines = append(lines, "bootargs"+suffix+"="+e.Options)
		if i == 0 {
			if extra, err := os.ReadFile(filepath.Join(e.Dir, "usr/lib/ostree-boot/uEnv.txt")); err == nil && len(extra) > 0 {
				lines = append(lines, string(extra))
			}
		}
	}
	out := strings.Join(lines, "\n") + "\n"
	for strings.Contains(out, "\n\n\n") {
		out = strings.ReplaceAll(out, "\n\n\n", "\n\n")
	}
	return map[string][]byte{"uEnv.txt": []byte(out)}, nil
}

// initUBoot prepares a new sysroot for U-Boot as ostree 2022.7 needs it before its first
// deployment: an empty boot/loader/uEnv.txt and sysroot.bootloader=uboot in the
// repository config.
func initUBoot(sysroot string, repo *ostree.Repo) error {
	env := filepath.Join(sysroot, "boot/loader/uEnv.txt")
	if _, err := os.Stat(env); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(env, nil, 0o644); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
	}
	if repo.Config["sysroot.bootloader"] != "" {
		return nil
	}
	cfg, err := os.ReadFile(filepath.Join(repo.Path, "config"))
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	cfg = append(bytes.TrimRight(cfg, "\n"), "\n\n[sysroot]\nbootloader=uboot\n"...)
	if err := repo.WriteFileAtomic("config", cfg, 0o644); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}
