package commit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/rootfs"
)

// inlineMax is the largest file handled in memory; larger ones are streamed, so memory use
// stays bounded by (queue length + workers) × inlineMax whatever the file sizes.
const inlineMax = 4 << 20

// builder runs one commit's tree walk and its worker pool.
type builder struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	repo     *ostree.Repo
	opts     Options
	progress progress.Reporter

	files          int64
	written, bytes atomic.Int64
	links          []*fileNode
	// overridden and skipped record the paths of the overrides and the skip-list
	// entries that matched, for Unmatched.
	overridden, skipped map[string]bool
	// buffers carry streamed content from the walker to the workers. The fixed set (not a
	// sync.Pool, which the GC empties) bounds memory and saves re-faulting fresh pages.
	buffers chan *bytes.Buffer
}

func newBuilder(ctx context.Context, repo *ostree.Repo, opts Options) *builder {
	ctx, cancel := context.WithCancelCause(ctx)
	if opts.CompressionLevel == 0 {
		opts.CompressionLevel = ostree.DefaultCompressionLevel
	}
	p := opts.Progress
	if p == nil {
		p = progress.Discard
	}
	return &builder{ctx: ctx, cancel: cancel, repo: repo, opts: opts, progress: p,
		overridden: map[string]bool{}, skipped: map[string]bool{}}
}

// job is one content object to checksum and store.
type job struct {
	node *fileNode
	// Exactly one source of content, for regular files:
	data     *bytes.Buffer // in memory, returned to builder.buffers after use
	diskPath string        // a file on disk
	size     int64         // its size when listed
	spilled  bool          // diskPath is a temporary copy to remove afterwards
}

// build reads the whole source into a tree, storing content objects as it goes.
func (b *builder) build(src rootfs.Source) (*dirNode, error) {
	defer src.Close()
	b.progress.Stage("commit", 0)
	defer b.progress.Done()
	n := workers(b.opts.Workers)
	// Jobs holding a buffer or a spilled file: as many as there are buffers.
	q := newJobQueue(3 * n)
	b.buffers = make(chan *bytes.Buffer, 3*n)
	for range cap(b.buffers) {
		b.buffers <- new(bytes.Buffer)
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var own bytes.Buffer // for files read from disk
			for {
				j, ok := q.pop()
				if !ok {
					return
				}
				if b.ctx.Err() == nil {
					if err := b.store(j, &own); err != nil {
						b.cancel(err)
					}
				}
				b.release(j)
				q.done(j)
			}
		}()
	}
	root, err := b.walk(src, q)
	q.close()
	wg.Wait()
	if err == nil {
		err = context.Cause(b.ctx)
	}
	if err != nil {
		return nil, err
	}
	return root, b.resolveLinks()
}

// walk feeds the source's entries into the tree and regular files to the workers. Errors
// about an entry start with the source's name.
func (b *builder) walk(src rootfs.Source, q *jobQueue) (*dirNode, error) {
	named := func(err error) error {
		if name := src.Name(); name != "" {
			return fmt.Errorf("%s: %w", name, err)
		}
		return err
	}
	meta, err := b.impliedDir(".")
	if err != nil {
		return nil, named(err)
	}
	root := newDir(meta)
	for {
		if err := b.ctx.Err(); err != nil {
			return nil, context.Cause(b.ctx)
		}
		e, err := src.Next()
		if err == io.EOF {
			return root, nil
		} else if err != nil {
			return nil, err
		}
		if listed, ok := b.opts.SkipList.Match(e.Path); ok {
			b.skipped[listed] = true
			if err := drain(e.Content); err != nil {
				return nil, err
			}
			continue
		}
		if e.IsSpecial() {
			if !b.opts.SkipSpecial {
				return nil, named(&SpecialFileError{Path: e.Path, Mode: e.Mode})
			}
			continue
		}
		// A hard link shares its target's inode, so it has the target's metadata (tar
		// writes xattrs on the first member only); an override of its own path still applies.
		var target *fileNode
		if e.HardlinkTo != "" {
			if target, err = findFile(root, e.HardlinkTo); err != nil {
				return nil, named(fmt.Errorf("/%s: hard link to %w", e.Path, err))
			}
			for target.link != nil {
				target = target.link
			}
			h := target.header
			e.UID, e.GID, e.Mode, e.Xattrs = h.UID, h.GID, h.Mode, slices.Clone(h.Xattrs)
		} else {
			if b.opts.OwnerUID != nil {
				e.UID = *b.opts.OwnerUID
			}
			if b.opts.OwnerGID != nil {
				e.GID = *b.opts.OwnerGID
			}
		}
		if err := b.prepare(e); err != nil {
			return nil, named(err)
		}
		if err := b.impliedParents(root, e.Path); err != nil {
			return nil, named(err)
		}
		node, err := place(root, e)
		if err != nil {
			return nil, named(err)
		} else if node == nil {
			continue
		}
		b.files++
		if target != nil {
			node.link = target
			b.links = append(b.links, node)
			continue
		}
		j := job{node: node}
		switch {
		case !e.IsRegular():
		case e.DiskPath != "":
			j.diskPath, j.size = e.DiskPath, e.Size
		case e.Size <= inlineMax:
			j.data = <-b.buffers
			j.data.Reset()
			j.data.Grow(int(e.Size) + bytes.MinRead)
			if _, err := j.data.ReadFrom(e.Content); err != nil {
				return nil, err
			}
		default:
			if j.diskPath, err = b.spill(e.Content); err != nil {
				return nil, err
			}
			j.spilled, j.size = true, e.Size
		}
		if err := q.push(b.ctx, j); err != nil {
			b.release(j)
			return nil, err
		}
	}
}

