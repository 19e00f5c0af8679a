package update

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// errNoSpace is wrapped by the errors of the free-space checks.
var errNoSpace = errors.New("not enough space")

// spaceGuard refuses writes that would leave less than minFree bytes free in dir's
// filesystem. It asks the filesystem again after every 64 MiB reserved, or for a single
// large write: between two questions, writes are assumed to fit.
type spaceGuard struct {
	dir     string
	minFree int64
	free    func(dir string) (int64, error) // freeSpace when nil

	mu        sync.Mutex
	sinceStat int64
	avail     int64
	stated    bool
}

// reserve accounts for n bytes about to be written.
func (g *spaceGuard) reserve(n int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sinceStat += n
	if !g.stated || g.sinceStat >= 64<<20 || n >= smallObject {
		free := g.free
		if free == nil {
			free = freeSpace
		}
		avail, err := free(g.dir)
		if err != nil {
			return err
		}
		g.avail, g.sinceStat, g.stated = avail, n, true
	}
	if g.avail-g.sinceStat < g.minFree {
		return fmt.Errorf("%w in %s: %d bytes free, the update needs %d more and keeps %d free", errNoSpace, g.dir, g.avail, g.sinceStat, g.minFree)
	}
	return nil
}

// freeSpace returns the bytes an unprivileged writer may still use in dir's filesystem.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkSpace returns an error unless need bytes fit in dir's filesystem with minFree to
// spare.
func checkSpace(dir string, need uint64, minFree int64, what string) error {
	avail, err := freeSpace(dir)
	if err != nil {
		return err
	}
	if int64(need)+minFree > avail {
		return fmt.Errorf("%w for %s in %s: it needs %d bytes and %d must stay free, %d are", errNoSpace, what, dir, need, minFree, avail)
	}
	return nil
}

// minFreeSpace returns the space a pull must leave free in repo's filesystem: ostree's
// core.min-free-space-size (e.g. "500MB"; units MB, GB, TB, powers of 1000) or
// core.min-free-space-percent (of the filesystem's size) from the repository's config
// when set, else def.
func minFreeSpace(repo *ostree.Repo, def int64) (int64, error) {
	if s := repo.Config["core.min-free-space-size"]; s != "" {
		units := map[string]int64{"MB": 1e6, "GB": 1e9, "TB": 1e12}
		n, err := strconv.ParseInt(s[:max(len(s)-2, 0)], 10, 64)
		unit, ok := units[s[max(len(s)-2, 0):]]
		if err != nil || !ok || n < 0 {
			return 0, fmt.Errorf("%s/config: core.min-free-space-size %q: want a number and MB, GB or TB", repo.Path, s)
		}
		return n * unit, nil
	}
	if s := repo.Config["core.min-free-space-percent"]; s != "" {
		pct, err := strconv.Atoi(s)
		if err != nil || pct < 0 || pct > 99 {
			return 0, fmt.Errorf("%s/config: core.min-free-space-percent %q: want 0 to 99", repo.Path, s)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(repo.Path, &st); err != nil {
			return 0, &os.PathError{Op: "statfs", Path: repo.Path, Err: err}
		}
		return int64(st.Blocks) * int64(st.Bsize) * int64(pct) / 100, nil
	}
	return def, nil
}
