package image

import (
	"fmt"
	"slices"
	"strings"
)

// Board presets. Firmware and bootloader files come from the boot files directory (the
// deploy directory of a Yocto build, or Buildroot's output/images); kernels and device
// trees for Linux come from the commit.
var presets = map[string]func() Layout{
	"raspberrypi3-64": func() Layout {
		return raspberryPi("kernel8.img", "bcm2710-rpi-3-b*.dtb",
			File{Source: "bootcode.bin"}, File{Source: "start*.elf"}, File{Source: "fixup*.dat"})
	},
	"raspberrypi4-64": func() Layout {
		return raspberryPi("kernel8.img", "bcm2711-rpi-*.dtb",
			File{Source: "start4*.elf"}, File{Source: "fixup4*.dat"})
	},
	// The Raspberry Pi 5 boots from its EEPROM firmware: no start*.elf on the card.
	"raspberrypi5": func() Layout { return raspberryPi("kernel_2712.img", "bcm2712-rpi-*.dtb") },
	"imx8mm":       func() Layout { return imx("flash.bin", 33<<10) },
	"imx8mq":       func() Layout { return imx("flash.bin", 33<<10) },
	"imx8mn":       func() Layout { return imx("flash.bin", 32<<10) },
	"imx8mp":       func() Layout { return imx("flash.bin", 32<<10) },
	"imx6": func() Layout {
		l := imx("SPL", 1<<10)
		l.Raw = append(l.Raw, Raw{Source: "u-boot.img", Offset: 69 << 10})
		l.BootCommand = "bootz"
		l.Kargs = []string{"console=ttymxc0,115200"}
		return l
	},
	// QEMU's virt machine booted by Debian's u-boot-qemu (-bios
	// /usr/lib/u-boot/qemu_arm64/u-boot.bin), whose distro boot finds boot.scr.
	"qemu-aarch64": func() Layout {
		return Layout{
			Table: "gpt",
			Partitions: []Partition{
				{Name: "boot", FS: "fat", Size: 64 << 20, Type: "esp", BootScript: true},
				{Name: "root", FS: "sysroot", Type: "root-arm64"},
			},
			Kargs: []string{"console=ttyAMA0"},
		}
	},
}

// raspberryPi is the layout of the Raspberry Pi boot ROM and firmware: an MBR whose first,
// bootable FAT partition (type 0x0c) holds the firmware, config.txt, the device trees and
// overlays, and U-Boot under the name the firmware loads as the kernel.
func raspberryPi(kernel, dtbs string, firmware ...File) Layout {
	config := "arm_64bit=1\nkernel=" + kernel + "\nenable_uart=1\n"
	files := append(firmware,
		File{Source: "config.txt", Default: &config},
		File{Source: "cmdline.txt", Optional: true},
		File{Source: "u-boot.bin", Dest: kernel},
		File{Source: dtbs},
		File{Source: "overlays", Dest: "overlays/", Optional: true},
	)
	return Layout{
		Table: "mbr",
		Partitions: []Partition{
			{Name: "boot", FS: "fat32", Size: 256 << 20, Type: "0x0c", Bootable: true, Files: files, BootScript: true},
			{Name: "root", FS: "sysroot"},
		},
		Kargs: []string{"console=serial0,115200"},
	}
}

// imx is the layout of NXP i.MX boards: the boot ROM reads the bootloader at a fixed
// offset of the card, before the first partition, which starts at 8 MiB (room for
// flash.bin, as NXP's Yocto layouts do).
func imx(bootloader string, offset Size) Layout {
	return Layout{
		Table: "mbr",
		Align: 4 << 20,
		Partitions: []Partition{
			{Name: "boot", FS: "fat", Size: 64 << 20, Offset: 8 << 20, Type: "0x0c", Bootable: true, BootScript: true,
				Files: []File{{Source: "*.dtb", Optional: true}}},
			{Name: "root", FS: "sysroot"},
		},
		Raw:   []Raw{{Source: bootloader, Offset: offset}},
		Kargs: []string{"console=ttymxc1,115200"},
	}
}

// Preset returns the layout of a board preset.
func Preset(board string) (Layout, error) {
	f, ok := presets[board]
	if !ok {
		return Layout{}, fmt.Errorf("unknown board %q (known: %s)", board, strings.Join(Boards(), ", "))
	}
	return f(), nil
}

// Boards lists the board presets.
func Boards() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
