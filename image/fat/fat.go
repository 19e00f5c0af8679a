// Package fat writes a populated FAT16/FAT32 filesystem into a region of an
// existing image file (e.g. a Raspberry Pi boot partition).
//
// Formatting is delegated to github.com/diskfs/go-diskfs v1.9.4, with two
// workarounds for bugs in that version:
//
//   - FAT32: the closed-form sectors-per-FAT computation omits the two
//     reserved FAT entries (0 and 1). At sizes where
//     4*(total-reserved)/(bytesPerCluster+8) is (almost) integral, e.g.
//     64 MiB or 4 GiB, the FAT ends up two entries short of clusters+2 and
//     fsck.vfat reports "Filesystem has N clusters but only space for N-2
//     FAT entries". We avoid it by shrinking the filesystem's total sector
//     count by a few sectors (the tail of the partition stays unused) until
//     the FAT covers every cluster.
//   - FAT16: the formatter marks cluster 2 as end-of-chain although FAT16
//     has a fixed root directory, leaving a lost cluster that fsck.vfat
//     reports ("Reclaimed 1 unused cluster"). Since the allocator never
//     hands out a cluster that is marked used, we clear that entry in both
//     FATs after all files are written.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

const sectorSize = 512

// Type selects the FAT variant.
type Type int

const (
	// Auto picks FAT16 below FAT32Threshold and FAT32 otherwise.
	Auto Type = iota
	FAT16
	FAT32
)

func (t Type) String() string {
	switch t {
	case FAT16:
		return "FAT16"
	case FAT32:
		return "FAT32"
	}
	return "auto"
}

// FAT32Threshold is the size from which Auto selects FAT32.
const FAT32Threshold = 256 << 20

// File is one regular file to put into the filesystem.
type File struct {
	// Path inside the filesystem, slash separated, e.g. "overlays/x.dtbo".
	// Parent directories are created as needed.
	Path string
	// Source is a file on disk to copy; used when Data is nil.
	Source string
	// Data is the file content; takes precedence over Source.
	Data []byte
}

// Options controls formatting.
type Options struct {
	// Label is the volume label (at most 11 characters; upper-cased).
	Label string
	// Type forces FAT16 or FAT32; Auto by default.
	Type Type
	// Reproducible uses a zero volume serial number.
	Reproducible bool
}

