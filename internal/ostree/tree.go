package ostree

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// TreeEntry is one path of a committed tree, as Walk reports it.
type TreeEntry struct {
	// Path is absolute within the tree, "/" for the root.
	Path string
	// Dir is set for directories; Header for files and symlinks.
	Dir      *DirMeta
	Header   *FileHeader
	Size     int64
	Checksum Checksum
}

// Walk visits the tree of a commit from the directory at start (a path such as "/usr"), in
// depth-first name order; recursive false visits start and its direct children only.
func (r *Repo) Walk(commit Checksum, start string, recursive bool, fn func(TreeEntry) error) error {
	cm, _, err := r.ReadCommit(commit)
	if err != nil {
		return err
	}
	tree, meta := cm.RootTree, cm.RootMeta
	start = path.Clean("/" + start)
	for _, name := range strings.Split(strings.Trim(start, "/"), "/") {
		if name == "" {
			continue
		}
		t, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		i := sort.Search(len(t.Dirs), func(i int) bool { return t.Dirs[i].Name >= name })
		if i < len(t.Dirs) && t.Dirs[i].Name == name {
			tree, meta = t.Dirs[i].Tree, t.Dirs[i].Meta
			continue
		}
		j := sort.Search(len(t.Files), func(i int) bool { return t.Files[i].Name >= name })
		if j < len(t.Files) && t.Files[j].Name == name && path.Base(start) == name {
			return r.visitFile(start, t.Files[j].Checksum, fn)
		}
		return fmt.Errorf("%s: no such file or directory in commit %s", start, commit)
	}
	return r.walkDir(start, tree, meta, recursive, true, fn)
}

func (r *Repo) visitFile(p string, c Checksum, fn func(TreeEntry) error) error {
	h, size, err := r.header(c, false)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return fn(TreeEntry{Path: p, Header: &h, Size: size, Checksum: c})
}

func (r *Repo) walkDir(p string, tree, meta Checksum, recursive, top bool, fn func(TreeEntry) error) error {
	m, err := r.ReadDirMeta(meta)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := fn(TreeEntry{Path: p, Dir: &m, Checksum: tree}); err != nil {
		return err
	}
	if !recursive && !top {
		return nil
	}
	t, err := r.ReadDirTree(tree)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	// Files and directories interleaved by name, as `ostree ls` prints them.
	i, j := 0, 0
	for i < len(t.Files) || j < len(t.Dirs) {
		if j >= len(t.Dirs) || (i < len(t.Files) && t.Files[i].Name < t.Dirs[j].Name) {
			if err := r.visitFile(path.Join(p, t.Files[i].Name), t.Files[i].Checksum, fn); err != nil {
				return err
			}
			i++
			continue
		}
		d := t.Dirs[j]
		if err := r.walkDir(path.Join(p, d.Name), d.Tree, d.Meta, recursive, false, fn); err != nil {
			return err
		}
		j++
	}
	return nil
}
