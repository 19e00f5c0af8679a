package ostree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PruneOptions adjust what Prune keeps and whether it removes anything.
type PruneOptions struct {
	// DryRun removes nothing: the result says what would be removed.
	DryRun bool
	// Roots are commits kept as the refs' are, named for error messages: a sysroot's
	// deployments, whose refs may be missing.
	Roots []Ref
	// NoHistory keeps only the commits the refs, Roots and partial commits name, not
	// their ancestors: ostree's depth 0, with which `ostree admin cleanup` prunes a
	// sysroot's repository (an old deployment's commit, the parent of the new one, goes
	// once no deployment uses it).
	NoHistory bool
	// KeepPartial keeps the commits being pulled: a commit with a
	// state/<commit>.commitpartial mark younger than the temporary-file expiry (see
	// Prune) is kept with the objects of its tree that are present, as if a ref pointed to
	// it, so that an interrupted pull goes on where it stopped. A pull that writes its
	// commit object last leaves nothing that can be told apart as its own: those objects
	// are removed.
	KeepPartial bool
}

// PruneResult counts what Prune removed, or would remove in a dry run.
type PruneResult struct {
	// Objects is the number of loose objects in the repository before pruning, Reachable
	// the number kept.
	Objects, Reachable int
	// Removed counts the unreachable objects removed, by type name ("commit", "dirtree",
	// "dirmeta", "file", "commitmeta", ...).
	Removed map[string]int
	// Partial is the number of commits kept because they are being pulled (see
	// PruneOptions.KeepPartial).
	Partial int
	// Deltas is the number of static deltas removed (their target commit is gone).
	Deltas int
	// TempFiles is the number of entries of tmp/ removed (see Prune).
	TempFiles int
	// Bytes is the disk space freed: the sizes of every file removed.
	Bytes int64
}

// DefaultTmpExpiry is how old an entry of a repository's tmp/ that is not this package's
// must be before Prune removes it, unless the config's core.tmp-expiry-secs says
// otherwise: one day, as ostree.
const DefaultTmpExpiry = 24 * time.Hour

// Prune removes what no ref reaches, as `ostree prune --refs-only` does: every loose object
// that is not a commit a ref points to, an ancestor of one still stored, or the dirtree,
// dirmeta or file of such a commit's tree; the detached metadata (.commitmeta) and
// state/*.commitpartial marks of the commits removed; static deltas whose target commit is
// gone. Refs are the local branches, remote refs and mirror refs; opts adds roots and
// drops history (see PruneOptions). With opts.DryRun nothing is removed and the result says
// what would be.
//
// In tmp/ it removes the temporary files and scratch directories of this module's writers
// that an interrupted command left, and, as ostree does, any other entry (but tmp/cache)
// not modified for the expiry (core.tmp-expiry-secs, else DefaultTmpExpiry) that nobody
// holds locked: neither the entry nor an ostree-style NAME-lock beside it carries a
// flock(2) or fcntl lock. A download's partial file (internal/remote's DST.partial) is
// locked while it grows, and an interrupted one is kept for the expiry, so that a rerun
// resumes it.
//
// Prune holds the repository lock throughout; commits are removed before the objects they
// reach, so an interrupted prune leaves a repository fsck accepts. A ref or root naming a
// missing commit, or a missing dirtree in a complete commit, is an error: the repository
// needs repair first.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	expiry, err := r.tmpExpiry()
	if err != nil {
		return nil, err
	}
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &PruneResult{Removed: map[string]int{}}
	keep, err := r.reachable(ctx, opts, expiry, res)
	if err != nil {
		return nil, err
	}
	dryRun := opts.DryRun
	remove := func(p string) {
		// A symlink's target lives in its inode: only regular files free blocks.
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
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
	r.pruneTmp(expiry, dryRun, res)
	return res, nil
}

// reachable returns the objects the refs and roots reach (see Prune), counting the partial
// commits kept in res.
func (r *Repo) reachable(ctx context.Context, opts PruneOptions, expiry time.Duration, res *PruneResult) (map[objectKey]bool, error) {
	keep := map[objectKey]bool{}
	refs, err := r.allRefs()
	if err != nil {
		return nil, err
	}
	roots := make([]Ref, 0, len(refs)+len(opts.Roots))
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		roots = append(roots, Ref{Name: "ref " + name, Commit: refs[name]})
	}
	roots = append(roots, opts.Roots...)
	if opts.KeepPartial {
		partial, err := r.pulling(expiry)
		if err != nil {
			return nil, err
		}
		for _, c := range partial {
			roots = append(roots, Ref{Name: "partial commit", Commit: c})
		}
		res.Partial = len(partial)
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
	for _, root := range roots {
		for c, first := root.Commit, true; !keep[objectKey{c, ObjCommit}]; first = false {
			cm, _, err := r.ReadCommit(c)
			if errors.Is(err, fs.ErrNotExist) && !first {
				break // history not stored beyond this commit
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", root.Name, err)
			}
			keep[objectKey{c, ObjCommit}] = true
			_, perr := os.Stat(filepath.Join(r.Path, "state", c.String()+".commitpartial"))
			if err := tree(cm.RootTree, cm.RootMeta, perr == nil); err != nil {
				return nil, fmt.Errorf("%s: commit %s: %w", root.Name, c, err)
			}
			if !cm.HasParent || opts.NoHistory {
				break
			}
			c = cm.Parent
		}
	}
	return keep, nil
}

// pulling returns the stored commits with a state/<commit>.commitpartial mark younger than
// expiry, in name order: pulls in progress or interrupted lately.
func (r *Repo) pulling(expiry time.Duration) ([]Checksum, error) {
	ents, err := os.ReadDir(filepath.Join(r.Path, "state"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []Checksum
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".commitpartial")
		c, err := ParseChecksum(name)
		if !ok || err != nil || !r.HasObject(c, ObjCommit) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) <= expiry {
			out = append(out, c)
		}
	}
	return out, nil
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
