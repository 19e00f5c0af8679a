package ostree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sync"
)

// Problem is one defect fsck found.
type Problem struct {
	// Path is the object's file (or the ref) concerned.
	Path string
	Err  error
}

// String formats the problem as "path: error".
func (p Problem) String() string { return fmt.Sprintf("%s: %v", p.Path, p.Err) }

// Fsck recomputes the checksum of every loose object, checks metadata objects are valid and
// in normal form as ostree's fsck does (dirtree names valid, sorted and unique, dirmeta
// xattrs sorted and unique, modes, symlink targets), and checks every ref's commit and the
// objects it reaches are present. It also reports what a checkout on Linux ext4 could not
// create: names longer than NAME_MAX, a name used by a file and a directory both, symlink
// targets and xattrs beyond the kernel's and ext4's limits (see CheckName and
// FileHeader.CheckLimits), and, in bare-user-only repositories, files with modes such
// repositories cannot hold. Problems in a ref's tree name their path there. It returns the
// problems found (nil when the repository is sound); the error is for failures to run at
// all.
func (r *Repo) Fsck(ctx context.Context) ([]Problem, error) {
	var (
		mu       sync.Mutex
		problems []Problem
		wg       sync.WaitGroup
		// limits holds the objects a checkout cannot create, and why, to report at
		// their paths in the trees.
		limits = map[objectKey]error{}
	)
	type item struct {
		c    Checksum
		t    ObjectType
		path string
	}
	items := make(chan item, 64)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range items {
				limit, err := r.checkObject(it.c, it.t)
				mu.Lock()
				if err != nil {
					problems = append(problems, Problem{Path: it.path, Err: err})
				} else if limit != nil {
					limits[objectKey{it.c, it.t}] = limit
				}
				mu.Unlock()
			}
		}()
	}
	err := r.WalkObjects(func(c Checksum, t ObjectType, path string) error {
		select {
		case items <- item{c, t, path}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(items)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	w := treeChecker{r: r, limits: limits, seen: map[Checksum]bool{}, reported: map[objectKey]bool{}}
	for _, ref := range refs {
		w.report = func(err error) {
			problems = append(problems, Problem{Path: "refs/heads/" + ref.Name, Err: err})
		}
		w.checkCommit(ref.Commit)
	}
	// Objects out of the refs' reach are reported by their own names.
	for k, err := range limits {
		if !w.reported[k] {
			problems = append(problems, Problem{Path: r.ObjectPath(k.c, k.t), Err: err})
		}
	}
	return problems, nil
}

// objectKey names an object.
type objectKey struct {
	c Checksum
	t ObjectType
}

// checkObject verifies one object against its name. It returns as err what makes the
// object invalid, and as limit, for a valid file or dirmeta, what a checkout on Linux
// ext4 could not create.
func (r *Repo) checkObject(c Checksum, t ObjectType) (limit, err error) {
	if t == ObjFile {
		obj, err := r.OpenContent(c)
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		if _, err := io.Copy(io.Discard, obj); err != nil { // verifies as it reads
			return nil, err
		}
		// What ostree's pull checks of bare-user-only content (its canonical permissions).
		if h := obj.Header; r.Mode == ModeBareUserOnly && !h.IsSymlink() && h.Mode&ModePermMask&^0o775 != 0 {
			return nil, fmt.Errorf("mode %#o has bits a bare-user-only repository cannot hold (%#o)", h.Mode, h.Mode&ModePermMask&^0o775)
		}
		return obj.Header.CheckLimits(), nil
	}
	// Read unverified, to report an invalid object as such before its checksum.
	data, err := os.ReadFile(r.ObjectPath(c, t))
	if err != nil {
		return nil, err
	}
	switch t {
	case ObjCommitMeta, ObjTombstoneCommit:
		_, err = ParseMetadata(data)
		return nil, err
	case ObjDirTree:
		_, err = ParseDirTree(data)
	case ObjDirMeta:
		var m DirMeta
		if m, err = ParseDirMeta(data); err == nil {
			// Sorted and unique, as ostree's fsck has checked since 2024.7.
			for i := 1; i < len(m.Xattrs) && err == nil; i++ {
				if m.Xattrs[i-1].Name >= m.Xattrs[i].Name {
					err = fmt.Errorf("dirmeta: xattr %q out of order or given twice", m.Xattrs[i].Name)
				}
			}
			limit = m.CheckLimits()
		}
	case ObjCommit:
		_, err = ParseCommit(data)
	}
	if got := Sum(data); err == nil && got != c {
		err = fmt.Errorf("corrupt object: checksum is %s", got)
	}
	if err != nil {
		return nil, err
	}
	return limit, nil
}

// treeChecker walks the trees of the refs' commits, reporting missing objects and, at
// their paths, invalid names and the objects in limits.
type treeChecker struct {
	r        *Repo
	limits   map[objectKey]error
	seen     map[Checksum]bool // dirtrees walked
	reported map[objectKey]bool
	report   func(error)
}

// problem reports err about the path p of a tree, quoted so that invalid bytes show.
func (w *treeChecker) problem(p string, err error) { w.report(fmt.Errorf("%q: %w", p, err)) }

// limit reports the limit problem of an object, if it has one, at path p.
func (w *treeChecker) limit(p string, c Checksum, t ObjectType) {
	k := objectKey{c, t}
	if err, ok := w.limits[k]; ok {
		w.reported[k] = true
		w.problem(p, err)
	}
}

// checkCommit checks that a commit's tree is complete. A missing parent is fine: history
// may be pruned or not pulled.
func (w *treeChecker) checkCommit(c Checksum) {
	cm, _, err := w.r.ReadCommit(c)
	if err != nil {
		w.report(err)
		return
	}
	w.checkTree(cm.RootTree, cm.RootMeta, "/")
}

func (w *treeChecker) checkTree(tree, meta Checksum, dir string) {
	if !w.r.HasObject(meta, ObjDirMeta) {
		w.problem(dir, fmt.Errorf("missing dirmeta %s", meta))
		return
	}
	w.limit(dir, meta, ObjDirMeta)
	if w.seen[tree] {
		return
	}
	w.seen[tree] = true
	t, err := w.r.ReadDirTree(tree)
	var ne *NameError
	if errors.As(err, &ne) {
		w.problem(path.Join(dir, ne.Name), fmt.Errorf("dirtree %s: %w", tree, ne.Err))
		return
	} else if err != nil {
		w.problem(dir, fmt.Errorf("dirtree %s: %w", tree, err))
		return
	}
	isFile := make(map[string]bool, len(t.Files))
	for _, f := range t.Files {
		p := path.Join(dir, f.Name)
		isFile[f.Name] = true
		if err := CheckName(f.Name); err != nil {
			w.problem(p, err)
		}
		if !w.r.HasObject(f.Checksum, ObjFile) {
			w.problem(p, fmt.Errorf("missing file object %s", f.Checksum))
			continue
		}
		w.limit(p, f.Checksum, ObjFile)
	}
	for _, d := range t.Dirs {
		p := path.Join(dir, d.Name)
		if err := CheckName(d.Name); err != nil {
			w.problem(p, err)
		}
		if isFile[d.Name] {
			w.problem(p, errors.New("both a file and a directory in the same dirtree"))
		}
		w.checkTree(d.Tree, d.Meta, p)
	}
}

// ContentDigest returns the "ContentChecksum" ostree log shows: SHA-256 of the binary root
// dirtree and dirmeta checksums.
func (c *Commit) ContentDigest() Checksum {
	return sha256.Sum256(bytes.Join([][]byte{c.RootTree[:], c.RootMeta[:]}, nil))
}
