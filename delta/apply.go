package delta

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/release"
	"github.com/otakit/ota/internal/sign"
)

// Loaded is a delta read from disk: its superblock and where its parts are.
type Loaded struct {
	*Superblock
	// Dir holds the part files (empty for a self-contained file).
	Dir string
	// Signed reports whether the superblock came in an OSTSGNDT envelope.
	Signed bool

	file   string             // the superblock file
	inline map[int]inlineSpan // where the inline parts are, in data or else in file
	data   []byte             // a signed superblock as verified (nil when none was)
	zstd   []ZstdPart         // the zstd parts the superblock lists (nil: none)
}

// Load reads a delta from a directory holding a superblock and parts, or from a
// superblock file (parts beside it, or inline). A signed superblock is unwrapped; when
// keys are given, a valid signature by one of them is required. That signature covers the
// superblock only: Apply still requires the commit's own signature (see ApplyOptions).
// The superblock's Metadata holds its inline parts; Open leaves them in the file.
func Load(p string, keys []ed25519.PublicKey) (*Loaded, error) {
	l, err := Open(p, keys)
	if err != nil || len(l.inline) == 0 {
		return l, err
	}
	// The inline parts go back to their places in the metadata.
	idx := slices.Sorted(maps.Keys(l.inline))
	slices.SortFunc(idx, func(a, b int) int { return l.inline[a].at - l.inline[b].at })
	for _, i := range idx {
		span := l.inline[i]
		part, err := l.readPart(i)
		if err != nil || len(part) == 0 {
			return nil, fmt.Errorf("%s: inline part %d: %v", l.file, i, err)
		}
		e := gvariant.DictEntry{Key: span.key, Value: gvariant.Variant{Type: "(yay)", Value: []any{part[0], part[1:]}}}
		l.Metadata = slices.Insert(l.Metadata, min(span.at, len(l.Metadata)), e)
	}
	return l, nil
}

