package commit

import (
	"archive/tar"
	"strings"
	"testing"
)

// TestHardLinkToReplacedPath: a hard link shares the inode of its target as the archive
// stood when the link was read, as extraction leaves it, even when a later member (tar
// --append) replaces the path that first held the content.
func TestHardLinkToReplacedPath(t *testing.T) {
	for _, c := range []struct {
		name    string
		members []member
		want    []string
	}{
		{name: "by a file", members: []member{{name: "f", body: "old"}, {name: "g", typ: tar.TypeLink, link: "f"},
			{name: "f", body: "new"}, {name: "h", typ: tar.TypeLink, link: "g"}},
			want: []string{"/f 100644 new", "/g 100644 old", "/h 100644 old"}},
		{name: "by a symlink", members: []member{{name: "f", body: "old"}, {name: "g", typ: tar.TypeLink, link: "f"},
			{name: "f", typ: tar.TypeSymlink, link: "g", mode: 0o777}, {name: "h", typ: tar.TypeLink, link: "g"}},
			want: []string{"/f 120777 g", "/g 100644 old", "/h 100644 old"}},
		{name: "by a link to its own link", members: []member{{name: "f", body: "old"}, {name: "g", typ: tar.TypeLink, link: "f"},
			{name: "f", typ: tar.TypeLink, link: "g"}},
			want: []string{"/f 100644 old", "/g 100644 old"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := newRepo(t)
			res, err := commitTar(t, repo, c.members, Options{})
			if err != nil {
				t.Fatal(err)
			}
			l := listing(t, repo, res.Commit)
			for _, w := range c.want {
				if !strings.Contains(l, w+"\n") {
					t.Errorf("listing lacks %q:\n%s", w, l)
				}
			}
		})
	}
}