// prepare applies the overrides and the repository's rules to an entry and checks it can
// be committed (rootfs.Entry.Check).
func (b *builder) prepare(e *rootfs.Entry) error {
	if b.opts.Overrides.Apply(e) {
		b.overridden[e.Path] = true
	}
	if b.repo.Mode == ostree.ModeBareUserOnly {
		canonicalize(e)
	}
	return e.Check()
}

// impliedDir returns the metadata of a directory the source does not list, which tar
// sources may leave out: the default, changed by an override of its path.
func (b *builder) impliedDir(p string) (ostree.DirMeta, error) {
	m := defaultDirMeta()
	e := rootfs.Entry{Path: p, Mode: m.Mode, UID: m.UID, GID: m.GID}
	if b.opts.Overrides == nil {
		return m, nil
	}
	err := b.prepare(&e)
	return ostree.DirMeta{UID: e.UID, GID: e.GID, Mode: e.Mode, Xattrs: e.Xattrs}, err
}

// impliedParents creates the missing parent directories of the path p with impliedDir's
// metadata. Only overrides make them differ from the ones place would create.
func (b *builder) impliedParents(root *dirNode, p string) error {
	if b.opts.Overrides == nil {
		return nil
	}
	d := root
	for start := 0; ; {
		j := strings.IndexByte(p[start:], '/')
		if j < 0 {
			return nil
		}
		end := start + j
		name := p[start:end]
		next, ok := d.dirs[name]
		if !ok {
			if _, isFile := d.files[name]; isFile {
				return nil // place reports it
			}
			m, err := b.impliedDir(p[:end])
			if err != nil {
				return err
			}
			next = newDir(m)
			d.dirs[name] = next
		}
		d, start = next, end+1
	}
}

// unmatched returns the lines of the overrides and the skip list that matched no entry,
// as warnings, or as the error of a strict commit.
func (b *builder) unmatched() ([]string, error) {
	us := append(b.opts.Overrides.Unmatched(func(p string) bool { return b.overridden[p] }),
		b.opts.SkipList.Unmatched(func(p string) bool { return b.skipped[p] })...)
	if len(us) > 0 && b.opts.Strict {
		msg := us[0].String()
		if len(us) > 1 {
			msg += fmt.Sprintf(" (and %d more such lines)", len(us)-1)
		}
		return nil, errors.New(msg)
	}
	var out []string
	for _, u := range us {
		out = append(out, u.String())
	}
	return out, nil
}

