// Package image writes flash-ready disk images: a partition table (MBR or GPT), FAT boot
// partitions populated from the board's boot files plus a U-Boot boot script, an ext4
// partition holding an OSTree sysroot with a commit deployed, and raw bootloader blobs at
// fixed offsets. Images are sparse; a .bmap and a .zst copy can be written next to them.
// No root is needed: ownership recorded while staging the sysroot is applied inside the
// ext4 filesystem (see image/ext4).
package image

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"golang.org/x/sys/unix"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/image/bmap"
	"github.com/otakit/ota/image/bootscript"
	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/image/fat"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/scratch"
	"github.com/otakit/ota/internal/sysroot"
)

// Options describe an image to build.
type Options struct {
	// Repo and Commit are the commit to deploy.
	Repo   *commit.Repo
	Commit commit.Checksum
	// Refspec is recorded as the deployment's origin, the ref `ostree admin upgrade` (and
	// the planned device client) follows for updates (e.g. "myos/stable"; default: the
	// commit checksum).
	Refspec string
	// OSName is the stateroot (default: the first component of a Refspec such as
	// myos/stable, else "os").
	OSName string
	// Layout is the board's layout (a preset or a layout file).
	Layout Layout
	// BootFiles is the directory holding the files the layout names.
	BootFiles string
	// Output is the image file to write, with mode 0666 less the umask; it is replaced
	// only when the build succeeds. The files are made in a directory beside it,
	// .NAME.ota-tmp-PID-RANDOM, which the next build of the same Output removes if this
	// one is killed.
	Output string
	// Size is the image size; zero sizes the image to its contents (see Partition.Size).
	Size int64
	// Kargs are extra kernel arguments; one whose key (the part before "=") matches a
	// default or a board argument replaces it, e.g. root=/dev/mmcblk0p2.
	Kargs []string
	// Bmap writes Output+".bmap"; Zstd writes Output+".zst".
	Bmap, Zstd bool
	// Progress receives the stages; nil is quiet.
	Progress commit.Reporter
	// TempDir is where the sysroot is staged: its metadata, /etc, kernel, initramfs and
	// device trees, a few megabytes (the other files go from the repository straight into
	// the image). Default: $TMPDIR if set, else /dev/shm if writable, else /tmp. The
	// staging directory, ota-image-PID-RANDOM, is removed by the next build if this one
	// is killed.
	TempDir string
}

// Extent is a region of the image.
type Extent struct {
	// Name is the partition name or raw blob source.
	Name string `json:"name"`
	// FS is the partition's content (see Partition.FS); empty for raw blobs.
	FS string `json:"fs,omitempty"`
	// Start and Size are in bytes.
	Start int64 `json:"start"`
	Size  int64 `json:"size"`
	// UUID is the partition's PARTUUID.
	UUID string `json:"partuuid,omitempty"`
}

// Result describes a built image.
type Result struct {
	// Image, Bmap and Zstd are the files written (Bmap and Zstd empty unless asked for).
	Image string `json:"image"`
	Bmap  string `json:"bmap,omitempty"`
	Zstd  string `json:"zstd,omitempty"`
	// Size is the image size; Allocated is what its sparse file occupies on disk.
	Size      int64 `json:"size"`
	Allocated int64 `json:"allocated"`
	// Partitions and Raw are the image's regions.
	Partitions []Extent `json:"partitions"`
	Raw        []Extent `json:"raw,omitempty"`
	// Kargs are the kernel arguments of the deployment.
	Kargs []string `json:"kargs"`
}

const sector = 512

// gptReserved is what the primary GPT (protective MBR, header, 128 entries) occupies at
// the start of the disk and the backup (entries and header) at its end.
const gptReserved = 34 * sector

