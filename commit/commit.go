// Package commit turns a root filesystem into an OSTree commit: it reads a tree source,
// stores every file, directory and the commit object in a repository, signs the commit and
// moves the branch, hashing and compressing files on all cores.
//
// A commit is crash safe: objects are written to temporary files and renamed into place,
// the repository is synced before the commit object is written and again before the branch
// moves, so a killed or failed commit leaves the repository valid with the branch unchanged.
//
// This package also names the types that it and the packages delta, image and builder take:
// Repo, Checksum, Source, Overrides, SkipList, Reporter and Signer, re-exported from the
// module's internal packages, with the functions that make values of them (OpenRepo,
// InitRepo, ParseChecksum, OpenTree, OpenTar, ParseOverrides, ParseSkipList, OpenSigner,
// NewSigner). The formats are described in docs/format.md.
package commit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
	"github.com/otakit/ota/internal/sign"
)

// Signer is the one signer of commits, summaries, deltas and bundles: an ed25519 key in
// memory or behind any crypto.Signer (a hardware token, a KMS). OpenSigner and NewSigner
// return one.
type Signer = sign.Signer

// Options describes a commit.
type Options struct {
	// Branch is the ref to create or move.
	Branch string
	// Subject and Body are the commit message.
	Subject, Body string
	// Version, when set, is stored as the "version" metadata string.
	Version string
	// Metadata holds extra string metadata, written in order after "version".
	Metadata []KeyValue
	// Parent is the parent commit. When nil the branch's current commit is used, unless
	// NoParent is set.
	Parent   *Checksum
	NoParent bool
	// Timestamp is the commit time.
	Timestamp time.Time
	// OwnerUID and OwnerGID, when set, replace every entry's owner (before Overrides).
	OwnerUID, OwnerGID *uint32
	// Overrides adjusts per-path ownership, modes and xattrs.
	Overrides *Overrides
	// SkipList names paths left out of the commit.
	SkipList *SkipList
	// SkipSpecial leaves device nodes, FIFOs and sockets out instead of failing.
	SkipSpecial bool
	// Strict fails the commit, before its tree and commit objects are written, when a line
	// of Overrides or SkipList matches nothing in the tree; without it such lines are
	// reported in Result.Warnings.
	Strict bool
	// Signers sign the commit; their signatures go to the detached metadata.
	Signers []*Signer
	// CompressionLevel is the deflate level of archive repositories (default 6).
	CompressionLevel int
	// Workers is the number of hashing and compressing goroutines (default: one per CPU).
	Workers int
	// Progress receives progress reports (default: none).
	Progress Reporter
	// Bootable converts a plain root filesystem to the layout `ostree admin deploy` boots
	// (kernel in /usr/lib/modules/<kver>, /etc in /usr/etc, /var recreated by tmpfiles.d;
	// see bootable.go) and marks the commit ostree.bootable.
	Bootable bool
	// DryRun builds and checksums the tree but writes nothing: Result has the root tree
	// and dirmeta checksums and no commit.
	DryRun bool
	// SkipIfUnchanged writes no commit when the tree equals the parent's: Result.Commit
	// is the parent and Unchanged is set.
	SkipIfUnchanged bool
	// KernelVersion is the kernel release of a bootable commit, for a kernel whose file
	// name has none (it wins over a single /lib/modules directory); it also picks one of
	// several /boot/vmlinuz-<kver> kernels.
	KernelVersion string
}

// KeyValue is one string metadata entry.
type KeyValue struct{ Key, Value string }

