package sysroot

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mergeEtc applies the changes between oldUsrEtc (the defaults) and oldEtc (the live
// configuration) of the merge deployment to newEtc: removed paths are removed, modified and
// added ones are copied over (ostree's merge_configuration_from).
func (s *Sysroot) mergeEtc(oldUsrEtc, oldEtc, newEtc string) error {
	if _, err := os.Lstat(oldEtc); err != nil {
		return nil
	}
	// Removals: in the old defaults, gone from the old /etc.
	err := filepath.WalkDir(oldUsrEtc, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(oldUsrEtc, p)
		if rel == "." {
			return nil
		}
		if _, err := os.Lstat(filepath.Join(oldEtc, rel)); errors.Is(err, fs.ErrNotExist) {
			if err := os.RemoveAll(filepath.Join(newEtc, rel)); err != nil {
				return err
			}
			if e.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Modifications and additions.
	return filepath.WalkDir(oldEtc, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(oldEtc, p)
		if rel == "." {
			return nil
		}
		same, err := sameFile(filepath.Join(oldUsrEtc, rel), p)
		if err != nil || same {
			return err
		}
		dst := filepath.Join(newEtc, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var dt unix.Stat_t
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if unix.Lstat(dst, &dt) == nil && dt.Mode&unix.S_IFMT == unix.S_IFDIR {
				return s.copyAttrs(p, dst, &st) // modified directory: metadata only
			}
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := s.copyTree(p, dst); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fs.SkipDir
		}
		return nil
	})
}

// sameFile reports whether a and b have the same type, owner, mode, xattrs and content.
func sameFile(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Lstat(a, &sa); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(b, &sb); err != nil {
		return false, err
	}
	if sa.Mode != sb.Mode || sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		return false, nil
	}
	switch sa.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ta, err1 := os.Readlink(a)
		tb, err2 := os.Readlink(b)
		return ta == tb, errors.Join(err1, err2)
	case unix.S_IFREG:
		if sa.Size != sb.Size {
			return false, nil
		}
		da, err1 := os.ReadFile(a)
		db, err2 := os.ReadFile(b)
		if err := errors.Join(err1, err2); err != nil {
			return false, err
		}
		if !bytes.Equal(da, db) {
			return false, nil
		}
	}
	return true, nil
}