// Build writes the image described by opts.
func Build(ctx context.Context, opts Options) (*Result, error) {
	p := opts.Progress
	if p == nil {
		p = progress.Discard
	}
	defer p.Done()
	l := opts.Layout
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	if opts.OSName == "" {
		opts.OSName = "os"
		if first, _, ok := strings.Cut(opts.Refspec, "/"); ok && first != "" {
			opts.OSName = first
		}
	}
	// Everything the layout names must exist, the kernel arguments be well-formed and a
	// given size hold the layout, before anything is written.
	for _, a := range opts.Kargs {
		if err := CheckKarg(a); err != nil {
			return nil, err
		}
	}
	if err := CheckSize(l, opts.Size); err != nil {
		return nil, err
	}
	ids := newIdentity(opts.Commit, l)
	sysIdx := slices.IndexFunc(l.Partitions, func(p Partition) bool { return p.FS == "sysroot" })
	fatFiles, err := resolveFiles(opts.BootFiles, l, sysIdx)
	if err != nil {
		return nil, err
	}
	raws, err := resolveRaw(opts.BootFiles, l.Raw)
	if err != nil {
		return nil, err
	}

	// The staging tree and the new files go to directories that a later build removes if
	// this one is killed (see package scratch); the outputs are renamed into place at the
	// end, so an interrupted build leaves none of them.
	stage, err := scratch.MkdirTemp(stagingDir(opts.TempDir), "ota-image-", 0o700)
	if err != nil {
		return nil, err
	}
	defer stage.RemoveAll()
	work, err := scratch.MkdirTemp(filepath.Dir(opts.Output), "."+filepath.Base(opts.Output)+".ota-tmp-", 0o700)
	if err != nil {
		return nil, err
	}
	defer work.RemoveAll()
	root := filepath.Join(stage.Path, "sysroot")
	kargs := mergeKargs(append([]string{"root=PARTUUID=" + ids.partUUID(l.Table, sysIdx), "rw", "rootwait"}, l.Kargs...), opts.Kargs)
	staged := &sysroot.Sparse{}
	so := sysroot.Options{OSName: opts.OSName, Kargs: kargs, Bootloader: "uboot", Refspec: opts.Refspec,
		Attrs: staged, NoSync: true}
	p.Stage("deploying the sysroot", 0)
	if err := sysroot.Init(root, so); err != nil {
		return nil, err
	}
	if err := sysroot.Deploy(ctx, root, opts.Repo, opts.Commit, so); err != nil {
		return nil, err
	}
	tree, err := stagedTree(root, staged.Attrs, staged, opts.Repo)
	if err != nil {
		return nil, err
	}
	files, fileBytes := dataFiles(tree)
	p.Add(files, fileBytes)
	p.Done()
	need := ext4.WriteSize(tree)
	res := &Result{Image: opts.Output, Kargs: kargs}
	if res.Partitions, res.Size, err = place(l, sysIdx, need, opts.Size); err != nil {
		return nil, err
	}
	for i, r := range raws {
		res.Raw = append(res.Raw, Extent{Name: l.Raw[i].Source, Start: int64(l.Raw[i].Offset), Size: r.size})
	}
	if err := checkOverlaps(l.Table, res); err != nil {
		return nil, err
	}
	for i := range res.Partitions {
		res.Partitions[i].UUID = ids.partUUID(l.Table, i)
	}

	// Mode 0666 less the umask, as for any file a command creates.
	tmp, err := os.OpenFile(filepath.Join(work.Path, "image"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, err
	}
	err = tmp.Truncate(res.Size)
	if err == nil {
		err = writeTable(tmp, l, res, ids)
	}
	for i, r := range raws {
		if err == nil {
			_, err = tmp.WriteAt(r.data, res.Raw[i].Start)
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	for i, part := range l.Partitions {
		e := res.Partitions[i]
		switch part.FS {
		case "fat", "fat16", "fat32":
			p.Stage("writing FAT partition "+e.Name, int64(len(fatFiles[i])))
			t := map[string]fat.Type{"fat": fat.Auto, "fat16": fat.FAT16, "fat32": fat.FAT32}[part.FS]
			label := part.Label
			if label == "" {
				label = strings.ToUpper(part.Name)
			}
			if err := fat.Create(tmp.Name(), e.Start, e.Size, fatFiles[i], fat.Options{Label: label, Type: t, Reproducible: true}); err != nil {
				return nil, fmt.Errorf("partition %s: %w", e.Name, err)
			}
			p.Add(int64(len(fatFiles[i])), fatBytes(fatFiles[i]))
			p.Done()
		case "sysroot":
			p.Stage("writing the sysroot partition", files)
			label := part.Label
			if label == "" {
				label = part.Name
			}
			var done int64
			eo := ext4.WriterOptions{Label: label, UUID: ids.fsUUID(), Progress: func(n, total int64) {
				p.Add(1, n-done)
				done = n
			}}
			if err := ext4.Write(ctx, tmp.Name(), e.Start, e.Size, tree, eo); err != nil {
				if ctx.Err() != nil {
					return nil, context.Cause(ctx)
				}
				return nil, fmt.Errorf("partition %s: %w", e.Name, err)
			}
			p.Done()
		}
	}
	// The block map and the compressed copy are made from the temporary image, and all
	// files are renamed into place at the end.
	var side [][2]string // temporary, final
	if opts.Bmap {
		p.Stage("writing the block map", 0)
		res.Bmap = opts.Output + ".bmap"
		f, err := os.OpenFile(filepath.Join(work.Path, "bmap"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err != nil {
			return nil, err
		}
		side = append(side, [2]string{f.Name(), res.Bmap})
		err = bmap.Write(f, tmp.Name())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", res.Bmap, err)
		}
		p.Add(1, res.Size)
		p.Done()
	}
	if opts.Zstd && ctx.Err() == nil {
		p.Stage("compressing", 1)
		res.Zstd = opts.Output + ".zst"
		zst := filepath.Join(work.Path, "zst")
		side = append(side, [2]string{zst, res.Zstd})
		if err := bmap.CompressZstd(zst, tmp.Name()); err != nil {
			return nil, err
		}
		p.Add(1, res.Size)
		p.Done()
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	if res.Allocated, err = allocated(tmp.Name()); err != nil {
		return nil, err
	}
	for _, f := range append([][2]string{{tmp.Name(), opts.Output}}, side...) {
		if err := os.Rename(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

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

// stagingDir returns where to stage a sysroot (see Options.TempDir).
func stagingDir(dir string) string {
	if dir != "" || os.Getenv("TMPDIR") != "" {
		return dir // scratch.MkdirTemp uses $TMPDIR for ""
	}
	if unix.Access("/dev/shm", unix.W_OK|unix.X_OK) == nil {
		return "/dev/shm"
	}
	return ""
}

// CheckKarg checks a kernel argument given by the user: it must not be empty, and must not
// hold control characters, which would break the boot loader entries and uEnv.txt it is
// written to (a newline would start a line of its own).
func CheckKarg(a string) error {
	if a == "" {
		return errors.New("empty kernel argument")
	}
	if i := strings.IndexFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("kernel argument %q holds the control character %q", a, a[i])
	}
	return nil
}

// mergeKargs appends extra to base, an argument of extra replacing those of base with
// the same key.
func mergeKargs(base, extra []string) []string {
	key := func(a string) string { k, _, _ := strings.Cut(a, "="); return k }
	out := slices.Clone(base)
	for _, e := range extra {
		out = slices.DeleteFunc(out, func(b string) bool { return key(b) == key(e) })
	}
	return append(out, extra...)
}

// identity derives the disk's and partitions' identifiers from the commit and layout, so
// the same inputs give the same image.
type identity struct{ seed [32]byte }

func newIdentity(c ostree.Checksum, l Layout) identity {
	layout, _ := json.Marshal(l) // of plain data: cannot fail
	return identity{sha256.Sum256(fmt.Appendf(nil, "ota-image %s %s", c, layout))}
}

func (id identity) bytes(what string) [16]byte {
	h := sha256.Sum256(append(id.seed[:], what...))
	var b [16]byte
	copy(b[:], h[:])
	b[6] = b[6]&0x0f | 0x40 // version 4 (random) UUID
	b[8] = b[8]&0x3f | 0x80
	return b
}

func uuidString(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// diskID is the MBR disk signature.
func (id identity) diskID() uint32 {
	b := id.bytes("disk")
	return binary.LittleEndian.Uint32(b[:4])
}

// partUUID is the PARTUUID of partition i (0-based) as the kernel's root= expects it.
func (id identity) partUUID(table string, i int) string {
	if table == "mbr" {
		return fmt.Sprintf("%08x-%02x", id.diskID(), i+1)
	}
	return uuidString(id.bytes(fmt.Sprint("partition ", i)))
}

func (id identity) fsUUID() string { return uuidString(id.bytes("ext4")) }

// CheckSize checks that an image of size bytes (0: sized to its contents) holds the
// layout's partitions and tables with room for at least an empty sysroot: what can be
// known before the sysroot is deployed and its real size known.
func CheckSize(l Layout, size int64) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	sysIdx := slices.IndexFunc(l.Partitions, func(p Partition) bool { return p.FS == "sysroot" })
	_, _, err := place(l, sysIdx, ext4.WriteSize(&ext4.Inode{Mode: ostree.ModeDir | 0o755}), size)
	return err
}

// place computes the partitions' extents and the image size.
func place(l Layout, sysIdx int, need, imageSize int64) ([]Extent, int64, error) {
	align := l.align()
	end := int64(sector)
	tail := int64(0)
	if l.Table == "gpt" {
		end, tail = gptReserved, gptReserved-sector
	}
	ext := make([]Extent, len(l.Partitions))
	for i, p := range l.Partitions {
		start := int64(p.Offset)
		if start == 0 {
			start = roundUp(max(end, align), align)
		} else if start < end {
			return nil, 0, fmt.Errorf("partition %s: offset %s overlaps what precedes it (which ends at %d)", p.Name, p.Offset, end)
		}
		size := int64(p.Size)
		if i == sysIdx {
			switch {
			case size > 0:
			case imageSize > 0 && i == len(l.Partitions)-1:
				size = (imageSize - tail - start) &^ 4095
				if size < need {
					left := "no room"
					if size > 0 {
						left = humanSize(size)
					}
					return nil, 0, fmt.Errorf("image size %s leaves %s for partition %s, which starts at %s: too small for the sysroot, which needs %s",
						humanSize(imageSize), left, p.Name, humanSize(start), humanSize(need))
				}
			default:
				// Room for an update as large as the system itself.
				size = roundUp(2*need+64<<20, align)
			}
			if size < need {
				return nil, 0, fmt.Errorf("partition %s: %s is too small for the sysroot, which needs %s", p.Name, humanSize(size), humanSize(need))
			}
		}
		ext[i] = Extent{Name: p.Name, FS: p.FS, Start: start, Size: size}
		end = start + size
	}
	total := roundUp(end+tail, sector)
	if imageSize == 0 {
		imageSize = roundUp(total, 1<<20)
	} else if imageSize < total {
		return nil, 0, fmt.Errorf("image size %s is too small for the layout, which needs %s", humanSize(imageSize), humanSize(total))
	}
	if l.Table == "mbr" && imageSize > 0xffffffff*sector {
		return nil, 0, fmt.Errorf("image size %s is too large for an MBR (2 TiB); use table: gpt", humanSize(imageSize))
	}
	return ext, imageSize, nil
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

// checkOverlaps checks that no two regions of the image (partition table, partitions,
// raw blobs) overlap and that all lie inside the image.
func checkOverlaps(table string, r *Result) error {
	type region struct {
		what       string
		start, end int64
	}
	regions := []region{{"the MBR", 0, sector}}
	if table == "gpt" {
		regions = []region{{"the primary GPT", 0, gptReserved}, {"the backup GPT", r.Size - gptReserved + sector, r.Size}}
	}
	for _, p := range r.Partitions {
		regions = append(regions, region{"partition " + p.Name, p.Start, p.Start + p.Size})
	}
	for _, b := range r.Raw {
		regions = append(regions, region{"raw blob " + b.Name, b.Start, b.Start + b.Size})
	}
	slices.SortStableFunc(regions, func(a, b region) int { return cmp.Compare(a.start, b.start) })
	for i, a := range regions {
		if a.end > r.Size {
			return fmt.Errorf("%s (%d-%d) ends beyond the image (%d bytes)", a.what, a.start, a.end, r.Size)
		}
		if i > 0 && regions[i-1].end > a.start {
			b := regions[i-1]
			return fmt.Errorf("%s (bytes %d-%d) overlaps %s (bytes %d-%d)", a.what, a.start, a.end, b.what, b.start, b.end)
		}
	}
	return nil
}

// writeTable writes the partition table (and, for MBR, the disk signature).
func writeTable(f *os.File, l Layout, r *Result, ids identity) error {
	if l.Table == "mbr" {
		t := &mbr.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector}
		for i, p := range r.Partitions {
			typ, _ := partitionType(l.Table, l.Partitions[i])
			t.Partitions = append(t.Partitions, &mbr.Partition{
				Index: i + 1, Bootable: l.Partitions[i].Bootable, Type: mbr.Type(typ[0]),
				Start: uint32(p.Start / sector), Size: uint32(p.Size / sector),
			})
		}
		if err := t.Write(f, r.Size); err != nil {
			return err
		}
		_, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, ids.diskID()), 440)
		return err
	}
	t := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: uuidString(ids.bytes("gpt"))}
	for i, p := range r.Partitions {
		typ, _ := partitionType(l.Table, l.Partitions[i])
		var attrs uint64
		if l.Partitions[i].Bootable {
			attrs = 1 << 2 // legacy BIOS bootable
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: i + 1, Start: uint64(p.Start / sector), End: uint64((p.Start+p.Size)/sector - 1), Size: uint64(p.Size),
			Type: gpt.Type(typ), Name: p.Name, GUID: p.UUID, Attributes: attrs,
		})
	}
	return t.Write(f, r.Size)
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

// allocated returns the bytes a (sparse) file occupies on disk.
func allocated(p string) (int64, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512, nil
}