// Result describes a finished commit.
type Result struct {
	Commit Checksum
	// Parent is the commit's parent, if it has one.
	Parent *Checksum
	// Files counts the regular files and symlinks in the tree; FilesWritten how many new
	// content objects were stored; Bytes the content bytes read.
	Files, FilesWritten int64
	Bytes               int64
	// RootTree and RootMeta are the checksums of the root directory's dirtree and dirmeta.
	RootTree, RootMeta Checksum
	// Unchanged reports that SkipIfUnchanged found the parent's tree, so no commit was
	// written.
	Unchanged bool
	// Warnings are problems that did not stop the commit, one line each: the lines of
	// Overrides and SkipList that matched nothing in the tree, as
	// `overrides.txt:12: "usr/bin/missing" matches nothing in the tree`.
	Warnings []string
}

// SpecialFileError reports a device node, FIFO or socket, which OSTree cannot store.
type SpecialFileError struct {
	Path string
	Mode uint32
}

// Error names the path and the kind of file.
func (e *SpecialFileError) Error() string {
	kind := map[uint32]string{rootfs.ModeChar: "character device", rootfs.ModeBlock: "block device",
		rootfs.ModeFIFO: "FIFO", rootfs.ModeSocket: "socket"}[e.Mode&rootfs.ModeTypeMask]
	return fmt.Sprintf("/%s: a %s cannot be stored in an OSTree commit", e.Path, kind)
}

// Commit stores the tree read from src in repo and points opts.Branch at the new commit.
// The repository lock is held throughout.
func Commit(ctx context.Context, repo *Repo, src Source, opts Options) (Result, error) {
	var res Result
	if !ostree.ValidRef(opts.Branch) {
		return res, fmt.Errorf("invalid branch name %q", opts.Branch)
	}
	if !opts.DryRun { // which writes nothing, not even the lock file
		unlock, err := repo.Lock()
		if err != nil {
			return res, err
		}
		defer unlock()
	}

	parent := opts.Parent
	if parent == nil && !opts.NoParent {
		c, ok, err := repo.ReadRef(opts.Branch)
		if err != nil {
			return res, err
		}
		if ok {
			parent = &c
		}
	}
	if parent != nil && !repo.HasObject(*parent, ostree.ObjCommit) {
		return res, fmt.Errorf("parent commit %s is not in %s", parent, repo.Path)
	}
	res.Parent = parent

	b := newBuilder(ctx, repo, opts)
	root, err := b.build(src)
	if err != nil {
		return res, err
	}
	if res.Warnings, err = b.unmatched(); err != nil {
		return res, err
	}
	if opts.Bootable {
		if opts.KernelVersion, err = b.makeBootable(root); err != nil {
			return res, err
		}
	}
	tree, meta, err := b.writeDir(root)
	if err != nil {
		return res, err
	}
	res.Files, res.FilesWritten, res.Bytes = b.files, b.written.Load(), b.bytes.Load()
	res.RootTree, res.RootMeta = tree, meta
	if opts.DryRun {
		return res, nil
	}
	if opts.SkipIfUnchanged && parent != nil {
		pc, _, err := repo.ReadCommit(*parent)
		if err != nil {
			return res, err
		}
		if pc.RootTree == tree && pc.RootMeta == meta {
			res.Commit, res.Parent, res.Unchanged = *parent, nil, true
			if pc.HasParent {
				res.Parent = &pc.Parent
			}
			return res, nil
		}
	}

	cm := ostree.Commit{Subject: opts.Subject, Body: opts.Body, RootTree: tree, RootMeta: meta,
		Timestamp: uint64(opts.Timestamp.Unix()), Metadata: commitMetadata(opts)}
	if parent != nil {
		cm.Parent, cm.HasParent = *parent, true
	}
	data := cm.Marshal()
	// Every object the commit references must be durable before the commit exists.
	if err := repo.Sync(); err != nil {
		return res, err
	}
	if res.Commit, err = repo.WriteObject(ostree.ObjCommit, data); err != nil {
		return res, err
	}
	if _, err := AddSignatures(repo, res.Commit, data, opts.Signers); err != nil {
		return res, err
	}
	if err := repo.Sync(); err != nil {
		return res, err
	}
	return res, repo.WriteRef(opts.Branch, res.Commit)
}

