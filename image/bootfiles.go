package image

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/otakit/ota/image/bootscript"
	"github.com/otakit/ota/image/fat"
)

// BootFiles lists the files of dir the layout uses, checking that all are there, so a
// build can fail before it writes anything.
func BootFiles(l Layout, dir string) ([]string, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	sysIdx := slices.IndexFunc(l.Partitions, func(p Partition) bool { return p.FS == "sysroot" })
	parts, err := resolveFiles(dir, l, sysIdx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, files := range parts {
		for _, f := range files {
			if f.Source != "" {
				out = append(out, f.Source)
			}
		}
	}
	for _, r := range l.Raw {
		p := filepath.Join(dir, r.Source)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("boot files: raw blob: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// rawBlob is a resolved raw blob.
type rawBlob struct {
	data []byte
	size int64
}

func resolveRaw(dir string, raws []Raw) ([]rawBlob, error) {
	var out []rawBlob
	for _, r := range raws {
		data, err := os.ReadFile(filepath.Join(dir, r.Source))
		if err != nil {
			return nil, fmt.Errorf("boot files: raw blob: %w", err)
		}
		out = append(out, rawBlob{data, int64(len(data))})
	}
	return out, nil
}

// resolveFiles lists the files of each FAT partition (indexed like l.Partitions),
// including the boot script.
func resolveFiles(dir string, l Layout, sysIdx int) ([][]fat.File, error) {
	out := make([][]fat.File, len(l.Partitions))
	for i, p := range l.Partitions {
		for _, f := range p.Files {
			files, err := expand(dir, f)
			if err != nil {
				return nil, fmt.Errorf("boot files for partition %s: %w", p.Name, err)
			}
			out[i] = append(out[i], files...)
		}
		if p.BootScript {
			cmd, arch := l.BootCommand, "arm64"
			if cmd == "" {
				cmd = "booti"
			} else if cmd == "bootz" {
				arch = "arm"
			}
			text := bootscript.Script(bootscript.ScriptOptions{
				RootPart: fmt.Sprintf("${devtype} ${devnum}:%d", sysIdx+1),
				BootPart: fmt.Sprintf("${devtype} ${devnum}:%d", i+1),
				Command:  cmd,
			})
			var buf bytes.Buffer
			if err := bootscript.Encode(&buf, text, bootscript.Options{Name: "ota boot script", Arch: arch}); err != nil {
				return nil, err
			}
			out[i] = append(out[i], fat.File{Path: "boot.scr", Data: buf.Bytes()})
		}
	}
	return out, nil
}

// expand resolves one File entry against the boot files directory.
func expand(dir string, f File) ([]fat.File, error) {
	matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(f.Source)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Source, err)
	}
	if len(matches) == 0 {
		switch {
		case f.Default != nil:
			return []fat.File{{Path: dest(f, path.Base(f.Source)), Data: []byte(*f.Default)}}, nil
		case f.Optional:
			return nil, nil
		}
		return nil, fmt.Errorf("%s not found in %s", f.Source, dir)
	}
	var out []fat.File
	for _, m := range matches {
		st, err := os.Stat(m)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, fat.File{Path: dest(f, filepath.Base(m)), Source: m})
			continue
		}
		base := dest(f, filepath.Base(m))
		err = filepath.WalkDir(m, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(m, p)
			out = append(out, fat.File{Path: path.Join(base, filepath.ToSlash(rel)), Source: p})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dest is where a source file named base goes in the partition.
func dest(f File, base string) string {
	switch {
	case f.Dest == "":
		return base
	case strings.HasSuffix(f.Dest, "/"):
		if strings.TrimSuffix(f.Dest, "/") == base {
			return base // a directory copied under its own name
		}
		return path.Join(f.Dest, base)
	}
	return f.Dest
}
