// Package scratch makes temporary files and directories that a killed process leaves behind
// only until the next run. Each is named PREFIX<pid>-<random> and held under an exclusive
// flock(2) lock for as long as it is in use; the lock goes away with the process, however it
// ends (SIGKILL included). Clean, which every creation runs first, removes the entries of a
// prefix whose process is gone and that nobody holds locked: what an interrupted run of the
// same command left. Entries of another user, of a live process, or not named by this
// package are never touched.
package scratch

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is a temporary directory, locked until RemoveAll.
type Dir struct {
	// Path is the directory's path.
	Path string
	lock *os.File
}

// MkdirTemp removes what killed processes left under prefix in dir (see Clean), then
// creates a new directory dir/PREFIX<pid>-<random> with mode perm (less the umask) and
// locks it. dir "" is os.TempDir().
func MkdirTemp(dir, prefix string, perm os.FileMode) (*Dir, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	Clean(dir, prefix)
	for range 100 {
		p := filepath.Join(dir, name(prefix))
		err := os.Mkdir(p, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		lock, err := os.Open(p)
		if err == nil {
			err = flock(lock, unix.LOCK_EX|unix.LOCK_NB)
		}
		if err != nil {
			if lock != nil {
				lock.Close()
			}
			os.Remove(p)
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		return &Dir{Path: p, lock: lock}, nil
	}
	return nil, fmt.Errorf("%s: cannot find a free temporary name for %s", dir, prefix)
}

// RemoveAll removes the directory (what is still at Path) and releases the lock. A
// directory renamed elsewhere in the meantime is kept.
func (d *Dir) RemoveAll() error {
	err := os.RemoveAll(d.Path)
	if cerr := d.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// CreateTemp removes what killed processes left under prefix in dir (see Clean), then
// creates a new file dir/PREFIX<pid>-<random> opened for reading and writing, with mode
// 0666 less the umask as os.Create gives, and locked until it is closed.
func CreateTemp(dir, prefix string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	Clean(dir, prefix)
	for range 100 {
		f, err := os.OpenFile(filepath.Join(dir, name(prefix)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%s: cannot find a free temporary name for %s", dir, prefix)
}

// WriteFile replaces the file name with data, atomically: it writes a temporary file
// beside it (see CreateTemp), flushes it to disk and renames it over name. The file gets
// mode 0666 less the umask.
func WriteFile(name string, data []byte) error {
	f, err := CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".ota-tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stale lists the entries of dir named PREFIX<pid>-… that are abandoned: owned by the
// caller's user, their process gone, and not locked by anyone.
func Stale(dir, prefix string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); strings.HasPrefix(e.Name(), prefix) && abandoned(p, e.Name()[len(prefix):]) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Clean removes the abandoned entries Stale lists and returns them. Errors are ignored:
// cleaning is a courtesy that must not stop the caller's own work.
func Clean(dir, prefix string) []string {
	stale, _ := Stale(dir, prefix)
	var removed []string
	for _, p := range stale {
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

// abandoned reports whether the entry p, whose name continues with rest after the prefix,
// is one of ours that nobody uses any more.
func abandoned(p, rest string) bool {
	pidStr, random, ok := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 || len(random) != 12 {
		return false // not named by this package
	}
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil || int(st.Uid) != os.Geteuid() {
		return false
	}
	if m := st.Mode & unix.S_IFMT; m != unix.S_IFDIR && m != unix.S_IFREG {
		return false
	}
	// A live process may hold the name before it has taken the lock; a process of the same
	// number in another PID namespace is told apart by the lock.
	if pid == os.Getpid() || alive(pid) {
		return false
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	// Closing releases the lock: its owner is gone and the name is never reused, so only
	// another cleaner can touch the entry until the caller removes it.
	defer f.Close()
	return flock(f, unix.LOCK_EX|unix.LOCK_NB) == nil
}

// alive reports whether a process with this number exists.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// name returns PREFIX<pid>-<12 random hex digits>.
func name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}
