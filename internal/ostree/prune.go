package ostree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/otakit/ota/internal/scratch"
)

// PruneResult counts what Prune removed, or would remove in a dry run.
type PruneResult struct {
	// Objects is the number of loose objects in the repository before pruning, Reachable
	// the number kept.
	Objects, Reachable int
	// Removed counts the unreachable objects removed, by type name ("commit", "dirtree",
	// "dirmeta", "file", "commitmeta", ...).
	Removed map[string]int
	// Deltas is the number of static deltas removed (their target commit is gone).
	Deltas int
	// TempFiles is the number of temporary files and directories that interrupted writers
	// left in tmp/ and that were removed.
	TempFiles int
	// Bytes is the disk space freed: the sizes of every file removed.
	Bytes int64
}

// Prune removes what no ref reaches, as `ostree prune --refs-only` does: every loose object
// that is not a commit a ref points to, an ancestor of one still stored, or the dirtree,
// dirmeta or file of such a commit's tree; the detached metadata (.commitmeta) and
// state/*.commitpartial marks of the commits removed; static deltas whose target commit is
// gone; and the temporary files and scratch directories of this module's writers that an
// interrupted command left in tmp/. Refs are the local branches, remote refs and mirror
// refs. With dryRun nothing is removed and the result says what would be. Prune holds the
// repository lock throughout; commits are removed before the objects they reach, so an
// interrupted prune leaves a repository fsck accepts. A ref to a missing commit, or a
// missing dirtree in a complete commit, is an error: the repository needs repair first.
func (r *Repo) Prune(ctx context.Context, dryRun bool) (*PruneResult, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &PruneResult{Removed: map[string]int{}}
	keep, err := r.reachable(ctx)
	if err != nil {
		return nil, err
	}
	remove := func(p string) {
		if st, err := os.Lstat(p); err == nil {
			res.Bytes += st.Size()
		}
		if !dryRun {
			os.Remove(p)
		}
	}

	// Commits first, then what they reach: a prune stopped halfway leaves no commit whose
	// objects are gone.
	var rest []objectKey
	var paths = map[objectKey]string{}
	var metas []objectKey
	err = r.WalkObjects(func(c Checksum, t ObjectType, path string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := objectKey{c, t}
		if t == ObjCommitMeta {
			metas = append(metas, k)
			paths[k] = path
			return nil
		}
		res.Objects++
		if keep[k] {
			res.Reachable++
			return nil
		}
		paths[k] = path
		if t != ObjCommit {
			rest = append(rest, k)
			return nil
		}
		remove(path)
		res.Removed[t.String()]++
		remove(filepath.Join(r.Path, "state", c.String()+".commitpartial"))
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Detached metadata goes with its commit (or stays with it).
	for _, k := range metas {
		if !keep[objectKey{k.c, ObjCommit}] {
			remove(paths[k])
			res.Removed[k.t.String()]++
		}
	}
	deltas, err := r.ListDeltas()
	if err != nil {
		return nil, err
	}
	for _, d := range deltas {
		if keep[objectKey{d.To, ObjCommit}] {
			continue
		}
		res.Deltas++
		dir := filepath.Join(r.Path, DeltaDir(d.From, d.To))
		res.Bytes += TreeSize(dir)
		remove(filepath.Join(r.Path, DeltaIndexPath(d.To)))
		if !dryRun {
			if err := os.RemoveAll(dir); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range rest {
		remove(paths[k])
		res.Removed[k.t.String()]++
	}

	tmp := filepath.Join(r.Path, "tmp")
	stale, _ := filepath.Glob(filepath.Join(tmp, TempPrefix+"*")) // ours, and we hold the lock
	dirs, _ := scratch.Stale(tmp, ScratchPrefix)
	for _, p := range append(stale, dirs...) {
		res.TempFiles++
		res.Bytes += TreeSize(p)
		if !dryRun {
			os.RemoveAll(p)
		}
	}
	return res, nil
}

// reachable returns the objects the refs reach (see Prune).
func (r *Repo) reachable(ctx context.Context) (map[objectKey]bool, error) {
	keep := map[objectKey]bool{}
	roots, err := r.allRefs()
	if err != nil {
		return nil, err
	}
	var tree func(tree, meta Checksum, partial bool) error
	tree = func(t, m Checksum, partial bool) error {
		keep[objectKey{m, ObjDirMeta}] = true
		if keep[objectKey{t, ObjDirTree}] {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		dt, err := r.ReadDirTree(t)
		if errors.Is(err, fs.ErrNotExist) && partial {
			return nil // a partial pull: what is missing was never fetched
		} else if err != nil {
			return fmt.Errorf("dirtree %s: %w", t, err)
		}
		keep[objectKey{t, ObjDirTree}] = true
		for _, f := range dt.Files {
			keep[objectKey{f.Checksum, ObjFile}] = true
		}
		for _, d := range dt.Dirs {
			if err := tree(d.Tree, d.Meta, partial); err != nil {
				return err
			}
		}
		return nil
	}
	for name, c := range roots {
		for first := true; !keep[objectKey{c, ObjCommit}]; first = false {
			cm, _, err := r.ReadCommit(c)
			if errors.Is(err, fs.ErrNotExist) && !first {
				break // history not stored beyond this commit
			} else if err != nil {
				return nil, fmt.Errorf("ref %s: %w", name, err)
			}
			keep[objectKey{c, ObjCommit}] = true
			_, perr := os.Stat(filepath.Join(r.Path, "state", c.String()+".commitpartial"))
			if err := tree(cm.RootTree, cm.RootMeta, perr == nil); err != nil {
				return nil, fmt.Errorf("ref %s: commit %s: %w", name, c, err)
			}
			if !cm.HasParent {
				break
			}
			c = cm.Parent
		}
	}
	return keep, nil
}

// allRefs returns the commit of every ref: local branches (refs/heads), remote refs
// (refs/remotes/REMOTE/...) and mirrored collection refs (refs/mirrors/COLLECTION/...),
// keyed by their path below refs/.
func (r *Repo) allRefs() (map[string]Checksum, error) {
	out := map[string]Checksum{}
	root := filepath.Join(r.Path, "refs")
	for _, kind := range []string{"heads", "remotes", "mirrors"} {
		err := filepath.WalkDir(filepath.Join(root, kind), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == filepath.Join(root, kind) {
				return fs.SkipDir
			} else if err != nil || d.IsDir() {
				return err
			}
			name, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			c, err := ParseChecksum(strings.TrimSpace(string(data)))
			if err != nil {
				return fmt.Errorf("ref %s: %w", filepath.ToSlash(name), err)
			}
			out[filepath.ToSlash(name)] = c
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TreeSize returns the total size of the files at or below p, such as a static delta's
// directory; what cannot be read counts as nothing.
func TreeSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