func commitMetadata(opts Options) []gvariant.DictEntry {
	var m []gvariant.DictEntry
	str := func(k, v string) {
		m = append(m, gvariant.DictEntry{Key: k, Value: gvariant.Variant{Type: "s", Value: v}})
	}
	if opts.Version != "" {
		str("version", opts.Version)
	}
	for _, kv := range opts.Metadata {
		str(kv.Key, kv.Value)
	}
	if opts.Bootable { // as `ostree commit --bootable` marks a commit
		m = append(m, gvariant.DictEntry{Key: "ostree.bootable", Value: gvariant.Variant{Type: "b", Value: true}})
		str("ostree.linux", opts.KernelVersion)
	}
	// Like `ostree commit`, bind the commit to its branch so a client can tell a commit
	// served under another ref apart.
	return append(m, gvariant.DictEntry{Key: "ostree.ref-binding",
		Value: gvariant.Variant{Type: "as", Value: []string{opts.Branch}}})
}

// AddSignatures signs the commit c, whose object's bytes are commitBytes, with each of
// signers whose key has no signature in its detached metadata (key ostree.sign.ed25519)
// yet, keeping the signatures it has: one signature per key, so signing again changes
// nothing (docs/format.md, "Detached metadata and signatures"). It returns how many
// signatures it added and rewrites the detached metadata only when its signature list
// changed.
func AddSignatures(repo *Repo, c Checksum, commitBytes []byte, signers []*Signer) (int, error) {
	if len(signers) == 0 {
		return 0, nil
	}
	meta, err := repo.ReadDetachedMetadata(c)
	if err != nil {
		return 0, err
	}
	have, err := signatureList(c, meta)
	if err != nil {
		return 0, err
	}
	sigs, added, err := sign.Merge(commitBytes, have, signers)
	if err != nil {
		return 0, fmt.Errorf("signing commit %s: %w", c, err)
	}
	if added == 0 && len(sigs) == len(have) {
		return 0, nil
	}
	list := make([]any, len(sigs))
	for i, s := range sigs {
		list[i] = s
	}
	entry := gvariant.DictEntry{Key: ostree.SignEd25519Key, Value: gvariant.Variant{Type: "aay", Value: list}}
	if i := slices.IndexFunc(meta, func(e gvariant.DictEntry) bool { return e.Key == ostree.SignEd25519Key }); i >= 0 {
		meta[i] = entry
	} else {
		meta = append(meta, entry)
	}
	return added, repo.WriteDetachedMetadata(c, meta)
}

// Signatures returns the ed25519 signatures in a commit's detached metadata.
func Signatures(repo *Repo, c Checksum) ([][]byte, error) {
	meta, err := repo.ReadDetachedMetadata(c)
	if err != nil {
		return nil, err
	}
	return signatureList(c, meta)
}

// signatureList returns the ed25519 signatures in meta, commit c's detached metadata.
func signatureList(c ostree.Checksum, meta []gvariant.DictEntry) ([][]byte, error) {
	sigs, err := ostree.Signatures(meta)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	return sigs, nil
}

// dirNode is a directory of the tree being built.
type dirNode struct {
	meta  ostree.DirMeta
	dirs  map[string]*dirNode
	files map[string]*fileNode
}

func newDir(meta ostree.DirMeta) *dirNode {
	return &dirNode{meta: meta, dirs: map[string]*dirNode{}, files: map[string]*fileNode{}}
}

// fileNode is a regular file or symlink; checksum is filled in by a worker.
type fileNode struct {
	header   ostree.FileHeader
	checksum ostree.Checksum
	// link is the node this one is a hard link to (tar sources).
	link *fileNode
}

func defaultDirMeta() ostree.DirMeta { return ostree.DirMeta{Mode: ostree.ModeDir | 0o755} }

