package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Layout describes a disk image: its partition table, its partitions and the raw blobs
// (bootloaders) written at fixed offsets outside them. Board presets are Layouts; a YAML
// layout file can start from one (see LoadLayout).
type Layout struct {
	// Table is the partition table: "mbr" or "gpt".
	Table string `yaml:"table"`
	// Align is the partition alignment (default 4MiB).
	Align Size `yaml:"align"`
	// Partitions in table order. Exactly one has FS "sysroot".
	Partitions []Partition `yaml:"partitions"`
	// Raw blobs written at fixed offsets.
	Raw []Raw `yaml:"raw"`
	// Kargs are kernel arguments the board needs (e.g. its serial console), added after
	// the defaults root=PARTUUID=<sysroot partition> rw rootwait.
	Kargs []string `yaml:"kargs"`
	// BootCommand is the U-Boot command that boots the kernel: "booti" (arm64 Image, the
	// default) or "bootz" (arm zImage).
	BootCommand string `yaml:"boot-command"`
}

// Partition is one partition of a Layout.
type Partition struct {
	// Name is the partition's name (GPT) and the default filesystem label.
	Name string `yaml:"name"`
	// FS is what the partition holds: "fat" (FAT16 below 256 MiB, else FAT32), "fat16",
	// "fat32", "sysroot" (ext4 holding the deployed OSTree sysroot) or "none".
	FS string `yaml:"fs"`
	// Size of the partition. For the sysroot, zero means: fit the sysroot with room for
	// updates, or fill the image when the image size is given.
	Size Size `yaml:"size"`
	// Offset is a fixed start; zero places the partition after the previous one, aligned.
	Offset Size `yaml:"offset"`
	// Type is the MBR type byte (e.g. "0x0c") or the GPT type ("linux", "esp",
	// "basic-data" or a GUID); the default follows FS.
	Type string `yaml:"type"`
	// Bootable sets the MBR active flag (GPT: the legacy BIOS bootable attribute).
	Bootable bool `yaml:"bootable"`
	// Label is the filesystem label (default Name).
	Label string `yaml:"label"`
	// Files are copied into a FAT partition from the boot files directory.
	Files []File `yaml:"files"`
	// BootScript adds the U-Boot boot script boot.scr to a FAT partition.
	BootScript bool `yaml:"boot-script"`
}

// File selects boot files for a FAT partition.
type File struct {
	// Source is a path relative to the boot files directory. It may be a glob (each match
	// is copied under its base name) or a directory (copied recursively).
	Source string `yaml:"source"`
	// Dest is the path in the partition; a trailing "/" names a directory. Default: the
	// base name of Source.
	Dest string `yaml:"dest"`
	// Optional files may be missing.
	Optional bool `yaml:"optional"`
	// Default is the content written to Dest when Source is missing.
	Default *string `yaml:"default"`
}

// Raw is a file written at a fixed byte offset of the image.
type Raw struct {
	// Source is a path relative to the boot files directory.
	Source string `yaml:"source"`
	// Offset is the byte offset in the image.
	Offset Size `yaml:"offset"`
}

// layoutFile is the YAML form of a layout file: an optional board preset to start from
// and the fields that replace the preset's.
type layoutFile struct {
	Board  string `yaml:"board"`
	Layout `yaml:",inline"`
}

// LoadLayout reads a YAML layout file. A "board" key starts from that preset; the other
// keys given replace the preset's (partitions and raw as whole lists). Unknown keys are
// errors.
func LoadLayout(file string) (Layout, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Layout{}, err
	}
	l, err := ParseLayout(data)
	if err != nil {
		return Layout{}, fmt.Errorf("%s: %w", file, err)
	}
	return l, nil
}

// ParseLayout parses the YAML of a layout file (see LoadLayout).
func ParseLayout(data []byte) (Layout, error) {
	var probe struct {
		Board string `yaml:"board"`
	}
	// The preset is the base the file's keys are decoded onto.
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return Layout{}, yamlError(err)
	}
	var f layoutFile
	if probe.Board != "" {
		p, err := Preset(probe.Board)
		if err != nil {
			return Layout{}, err
		}
		f.Layout = p
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Layout{}, yamlError(err)
	}
	if err := f.Layout.Validate(); err != nil {
		return Layout{}, err
	}
	return f.Layout, nil
}

