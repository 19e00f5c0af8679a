package ostree

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/scratch"
)

// tmpExpiry returns how long an entry of tmp/ that is not this package's is kept: the
// config's core.tmp-expiry-secs, as ostree reads it, else DefaultTmpExpiry.
func (r *Repo) tmpExpiry() (time.Duration, error) {
	v, ok := r.Config["core.tmp-expiry-secs"]
	if !ok {
		return DefaultTmpExpiry, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s/config: core.tmp-expiry-secs: %q is not a number of seconds", r.Path, v)
	}
	return time.Duration(n) * time.Second, nil
}

// pruneTmp removes what nobody uses in tmp/ (see Prune), counting it in res. The caller
// holds the repository lock, so the temporary files of this package (TempPrefix) are
// abandoned.
func (r *Repo) pruneTmp(expiry time.Duration, dryRun bool, res *PruneResult) {
	tmp := filepath.Join(r.Path, "tmp")
	ents, _ := os.ReadDir(tmp)
	stale, _ := scratch.Stale(tmp, ScratchPrefix)
	now := time.Now()
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(tmp, name)
		switch {
		case name == "cache":
			continue // ostree's, made when a repository is opened
		case strings.HasPrefix(name, TempPrefix):
		case strings.HasPrefix(name, ScratchPrefix):
			if !slices.Contains(stale, p) {
				continue
			}
		default:
			// An entry from the future has a negative age: kept, as ostree does.
			info, err := e.Info()
			if err != nil || now.Sub(info.ModTime()) <= expiry {
				continue
			}
			release, free := unlocked(p)
			if !free {
				continue
			}
			// Held until removed: a download starting meanwhile finds it locked and fails,
			// rather than writing into a file about to be deleted.
			defer release()
		}
		res.TempFiles++
		res.Bytes += TreeSize(p)
		if !dryRun {
			os.RemoveAll(p)
		}
	}
}

// unlocked reports whether nobody holds a lock on the entry p of tmp/ or on the lock file
// ostree keeps beside its staging directories (NAME-lock). It takes an exclusive flock on
// what it checks and returns the function releasing them.
func unlocked(p string) (release func(), ok bool) {
	var held []int
	release = func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}
	for _, q := range []string{p, p + "-lock"} {
		fd, err := unix.Open(q, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT && q != p || err == unix.ELOOP {
			continue // no lock file; or a symlink, which cannot be locked
		} else if err != nil {
			release()
			return nil, false
		}
		held = append(held, fd)
		if isLocked(fd) {
			release()
			return nil, false
		}
	}
	return release, true
}

// isLocked reports whether another open file holds a lock on fd's file: an flock(2) lock
// (internal/scratch, internal/remote's partial files), which it then holds itself, or an
// fcntl lock, open-file-description or POSIX (ostree's lock files).
func isLocked(fd int) bool {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == unix.EINTR {
			continue
		} else if err != nil {
			return true
		}
		break
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return true
	}
	return lk.Type != unix.F_UNLCK
}
