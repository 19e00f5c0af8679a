package sysroot

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/otakit/ota/internal/ostree"
)

// Bootloader renders what a bootloader reads to boot a deployment list, besides the BLS
// entries every list gets (libostree's OstreeBootloader). WriteDeployments writes its
// files into the new boot/loader.N directory before it swaps boot/loader to it, so the
// bootloader sees the old configuration or the new one, never a mix.
type Bootloader interface {
	// Name is the bootloader's name, as the repository config's sysroot.bootloader key
	// and Options.Bootloader give it.
	Name() string
	// Config returns the files the bootloader reads to boot entries, a new deployment
	// list, default first, by name in the boot/loader.N directory.
	Config(entries []BootEntry) (map[string][]byte, error)
}

// bootloaders are the Bootloaders by name.
var bootloaders = []Bootloader{UBoot{}}

// bootloaderNamed returns the bootloader called name; "none" and "" (detect it later) give
// nil.
func bootloaderNamed(name string) (Bootloader, error) {
	if name == "" || name == "none" {
		return nil, nil
	}
	for _, b := range bootloaders {
		if b.Name() == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("sysroot: unsupported bootloader %q (want uboot or none)", name)
}

// detectBootloader returns the sysroot's bootloader as ostree 2022.7 finds it: the one
// the repository config's sysroot.bootloader names, else U-Boot if boot/loader/uEnv.txt
// exists, else none.
func detectBootloader(sysroot string, repo *ostree.Repo) Bootloader {
	if b, err := bootloaderNamed(repo.Config["sysroot.bootloader"]); err == nil && b != nil {
		return b
	}
	if _, err := os.Stat(filepath.Join(sysroot, "boot/loader/uEnv.txt")); err == nil {
		return UBoot{}
	}
	return nil
}