// yamlError drops the yaml package's "yaml: unmarshal errors:" preamble.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// Validate checks the layout for errors that do not depend on the boot files or sizes.
func (l *Layout) Validate() error {
	switch l.Table {
	case "mbr", "gpt":
	default:
		return fmt.Errorf("table: %q is not mbr or gpt", l.Table)
	}
	if l.Align < 0 || l.Align%4096 != 0 {
		return fmt.Errorf("align: %s is not a multiple of 4KiB", l.Align)
	}
	switch l.BootCommand {
	case "", "booti", "bootz":
	default:
		return fmt.Errorf("boot-command: %q is not booti or bootz", l.BootCommand)
	}
	if l.Table == "mbr" && len(l.Partitions) > 4 {
		return fmt.Errorf("partitions: %d partitions, an MBR holds at most 4", len(l.Partitions))
	}
	sysroots := 0
	for i, p := range l.Partitions {
		where := fmt.Sprintf("partitions[%d]", i)
		if p.Name != "" {
			where += " (" + p.Name + ")"
		}
		switch p.FS {
		case "sysroot":
			sysroots++
		case "fat", "fat16", "fat32", "none":
			if p.Size == 0 {
				return fmt.Errorf("%s: size is required", where)
			}
		default:
			return fmt.Errorf("%s: fs %q is not fat, fat16, fat32, sysroot or none", where, p.FS)
		}
		if p.Size%512 != 0 || p.Offset%512 != 0 {
			return fmt.Errorf("%s: size and offset must be multiples of 512", where)
		}
		if !strings.HasPrefix(p.FS, "fat") && (len(p.Files) > 0 || p.BootScript) {
			return fmt.Errorf("%s: files and boot-script need a FAT partition", where)
		}
		if _, err := partitionType(l.Table, p); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for j, f := range p.Files {
			if f.Source == "" || path.IsAbs(f.Source) || strings.HasPrefix(path.Clean(f.Source), "..") {
				return fmt.Errorf("%s: files[%d]: source %q must be a relative path inside the boot files directory", where, j, f.Source)
			}
		}
	}
	if sysroots != 1 {
		return fmt.Errorf("partitions: %d sysroot partitions, want exactly 1", sysroots)
	}
	for i, r := range l.Raw {
		if r.Source == "" || path.IsAbs(r.Source) || strings.HasPrefix(path.Clean(r.Source), "..") {
			return fmt.Errorf("raw[%d]: source %q must be a relative path inside the boot files directory", i, r.Source)
		}
	}
	return nil
}

func (l *Layout) align() int64 {
	if l.Align == 0 {
		return 4 << 20
	}
	return int64(l.Align)
}

// partitionType returns the MBR type byte (as a one-element string) or GPT type GUID of p.
func partitionType(table string, p Partition) (string, error) {
	t := p.Type
	if table == "mbr" {
		if t == "" {
			if p.FS == "sysroot" || p.FS == "none" {
				return "\x83", nil
			}
			return "\x0c", nil
		}
		n, err := strconv.ParseUint(t, 0, 8)
		if err != nil || n == 0 {
			return "", fmt.Errorf("type %q is not an MBR type byte such as 0x0c or 0x83", t)
		}
		return string([]byte{byte(n)}), nil
	}
	aliases := map[string]string{
		"linux":      "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
		"esp":        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
		"basic-data": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
		// The arm64 root type lets systemd's gpt-auto-generator find the sysroot.
		"root-arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
	}
	if t == "" {
		t = "basic-data"
		if p.FS == "sysroot" || p.FS == "none" {
			t = "linux"
		}
	}
	if g, ok := aliases[t]; ok {
		return g, nil
	}
	if len(t) == 36 && strings.Count(t, "-") == 4 {
		return strings.ToUpper(t), nil
	}
	return "", fmt.Errorf("type %q is not a GPT type GUID or one of linux, esp, basic-data, root-arm64", t)
}
