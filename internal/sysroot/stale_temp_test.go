package sysroot

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriteRemovesStaleTemps: a write of the boot counter (or of the last result) removes
// the temporary files of the same file that writers killed before their rename left, and
// keeps the one a writer still holds.
func TestWriteRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	b := BootCounter{Path: filepath.Join(dir, "ota-state.txt")}
	killed := filepath.Join(dir, ".ota-state.txt-123")
	live := filepath.Join(dir, ".ota-state.txt-456")
	other := filepath.Join(dir, ".other.txt-789")
	for _, p := range []string{killed, live, other} {
		if err := os.WriteFile(p, []byte("bootcount=5\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkGood(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(b.Path); string(got) != "bootcount=0\n" {
		t.Errorf("file holds %q", got)
	}
	names, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if want := []string{live, other}; !slices.Equal(names, want) {
		t.Errorf("directory holds %q, want %q", names, want)
	}
}
