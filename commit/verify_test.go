package commit

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"os"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
)

// TestCommitRefusesCorruptLinkTarget: a hard link whose metadata an override changed gets
// its own object, made from its target's stored content. When that object was already in
// the repository and is corrupt, the commit fails naming it, rather than turning the
// corruption into a new object with a valid checksum.
func TestCommitRefusesCorruptLinkTarget(t *testing.T) {
	repo := newRepo(t)
	first, err := commitTar(t, repo, []member{{name: "f", body: "data-one"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var obj ostree.Checksum
	var h ostree.FileHeader
	err = repo.Walk(first.Commit, "/f", false, func(e ostree.TreeEntry) error {
		obj, h = e.Checksum, *e.Header
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same header and size, other content: a valid archive object, under the wrong name.
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	w.Write([]byte("data-two"))
	w.Close()
	if err := os.WriteFile(repo.ObjectPath(obj, ostree.ObjFile), append(h.ArchiveHeader(8), z.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}

	ov, err := rootfs.ParseOverrides(strings.NewReader("/g mode=0600\n"), "ov")
	if err != nil {
		t.Fatal(err)
	}
	_, err = commitTar(t, repo, []member{{name: "f", body: "data-one"}, {name: "g", typ: tar.TypeLink, link: "f"}},
		Options{Branch: "next", Overrides: ov})
	if err == nil || !strings.Contains(err.Error(), obj.String()) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("commit: %v; want an error saying object %s is corrupt", err, obj)
	}
	if _, ok, _ := repo.ReadRef("next"); ok {
		t.Error("the failed commit created its branch")
	}
}
