package bmap

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const imageSize = 64<<20 - 1234 // final block is partial

// requireTool skips the test when name is not installed, unless
// OTA_REQUIRE_TOOLS=1 demands it.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// sparseImage creates a sparse image with data at unaligned offsets, an
// aligned extent and a partial final block, and returns its path.
func sparseImage(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(imageSize); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ off, n int64 }{
		{0, 1000},
		{1<<20 + 100, 10000},
		{10 << 20, 8192},
		{33<<20 - 7, 20},
		{imageSize - 500, 500},
	} {
		data := bytes.Repeat([]byte{byte(i + 1), 0x5a, byte(c.n)}, int(c.n)/3+1)[:c.n]
		if _, err := f.WriteAt(data, c.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeBmap(t *testing.T, image string) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, image); err != nil {
		t.Fatal(err)
	}
	path := image + ".bmap"
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type parsedBmap struct {
	Version           string `xml:"version,attr"`
	ImageSize         string `xml:"ImageSize"`
	BlockSize         string `xml:"BlockSize"`
	BlocksCount       string `xml:"BlocksCount"`
	MappedBlocksCount string `xml:"MappedBlocksCount"`
	ChecksumType      string `xml:"ChecksumType"`
	BmapFileChecksum  string `xml:"BmapFileChecksum"`
	Ranges            []struct {
		Chksum string `xml:"chksum,attr"`
		Blocks string `xml:",chardata"`
	} `xml:"BlockMap>Range"`
}

func parse(t *testing.T, path string) parsedBmap {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p parsedBmap
	if err := xml.Unmarshal(data, &p); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return p
}

func sameFile(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(b), want, len(a))
	}
}

func TestWriteMatchesBmaptoolCreate(t *testing.T) {
	requireTool(t, "bmaptool")
	img := sparseImage(t)
	bm := writeBmap(t, img)
	ours := parse(t, bm)
	ref := filepath.Join(t.TempDir(), "ref.bmap")
	run(t, "bmaptool", "create", "-o", ref, img)
	theirs := parse(t, ref)
	if !reflect.DeepEqual(ours, theirs) {
		t.Fatalf("bmap differs from bmaptool create:\nours:   %+v\ntheirs: %+v", ours, theirs)
	}
	if len(ours.Ranges) != 5 || strings.TrimSpace(ours.Version) != "2.0" {
		t.Fatalf("unexpected bmap: %+v", ours)
	}
	// Same template, so the files (and BmapFileChecksum) match exactly.
	sameFile(t, ref, bm)
}

func TestCopyReproducesImage(t *testing.T) {
	requireTool(t, "bmaptool")
	img := sparseImage(t)
	bm := writeBmap(t, img)
	out := filepath.Join(t.TempDir(), "out.img")
	run(t, "bmaptool", "copy", "--bmap", bm, img, out)
	sameFile(t, img, out)
}

func TestCopyFromZstd(t *testing.T) {
	requireTool(t, "bmaptool")
	requireTool(t, "zstd")
	img := sparseImage(t)
	bm := writeBmap(t, img)
	zst := img + ".zst"
	if err := CompressZstd(zst, img); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.img")
	run(t, "bmaptool", "copy", "--bmap", bm, zst, out)
	sameFile(t, img, out)
}

func TestCopyRejectsCorruptImage(t *testing.T) {
	requireTool(t, "bmaptool")
	img := sparseImage(t)
	bm := writeBmap(t, img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	const off = 10<<20 + 4000
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "out.img")
	msg, err := exec.Command("bmaptool", "copy", "--bmap", bm, img, out).CombinedOutput()
	if err == nil {
		t.Fatalf("bmaptool copy accepted a corrupted image:\n%s", msg)
	}
	if !bytes.Contains(msg, []byte("checksum mismatch")) {
		t.Fatalf("bmaptool copy failed for another reason: %v\n%s", err, msg)
	}
}

func TestCompressZstdNoPartialOutput(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.zst")
	if err := CompressZstd(dst, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("expected error for missing source")
	}
	// A directory source fails mid-stream, after the temp file exists.
	if err := CompressZstd(dst, dir); err == nil {
		t.Fatal("expected error for directory source")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("leftover files: %v", entries)
	}
}

func TestWriteRejectsEmptyImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(&bytes.Buffer{}, img); err == nil {
		t.Fatal("expected error for empty image")
	}
}

func TestHumanSize(t *testing.T) {
	for size, want := range map[int64]string{
		1: "1 byte", 511: "511 bytes", 512: "0.5 KiB", 64 << 20: "64.0 MiB", 3 << 40: "3.0 TiB",
	} {
		if got := humanSize(size); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", size, got, want)
		}
	}
}
