package ostree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
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
// in normal form, and checks every ref's commit and the objects it reaches are present. It
// returns the problems found (nil when the repository is sound); the error is for failures
// to run at all.
func (r *Repo) Fsck(ctx context.Context) ([]Problem, error) {
	var (
		mu       sync.Mutex
		problems []Problem
		wg       sync.WaitGroup
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
				if err := r.checkObject(it.c, it.t); err != nil {
					mu.Lock()
					problems = append(problems, Problem{Path: it.path, Err: err})
					mu.Unlock()
				}
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
	seen := map[Checksum]bool{}
	for _, ref := range refs {
		if err := r.checkReachable(ref.Commit, seen); err != nil {
			problems = append(problems, Problem{Path: "refs/heads/" + ref.Name, Err: err})
		}
	}
	return problems, nil
}

// checkObject verifies one object against its name.
func (r *Repo) checkObject(c Checksum, t ObjectType) error {
	if t == ObjFile {
		obj, err := r.OpenContent(c)
		if err != nil {
			return err
		}
		defer obj.Close()
		_, err = io.Copy(io.Discard, obj) // verifies as it reads
		return err
	}
	// Read unverified, to report an invalid object as such before its checksum.
	data, err := os.ReadFile(r.ObjectPath(c, t))
	if err != nil {
		return err
	}
	switch t {
	case ObjCommitMeta, ObjTombstoneCommit:
		_, err = ParseMetadata(data)
		return err
	case ObjDirTree:
		_, err = ParseDirTree(data)
	case ObjDirMeta:
		_, err = ParseDirMeta(data)
	case ObjCommit:
		_, err = ParseCommit(data)
	}
	if got := Sum(data); err == nil && got != c {
		err = fmt.Errorf("corrupt object: checksum is %s", got)
	}
	return err
}

// checkReachable checks that a commit's tree is complete. A missing parent is fine: history
// may be pruned or not pulled.
func (r *Repo) checkReachable(c Checksum, seen map[Checksum]bool) error {
	cm, _, err := r.ReadCommit(c)
	if err != nil {
		return err
	}
	return r.checkTree(cm.RootTree, cm.RootMeta, "/", seen)
}

func (r *Repo) checkTree(tree, meta Checksum, path string, seen map[Checksum]bool) error {
	if !r.HasObject(meta, ObjDirMeta) {
		return fmt.Errorf("%s: missing dirmeta %s", path, meta)
	}
	if seen[tree] {
		return nil
	}
	seen[tree] = true
	t, err := r.ReadDirTree(tree)
	if err != nil {
		return fmt.Errorf("%s: dirtree %s: %w", path, tree, err)
	}
	for _, f := range t.Files {
		if !r.HasObject(f.Checksum, ObjFile) {
			return fmt.Errorf("%s%s: missing file object %s", path, f.Name, f.Checksum)
		}
	}
	for _, d := range t.Dirs {
		if err := r.checkTree(d.Tree, d.Meta, path+d.Name+"/", seen); err != nil {
			return err
		}
	}
	return nil
}

// ContentDigest returns the "ContentChecksum" ostree log shows: SHA-256 of the binary root
// dirtree and dirmeta checksums.
func (c *Commit) ContentDigest() Checksum {
	return sha256.Sum256(bytes.Join([][]byte{c.RootTree[:], c.RootMeta[:]}, nil))
}
