package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/otakit/ota/internal/ostree"
)

// Pull copies commit c and everything it references from src into the sysroot's
// repository, as `ostree pull-local` does: objects already present are skipped, and the
// commit is written last, after its detached metadata, so that a commit present is a
// commit complete. Content objects go through the sysroot's Attrs (a *Sparse lists some
// instead).
func (s *Sysroot) Pull(ctx context.Context, src *ostree.Repo, c ostree.Checksum) error {
	if err := s.writable(); err != nil {
		return err
	}
	if err := s.pull(ctx, src, c); err != nil {
		return fmt.Errorf("sysroot: pulling %s: %w", c, err)
	}
	return nil
}

func (s *Sysroot) pull(ctx context.Context, src *ostree.Repo, c ostree.Checksum) error {
	dst := s.repo
	if src.Path == dst.Path && dst.HasObject(c, ostree.ObjCommit) {
		return nil
	}
	cm, data, err := src.ReadCommit(c)
	if err != nil {
		return err
	}
	partial := filepath.Join(dst.Path, "state", c.String()+".commitpartial")
	if _, err := os.Stat(partial); dst.HasObject(c, ostree.ObjCommit) && err != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(partial, nil, 0o644); err != nil {
		return err
	}
	if err := copyMeta(src, dst, ostree.ObjDirMeta, cm.RootMeta); err != nil {
		return err
	}
	if err := pullObjects(ctx, src, dst, cm.RootTree, s.attrs); err != nil {
		return err
	}
	meta, err := src.ReadDetachedMetadata(c)
	if err != nil {
		return err
	}
	if meta != nil {
		if err := dst.WriteDetachedMetadata(c, meta); err != nil {
			return err
		}
	}
	if !s.nosync {
		if err := dst.Sync(); err != nil {
			return err
		}
	}
	if got, err := dst.WriteObject(ostree.ObjCommit, data); err != nil {
		return err
	} else if got != c {
		return fmt.Errorf("commit checksum mismatch: %s", got)
	}
	return os.Remove(partial)
}

func copyMeta(src, dst *ostree.Repo, t ostree.ObjectType, c ostree.Checksum) error {
	if dst.HasObject(c, t) {
		return nil
	}
	data, err := src.ReadObject(t, c) // verified
	if err != nil {
		return err
	}
	_, err = dst.WriteObject(t, data)
	return err
}

// pullObjects copies the objects of a tree that dst lacks. The tree is walked in parallel
// and feeds the content objects to workers on all cores as it finds them: decompressing and
// checksumming them is most of a deployment's work. The objects attrs leaves out are only
// listed (see Sparse).
func pullObjects(ctx context.Context, src, dst *ostree.Repo, tree ostree.Checksum, attrs Attrs) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type job struct {
		c    ostree.Checksum
		full bool // copy the object, else only list it
	}
	todo := make(chan job, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	listed := map[ostree.Checksum]SparseObject{}
	// More workers than cores: reading objects from a cold cache waits on the disk.
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range todo {
				if ctx.Err() != nil {
					continue
				}
				if j.full {
					if err := pullFile(src, dst, j.c, attrs); err != nil {
						cancel(err)
					}
					continue
				}
				h, size, err := src.ReadHeader(j.c)
				if err != nil {
					cancel(err)
					continue
				}
				mu.Lock()
				listed[j.c] = SparseObject{h, size}
				mu.Unlock()
			}
		})
	}
	// What was queued per object: listed, copied, or both when a path the deployment
	// reads turns up after one it does not.
	const listing, copying = 1, 2
	queued := map[ostree.Checksum]int{}
	var qmu sync.Mutex
	found := func(c ostree.Checksum, p string) error {
		want := copying
		if attrs.leavesOut(p) {
			want = listing
		}
		qmu.Lock()
		had := queued[c]
		queued[c] = had | want
		qmu.Unlock()
		if had&copying != 0 || (had != 0 && want == listing) {
			return nil
		}
		select {
		case todo <- job{c, want == copying}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	w := &treeWalk{ctx: ctx, src: src, dst: dst, found: found, sem: make(chan struct{}, 8)}
	err := w.walk(tree, "")
	close(todo)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	if err != nil {
		return err
	}
	for c, o := range listed {
		if queued[c]&copying == 0 {
			attrs.leftOut(c, o)
		}
	}
	return nil
}

// readByDeploy reports whether deploying reads the file at p (a path in the commit): the
// defaults of /etc, os-release (osTitle), and the kernel, initramfs and device trees
// (findKernel).
func readByDeploy(p string) bool {
	if strings.HasPrefix(p, "usr/etc/") || p == "usr/lib/os-release" {
		return true
	}
	rest, ok := strings.CutPrefix(p, "usr/lib/modules/")
	if !ok {
		return false
	}
	_, name, _ := strings.Cut(rest, "/")
	return name == kernelFile || slices.Contains(initramfsFiles, name) || name == devicetreeFile ||
		strings.HasPrefix(name, dtbDir+"/")
}

// treeWalk copies the dirtree and dirmeta objects of a tree, walking subdirectories in
// parallel, and calls found for each content object dst lacks.
type treeWalk struct {
	ctx      context.Context
	src, dst *ostree.Repo
	found    func(c ostree.Checksum, path string) error
	sem      chan struct{} // bounds the goroutines walking subdirectories
}

// walk handles the tree at path p of the commit.
func (w *treeWalk) walk(tree ostree.Checksum, p string) error {
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	data, err := w.src.ReadObject(ostree.ObjDirTree, tree) // verified
	if err != nil {
		return err
	}
	t, err := ostree.ParseDirTree(data)
	if err != nil {
		return err
	}
	for _, f := range t.Files {
		if w.dst.HasObject(f.Checksum, ostree.ObjFile) {
			continue
		}
		if err := w.found(f.Checksum, path.Join(p, f.Name)); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(t.Dirs))
	for i, sub := range t.Dirs {
		if err := copyMeta(w.src, w.dst, ostree.ObjDirMeta, sub.Meta); err != nil {
			return err
		}
		sp := path.Join(p, sub.Name)
		select {
		case w.sem <- struct{}{}:
			wg.Go(func() {
				errs[i] = w.walk(sub.Tree, sp)
				<-w.sem
			})
		default:
			errs[i] = w.walk(sub.Tree, sp)
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if w.dst.HasObject(tree, ostree.ObjDirTree) {
		return nil
	}
	_, err = w.dst.WriteObject(ostree.ObjDirTree, data)
	return err
}

// pullFile copies one content object. OpenContent's reader verifies it as it is written:
// a corrupt object fails the write, and nothing is stored.
func pullFile(src, dst *ostree.Repo, c ostree.Checksum, attrs Attrs) error {
	o, err := src.OpenContent(c)
	if err != nil {
		return err
	}
	defer o.Close()
	return attrs.writeObject(dst, c, o)
}
