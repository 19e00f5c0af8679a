// Package release holds the order of releases: which of two commits of a branch is the
// older one, so that nothing moves a device's or a repository's ref back to an older
// release unless asked to. ota-build's delta apply and ota-client check (internal/update)
// use it.
package release

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// ErrDowngrade is wrapped by the errors of [CheckUpgrade].
var ErrDowngrade = errors.New("downgrade")

// CheckUpgrade returns nil when moving a ref from the commit current to the commit next is
// not a downgrade, and otherwise an error wrapping [ErrDowngrade] that says why.
//
// next is older than current when its timestamp is earlier, or when both commits carry
// "version" metadata and next's version is lower. Equal timestamps with equal or absent
// versions are not a downgrade, so applying the commit a ref already points to again is
// fine.
//
// Versions compare as dpkg compares the upstream part of a version (deb-version(7)):
// left to right, alternating runs of non-digits, compared character by character with
// letters before other characters and '~' before everything, even the end of the version,
// and runs of digits, compared as numbers. So 1.9 < 1.10, 2.0 < 2.0.1, 1.0 < 1.0.0,
// 1.01 = 1.1 and 1.0 < 1.0a < 1.0-rc1 < 1.0.1. As in dpkg and rpm, 1.0-rc1 is newer than
// 1.0: a release candidate that must sort before its release is written 1.0~rc1
// (1.0~rc1 < 1.0).
func CheckUpgrade(current, next *ostree.Commit) error {
	if next.Timestamp < current.Timestamp {
		return fmt.Errorf("%w: timestamp %s is earlier than %s", ErrDowngrade, stamp(next), stamp(current))
	}
	cv, nv := current.Version(), next.Version()
	if cv != "" && nv != "" && compareVersions(nv, cv) < 0 {
		return fmt.Errorf("%w: version %q is lower than %q", ErrDowngrade, nv, cv)
	}
	return nil
}

func stamp(c *ostree.Commit) string {
	return time.Unix(int64(c.Timestamp), 0).UTC().Format(time.RFC3339)
}

// compareVersions returns -1, 0 or +1 as version a is lower than, equal to or higher than
// b, in dpkg's order (see CheckUpgrade); it is dpkg's verrevcmp.
func compareVersions(a, b string) int {
	for a != "" || b != "" {
		// The non-digit prefixes, character by character.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			if ac, bc := order(a), order(b); ac != bc {
				return cmp.Compare(ac, bc)
			}
			a, b = a[1:], b[1:]
		}
		// The numbers, by value: without leading zeros, the longer one is larger, else the
		// first differing digit decides.
		a, b = trimZeros(a), trimZeros(b)
		first := 0
		for a != "" && b != "" && isDigit(a[0]) && isDigit(b[0]) {
			if first == 0 {
				first = int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
		}
		switch {
		case a != "" && isDigit(a[0]):
			return 1
		case b != "" && isDigit(b[0]):
			return -1
		case first != 0:
			return cmp.Compare(first, 0)
		}
	}
	return 0
}

// order is the weight of the first character of s in a non-digit run: '~' lowest, then
// the end of the string (and digits, which end the run), then letters, then the rest.
func order(s string) int {
	switch {
	case s == "" || isDigit(s[0]):
		return 0
	case s[0] == '~':
		return -1
	case 'a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z':
		return int(s[0])
	}
	return int(s[0]) + 256
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func trimZeros(s string) string {
	for s != "" && s[0] == '0' {
		s = s[1:]
	}
	return s
}
