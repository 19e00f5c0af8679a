package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BootCounter is the boot counter of the U-Boot boot script of the images
// (image/bootscript): a U-Boot text environment file on the FAT boot partition,
// ota-state.txt, whose bootcount (hexadecimal, no 0x) the script increments before every
// boot and compares with its limit (3 by default): once the count exceeds the limit, it
// boots the rollback entry of uEnv.txt. docs/format.md, "Boot script and boot counter".
type BootCounter struct {
	// Path is the state file as mounted on the device.
	Path string
}

// BadBootCount is the count MarkBad writes: the script adds one before comparing, so any
// limit below it is exceeded at the next boot, and U-Boot's setexpr (a long, 32 bits on
// armv7) does not overflow for a very long time.
const BadBootCount = 0xffff

// Count returns the number of boot attempts the file records (0 when it does not exist).
func (b BootCounter) Count() (int64, error) {
	data, err := os.ReadFile(b.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("boot counter: %w", err)
	}
	// U-Boot's env export -t ends the text with a NUL byte.
	for _, line := range strings.Split(strings.TrimRight(string(data), "\x00"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "bootcount="); ok {
			n, err := strconv.ParseInt(v, 16, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("boot counter: %s: invalid bootcount %q", b.Path, v)
			}
			return n, nil
		}
	}
	return 0, nil
}

// MarkGood records that the running system booted well: bootcount=0, so that the next
// boots start counting again from the default entry. A system that came up from the
// rollback entry must make that deployment the default first (Sysroot.WriteDeployments),
// or the next boot tries the failing default again.
func (b BootCounter) MarkGood() error { return b.write(0) }

// MarkBad arms an immediate fallback: the next boot exceeds the script's limit and boots
// the rollback entry (when uEnv.txt has one).
func (b BootCounter) MarkBad() error { return b.write(BadBootCount) }

// write replaces the file with bootcount=n, hexadecimal as setexpr writes it.
func (b BootCounter) write(n int64) error {
	if err := writeFileSynced(b.Path, fmt.Appendf(nil, "bootcount=%x\n", n)); err != nil {
		return fmt.Errorf("boot counter: %w", err)
	}
	return nil
}

// writeFileSynced replaces file p with data through a temporary file in its directory,
// synced and renamed over p, then syncs the file again and the directory: after a power
// cut, p holds the old data or the new, never a part. The writer holds a flock on its
// temporary file until the rename, so the next write can tell those of killed writers,
// which it removes first.
//
// The second sync is for FAT (the boot counter's partition): there a rename over an
// existing file moves the file into the target's directory entry, which only the file's
// next write-back updates, while the directory's sync writes the table that frees the old
// file's clusters. Without it, a power cut soon after leaves the old entry on the disk,
// pointing to freed clusters: U-Boot reads the old count.
func writeFileSynced(p string, data []byte) error {
	dir, prefix := filepath.Dir(p), "."+filepath.Base(p)+"-"
	removeStaleTemps(dir, prefix)
	f, err := createLockedTemp(dir, prefix)
	if err != nil {
		return err
	}
	err = f.Chmod(0o644)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	renamed := false
	if err == nil {
		err = os.Rename(f.Name(), p) // before Close, which releases the lock
		renamed = err == nil
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if !renamed {
			os.Remove(f.Name())
		}
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// createLockedTemp creates a temporary file prefix* in dir and takes a flock on it. A file
// that a concurrent removeStaleTemps removed before the lock was taken is given up for
// another.
func createLockedTemp(dir, prefix string) (*os.File, error) {
	for {
		f, err := os.CreateTemp(dir, prefix+"*")
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err == nil {
			err = unix.Fstat(int(f.Fd()), &st)
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if st.Nlink > 0 {
			return f, nil
		}
		f.Close()
	}
}

// removeStaleTemps removes the temporary files prefix* in dir that no writer holds (see
// createLockedTemp): those of writers killed before their rename.
func removeStaleTemps(dir, prefix string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}
