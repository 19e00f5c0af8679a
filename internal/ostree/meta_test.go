package ostree

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// Checksums confirmed with ostree 2022.7; docs/format.md, "Content objects", lists them.
func TestKnownChecksums(t *testing.T) {
	file := FileHeader{Mode: ModeRegular | 0o644, Xattrs: []Xattr{{"user.foo", []byte("bar")}}}
	link := FileHeader{Mode: ModeSymlink | 0o777, LinkTarget: "a.txt"}
	dir := DirMeta{Mode: ModeDir | 0o755}
	empty := DirTree{}
	cases := []struct {
		name string
		got  func() (Checksum, error)
		want string
	}{
		{"file", func() (Checksum, error) { return ContentChecksum(&file, strings.NewReader("hello\n")) }, "28af666cd8036303fcab1a13f2ef7f9c9e92b6a392206017d50b932c8ff4daf9"},
		{"symlink", func() (Checksum, error) { return ContentChecksum(&link, nil) }, "f379a4b359f3e8deb971eef3e40a492fec37696c0169a600789f0bc62c43b535"},
		{"dirmeta", func() (Checksum, error) { return Sum(dir.Marshal()), nil }, "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"},
		{"empty dirtree", func() (Checksum, error) { return Sum(empty.Marshal()), nil }, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
	}
	for _, c := range cases {
		got, err := c.got()
		if err != nil || got.String() != c.want {
			t.Errorf("%s: got %s (%v), want %s", c.name, got, err, c.want)
		}
	}
}

func TestArchiveHeaderVector(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644, Xattrs: []Xattr{{"user.foo", []byte("bar")}}}
	want, _ := hex.DecodeString("0000002800000000" + "0000000000000006" + "00000000" + "00000000" + "000081a4" + "00000000" + "00" +
		"757365722e666f6f00" + "626172" + "09" + "0d" + "19")
	if got := h.ArchiveHeader(6); !bytes.Equal(got, want) {
		t.Fatalf("archive header\n got %x\nwant %x", got, want)
	}
	back, size, n, err := ParseArchiveHeader(want)
	if err != nil || size != 6 || n != len(want) || back.Mode != h.Mode || len(back.Xattrs) != 1 {
		t.Fatalf("parse: %+v %d %d %v", back, size, n, err)
	}
}

func TestDirTreeRoundTrip(t *testing.T) {
	var c1, c2 Checksum
	c1[0], c2[0] = 1, 2
	tree := DirTree{
		Files: []TreeFile{{"z", c1}, {"a", c2}, {"é", c1}},
		Dirs:  []TreeDir{{"usr", c1, c2}, {"etc", c2, c1}},
	}
	data := tree.Marshal()
	back, err := ParseDirTree(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Files[0].Name != "a" || back.Dirs[0].Name != "etc" || len(back.Files) != 3 {
		t.Fatalf("not sorted: %+v", back)
	}
	if !bytes.Equal(back.Marshal(), data) {
		t.Fatal("round trip changed bytes")
	}
}

func TestCommitRoundTrip(t *testing.T) {
	c := Commit{Subject: "s", Body: "b", Timestamp: 1577836800, HasParent: true}
	c.Parent[0], c.RootTree[1], c.RootMeta[2] = 9, 8, 7
	back, err := ParseCommit(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if back.Timestamp != c.Timestamp || back.Parent != c.Parent || !back.HasParent || back.RootMeta != c.RootMeta {
		t.Fatalf("got %+v", back)
	}
}

func TestMB64(t *testing.T) {
	c, _ := ParseChecksum("a82afd1810df940c894e592857610f15fcbae6ef64a63ab86e84591b19491124")
	if got := MB64(c); got != "qCr9GBDflAyJTlkoV2EPFfy65u9kpjq4boRZGxlJESQ" {
		t.Fatalf("MB64 = %s", got)
	}
	if back, err := ParseMB64(MB64(c)); err != nil || back != c {
		t.Fatalf("ParseMB64: %v", err)
	}
}
