package update

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/internal/memlimit"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/remote"
)

// Bounds of what a static delta's superblock, which the server controls, may declare.
const (
	MaxSuperblock = 64 << 20
	MaxParts      = 1 << 16
	// maxPartUSize bounds the objects one part builds (ota-build makes parts of 32 MiB,
	// ostree of 16 MiB by default): a part is decompressed into a spool file of that size.
	maxPartUSize = 1 << 30
)

// DeltaDirPrefix starts the name of the directory under the repository's tmp/ where a
// delta's superblock and parts are downloaded; it is kept until the delta is applied, so a
// later Pull resumes the downloads.
const DeltaDirPrefix = "ota-delta-"

// puller is the state of one Pull.
type puller struct {
	c       *remote.Client
	repo    *ostree.Repo
	opts    PullOptions
	t       *target
	rep     progress.Reporter
	fetched atomic.Int64
}

// pullDelta fetches the static delta from from (nil: from scratch) to the target, checks
// its superblock against the digest the signed summary lists, downloads its parts with
// resume and applies them.
func (p *puller) pullDelta(ctx context.Context, from *ostree.Checksum) error {
	name := ostree.Delta{From: from, To: p.t.sum}.Name()
	dir := filepath.Join(p.repo.Path, "tmp", DeltaDirPrefix+name)
	l, err := p.loadSuperblock(ctx, from, dir)
	if err != nil {
		return err
	}
	// A fallback object is fetched on its own, before the parts that may need it.
	var fallbacks []ostree.Checksum
	for _, fb := range l.Fallbacks {
		if !p.repo.HasObject(fb.Checksum, ostree.ObjFile) {
			fallbacks = append(fallbacks, fb.Checksum)
		}
	}
	var todo []int
	var download, write, applied uint64
	for i, h := range l.Parts {
		applied += h.USize
		if h.Built(p.repo) {
			continue
		}
		todo = append(todo, i)
		write += h.USize
		f := partFile(l.Superblock, l.Zstd(), i)
		if st, err := os.Stat(filepath.Join(dir, f.name)); err != nil || uint64(st.Size()) != f.size {
			download += f.size
		}
	}
	for _, fb := range l.Fallbacks {
		download += fb.CompressedSize
		write += fb.USize
	}
	// The parts are downloaded whole before they are applied, so both must fit.
	if err := checkSpace(p.repo.Path, download+write, p.opts.MinFree, "the static delta "+name); err != nil {
		return err
	}
	p.rep.Stage("download", int64(len(todo)+len(fallbacks)))
	progress.Span(p.rep, int64(download), pctCheck, pctDownload)
	if err := p.fetchObjects(ctx, fallbacks); err != nil {
		return err
	}
	if err := p.fetchParts(ctx, l, dir, todo); err != nil {
		return err
	}
	p.rep.Done()
	p.rep.Stage("apply", int64(len(l.Parts)))
	progress.Span(p.rep, int64(applied), pctDownload, pctApply)
	err = delta.Apply(ctx, p.repo, l, delta.ApplyOptions{CommitMeta: p.t.meta, Progress: p.rep, XZ: delta.DecoderXZ(), Decoding: memlimit.Reserve})
	if err != nil {
		return fmt.Errorf("static delta %s: %w", name, err)
	}
	p.rep.Done()
	return os.RemoveAll(dir)
}

// loadSuperblock fetches the delta's superblock into dir (unless an earlier Pull did),
// verified against the summary's digest, and opens it.
func (p *puller) loadSuperblock(ctx context.Context, from *ostree.Checksum, dir string) (*delta.Loaded, error) {
	name := ostree.Delta{From: from, To: p.t.sum}.Name()
	sbPath := filepath.Join(dir, "superblock")
	if data, err := os.ReadFile(sbPath); err != nil || sha256.Sum256(data) != p.t.summary.Deltas[name] {
		data, err := getSuperblock(ctx, p.c, p.t, from)
		if err != nil {
			return nil, err
		}
		// Creates dir: a superblock refused leaves nothing behind.
		if err := p.repo.WriteFileAtomic(filepath.Join("tmp", filepath.Base(dir), "superblock"), data, 0o644); err != nil {
			return nil, err
		}
	}
	l, err := delta.Open(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("static delta %s: %w", name, err)
	}
	return l, checkSuperblock(l.Superblock, from, p.t.sum, name)
}

