package delta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/scratch"
	"github.com/otakit/ota/internal/sign"
)

// Options controls Generate.
type Options struct {
	// From is the base commit; nil makes a delta from scratch.
	From *ostree.Checksum
	To   ostree.Checksum
	// Inline puts the parts inside the superblock.
	Inline bool
	// MaxPartSize bounds the uncompressed payload of a part (default 32 MB).
	MaxPartSize uint64
	// MaxBsdiffSize bounds old+new size of a file pair worth a bsdiff (default 128 MB).
	MaxBsdiffSize uint64
	// DisableBsdiff ships changed files whole.
	DisableBsdiff bool
	// MinFallbackSize, when non-zero, leaves new files larger than this out of the parts:
	// clients fetch them as plain objects. Deltas with fallbacks cannot be applied offline.
	MinFallbackSize uint64
	// Uncompressed stores the parts without xz compression.
	Uncompressed bool
	// ZstdParts also writes each part's payload compressed with zstd, to the file N.zst
	// beside the part N, and lists these files in the superblock's metadata (ZstdPartsKey),
	// for clients that decode zstd faster than xz: Apply reads N.zst instead of N when it
	// is there. ostree ignores them. It needs parts in their own files (not Inline).
	ZstdParts bool
	// Zstd is the zstd command that compresses the zstd parts, by path or by name ("":
	// zstd in $PATH; see LookZstd). There is no built-in encoder: the command compresses
	// smaller than the xz parts, which keeps a client's download no larger.
	Zstd string
	// XZ chooses the xz encoder of the parts: XZAuto (the default) the xz command in
	// $PATH, else the built-in encoder; XZBuiltin the built-in encoder, which compresses
	// less but alike on every host; or an xz command, by path or by name (see LookXZ).
	// The encoder changes the delta's bytes, never what it holds; Result.Encoder names
	// the one used. The command is killed when the context of Generate ends.
	XZ string
	// Timestamp is recorded in the superblock; by default the target commit's, which keeps
	// deltas reproducible.
	Timestamp time.Time
	// Signers, when set, wrap the superblock in a signed OSTSGNDT envelope (which ostree
	// 2022.7 pull cannot read: use only for bundles and deltas applied by Apply).
	Signers []*Signer
	// Workers bounds the goroutines diffing and compressing (default: one per CPU).
	Workers int
	// Output, when set, names a file to write a self-contained delta (a bundle) to instead
	// of the repository's deltas directory; parts are then always inline. It is replaced
	// atomically and gets mode 0666 less the umask.
	Output string
	// Progress receives progress reports (default: none).
	Progress progress.Reporter
}

// Signer is commit.Signer, the one signer of commits, summaries, deltas and bundles: an
// ed25519 key in memory or behind any crypto.Signer (a hardware token, a KMS).
// commit.OpenSigner and commit.NewSigner return one.
type Signer = sign.Signer

// Defaults of Options, as ostree static-delta generate uses them.
const (
	DefaultMaxPartSize   = 32_000_000
	DefaultMaxBsdiffSize = 128_000_000
)

// Result describes a generated delta.
type Result struct {
	// Dir is the delta's directory relative to the repository, or the Output file.
	Dir        string
	Superblock *Superblock
	// Size is the total size of the superblock and part files (zstd parts included).
	Size int64
	// Encoder names the xz encoder of the parts and its version, e.g. "xz 5.4.1
	// (/usr/bin/xz)" or "builtin (github.com/ulikunitz/xz v0.5.17)"; "none" for
	// uncompressed parts.
	Encoder string
	// ZstdEncoder names the zstd command of the zstd parts and its version, e.g. "zstd
	// 1.5.4 (/usr/bin/zstd)"; "" without Options.ZstdParts.
	ZstdEncoder string
}

// object is one object of a commit's tree, with the first path it appears at.
type object struct {
	ref  ObjectRef
	path string
}

