// Package image writes flash-ready disk images: a partition table (MBR or GPT), FAT boot
// partitions populated from the board's boot files plus a U-Boot boot script, an ext4
// partition holding an OSTree sysroot with a commit deployed, and raw bootloader blobs at
// fixed offsets. Images are sparse; a .bmap and a .zst copy can be written next to them.
// No root is needed: ownership recorded while staging the sysroot is applied inside the
// ext4 filesystem (see image/ext4).
package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/image/bmap"
	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/image/fat"
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

// allocated returns the bytes a (sparse) file occupies on disk.
func allocated(p string) (int64, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512, nil
}