// checkSuperblock checks that a superblock is that of the delta from from to to, within
// the bounds.
func checkSuperblock(sb *delta.Superblock, from *ostree.Checksum, to ostree.Checksum, name string) error {
	switch {
	case sb.To != to || (from == nil) != (sb.From == nil) || from != nil && *sb.From != *from:
		return fmt.Errorf("static delta %s: its superblock is for another pair of commits", name)
	case len(sb.Parts) > MaxParts:
		return fmt.Errorf("static delta %s: %d parts, more than the %d allowed", name, len(sb.Parts), MaxParts)
	}
	for i, h := range sb.Parts {
		if h.USize > maxPartUSize {
			return fmt.Errorf("static delta %s: part %d builds %d bytes, more than the %d allowed", name, i, h.USize, maxPartUSize)
		}
	}
	return nil
}

// partDownload is the file the client downloads for a part, as the verified superblock
// describes it.
type partDownload struct {
	name string // in the delta's directory
	size uint64
	sum  ostree.Checksum
}

// partFile returns the file to download for part i of sb: its zstd file when the
// superblock lists zstd parts (zs), which delta.Apply decodes in-process at a fifth of the
// CPU time of the xz part, else the part itself.
func partFile(sb *delta.Superblock, zs []delta.ZstdPart, i int) partDownload {
	if zs != nil {
		return partDownload{delta.ZstdPartName(i), zs[i].Size, zs[i].Checksum}
	}
	return partDownload{strconv.Itoa(i), sb.Parts[i].Size, sb.Parts[i].Checksum}
}

// fetchParts downloads parts todo of l into dir (see partFile), opts.Connections at a
// time, each checked against its size and sha256 from the verified superblock.
func (p *puller) fetchParts(ctx context.Context, l *delta.Loaded, dir string, todo []int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, p.opts.Connections)
	var wg sync.WaitGroup
	base := ostree.DeltaDir(l.From, l.To)
	zs := l.Zstd()
	for _, i := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := p.fetchPart(ctx, base, dir, partFile(l.Superblock, zs, i))
			if errors.Is(err, remote.ErrNotFound) && zs != nil {
				// A repository copied by a tool that knows only ostree's files has the
				// superblock but not the zstd parts: the xz part does instead (Apply
				// reads the part file when its zstd file is not there).
				if err = os.Remove(filepath.Join(dir, delta.ZstdPartName(i))); errors.Is(err, fs.ErrNotExist) {
					err = nil
				}
				if err == nil {
					err = p.fetchPart(ctx, base, dir, partFile(l.Superblock, nil, i))
				}
			}
			if err != nil {
				cancel(fmt.Errorf("static delta part %d: %w", i, err))
				return
			}
			p.rep.Add(1, 0)
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// fetchPart downloads the part file f of the delta at base into dir, unless an earlier
// Pull did (a complete file was checked then).
func (p *puller) fetchPart(ctx context.Context, base, dir string, f partDownload) error {
	dst := filepath.Join(dir, f.name)
	if st, err := os.Stat(dst); err == nil && uint64(st.Size()) == f.size {
		p.rep.Add(0, int64(f.size))
		return nil
	}
	if err := p.c.Download(ctx, base+"/"+f.name, dst, remote.DownloadOptions{Size: int64(f.size), SHA256: f.sum[:]}); err != nil {
		return err
	}
	p.fetched.Add(1)
	return nil
}
