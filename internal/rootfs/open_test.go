package rootfs

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("box\n"), 0o644)
	tarball := filepath.Join(dir, "rootfs.tar")
	f, _ := os.Create(tarball)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "etc/hostname", Mode: 0o644, Size: 4, Typeflag: tar.TypeReg})
	tw.Write([]byte("box\n"))
	tw.Close()
	f.Close()
	truncated := filepath.Join(dir, "truncated.tar")
	data, _ := os.ReadFile(tarball)
	os.WriteFile(truncated, data[:600], 0o644)

	for _, tc := range []struct{ path, err string }{
		{tree, ""}, {tarball, ""},
		{filepath.Join(dir, "missing"), "no such file"},
		{truncated, truncated + ": "},
	} {
		src, err := Open(tc.path)
		var names []string
		for err == nil {
			var e *Entry
			if e, err = src.Next(); err == nil {
				names = append(names, e.Path)
			}
		}
		if src != nil {
			src.Close()
		}
		if err == io.EOF {
			err = nil
		}
		switch {
		case tc.err == "" && (err != nil || !strings.Contains(strings.Join(names, " "), "etc/hostname")):
			t.Errorf("Open(%s): entries %v, %v", tc.path, names, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Open(%s): error %v, want one containing %q", tc.path, err, tc.err)
		}
	}
}

// Every error of a named tar source starts with its name: from opening, from Next and from
// reading an entry's content, as a tarball cut in a file's data gives.
func TestOpenTarNamed(t *testing.T) {
	good := makeTar(t, member{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg}, body: "hello"},
		member{hdr: tar.Header{Name: "usr/bin/x", Typeflag: tar.TypeReg}, body: strings.Repeat("x", 1000)})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "standard input: reading tarball: empty input"},
		{"cut in data", good[:1024+512+100], "standard input: tar member usr/bin/x: unexpected EOF (truncated tarball?)"},
		{"cut at boundary", good[:1024], "standard input: reading tarball after member a: no end-of-archive marker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := OpenTarNamed(bytes.NewReader(tc.data), "standard input")
			if err == nil {
				if src.Name() != "standard input" {
					t.Errorf("Name() = %q", src.Name())
				}
				_, err = drain(src)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting with %q", err, tc.want)
			}
		})
	}
}