// Create formats size bytes at byte offset of the existing image file at
// imagePath as FAT16 or FAT32 and populates it with files. The image is
// not truncated or extended. offset and size must be multiples of 512.
func Create(imagePath string, offset, size int64, files []File, opts Options) error {
	if offset < 0 || offset%sectorSize != 0 {
		return fmt.Errorf("fat: offset %d is not a non-negative multiple of %d", offset, sectorSize)
	}
	if size <= 0 || size%sectorSize != 0 {
		return fmt.Errorf("fat: size %d is not a positive multiple of %d", size, sectorSize)
	}
	label := strings.ToUpper(opts.Label)
	if len(label) > 11 {
		return fmt.Errorf("fat: volume label %q longer than 11 characters", opts.Label)
	}
	if label == "" {
		label = "NO NAME"
	}
	typ := opts.Type
	if typ == Auto {
		typ = FAT16
		if size >= FAT32Threshold {
			typ = FAT32
		}
	}

	f, err := os.OpenFile(imagePath, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	if offset+size > st.Size() {
		return fmt.Errorf("fat: region [%d,%d) exceeds image size %d", offset, offset+size, st.Size())
	}
	b := file.New(f, false)

	var fs filesystem.FileSystem
	switch typ {
	case FAT16:
		fs16, err := fat16.Create(b, size, offset, sectorSize, label, opts.Reproducible)
		if err != nil {
			return fmt.Errorf("fat: format FAT16: %w", err)
		}
		// Zero the fixed root directory region (go-diskfs leaves old bytes
		// there) and re-create the label entry.
		bs, err := readBootSector(f, offset)
		if err != nil {
			return err
		}
		rootOff := offset + int64(bs.reserved+uint32(bs.nFATs)*bs.fatSectors)*sectorSize
		if _, err := f.WriteAt(make([]byte, int(bs.rootEntries)*32), rootOff); err != nil {
			return fmt.Errorf("fat: zero root directory: %w", err)
		}
		if err := fs16.SetLabel(label); err != nil {
			return fmt.Errorf("fat: set label: %w", err)
		}
		fs = fs16
	case FAT32:
		fsSize := fat32SafeSize(size)
		fs32, err := fat32.Create(b, fsSize, offset, sectorSize, label, opts.Reproducible)
		if err != nil {
			return fmt.Errorf("fat: format FAT32: %w", err)
		}
		fs = fs32
	default:
		return fmt.Errorf("fat: unknown type %d", typ)
	}

	if err := populate(fs, files); err != nil {
		return err
	}
	if err := fs.Close(); err != nil {
		return fmt.Errorf("fat: close: %w", err)
	}
	if typ == FAT16 {
		if err := fixFAT16Cluster2(f, offset); err != nil {
			return err
		}
	}
	if err := fixEmptyFiles(f, offset); err != nil {
		return err
	}
	return f.Sync()
}

// fat32SafeSize returns the largest size <= size (in whole sectors) for
// which go-diskfs v1.9.4's FAT32 layout has a FAT big enough for all
// clusters. It mirrors the layout computation of fat32.Create.
func fat32SafeSize(size int64) int64 {
	const reserved = 32
	total := uint32(size / sectorSize)
	for i := 0; i < 1<<16 && total > reserved; i++ {
		// go-diskfs derives the cluster size from the size it is given.
		spc := uint32(fat32ClusterBytes(int64(total)*sectorSize) / sectorSize)
		if spc == 0 {
			spc = 1
		}
		denom := sectorSize*spc + 8
		spf := (4*(total-reserved) + denom - 1) / denom
		if uint64(total) < reserved+2*uint64(spf) {
			break
		}
		clusters := (total - reserved - 2*spf) / spc
		if spf*(sectorSize/4) >= clusters+2 {
			return int64(total) * sectorSize
		}
		total--
	}
	return size
}

// fat32ClusterBytes mirrors go-diskfs v1.9.4's FAT32 cluster size table.
func fat32ClusterBytes(size int64) int64 {
	const mb, gb = int64(1 << 20), int64(1 << 30)
	switch {
	case size <= 260*mb:
		return 512
	case size <= 8*gb:
		return 4 << 10
	case size <= 16*gb:
		return 8 << 10
	case size <= 32*gb:
		return 16 << 10
	}
	return 32 << 10
}

type bootSector struct {
	reserved    uint32
	nFATs       uint8
	rootEntries uint16
	fatSectors  uint32
}

func readBootSector(f *os.File, offset int64) (bootSector, error) {
	buf := make([]byte, sectorSize)
	if _, err := f.ReadAt(buf, offset); err != nil {
		return bootSector{}, fmt.Errorf("fat: read boot sector: %w", err)
	}
	if binary.LittleEndian.Uint16(buf[11:]) != sectorSize {
		return bootSector{}, errors.New("fat: unexpected bytes per sector in boot sector")
	}
	bs := bootSector{
		reserved:    uint32(binary.LittleEndian.Uint16(buf[14:])),
		nFATs:       buf[16],
		rootEntries: binary.LittleEndian.Uint16(buf[17:]),
		fatSectors:  uint32(binary.LittleEndian.Uint16(buf[22:])),
	}
	if bs.fatSectors == 0 {
		bs.fatSectors = binary.LittleEndian.Uint32(buf[36:])
	}
	return bs, nil
}

// fixFAT16Cluster2 frees cluster 2, which go-diskfs marks as end-of-chain
// on FAT16 although nothing uses it (the allocator skips it because it is
// marked used, so no file can reference it).
func fixFAT16Cluster2(f *os.File, offset int64) error {
	bs, err := readBootSector(f, offset)
	if err != nil {
		return err
	}
	for i := uint32(0); i < uint32(bs.nFATs); i++ {
		off := offset + int64(bs.reserved+i*bs.fatSectors)*sectorSize + 2*2
		var e [2]byte
		if _, err := f.ReadAt(e[:], off); err != nil {
			return fmt.Errorf("fat: read FAT: %w", err)
		}
		if v := binary.LittleEndian.Uint16(e[:]); v < 0xfff8 {
			continue // not the stray EOC marker; leave alone
		}
		if _, err := f.WriteAt([]byte{0, 0}, off); err != nil {
			return fmt.Errorf("fat: write FAT: %w", err)
		}
	}
	return nil
}

func populate(fs filesystem.FileSystem, files []File) error {
	// Create directories first, parents before children.
	dirs := map[string]bool{}
	for _, fl := range files {
		p, err := cleanPath(fl.Path)
		if err != nil {
			return err
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dl := make([]string, 0, len(dirs))
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Slice(dl, func(i, j int) bool { return len(dl[i]) < len(dl[j]) || len(dl[i]) == len(dl[j]) && dl[i] < dl[j] })
	for _, d := range dl {
		if err := fs.Mkdir(d); err != nil {
			return fmt.Errorf("fat: mkdir %s: %w", d, err)
		}
	}
	for _, fl := range files {
		p, _ := cleanPath(fl.Path)
		if err := writeFile(fs, p, fl); err != nil {
			return fmt.Errorf("fat: write %s: %w", p, err)
		}
	}
	return nil
}

func cleanPath(p string) (string, error) {
	c := path.Clean("/" + strings.TrimPrefix(p, "/"))
	if c == "/" || strings.Contains(p, "\\") {
		return "", fmt.Errorf("fat: invalid file path %q", p)
	}
	return c, nil
}

func writeFile(fs filesystem.FileSystem, p string, fl File) error {
	out, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if fl.Data != nil {
		_, err = out.Write(fl.Data)
	} else {
		var in *os.File
		in, err = os.Open(fl.Source)
		if err == nil {
			_, err = io.Copy(out, in)
			in.Close()
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
