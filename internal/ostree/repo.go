package ostree

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/scratch"
)

// Mode is a repository mode: how objects are stored on disk.
type Mode int

// Repository modes. Archive is what build hosts serve over HTTP; the bare modes hold
// objects ready to hardlink into deployments.
const (
	ModeArchive Mode = iota
	ModeBare
	ModeBareUser
	ModeBareUserOnly
)

var modeNames = []string{"archive-z2", "bare", "bare-user", "bare-user-only"}

// String returns the mode as written to the repository config.
func (m Mode) String() string { return modeNames[m] }

// ParseMode parses a mode name; "archive" is accepted for "archive-z2".
func ParseMode(s string) (Mode, error) {
	if s == "archive" {
		return ModeArchive, nil
	}
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown repository mode %q (want archive, bare, bare-user or bare-user-only)", s)
}

// Repo is an OSTree repository on disk.
type Repo struct {
	// Path is the repository's directory.
	Path string
	// Mode is the storage mode from the config.
	Mode Mode
	// Config holds the config file's keys as "section.key" (e.g. "core.mode").
	Config map[string]string

	madeDirs sync.Map // object subdirectories known to exist
}

// Init creates a repository at path, or opens it when one with the same mode exists.
func Init(path string, mode Mode) (*Repo, error) {
	if r, err := Open(path); err == nil {
		if r.Mode != mode {
			return nil, fmt.Errorf("%s: already a repository in mode %s", path, r.Mode)
		}
		return r, nil
	} else if !errors.Is(err, errNoConfig) {
		return nil, err
	}
	for _, d := range []string{"objects", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp/cache", "extensions"} {
		if err := os.MkdirAll(filepath.Join(path, d), 0o755); err != nil {
			return nil, err
		}
	}
	r := &Repo{Path: path, Mode: mode}
	cfg := fmt.Sprintf("[core]\nrepo_version=1\nmode=%s\n", mode)
	if err := r.WriteFileAtomic("config", []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return Open(path)
}

var errNoConfig = errors.New("not an OSTree repository")

// Open opens an existing repository.
func Open(path string) (*Repo, error) {
	data, err := os.ReadFile(filepath.Join(path, "config"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(path); serr != nil {
			return nil, fmt.Errorf("%s: %w (%v)", path, errNoConfig, serr)
		}
		return nil, fmt.Errorf("%s: %w (no config file)", path, errNoConfig)
	} else if err != nil {
		return nil, err
	}
	r := &Repo{Path: path, Config: parseKeyFile(data)}
	if r.Config["core.repo_version"] != "1" {
		return nil, fmt.Errorf("%s/config: unsupported core.repo_version %q", path, r.Config["core.repo_version"])
	}
	if r.Mode, err = ParseMode(r.Config["core.mode"]); err != nil {
		return nil, fmt.Errorf("%s/config: %v", path, err)
	}
	return r, nil
}

// parseKeyFile reads the GKeyFile subset OSTree config files use.
func parseKeyFile(data []byte) map[string]string {
	out := map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			if k, v, ok := strings.Cut(line, "="); ok {
				out[section+"."+strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// objectRel returns an object's path relative to the repository.
func (r *Repo) objectRel(c Checksum, t ObjectType) string { return ObjectRel(c, t, r.Mode) }

// ObjectRel returns the path of an object relative to a repository of mode m:
// objects/XX/REST.TYPE, with "filez" for the content objects of an archive repository,
// which is also the path an HTTP server of one serves it at.
func ObjectRel(c Checksum, t ObjectType, m Mode) string {
	h := c.String()
	suffix := t.String()
	if t == ObjFile && m == ModeArchive {
		suffix = "filez"
	}
	return "objects/" + h[:2] + "/" + h[2:] + "." + suffix
}

// ObjectPath returns the path of an object's loose file.
func (r *Repo) ObjectPath(c Checksum, t ObjectType) string {
	return filepath.Join(r.Path, r.objectRel(c, t))
}

// HasObject reports whether the object is stored.
func (r *Repo) HasObject(c Checksum, t ObjectType) bool {
	p := r.ObjectPath(c, t)
	var st unix.Stat_t // not os.Lstat: no FileInfo allocated for a yes or no
	for {
		// Retried as os.Lstat retries: some filesystems (FUSE) return EINTR.
		if err := unix.Lstat(p, &st); err != unix.EINTR {
			return err == nil
		}
	}
}

// ReadObject returns the bytes of a stored metadata object. Those of dirtrees, dirmetas and
// commits, named by their SHA-256, are verified: a mismatch is a *CorruptError.
func (r *Repo) ReadObject(t ObjectType, c Checksum) ([]byte, error) {
	data, err := readFile(r.ObjectPath(c, t))
	if err != nil {
		return nil, err
	}
	if t.selfNamed() && Sum(data) != c {
		return nil, &CorruptError{Type: t, Checksum: c, Reason: "checksum mismatch"}
	}
	return data, nil
}

// WriteObject stores a metadata object and returns its checksum. An object already present
// is not rewritten.
func (r *Repo) WriteObject(t ObjectType, data []byte) (Checksum, error) {
	c := Sum(data)
	if r.HasObject(c, t) {
		return c, nil
	}
	return c, r.placeObject(c, t, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// ReadCommit loads and parses a commit object, returning its raw bytes too.
func (r *Repo) ReadCommit(c Checksum) (Commit, []byte, error) {
	data, err := r.ReadObject(ObjCommit, c)
	var ce *CorruptError
	if errors.As(err, &ce) {
		return Commit{}, nil, err // names the commit
	} else if err != nil {
		return Commit{}, nil, fmt.Errorf("commit %s: %w", c, err)
	}
	cm, err := ParseCommit(data)
	return cm, data, err
}

// ReadDirTree loads and verifies a dirtree object.
func (r *Repo) ReadDirTree(c Checksum) (DirTree, error) {
	data, err := r.ReadObject(ObjDirTree, c)
	if err != nil {
		return DirTree{}, err
	}
	return ParseDirTree(data)
}

// ReadDirMeta loads and verifies a dirmeta object.
func (r *Repo) ReadDirMeta(c Checksum) (DirMeta, error) {
	data, err := r.ReadObject(ObjDirMeta, c)
	if err != nil {
		return DirMeta{}, err
	}
	return ParseDirMeta(data)
}

// ReadDetachedMetadata returns a commit's detached metadata, or nil when it has none.
func (r *Repo) ReadDetachedMetadata(c Checksum) ([]gvariant.DictEntry, error) {
	data, err := r.ReadObject(ObjCommitMeta, c)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	m, err := ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.objectRel(c, ObjCommitMeta), err)
	}
	return m, nil
}

// WriteDetachedMetadata replaces a commit's detached metadata.
func (r *Repo) WriteDetachedMetadata(c Checksum, m []gvariant.DictEntry) error {
	data := MarshalMetadata(m)
	return r.placeObject(c, ObjCommitMeta, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// placeObject writes an object through a temporary file and renames it into place, so a
// reader never sees a partial object.
func (r *Repo) placeObject(c Checksum, t ObjectType, write func(*os.File) error) error {
	rel := r.objectRel(c, t)
	dir := filepath.Join(r.Path, filepath.Dir(rel))
	if _, ok := r.madeDirs.Load(dir); !ok {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r.madeDirs.Store(dir, true)
	}
	final := filepath.Join(r.Path, rel)
	// Detached metadata is replaced when signatures are added; link would not replace it.
	if t != ObjCommitMeta {
		if done, err := placeLinked(dir, final, write); done {
			if err != nil {
				return fmt.Errorf("writing %s: %w", rel, err)
			}
			return nil
		}
	}
	return r.replaceFile(final, 0o644, write)
}

// replaceFile writes a file through a named temporary file renamed over final.
func (r *Repo) replaceFile(final string, perm os.FileMode, write func(*os.File) error) error {
	f, err := r.CreateTemp(perm)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rename(f.Name(), final)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", final, err)
	}
	return nil
}

// placeLinked writes an anonymous O_TMPFILE file in dir and links it in as final, so an
// interrupted write leaves nothing behind and no temporary name touches the directory. An
// existing final is kept (objects are immutable). done is false where the filesystem lacks
// O_TMPFILE or /proc is not mounted; the caller then uses a named temporary file.
func placeLinked(dir, final string, write func(*os.File) error) (done bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return false, nil
	}
	f := os.NewFile(uintptr(fd), final)
	defer f.Close()
	if err := write(f); err != nil {
		return true, err
	}
	err = unix.Linkat(unix.AT_FDCWD, procFD(fd), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
	switch err {
	case nil, unix.EEXIST:
		return true, nil
	case unix.ENOENT:
		if _, serr := os.Stat(procFD(fd)); serr != nil {
			return false, nil // no /proc
		}
	}
	return true, &os.LinkError{Op: "link", Old: procFD(fd), New: final, Err: err}
}

// procFD names an open file descriptor through /proc, the unprivileged way to link or
// touch an O_TMPFILE file.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// rename is os.Rename without its extra lstat of the destination.
func rename(from, to string) error {
	if err := unix.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// TempPrefix starts the names of this package's temporary files in the repository's tmp/.
const TempPrefix = "ota-tmp-"

// ScratchPrefix starts the names of the scratch directories (see package scratch) that
// writers not holding the lock, such as static delta generation, make in the repository's
// tmp/. Lock removes those that killed processes left.
const ScratchPrefix = "ota-scratch-"

// CreateTemp creates a new temporary file in the repository's tmp directory.
func (r *Repo) CreateTemp(perm os.FileMode) (*os.File, error) {
	var b [12]byte
	rand.Read(b[:])
	name := filepath.Join(r.Path, "tmp", TempPrefix+hex.EncodeToString(b[:]))
	// os.OpenFile would try to register the file with the network poller, costing several
	// system calls per object; a regular file gains nothing from it.
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openRead opens a file for reading. Objects are opened by the thousand, and os.Open would
// try to register each with the network poller, costing four more system calls than the
// open; a regular file gains nothing from it.
func openRead(name string) (*os.File, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// readFile reads a whole file (of a size that does not change) through openRead.
func readFile(name string) ([]byte, error) {
	f, err := openRead(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, &os.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// WriteFileAtomic replaces the file at rel (relative to the repository) with data.
func (r *Repo) WriteFileAtomic(rel string, data []byte, perm os.FileMode) error {
	final := filepath.Join(r.Path, rel)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	return r.replaceFile(final, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Sync flushes everything written to the repository's filesystem to stable storage.
func (r *Repo) Sync() error {
	fd, err := unix.Open(r.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// Lock takes the repository lock exclusively, waiting for other holders (including the
// ostree tools, which use the same open-file-description lock on .lock), and removes
// temporary files that interrupted writers of this package left behind, and abandoned
// scratch directories (see ScratchPrefix). The returned function releases the lock.
func (r *Repo) Lock() (func(), error) { return r.lock(true) }

// lock takes the repository lock, removing what interrupted writers left when clean is
// set.
func (r *Repo) lock(clean bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(r.Path, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking repository: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLKW, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking repository %s: %w", r.Path, err)
	}
	if clean {
		stale, _ := filepath.Glob(filepath.Join(r.Path, "tmp", TempPrefix+"*"))
		for _, p := range stale {
			os.Remove(p)
		}
		scratch.Clean(filepath.Join(r.Path, "tmp"), ScratchPrefix)
	}
	return func() { f.Close() }, nil
}

var refPattern = regexp.MustCompile(`^([\w\d][-._\w\d]*/)*[\w\d][-._\w\d]*$`)

// ValidRef reports whether name is a valid ref name.
func ValidRef(name string) bool { return refPattern.MatchString(name) }

// ReadRef returns the commit a local branch points to; ok is false when it does not exist.
func (r *Repo) ReadRef(name string) (c Checksum, ok bool, err error) {
	if !ValidRef(name) {
		return c, false, fmt.Errorf("invalid ref name %q", name)
	}
	data, err := os.ReadFile(filepath.Join(r.Path, "refs/heads", name))
	if errors.Is(err, fs.ErrNotExist) {
		return c, false, nil
	} else if err != nil {
		return c, false, err
	}
	c, err = ParseChecksum(strings.TrimSpace(string(data)))
	if err != nil {
		return c, false, fmt.Errorf("ref %s: %w", name, err)
	}
	return c, true, nil
}

// WriteRef points a local branch at a commit, atomically.
func (r *Repo) WriteRef(name string, c Checksum) error {
	if !ValidRef(name) {
		return fmt.Errorf("invalid ref name %q", name)
	}
	return r.WriteFileAtomic(filepath.Join("refs/heads", name), []byte(c.String()+"\n"), 0o644)
}

// Ref is a named pointer to a commit.
type Ref struct {
	Name   string
	Commit Checksum
}

// ListRefs returns the local branches sorted by name.
func (r *Repo) ListRefs() ([]Ref, error) {
	var refs []Ref
	root := filepath.Join(r.Path, "refs/heads")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(root, p)
		name = filepath.ToSlash(name)
		c, _, err := r.ReadRef(name)
		if err != nil {
			return err
		}
		refs = append(refs, Ref{Name: name, Commit: c})
		return nil
	})
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, err
}

// Resolve turns a revision into a commit checksum: a 64-digit checksum, a local branch, or
// either followed by one or more "^" (parent of).
func (r *Repo) Resolve(rev string) (Checksum, error) {
	base := strings.TrimRight(rev, "^")
	c, err := ParseChecksum(base)
	if err != nil {
		var ok bool
		if c, ok, err = r.ReadRef(base); err != nil {
			return c, err
		} else if !ok {
			return c, fmt.Errorf("revision %q: no such ref or commit in %s", rev, r.Path)
		}
	}
	for range len(rev) - len(base) {
		cm, _, err := r.ReadCommit(c)
		if err != nil {
			return c, fmt.Errorf("revision %q: %w", rev, err)
		}
		if !cm.HasParent {
			return c, fmt.Errorf("revision %q: commit %s has no parent", rev, c)
		}
		c = cm.Parent
	}
	return c, nil
}

// WalkObjects calls fn for every loose object in the repository.
func (r *Repo) WalkObjects(fn func(c Checksum, t ObjectType, path string) error) error {
	byName := map[string]ObjectType{}
	for t, n := range typeNames {
		byName[n] = t
	}
	byName["filez"] = ObjFile
	root := filepath.Join(r.Path, "objects")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		names, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return err
		}
		for _, n := range names {
			stem, suffix, _ := strings.Cut(n.Name(), ".")
			t, ok := byName[suffix]
			c, err := ParseChecksum(d.Name() + stem)
			if !ok || err != nil {
				continue
			}
			if err := fn(c, t, filepath.Join(root, d.Name(), n.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