// lookupDir returns the directory at p, creating missing parents with default metadata.
func lookupDir(root *dirNode, p string) (*dirNode, error) {
	d := root
	if p == "." {
		return d, nil
	}
	names := strings.Split(p, "/")
	for i, name := range names {
		if f, isFile := d.files[name]; isFile {
			kind := "file"
			if f.header.IsSymlink() {
				kind = "symlink"
			}
			return nil, fmt.Errorf("/%s is a %s, not a directory", strings.Join(names[:i+1], "/"), kind)
		}
		next, ok := d.dirs[name]
		if !ok {
			next = newDir(defaultDirMeta())
			d.dirs[name] = next
		}
		d = next
	}
	return d, nil
}

// place puts an entry into the tree; a later entry for a path replaces an earlier one.
func place(root *dirNode, e *rootfs.Entry) (*fileNode, error) {
	if e.IsDir() {
		d, err := lookupDir(root, e.Path)
		if err != nil {
			return nil, fmt.Errorf("/%s: %w", e.Path, err)
		}
		d.meta = ostree.DirMeta{UID: e.UID, GID: e.GID, Mode: e.Mode, Xattrs: e.Xattrs}
		return nil, nil
	}
	if e.Path == "." {
		return nil, errors.New("the tree root is not a directory")
	}
	dir, name := path.Split(e.Path)
	parent, err := lookupDir(root, path.Clean(dir+"."))
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", e.Path, err)
	}
	if old, ok := parent.dirs[name]; ok {
		if len(old.dirs)+len(old.files) > 0 {
			return nil, fmt.Errorf("/%s: replaces a non-empty directory", e.Path)
		}
		delete(parent.dirs, name)
	}
	n := &fileNode{header: ostree.FileHeader{UID: e.UID, GID: e.GID, Mode: e.Mode,
		LinkTarget: e.LinkTarget, Xattrs: e.Xattrs}}
	parent.files[name] = n
	return n, nil
}

// writeDir stores the dirtree and dirmeta objects of d and everything below it, and
// returns d's. The objects are checksummed first, then written on the workers' count of
// goroutines: each is a file to create, and a tree has hundreds to thousands of
// directories.
func (b *builder) writeDir(d *dirNode) (tree, meta ostree.Checksum, err error) {
	pending := map[metaKey][]byte{}
	tree, meta = sumDir(d, pending)
	if b.opts.DryRun {
		return tree, meta, nil
	}
	keys := make(chan metaKey)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(workers(b.opts.Workers), len(pending)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				if _, err := b.repo.WriteObject(k.t, pending[k]); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for k := range pending {
		if len(errs) > 0 {
			break
		}
		keys <- k
	}
	close(keys)
	wg.Wait()
	select {
	case err = <-errs:
	default:
	}
	return tree, meta, err
}

// metaKey names a dirtree or dirmeta object.
type metaKey struct {
	t ostree.ObjectType
	c ostree.Checksum
}

// sumDir returns the checksums of the dirtree and dirmeta objects of d, adding the
// serialised objects of d and everything below it to objs.
func sumDir(d *dirNode, objs map[metaKey][]byte) (tree, meta ostree.Checksum) {
	var t ostree.DirTree
	for name, f := range d.files {
		t.Files = append(t.Files, ostree.TreeFile{Name: name, Checksum: f.checksum})
	}
	for name, sub := range d.dirs {
		st, sm := sumDir(sub, objs)
		t.Dirs = append(t.Dirs, ostree.TreeDir{Name: name, Tree: st, Meta: sm})
	}
	add := func(typ ostree.ObjectType, data []byte) ostree.Checksum {
		c := ostree.Sum(data)
		objs[metaKey{typ, c}] = data
		return c
	}
	meta = add(ostree.ObjDirMeta, d.meta.Marshal())
	tree = add(ostree.ObjDirTree, t.Marshal())
	return tree, meta
}

func workers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// drain reads r to the end, for sources whose content must be consumed.
func drain(r io.Reader) error {
	if r == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, r)
	return err
}
