package testsources

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeTarball writes a gzip-compressed tarball holding the files (name: content) at path.
func writeTarball(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Two unpackers at once make one copy, and a later call keeps it rather than unpacking again.
func TestUnpackOnce(t *testing.T) {
	RequireTools(t, "tar", "gzip")
	tarball := filepath.Join(t.TempDir(), "src-1.0.tar.gz")
	writeTarball(t, tarball, map[string]string{"Makefile": "all:\n", "sub/file": "data"})
	cache := filepath.Join(t.TempDir(), "cache")

	dirs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = Unpack(tarball, cache, "src") })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatalf("Unpack %d: %v", i, errs[i])
		}
	}
	if dirs[0] != dirs[1] || filepath.Dir(dirs[0]) != cache || !strings.HasPrefix(filepath.Base(dirs[0]), "src-") {
		t.Fatalf("Unpack returned %q and %q, want one src-<hash> directory in %s", dirs[0], dirs[1], cache)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "sub", "file")); err != nil || string(b) != "data" {
		t.Errorf("unpacked sub/file: %q, %v", b, err)
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{".unpack.lock", filepath.Base(dirs[0])}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("the cache holds %v, want %v (one copy, no temporary directory left)", names, want)
	}

	// A later run finds the copy: what a test changed in it stays.
	if err := os.WriteFile(filepath.Join(dirs[0], "Makefile"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Unpack(tarball, cache, "src")
	if err != nil || again != dirs[0] {
		t.Fatalf("Unpack again: %q, %v; want %q", again, err, dirs[0])
	}
	if b, _ := os.ReadFile(filepath.Join(again, "Makefile")); string(b) != "changed\n" {
		t.Errorf("Unpack unpacked again over the copy there (Makefile: %q)", b)
	}

	// Another tarball (another version) gets its own directory.
	other := filepath.Join(t.TempDir(), "src-1.1.tar.gz")
	writeTarball(t, other, map[string]string{"Makefile": "all: new\n"})
	if d, err := Unpack(other, cache, "src"); err != nil || d == dirs[0] {
		t.Errorf("Unpack of another tarball: %q, %v; want a directory other than %q", d, err, dirs[0])
	}
}

// A tarball that is not one fails, naming it, and leaves nothing in the cache but the lock.
func TestUnpackBadTarball(t *testing.T) {
	RequireTools(t, "tar")
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	if err := os.WriteFile(bad, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if _, err := Unpack(bad, cache, "bad"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Unpack of a broken tarball: %v, want an error naming %s", err, bad)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 1 || entries[0].Name() != ".unpack.lock" {
		t.Errorf("the cache holds %v after a failed unpack", entries)
	}
	if _, err := Unpack(filepath.Join(cache, "absent.tar.xz"), cache, "x"); err == nil {
		t.Error("Unpack of an absent tarball succeeded")
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	checkout := filepath.Join(root, "work", "ota")
	sources := filepath.Join(root, "shared", "sources")
	for _, d := range []string{checkout, sources} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sources, "snap.tar.xz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := Find(checkout, "snap.tar.xz"); err != nil || d != sources {
		t.Errorf("Find: %q, %v; want %q", d, err, sources)
	}
	_, err := Find(checkout, "other.tar.xz")
	if err == nil || !strings.Contains(err.Error(), "shared/sources/other.tar.xz") || !strings.Contains(err.Error(), checkout) {
		t.Errorf("Find of an absent snapshot: %v, want an error naming it and %s", err, checkout)
	}
}

func TestCache(t *testing.T) {
	t.Setenv("OTA_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	t.Setenv("HOME", "/home/me")
	for _, c := range []struct{ env, home, want string }{
		{"", "", "/xdg/ota-tests"},
		{"", "/home/builder", "/home/builder/.cache/ota-tests"},
		{"/ci/cache", "", "/ci/cache"},
		{"/ci/cache", "/home/builder", "/ci/cache"},
	} {
		t.Setenv("OTA_CACHE", c.env)
		if d, err := Cache(c.home); err != nil || d != c.want {
			t.Errorf("OTA_CACHE=%q Cache(%q) = %q, %v; want %q", c.env, c.home, d, err, c.want)
		}
	}
}

// recorder is a testing.TB that notes a skip or a failure instead of ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// A missing tool or snapshot skips the test, and fails it under OTA_REQUIRE_TOOLS=1.
func TestMissing(t *testing.T) {
	const absent = "no-such-tool-for-testsources"
	for _, c := range []struct {
		require       string
		skip, failure bool
	}{
		{"", true, false},
		{"0", true, false},
		{"1", false, true},
	} {
		t.Setenv("OTA_REQUIRE_TOOLS", c.require)
		var r recorder
		RequireTools(&r, "sh", absent)
		if (r.skipped != "") != c.skip || (r.failed != "") != c.failure || !strings.Contains(r.skipped+r.failed, absent+" is not installed") {
			t.Errorf("OTA_REQUIRE_TOOLS=%q: skipped %q, failed %q", c.require, r.skipped, r.failed)
		}
		var none recorder
		RequireTools(&none, "sh")
		if none.skipped != "" || none.failed != "" {
			t.Errorf("RequireTools of an installed tool: skipped %q, failed %q", none.skipped, none.failed)
		}
	}
}
