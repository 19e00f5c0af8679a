package update

import (
	"errors"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// TestMinFreeSpace: ostree's min-free-space keys of the repository config, as ostree reads
// them, else the default.
func TestMinFreeSpace(t *testing.T) {
	for _, c := range []struct {
		config  map[string]string
		want    int64
		wantErr string
	}{
		{nil, 7, ""},
		{map[string]string{"core.min-free-space-size": "500MB"}, 500e6, ""},
		{map[string]string{"core.min-free-space-size": "2GB", "core.min-free-space-percent": "50"}, 2e9, ""},
		{map[string]string{"core.min-free-space-size": "0MB"}, 0, ""},
		{map[string]string{"core.min-free-space-size": "12"}, 0, "core.min-free-space-size"},
		{map[string]string{"core.min-free-space-size": "1KB"}, 0, "core.min-free-space-size"},
		{map[string]string{"core.min-free-space-percent": "100"}, 0, "core.min-free-space-percent"},
		{map[string]string{"core.min-free-space-percent": "x"}, 0, "core.min-free-space-percent"},
	} {
		repo := &ostree.Repo{Path: t.TempDir(), Config: c.config}
		got, err := minFreeSpace(repo, 7)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%v: %v, want an error about %s", c.config, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v: %d, %v; want %d", c.config, got, err, c.want)
		}
	}
	// A percentage is of the filesystem's size: 0% is nothing, 1% is something.
	repo := &ostree.Repo{Path: t.TempDir(), Config: map[string]string{"core.min-free-space-percent": "1"}}
	if got, err := minFreeSpace(repo, 7); err != nil || got <= 0 {
		t.Errorf("1%%: %d, %v", got, err)
	}
}

// TestSpaceGuard: a guard refuses what would leave less than its minimum free, at once for
// a large write and after the writes it let through add up.
func TestSpaceGuard(t *testing.T) {
	dir := t.TempDir()
	const avail = 100 * smallObject
	stats := 0
	free := func(string) (int64, error) { stats++; return avail, nil }
	// Small writes add up between two questions to the filesystem; a large one asks again.
	g := &spaceGuard{dir: dir, minFree: avail - 3*smallObject, free: free}
	for i := range 6 {
		if err := g.reserve(smallObject / 2); err != nil {
			t.Fatalf("half MiB %d: %v", i, err)
		}
	}
	err := g.reserve(1)
	if !errors.Is(err, errNoSpace) || !strings.Contains(err.Error(), dir) || stats != 1 {
		t.Errorf("over the limit: %v (%d statfs)", err, stats)
	}
	g = &spaceGuard{dir: dir, minFree: avail - 3*smallObject, free: free}
	if err := g.reserve(4 * smallObject); !errors.Is(err, errNoSpace) {
		t.Errorf("one large write over the limit: %v", err)
	}
	real, err := freeSpace(dir)
	if err != nil || real <= 0 {
		t.Fatalf("freeSpace: %d, %v", real, err)
	}
	if err := checkSpace(dir, uint64(real)+1<<30, 0, "a test"); !errors.Is(err, errNoSpace) || !strings.Contains(err.Error(), "a test") {
		t.Errorf("checkSpace: %v", err)
	}
}