// Open is Load without reading the inline parts of a bundle: the superblock's Metadata
// leaves them out, and Apply streams them from the file. Apply of a delta Open returned
// holds no part in memory (but a signed bundle verified with keys: see docs/format.md,
// "Application").
func Open(p string, keys []ed25519.PublicKey) (*Loaded, error) {
	file := p
	if st, err := os.Stat(p); err != nil {
		return nil, err
	} else if st.IsDir() {
		file = filepath.Join(p, "superblock")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	l := &Loaded{Dir: filepath.Dir(file), file: file}
	var src io.ReaderAt = f
	off, n := int64(0), st.Size()
	magic := make([]byte, 8)
	if _, err := f.ReadAt(magic, 0); err == nil && string(magic) == "OSTSGNDT" {
		l.Signed = true
		if len(keys) > 0 {
			// The signature covers the superblock, inline parts included, and crypto/ed25519
			// verifies a message held in memory. The verified bytes are kept and the parts
			// are read from them: rereading the file could see other bytes.
			data, err := io.ReadAll(f)
			if err != nil {
				return nil, err
			}
			if l.data, err = unwrapSigned(data, keys); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			src, n = bytes.NewReader(l.data), int64(len(l.data))
		} else {
			// (taya{sv}): the magic, then the superblock, whose end is the one framing offset.
			ends, err := frameEnds(f, 0, n, 1, true)
			if err != nil || ends[0] < 8 {
				return nil, fmt.Errorf("%s: signed superblock: %w", file, errFraming)
			}
			off, n = 8, ends[0]-8
		}
	}
	if l.Superblock, l.inline, err = loadSuperblock(src, off, n); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if l.zstd, err = l.ZstdParts(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return l, nil
}

// ReadSuperblock parses a superblock as a server serves it: plain, or in the OSTSGNDT
// envelope of a signed one, unwrapped without verifying its signatures (Open verifies
// them). A client that checked the superblock against the digest a signed summary lists
// needs no more.
func ReadSuperblock(data []byte) (*Superblock, error) {
	if bytes.HasPrefix(data, []byte("OSTSGNDT")) {
		inner, err := unwrapSigned(data, nil)
		if err != nil {
			return nil, err
		}
		data = inner
	}
	return ParseSuperblock(data)
}

func unwrapSigned(data []byte, keys []ed25519.PublicKey) ([]byte, error) {
	v, err := gvariant.Decode("(taya{sv})", data)
	if err != nil {
		return nil, fmt.Errorf("signed superblock: %w", err)
	}
	f := v.([]any)
	inner := f[1].([]byte)
	if len(keys) == 0 {
		return inner, nil
	}
	sigs, err := ostree.Signatures(f[2].([]gvariant.DictEntry))
	if err != nil {
		return nil, fmt.Errorf("signed superblock: %w", err)
	}
	return inner, sign.Verify(keys, inner, sigs)
}

// CommitMeta returns the detached metadata (signatures) the superblock carries for the
// target commit, nil when it carries none.
func (s *Superblock) CommitMeta() []DictEntry {
	for _, e := range s.Metadata {
		if k := e.Key.(string); strings.HasPrefix(k, "deltas/") && strings.HasSuffix(k, "/commitmeta") {
			if v, ok := e.Value.(gvariant.Variant); ok && v.Type == "a{sv}" {
				return v.Value.([]gvariant.DictEntry)
			}
		}
	}
	return nil
}

// ApplyOptions controls Apply.
type ApplyOptions struct {
	// Keys, when set, are the trusted keys. The target commit must itself carry a valid
	// signature by one of them, in the detached metadata the delta carries for it; a signed
	// superblock must also verify with one of them (Load checks that), an additional check
	// that never stands in for the commit's own signature.
	Keys []ed25519.PublicKey
	// Ref, when set, is the local branch Apply points at the target commit. A commit older
	// than the one Ref points to (an earlier timestamp, or a lower version when both
	// commits have one, versions compared as dpkg compares them) is refused unless
	// AllowDowngrade is set.
	Ref            string
	AllowDowngrade bool
	// CommitMeta, when set, is the detached metadata written for the target commit instead
	// of the one the delta carries: that of a client that fetched and verified it itself.
	CommitMeta []DictEntry
	// Progress, when set, is told of each part applied: one item and its objects' size.
	Progress progress.Reporter
	// XZ, when set, is the xz command (XZ Utils, see DecoderXZ) that decompresses the parts
	// read from their own files, after each part's size and checksum are checked; the
	// built-in decoder (github.com/ulikunitz/xz) takes about twice liblzma's time. Inline
	// parts, and all parts without it, are decompressed by the built-in decoder as they are
	// read, and checked as they are read.
	XZ string
	// Decoding, when set, is called as each XZ command starts, with its dictionary size
	// (the memory the process fills besides its code and buffers), and the function it
	// returns once the process has ended: a caller that bounds the memory of the whole
	// operation makes room for it meanwhile (ota-client lowers its Go soft memory limit,
	// internal/memlimit).
	Decoding func(window uint64) (done func())
}

// Apply writes the objects of a loaded delta and its target commit into repo, verifying
// every object's checksum, and moves opts.Ref to the commit. The commit is written last,
// after every object it needs, and the ref after it, so an interrupted apply leaves no
// commit behind and running it again finishes the job. The signature and downgrade checks
// come first: a delta they refuse writes nothing.
func Apply(ctx context.Context, repo *ostree.Repo, d *Loaded, opts ApplyOptions) error {
	unlock, err := repo.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if opts.Ref != "" && !ostree.ValidRef(opts.Ref) {
		return fmt.Errorf("invalid ref name %q", opts.Ref)
	}
	if d.From != nil && !repo.HasObject(*d.From, ostree.ObjCommit) {
		return fmt.Errorf("delta base commit %s is not in %s", d.From, repo.Path)
	}
	cm, err := ostree.ParseCommit(d.Commit)
	if err != nil {
		return err
	}
	meta := d.CommitMeta()
	if opts.CommitMeta != nil {
		meta = opts.CommitMeta
	}
	if len(opts.Keys) > 0 {
		sigs, err := ostree.Signatures(meta)
		if err == nil {
			err = sign.Verify(opts.Keys, d.Commit, sigs)
		}
		if err != nil {
			return fmt.Errorf("commit %s is not signed by a trusted key (%w): the commit itself must be, whatever signed the delta", d.To, err)
		}
	}
	if opts.Ref != "" && !opts.AllowDowngrade {
		if err := checkUpgrade(repo, opts.Ref, d.To, &cm); err != nil {
			return err
		}
	}
	for _, fb := range d.Fallbacks {
		if !repo.HasObject(fb.Checksum, ostree.ObjFile) {
			return fmt.Errorf("delta needs object %s, which it leaves to an online pull (fallback); regenerate it without fallbacks to apply it offline", fb.Checksum)
		}
	}
	// Parts are independent (they only read objects of the base), so they are decoded and
	// applied on all cores, the costliest first so that no large part is left for the end.
	// Decoding (mostly the xz command's work) and executing (this process's) are two
	// stages with a slot per core each, so that a part is decoded while others execute; one
	// part more than the cores is in flight, which bounds the spools in tmp/. After each
	// part the objects written so far start going to disk (syncfs in the background) while
	// the next parts are applied: the final sync has less to wait for.
	errs := make([]error, len(d.Parts))
	var wg sync.WaitGroup
	var syncing atomic.Bool
	n := runtime.NumCPU()
	inFlight, executing := make(chan struct{}, n+1), make(chan struct{}, n)
	dec := &decoders{slots: make(chan struct{}, n), alone: make(chan struct{}, 1)}
	for _, i := range partOrder(d.Parts) {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		inFlight <- struct{}{}
		go func() {
			defer func() { <-inFlight; wg.Done() }()
			if err := applyPart(repo, d, i, &opts, dec, executing); err != nil {
				errs[i] = fmt.Errorf("part %d: %w", i, err)
				return
			}
			if opts.Progress != nil {
				opts.Progress.Add(1, int64(d.Parts[i].USize))
			}
			if syncing.CompareAndSwap(false, true) {
				wg.Go(func() {
					repo.Sync() // only early: the final Sync reports errors
					syncing.Store(false)
				})
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return err
	}
	if err := repo.Sync(); err != nil {
		return err
	}
	if err := checkComplete(repo, cm.RootTree, cm.RootMeta); err != nil {
		return fmt.Errorf("after applying the delta: %w", err)
	}
	if meta != nil {
		if err := repo.WriteDetachedMetadata(d.To, meta); err != nil {
			return err
		}
	}
	if _, err := repo.WriteObject(ostree.ObjCommit, d.Commit); err != nil {
		return err
	}
	if err := repo.Sync(); err != nil {
		return err
	}
	if opts.Ref == "" {
		return nil
	}
	return repo.WriteRef(opts.Ref, d.To)
}

// partOrder returns the indexes of parts, the costliest first: the bytes a part builds plus
// four times its compressed size (decompressing costs more per byte than writing).
func partOrder(parts []PartHeader) []int {
	cost := func(h PartHeader) uint64 { return h.USize + 4*h.Size }
	order := make([]int, len(parts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(cost(parts[b]), cost(parts[a])) })
	return order
}

// checkUpgrade returns an error when ref points to a commit that next, commit c, is older
// than (release.CheckUpgrade).
func checkUpgrade(repo *ostree.Repo, ref string, c ostree.Checksum, next *ostree.Commit) error {
	cur, ok, err := repo.ReadRef(ref)
	if err != nil || !ok || cur == c {
		return err
	}
	current, _, err := repo.ReadCommit(cur)
	if err != nil {
		return fmt.Errorf("ref %s: %w", ref, err)
	}
	if err := release.CheckUpgrade(&current, next); err != nil {
		return fmt.Errorf("commit %s is older than %s, which ref %s points to (%w): refusing to move the ref back", c, cur, ref, err)
	}
	return nil
}

// decoders are the slots of the decoding stage: one per core, and one for the parts
// decoded one at a time: those whose xz command needs a large window (see largeWindow),
// and zstd parts, whose decoder holds its window (up to 8 MiB) in this process's heap and
// decodes a part in a fraction of the time the part takes to execute, so that one window
// at a time keeps the heap within the client's memory limit (bench/RESULTS.md, "client:
// zstd parts by default").
type decoders struct {
	slots, alone chan struct{}
}

// largeWindow is the dictionary size above which an xz command decodes alone among those
// of large windows: an xz process fills its whole window decoding a part longer than it,
// and ostree makes parts with windows of 32 MiB (two such processes at once: 60-66 MiB
// of RSS besides ota-client's; ota-build's windows are 4 and 8 MiB).
const largeWindow = 16 << 20

// applyPart reads, verifies and executes part i unless the repository has all its objects,
// holding a slot of dec while it decodes the part and one of executing while it runs its
// operations.
func applyPart(repo *ostree.Repo, d *Loaded, i int, opts *ApplyOptions, dec *decoders, executing chan struct{}) error {
	h := d.Parts[i]
	if h.Built(repo) {
		return nil
	}
	var window uint64
	if opts.XZ != "" {
		window = d.partWindow(i)
	}
	alone := window > largeWindow || d.zstdFile(i) != ""
	if alone {
		dec.alone <- struct{}{}
	}
	dec.slots <- struct{}{}
	done := func() {}
	if opts.Decoding != nil && window > 0 {
		done = opts.Decoding(window)
	}
	// A payload is bounded by what it builds plus its patches and tables.
	p, spool, err := spoolPart(repo, d, i, 4*h.USize+64<<20, opts.XZ)
	done()
	<-dec.slots
	if alone {
		<-dec.alone
	}
	if err != nil {
		return err
	}
	defer spool.Close()
	executing <- struct{}{}
	defer func() { <-executing }()
	return (&executor{repo: repo, p: p, objects: h.Objects}).run()
}

// Built reports whether repo has every object the part builds: applying it would add
// nothing.
func (h PartHeader) Built(repo *ostree.Repo) bool {
	for _, o := range h.Objects {
		if !repo.HasObject(o.Checksum, o.Type) {
			return false
		}
	}
	return true
}

// checkComplete verifies every object of a tree is present, subtrees on several
// goroutines. The error is the first a walk in order would meet.
func checkComplete(repo *ostree.Repo, tree, meta ostree.Checksum) error {
	return checkTree(repo, tree, meta, make(chan struct{}, 2*runtime.NumCPU()))
}

func checkTree(repo *ostree.Repo, tree, meta ostree.Checksum, sem chan struct{}) error {
	if !repo.HasObject(meta, ostree.ObjDirMeta) {
		return fmt.Errorf("dirmeta %s missing", meta)
	}
	t, err := repo.ReadDirTree(tree)
	if err != nil {
		return fmt.Errorf("dirtree %s: %w", tree, err)
	}
	for _, f := range t.Files {
		if !repo.HasObject(f.Checksum, ostree.ObjFile) {
			return fmt.Errorf("file %s (%s) missing", f.Checksum, f.Name)
		}
	}
	errs := make([]error, len(t.Dirs))
	var wg sync.WaitGroup
	for i, d := range t.Dirs {
		select {
		case sem <- struct{}{}:
			wg.Go(func() {
				errs[i] = checkTree(repo, d.Tree, d.Meta, sem)
				<-sem
			})
		default:
			errs[i] = checkTree(repo, d.Tree, d.Meta, sem)
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
