package builder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/otakit/ota/image"
	"github.com/otakit/ota/internal/ostree"
)

// FuzzLoad loads arbitrary manifests (seed corpus in testdata/fuzz). An error must be one
// line naming the manifest, and a line of it when it has one. An accepted manifest must hold
// what the pipeline relies on before it writes anything, and load again, unchanged, from the
// YAML it marshals to.
func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	for _, p := range []string{"overrides", "skip-list"} {
		err = errors.Join(err, os.WriteFile(filepath.Join(dir, p), nil, 0o644))
	}
	if err != nil {
		f.Fatal(err)
	}
	file, again := filepath.Join(dir, "ota.yaml"), filepath.Join(dir, "again.yaml")
	vars := map[string]string{"VERSION": "1.0"}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(file, vars)
		if err != nil {
			checkLoadError(t, err, file, data)
			return
		}
		checkManifest(t, m)
		out, err := yaml.Marshal(m)
		if err != nil {
			t.Fatalf("manifest %q loads as %+v, which does not marshal: %v", data, m, err)
		}
		if bytes.Contains(out, []byte("${")) {
			return // loading it again would expand it again
		}
		if err := os.WriteFile(again, out, 0o644); err != nil {
			t.Fatal(err)
		}
		m2, err := Load(again, vars)
		if err != nil {
			t.Fatalf("manifest %q marshals to %q, which does not load: %v", data, out, err)
		}
		if out2, _ := yaml.Marshal(m2); !bytes.Equal(out2, out) {
			t.Fatalf("manifest %q marshals to %q, which loads and marshals to %q", data, out, out2)
		}
	})
}

// checkLoadError checks that err, from loading data from file, is a one-line *Error
// naming file and a line of data, if any.
func checkLoadError(t *testing.T, err error, file string, data []byte) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.File != file || !strings.HasPrefix(err.Error(), file+":") {
		t.Fatalf("manifest %q: error %q does not name the manifest", data, err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("manifest %q: error %q is not one line", data, err)
	}
	if strings.HasPrefix(e.Msg, "line ") {
		t.Fatalf("manifest %q: error %q has its line in the message", data, err)
	}
	if e.Line < 0 || e.Line > yamlLines(data) {
		t.Fatalf("manifest %q: error %q names a line the manifest does not have", data, err)
	}
}

// yamlLines returns the number of lines of data, counting line breaks as YAML does.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += strings.Count(s, br)
	}
	return n
}

// checkManifest checks what Load promises of an accepted manifest: the pipeline can start
// writing without meeting a bad value.
func checkManifest(t *testing.T, m *Manifest) {
	t.Helper()
	fail := func(what string) { t.Fatalf("accepted manifest %+v: %s", m, what) }
	if m.Repo.Path == "" {
		fail("no repo.path")
	}
	if _, err := ostree.ParseMode(m.Repo.Mode); m.Repo.Mode != "" && err != nil {
		fail(err.Error())
	}
	if !ostree.ValidRef(m.Commit.Branch) {
		fail("commit.branch is not a valid ref")
	}
	for _, p := range []string{m.Commit.Rootfs, m.Commit.Overrides, m.Commit.SkipList} {
		if _, err := os.Stat(m.path(p)); p != "" && err != nil {
			fail(err.Error())
		}
	}
	if m.Commit.Rootfs == "" {
		fail("no commit.rootfs")
	}
	if d := m.Deltas; d != nil {
		if d.FromLast < 0 {
			fail("negative deltas.from-last")
		}
		if b := d.Bundle; b != nil && (b.Output == "" || !slices.Contains([]string{"", "scratch", "previous"}, b.From)) {
			fail("bad deltas.bundle")
		}
	}
	if im := m.Image; im != nil {
		if (im.Board == "") == (im.Layout == "") || im.Output == "" {
			fail("bad image board, layout or output")
		}
		if _, err := image.ParseSize(im.Size); im.Size != "" && im.Size != "auto" && err != nil {
			fail(err.Error())
		}
		for _, o := range im.Outputs {
			if !slices.Contains([]string{"raw", "bmap", "zstd"}, o) {
				fail("bad image.outputs")
			}
		}
	}
}
