package update

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/remote"
)

// Bounds of the objects a server sends.
const (
	// MaxMetaObject bounds a dirtree or dirmeta object (ostree: 10 MiB).
	MaxMetaObject = 16 << 20
	// smallObject is the largest content object fetched into memory; larger ones are
	// downloaded into the repository's tmp/ and resume after an interruption.
	smallObject = 1 << 20
)

// ObjectFilePrefix starts the name of the file under the repository's tmp/ where a large
// content object is downloaded.
const ObjectFilePrefix = "ota-object-"

// pullObjects fetches the target's tree object by object: first the dirtree and dirmeta
// objects (walking every tree, as a commit being pulled may have any part missing), then
// the content objects the repository lacks, opts.Connections at a time.
func (p *puller) pullObjects(ctx context.Context) error {
	p.rep.Stage("metadata", 0)
	progress.Span(p.rep, 0, pctCheck, pctCheck)
	w := &metaWalk{p: p, ctx: ctx, sem: make(chan struct{}, p.opts.Connections), seen: map[ostree.Checksum]bool{}}
	if err := w.meta(p.t.commit.RootMeta); err != nil {
		return err
	}
	if err := w.walk(p.t.commit.RootTree, ""); err != nil {
		return err
	}
	p.rep.Done()
	p.rep.Stage("download", int64(len(w.missing)))
	progress.Span(p.rep, 0, pctCheck, pctApply)
	if err := p.fetchObjects(ctx, w.missing); err != nil {
		return err
	}
	p.rep.Done()
	return nil
}

// metaWalk fetches a tree's metadata objects, walking subdirectories in parallel, and
// lists the content objects the repository lacks.
type metaWalk struct {
	p   *puller
	ctx context.Context
	sem chan struct{} // bounds the goroutines walking subdirectories

	mu      sync.Mutex
	seen    map[ostree.Checksum]bool // content objects listed
	missing []ostree.Checksum
}

// meta fetches dirmeta c unless present.
func (w *metaWalk) meta(c ostree.Checksum) error {
	if w.p.repo.HasObject(c, ostree.ObjDirMeta) {
		return nil
	}
	data, err := w.p.fetchMeta(w.ctx, c, ostree.ObjDirMeta)
	if err != nil {
		return err
	}
	if _, err := ostree.ParseDirMeta(data); err != nil {
		return fmt.Errorf("dirmeta %s: %w", c, err)
	}
	_, err = w.p.repo.WriteObject(ostree.ObjDirMeta, data)
	return err
}

// walk fetches dirtree c, at path p of the commit, and what it references.
func (w *metaWalk) walk(c ostree.Checksum, p string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	var data []byte
	var err error
	if w.p.repo.HasObject(c, ostree.ObjDirTree) {
		data, err = w.p.repo.ReadObject(ostree.ObjDirTree, c) // verified
	} else {
		data, err = w.p.fetchMeta(w.ctx, c, ostree.ObjDirTree)
	}
	if err != nil {
		return err
	}
	t, err := ostree.ParseDirTree(data)
	if err != nil {
		return fmt.Errorf("dirtree %s (/%s): %w", c, p, err)
	}
	if !w.p.repo.HasObject(c, ostree.ObjDirTree) {
		if _, err := w.p.repo.WriteObject(ostree.ObjDirTree, data); err != nil {
			return err
		}
	}
	w.mu.Lock()
	for _, f := range t.Files {
		if !w.seen[f.Checksum] && !w.p.repo.HasObject(f.Checksum, ostree.ObjFile) {
			w.seen[f.Checksum] = true
			w.missing = append(w.missing, f.Checksum)
		}
	}
	w.mu.Unlock()
	errs := make([]error, len(t.Dirs))
	var wg sync.WaitGroup
	for i, d := range t.Dirs {
		sub := filepath.Join(p, d.Name)
		if err := w.meta(d.Meta); err != nil {
			errs[i] = err
			break
		}
		select {
		case w.sem <- struct{}{}:
			wg.Go(func() {
				errs[i] = w.walk(d.Tree, sub)
				<-w.sem
			})
		default:
			errs[i] = w.walk(d.Tree, sub)
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchMeta fetches a metadata object and verifies its checksum.
func (p *puller) fetchMeta(ctx context.Context, c ostree.Checksum, t ostree.ObjectType) ([]byte, error) {
	data, err := p.c.Get(ctx, objectPath(c, t), MaxMetaObject)
	if err != nil {
		return nil, err
	}
	if ostree.Sum(data) != c {
		return nil, &ostree.CorruptError{Type: t, Checksum: c, Reason: "the server sent other bytes (tampered or corrupt)"}
	}
	p.fetched.Add(1)
	return data, nil
}

// fetchObjects fetches content objects, opts.Connections at a time.
func (p *puller) fetchObjects(ctx context.Context, objs []ostree.Checksum) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := make(chan ostree.Checksum)
	guard := &spaceGuard{dir: p.repo.Path, minFree: p.opts.MinFree}
	var wg sync.WaitGroup
	for range min(p.opts.Connections, max(len(objs), 1)) {
		wg.Go(func() {
			for c := range todo {
				if err := p.fetchContent(ctx, c, guard); err != nil {
					cancel(err)
					continue
				}
				p.fetched.Add(1)
				p.rep.Add(1, 0)
			}
		})
	}
	for _, c := range objs {
		select {
		case todo <- c:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(todo)
	wg.Wait()
	return context.Cause(ctx)
}

// fetchContent fetches content object c (.filez, as archive repositories serve it) and
// stores it in the bare repository, verified as it is written: an object whose bytes do
// not hash to c is not stored. Small objects are fetched into memory, large ones into a
// file under tmp/ that a later call continues; the response that reveals an object is
// large is that file's start, so no byte is fetched twice.
func (p *puller) fetchContent(ctx context.Context, c ostree.Checksum, guard *spaceGuard) error {
	if p.repo.HasObject(c, ostree.ObjFile) {
		return nil
	}
	dst := filepath.Join(p.repo.Path, "tmp", ObjectFilePrefix+c.String()+".filez")
	data, err := p.c.Fetch(ctx, objectPath(c, ostree.ObjFile), smallObject, dst, remote.DownloadOptions{
		Max: p.opts.MaxObject,
		Accept: func(size int64) error {
			if size > p.opts.MaxObject {
				return fmt.Errorf("object %s: %d bytes, more than the %d allowed", c, size, p.opts.MaxObject)
			}
			return guard.reserve(max(size, smallObject))
		},
	})
	if err != nil {
		return err
	}
	if data != nil {
		return p.storeContent(c, bytes.NewReader(data), guard)
	}
	defer os.Remove(dst)
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	return p.storeContent(c, bufio.NewReaderSize(f, 256<<10), guard)
}

// storeContent writes the archive-form object c read from r into the repository.
func (p *puller) storeContent(c ostree.Checksum, r io.Reader, guard *spaceGuard) error {
	o, err := ostree.OpenArchive(r, c)
	if err != nil {
		return err
	}
	defer o.Close()
	if o.Size > p.opts.MaxObject {
		return fmt.Errorf("object %s: %d bytes of content, more than the %d allowed", c, o.Size, p.opts.MaxObject)
	}
	if err := guard.reserve(o.Size); err != nil {
		return err
	}
	_, err = p.repo.WriteContent(c, &o.Header, o, o.Size, 0)
	return err
}
