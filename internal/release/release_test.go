package release

import (
	"errors"
	"testing"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int // a compared with b
	}{
		{"1.0", "1.0", 0},
		{"1.9", "1.10", -1},
		{"1.10", "1.9", 1},
		{"2.0", "2.0.1", -1},
		{"2.0.1", "2.0", 1},
		{"1.0", "1.0.0", -1},
		{"1.01", "1.1", 0},
		{"1.0-rc1", "1.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~", "1.0~rc1", -1},
		{"1.0", "1.0a", -1},
		{"1.0a", "1.0-rc1", -1},
		{"1.0-rc1", "1.0.1", -1},
		{"1.0-rc2", "1.0-rc10", -1},
		{"2024.01", "2023.12", 1},
		{"v2", "v10", -1},
		{"a", "B", 1}, // letters compare by code: 'B' < 'a'
		{"9", "10", -1},
		{"007", "7", 0},
		{"", "0", 0},
		{"", "1", -1},
		{"", "", 0},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestCheckUpgrade(t *testing.T) {
	commit := func(ts uint64, version string) *ostree.Commit {
		c := &ostree.Commit{Timestamp: ts}
		if version != "" {
			c.Metadata = []gvariant.DictEntry{{Key: "version", Value: gvariant.Variant{Type: "s", Value: version}}}
		}
		return c
	}
	for _, tc := range []struct {
		name          string
		current, next *ostree.Commit
		downgrade     bool
	}{
		{"same commit", commit(100, "1.0"), commit(100, "1.0"), false},
		{"same timestamp, no versions", commit(100, ""), commit(100, ""), false},
		{"same timestamp, one version", commit(100, "2.0"), commit(100, ""), false},
		{"newer timestamp", commit(100, ""), commit(200, ""), false},
		{"older timestamp", commit(200, ""), commit(100, ""), true},
		{"higher version", commit(100, "1.9"), commit(200, "1.10"), false},
		{"lower version, newer timestamp", commit(100, "1.10"), commit(200, "1.9"), true},
		{"higher version, older timestamp", commit(200, "1.0"), commit(100, "2.0"), true},
		{"equal versions spelt differently", commit(100, "1.1"), commit(100, "1.01"), false},
		{"release candidate after release", commit(100, "1.0"), commit(200, "1.0~rc1"), true},
		{"version only on the current", commit(100, "2.0"), commit(200, ""), false},
		{"version only on the next", commit(100, ""), commit(200, "0.1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckUpgrade(tc.current, tc.next)
			if got := errors.Is(err, ErrDowngrade); got != tc.downgrade || (err != nil && !got) {
				t.Errorf("CheckUpgrade = %v, want downgrade %v", err, tc.downgrade)
			}
		})
	}
}