// spill copies a large streamed file to a temporary file in the repository, so the stream
// can move on while a worker compresses the copy.
func (b *builder) spill(r io.Reader) (string, error) {
	f, err := b.repo.CreateTemp(0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (b *builder) release(j job) {
	if j.data != nil {
		b.buffers <- j.data
	}
	if j.spilled {
		os.Remove(j.diskPath)
	}
}

// store checksums one content object and writes it unless the repository has it; buf is
// the worker's buffer for reading files from disk.
func (b *builder) store(j job, buf *bytes.Buffer) error {
	h := &j.node.header
	if h.IsSymlink() {
		return b.put(j.node, nil, 0)
	}
	if j.data != nil {
		return b.put(j.node, j.data.Bytes(), int64(j.data.Len()))
	}
	// Not os.Open: registering a regular file with the network poller costs several system
	// calls per file, a measurable share of a commit of many small files.
	fd, err := unix.Open(j.diskPath, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: j.diskPath, Err: err}
	}
	f := os.NewFile(uintptr(fd), j.diskPath)
	defer f.Close()
	if j.size <= inlineMax {
		buf.Reset()
		buf.Grow(int(j.size) + bytes.MinRead)
		if _, err := buf.ReadFrom(f); err != nil {
			return fmt.Errorf("reading %s: %w", j.diskPath, err)
		}
		return b.put(j.node, buf.Bytes(), int64(buf.Len()))
	}
	// Large files are read twice, hashing then compressing, rather than held in memory;
	// the second pass is skipped when the object is already stored.
	d := sha256.New()
	d.Write(h.Stream())
	size, err := io.Copy(d, f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", j.diskPath, err)
	}
	d.Sum(j.node.checksum[:0])
	b.bytes.Add(size)
	b.progress.Add(1, size)
	if b.opts.DryRun || b.repo.HasObject(j.node.checksum, ostree.ObjFile) {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return b.count(b.repo.WriteContent(j.node.checksum, h, io.LimitReader(f, size), size, b.opts.CompressionLevel))
}

// put checksums and stores a content object held in memory (nil for symlinks).
func (b *builder) put(n *fileNode, data []byte, size int64) error {
	d := sha256.New()
	d.Write(n.header.Stream())
	d.Write(data)
	d.Sum(n.checksum[:0])
	b.bytes.Add(size)
	b.progress.Add(1, size)
	if b.opts.DryRun {
		return nil
	}
	return b.count(b.repo.WriteContent(n.checksum, &n.header, bytes.NewReader(data), size, b.opts.CompressionLevel))
}

// count records a stored object in the statistics.
func (b *builder) count(written bool, err error) error {
	if written {
		b.written.Add(1)
	}
	return err
}

// resolveLinks gives hard links their checksums. A link with its target's metadata shares
// the target's object; one whose metadata an override changed gets its own, read back from
// the target's stored object.
func (b *builder) resolveLinks() error {
	for _, n := range b.links {
		t := n.link
		if sameHeader(&n.header, &t.header) {
			n.checksum = t.checksum
			continue
		}
		n.header.Mode = n.header.Mode&^ostree.ModeTypeMask | ostree.ModeRegular
		_, buf, err := b.repo.ReadContent(t.checksum)
		if err != nil && b.opts.DryRun {
			return errors.New("a dry run cannot checksum a hard link whose metadata an override changed")
		} else if err != nil {
			return err
		}
		if err := b.put(n, buf, int64(len(buf))); err != nil {
			return err
		}
	}
	return nil
}

func sameHeader(a, b *ostree.FileHeader) bool {
	return a.UID == b.UID && a.GID == b.GID && a.Mode == b.Mode &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y ostree.Xattr) bool {
			return x.Name == y.Name && bytes.Equal(x.Value, y.Value)
		})
}

// findFile returns the regular file at p.
func findFile(root *dirNode, p string) (*fileNode, error) {
	dir, name := path.Split(p)
	d, err := lookupExisting(root, path.Clean(dir+"."))
	if err == nil {
		if f, ok := d.files[name]; ok && f.header.Mode&ostree.ModeTypeMask == ostree.ModeRegular {
			return f, nil
		}
	}
	return nil, fmt.Errorf("/%s, which is not an earlier regular file", p)
}

func lookupExisting(root *dirNode, p string) (*dirNode, error) {
	d := root
	if p == "." {
		return d, nil
	}
	for _, name := range strings.Split(p, "/") {
		next, ok := d.dirs[name]
		if !ok {
			return nil, errors.New("no such directory")
		}
		d = next
	}
	return d, nil
}

// canonicalize applies the "canonical permissions" of bare-user-only repositories, as
// ostree commit does there: owner root, no xattrs, no setuid, setgid, sticky or
// group/other write bits (symlinks keep 0777, as every symlink has).
func canonicalize(e *rootfs.Entry) {
	e.UID, e.GID, e.Xattrs = 0, 0, nil
	if !e.IsSymlink() {
		e.Mode &= rootfs.ModeTypeMask | 0o755
	}
}