// treeObjects lists every dirtree, dirmeta and file object of a commit, each once, in tree
// order (parents first), and maps file paths to their objects.
func treeObjects(repo *ostree.Repo, commit ostree.Checksum) ([]object, map[string]ostree.Checksum, error) {
	cm, _, err := repo.ReadCommit(commit)
	if err != nil {
		return nil, nil, err
	}
	seen := map[ObjectRef]bool{}
	var objs []object
	files := map[string]ostree.Checksum{}
	add := func(t ostree.ObjectType, c ostree.Checksum, p string) bool {
		r := ObjectRef{t, c}
		if seen[r] {
			return false
		}
		seen[r] = true
		objs = append(objs, object{r, p})
		return true
	}
	var walk func(tree, meta ostree.Checksum, dir string) error
	walk = func(tree, meta ostree.Checksum, dir string) error {
		add(ostree.ObjDirMeta, meta, dir)
		if !add(ostree.ObjDirTree, tree, dir) {
			return nil
		}
		t, err := repo.ReadDirTree(tree)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		for _, f := range t.Files {
			p := path.Join(dir, f.Name)
			files[p] = f.Checksum
			add(ostree.ObjFile, f.Checksum, p)
		}
		for _, d := range t.Dirs {
			if err := walk(d.Tree, d.Meta, path.Join(dir, d.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	return objs, files, walk(cm.RootTree, cm.RootMeta, "/")
}

// Generate writes the static delta described by opts into repo's deltas directory,
// replacing any delta with the same name. The parts and the superblock are written to a
// temporary directory first and renamed into place, so readers never see half a delta; a
// temporary directory or file left by a killed run is removed by the next one.
func Generate(ctx context.Context, repo *ostree.Repo, opts Options) (*Result, error) {
	if opts.MaxPartSize == 0 {
		opts.MaxPartSize = DefaultMaxPartSize
	}
	if opts.MaxBsdiffSize == 0 {
		opts.MaxBsdiffSize = DefaultMaxBsdiffSize
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	if opts.Output != "" {
		opts.Inline, opts.MinFallbackSize = true, 0
	}
	if opts.ZstdParts && opts.Inline {
		return nil, errors.New("zstd parts need parts in their own files: not inline, not in a bundle")
	}
	if opts.Progress == nil {
		opts.Progress = progress.Discard
	}
	// The xz and zstd commands' --version (tens of milliseconds) run while the commits are
	// read.
	type encoderOrError struct {
		enc  *xzEncoder
		zstd *zstdEncoder
		err  error
	}
	probe := make(chan encoderOrError, 1)
	go func() {
		var e encoderOrError
		if !opts.Uncompressed {
			e.enc, e.err = newXZEncoder(ctx, opts.XZ)
		}
		if e.err == nil && opts.ZstdParts {
			e.zstd, e.err = newZstdEncoder(ctx, opts.Zstd)
		}
		probe <- e
	}()
	toCommit, commitBytes, err := repo.ReadCommit(opts.To)
	if err != nil {
		return nil, err
	}
	commitMeta, err := repo.ReadDetachedMetadata(opts.To)
	if err != nil {
		return nil, err
	}
	if err := checkSigned(opts.To, commitBytes, commitMeta, opts.Signers); err != nil {
		return nil, err
	}
	if opts.Timestamp.IsZero() {
		opts.Timestamp = time.Unix(int64(toCommit.Timestamp), 0)
	}
	toObjs, _, err := treeObjects(repo, opts.To)
	if err != nil {
		return nil, err
	}
	have := map[ObjectRef]bool{}
	var oldFiles map[string]ostree.Checksum
	if opts.From != nil {
		fromObjs, files, err := treeObjects(repo, *opts.From)
		if err != nil {
			return nil, fmt.Errorf("delta base: %w", err)
		}
		for _, o := range fromObjs {
			have[o.ref] = true
		}
		oldFiles = files
	}
	// Files that may be patched first, then the others, then (in run) the metadata.
	var meta, patchable, files []object
	for _, o := range toObjs {
		switch {
		case have[o.ref]:
		case o.ref.Type != ostree.ObjFile:
			meta = append(meta, o)
		case oldFiles[o.path] != (ostree.Checksum{}):
			patchable = append(patchable, o)
		default:
			files = append(files, o)
		}
	}
	files = append(patchable, files...)
	e := <-probe
	if e.err != nil {
		return nil, e.err
	}
	enc, encoder := e.enc, "none"
	if enc != nil {
		encoder = enc.name
	}

	// Parts are written to a directory in the repository's tmp/ that the next generation
	// removes if this one is killed.
	work, err := scratch.MkdirTemp(filepath.Join(repo.Path, "tmp"), ostree.ScratchPrefix, 0o755)
	if err != nil {
		return nil, err
	}
	defer work.RemoveAll()
	tmp := work.Path
	g := &generator{ctx: ctx, repo: repo, opts: opts, enc: enc, zstdEnc: e.zstd, oldFiles: oldFiles, oldByName: similarNames(oldFiles), tmp: tmp,
		diffMemory: budget{limit: diffMemoryLimit}}
	opts.Progress.Stage("delta", int64(len(files)))
	err = g.run(meta, files)
	opts.Progress.Done()
	if err != nil {
		return nil, err
	}

	dir := ostree.DeltaDir(opts.From, opts.To)
	sb := &Superblock{Timestamp: uint64(opts.Timestamp.Unix()), From: opts.From, To: opts.To,
		Commit: commitBytes, Fallbacks: g.fallbacks,
		Metadata: []gvariant.DictEntry{{Key: "ostree.endianness", Value: gvariant.Variant{Type: "y", Value: byte('l')}}}}
	res := &Result{Dir: dir, Superblock: sb, Encoder: encoder}
	if e.zstd != nil {
		res.ZstdEncoder = e.zstd.name
	}
	for i, h := range g.headers {
		sb.Parts = append(sb.Parts, *h)
		name := filepath.Join(tmp, fmt.Sprint(i))
		if !opts.Inline {
			res.Size += int64(h.Size)
			continue
		}
		pf, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		os.Remove(name)
		sb.Metadata = append(sb.Metadata, gvariant.DictEntry{Key: fmt.Sprintf("%s/%d", dir, i),
			Value: gvariant.Variant{Type: "(yay)", Value: []any{pf[0], pf[1:]}}})
	}
	if opts.ZstdParts {
		sb.Metadata = append(sb.Metadata, zstdPartsEntry(g.zstd))
		for _, z := range g.zstd {
			res.Size += int64(z.Size)
		}
	}
	if commitMeta != nil {
		sb.Metadata = append(sb.Metadata, gvariant.DictEntry{Key: dir + "/commitmeta",
			Value: gvariant.Variant{Type: "a{sv}", Value: commitMeta}})
	}
	sbBytes, err := sb.Marshal()
	if err != nil {
		return nil, err
	}
	if len(opts.Signers) > 0 {
		if sbBytes, err = signSuperblock(sbBytes, opts.Signers); err != nil {
			return nil, err
		}
	}
	res.Size += int64(len(sbBytes))
	if opts.Output != "" {
		res.Dir = opts.Output
		return res, scratch.WriteFile(opts.Output, sbBytes)
	}
	if err := os.WriteFile(filepath.Join(tmp, "superblock"), sbBytes, 0o644); err != nil {
		return nil, err
	}
	return res, placeDelta(repo, tmp, dir)
}

// placeDelta makes the finished delta in tmp durable and renames it into place, replacing
// an older delta of the same name.
func placeDelta(repo *ostree.Repo, tmp, dir string) error {
	if err := repo.Sync(); err != nil {
		return err
	}
	final := filepath.Join(repo.Path, dir)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// generator holds one Generate call's state.
type generator struct {
	ctx      context.Context
	repo     *ostree.Repo
	opts     Options
	enc      *xzEncoder   // nil: parts are not compressed
	zstdEnc  *zstdEncoder // with Options.ZstdParts
	oldFiles map[string]ostree.Checksum
	// oldByName finds a base file for a path the base lacks, by base name or by stem.
	oldByName map[string]ostree.Checksum
	// diffMemory bounds the memory of diffs running at once.
	diffMemory budget
	tmp        string // where part files are written, named by index

	headers   []*PartHeader // filled in by the compressors
	zstd      []*ZstdPart   // with Options.ZstdParts, one per part, filled in alike
	fallbacks []Fallback
}

// item is a new content object ready to pack: whole, or as a patch against base.
type item struct {
	ref    ObjectRef
	header ostree.FileHeader
	// data is the content (or symlink target), or the bsdiff patch when base is set, until
	// the packer spools it; dataLen is its length.
	data     []byte
	dataLen  int
	size     uint64 // content size
	base     *ostree.Checksum
	fallback bool
	// cost estimates what compressing data costs (see xzCost), when the packer splits.
	cost int
}

// pending is an item being prepared by a worker.
type pending struct {
	item
	err  error
	done chan struct{}
}

// run packs the new objects into parts: content in tree order, then the metadata. Workers
// load and diff files ahead of the packer within a bounded window, and parts are
// compressed while they fill (see packer), so memory holds only a few files.
//
// Metadata goes last because ostree 2022.7's pull walks the new commit's tree while parts
// are still being applied, and fetches as loose objects whatever the walk finds missing:
// content before metadata means the walk can only ever miss small dirtrees, never files.
func (g *generator) run(meta, files []object) error {
	n := g.opts.Workers
	tables, size, err := g.planParts(files, meta)
	if err != nil {
		return err
	}
	// Two parts may be open at once, one of each kind.
	single := size <= g.opts.MaxPartSize
	pk := packer{g: g, tables: tables, single: single, split: single && size >= splitMinSize, slots: make(chan struct{}, max(n, 2))}
	// A wide window keeps every worker busy while one diffs a large file.
	ordered := make(chan *pending, 8*n)
	work := make(chan struct {
		o object
		p *pending
	})
	ctx, cancel := context.WithCancel(g.ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two halves compress on two cores at once: the diffs that feed them must
			// not wait for them (tiny tree: 4.4 s of wall time rather than 5.1 on a busy
			// machine, same CPU time).
			if !pk.split {
				yieldToCompressors()
			}
			for w := range work {
				w.p.item, w.p.err = g.prepareOne(w.o)
				if pk.split {
					w.p.cost = xzCost(w.p.data)
				}
				close(w.p.done)
			}
		}()
	}
	go func() {
		defer close(ordered)
		defer close(work)
		for _, o := range files {
			p := &pending{done: make(chan struct{})}
			select {
			case ordered <- p:
			case <-ctx.Done():
				return
			}
			work <- struct {
				o object
				p *pending
			}{o, p}
		}
	}()

	for p := range ordered {
		if err != nil {
			cancel()
			continue // drain, letting the workers finish
		}
		<-p.done
		err = p.err
		if err == nil {
			err = pk.file(&p.item)
			g.opts.Progress.Add(1, int64(p.size))
		}
	}
	wg.Wait()
	if err == nil {
		err = g.ctx.Err()
	}
	if err == nil {
		err = pk.meta(meta)
	}
	return errors.Join(err, pk.finish())
}

// yieldToCompressors lowers the priority of the calling goroutine's thread, which the
// goroutine keeps until it exits, below that of the xz compressors. Each part is compressed
// by one xz, serially, while diffs run on every core: at equal priority a part's xz got two
// thirds of a core next to two diffing workers and finished its part long after the last
// diff (bench/, tiny tree: 1.75 s of 4.5 s), while a diff that waits delays nothing as long
// as xz has data. Best effort: the generation runs alike without it.
func yieldToCompressors() {
	runtime.LockOSThread()
	// getpriority(2) returns 20 - nice; a thread may always raise its own niceness.
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), min(20-p+workerNiceness, 19))
	}
}

// workerNiceness is how much nicer than the compressors the diffing workers run.
const workerNiceness = 10

// fallback reports whether a new file of size bytes is left out of the parts.
func (g *generator) fallback(size uint64) bool {
	return g.opts.MinFallbackSize > 0 && size > g.opts.MinFallbackSize && g.repo.Mode == ostree.ModeArchive
}
