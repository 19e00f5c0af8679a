package commit

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
)

// namedTar returns the members, with their PAX records, as a tar source named rootfs.tar.
func namedTar(t *testing.T, hdrs ...tar.Header) rootfs.Source {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	src, err := rootfs.OpenTarNamed(&buf, "rootfs.tar")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// objectCounts counts a repository's objects by type.
func objectCounts(t *testing.T, repo *ostree.Repo) map[ostree.ObjectType]int {
	t.Helper()
	n := map[ostree.ObjectType]int{}
	if err := repo.WalkObjects(func(_ ostree.Checksum, ot ostree.ObjectType, _ string) error {
		n[ot]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// refusedCleanly fails the test unless err is wanted and the repository holds no objects
// and no ref.
func refusedCleanly(t *testing.T, repo *ostree.Repo, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one containing %q", err, want)
	}
	if n := objectCounts(t, repo); len(n) > 0 {
		t.Errorf("a refused commit wrote objects: %v", n)
	}
	if _, ok, _ := repo.ReadRef("main"); ok {
		t.Error("a refused commit wrote the ref")
	}
}

func regular(name string, size int64, xattrs map[string]string) tar.Header {
	h := tar.Header{Name: name, Typeflag: tar.TypeReg, Size: size}
	if xattrs != nil {
		h.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return h
}

func symlink(name, target string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
}

// Content that passes ostree's checks but that Linux or ext4 cannot hold is refused,
// naming the tarball and the path (quoted, so bad bytes show as escapes), before anything
// is written; content exactly at each limit is committed and passes fsck.
func TestCommitLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("n", n) }
	refused := []struct {
		name string
		hdrs []tar.Header
		want string
	}{
		{"non-UTF-8 name", []tar.Header{regular("usr/bin/bad\xff\xfename", 3, nil)},
			`rootfs.tar: "/usr/bin/bad\xff\xfename": file name is not valid UTF-8`},
		{"non-UTF-8 directory", []tar.Header{regular("usr/\xff/x", 3, nil)},
			`rootfs.tar: "/usr/\xff/x": file name is not valid UTF-8`},
		{"name over NAME_MAX", []tar.Header{regular("etc/"+long(256), 3, nil)},
			`"/etc/` + long(256) + `": file name is 256 bytes, more than the 255 Linux allows`},
		{"5000-byte symlink target", []tar.Header{symlink("usr/lib/l", long(5000))},
			`rootfs.tar: "/usr/lib/l": symlink target is 5000 bytes, more than the 4095 Linux allows`},
		{"4096-byte symlink target", []tar.Header{symlink("l", long(4096))}, `"/l": symlink target is 4096 bytes`},
		{"empty symlink target", []tar.Header{symlink("l", "")}, `"/l": symlink with an empty target`},
		{"non-UTF-8 symlink target", []tar.Header{symlink("l", "\xff")}, `"/l": symlink target is not valid UTF-8`},
		{"200 KB xattr", []tar.Header{regular("f", 1, map[string]string{"user.big": long(200000)})},
			`rootfs.tar: "/f": xattr "user.big": value is 200000 bytes, more than the 65536 Linux allows`},
		{"xattrs over one block", []tar.Header{regular("f", 1, map[string]string{"user.a": long(3000), "user.b": long(1100)})},
			`"/f": xattrs take 4144 bytes in ext4, more than the 4064 of one 4 KiB block`},
		{"xattr name over XATTR_NAME_MAX", []tar.Header{regular("f", 1, map[string]string{"user." + long(251): "v"})},
			`"/f": xattr name "user.nnn`},
		{"empty xattr name", []tar.Header{regular("f", 1, map[string]string{"": "v"})},
			"rootfs.tar: tar member f: PAX record for an xattr with an empty name"},
		{"xattr namespace", []tar.Header{regular("f", 1, map[string]string{"os2.x": "v"})},
			`"/f": xattr "os2.x": not in a namespace ext4 stores`},
		{"user xattr on a symlink", []tar.Header{func() tar.Header {
			h := symlink("l", "f")
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.a": "v"}
			return h
		}()}, `"/l": xattr "user.a": Linux allows user.* xattrs on regular files and directories only`},
		{"xattr on the root", []tar.Header{{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755,
			PAXRecords: map[string]string{"SCHILY.xattr.user.a": long(5000)}}}, `rootfs.tar: "/": xattrs take 5024 bytes`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			repo := newRepo(t)
			_, err := Commit(context.Background(), repo, namedTar(t, tc.hdrs...), Options{Branch: "main", Timestamp: epoch})
			refusedCleanly(t, repo, err, tc.want)
		})
	}

	t.Run("at the limits", func(t *testing.T) {
		repo := newRepo(t)
		_, err := Commit(context.Background(), repo, namedTar(t,
			symlink("l", long(4095)),
			regular("etc/"+long(255), 1, nil),
			regular("v", 1, map[string]string{"user.big": long(4040)}),
			regular("x", 1, map[string]string{"user." + long(250): "v"}),
		), Options{Branch: "main", Timestamp: epoch})
		if err != nil {
			t.Fatal(err)
		}
		if problems, err := repo.Fsck(context.Background()); err != nil || len(problems) > 0 {
			t.Fatalf("fsck: %v %v", problems, err)
		}
	})
}

// A directory holding a file whose name is not UTF-8 is refused the same way, naming the
// directory and the path; so is an override that takes a file's xattrs past ext4's block.
func TestCommitLimitsDir(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/bad\xff\xfename"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t)
	src, err := rootfs.WalkDir(root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Commit(context.Background(), repo, src, Options{Branch: "main", Timestamp: epoch})
	refusedCleanly(t, repo, err, root+`: "/usr/bin/bad\xff\xfename": file name is not valid UTF-8`)

	root = t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ov, err := rootfs.ParseOverrides(strings.NewReader("/f xattr.user.a=0x"+strings.Repeat("00", 3000)+
		" xattr.user.b=0x"+strings.Repeat("00", 1100)+"\n"), "ov")
	if err != nil {
		t.Fatal(err)
	}
	repo = newRepo(t)
	if src, err = rootfs.WalkDir(root); err != nil {
		t.Fatal(err)
	}
	_, err = Commit(context.Background(), repo, src, Options{Branch: "main", Timestamp: epoch, Overrides: ov})
	refusedCleanly(t, repo, err, root+`: "/f": xattrs take 4144 bytes in ext4`)
}

// A path that a symlink or file holds cannot be a directory too; the error names the
// tarball and both paths.
func TestCommitConflictNamesSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdrs []tar.Header
		want string
	}{
		{"symlink as parent", []tar.Header{symlink("a", "b"), regular("a/x", 1, nil)},
			"rootfs.tar: /a/x: /a is a symlink, not a directory"},
		{"file as parent directory", []tar.Header{regular("a", 1, nil), {Name: "a/b/", Typeflag: tar.TypeDir, Mode: 0o755}},
			"rootfs.tar: /a/b: /a is a file, not a directory"},
		{"symlink over a directory", []tar.Header{regular("a/x", 1, nil), symlink("a", "b")},
			"rootfs.tar: /a: replaces a non-empty directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := newRepo(t)
			_, err := Commit(context.Background(), repo, namedTar(t, tc.hdrs...), Options{Branch: "main", Timestamp: epoch})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Overrides apply to directories a tarball leaves out (made for its members' parents) and
// to its root; override and skip-list lines that match nothing are warnings, or with Strict
// an error before any tree or commit object is written.
func TestCommitUnmatchedOverrides(t *testing.T) {
	ov, err := rootfs.ParseOverrides(strings.NewReader("/ mode=0700\n/home/user uid=1000 gid=1000\n"+
		"/usr/bin/missing mode=0755\n/etc/hostname mode=0600\n"), "overrides.txt")
	if err != nil {
		t.Fatal(err)
	}
	skip, err := rootfs.ParseSkipList(strings.NewReader("/var/cache\n/usr/share/doc\n"), "skip.txt")
	if err != nil {
		t.Fatal(err)
	}
	hdrs := []tar.Header{regular("home/user/.profile", 1, nil), regular("etc/hostname", 1, nil),
		regular("var/cache/apt/pkgcache.bin", 1, nil)}
	opts := Options{Branch: "main", Timestamp: epoch, Overrides: ov, SkipList: skip}

	repo := newRepo(t)
	res, err := Commit(context.Background(), repo, namedTar(t, hdrs...), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`overrides.txt:3: "/usr/bin/missing" matches nothing in the tree`,
		`skip.txt:2: "/usr/share/doc" matches nothing in the tree`}
	if strings.Join(res.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(res.Warnings, "\n"), strings.Join(want, "\n"))
	}
	l := listing(t, repo, res.Commit)
	for _, w := range []string{"/ d40700", "/etc/hostname 100600 x"} {
		if !strings.Contains(l, w+"\n") {
			t.Errorf("listing lacks %q:\n%s", w, l)
		}
	}
	repo.Walk(res.Commit, "/home/user", false, func(e ostree.TreeEntry) error {
		if e.Dir != nil && (e.Dir.UID != 1000 || e.Dir.GID != 1000) {
			t.Errorf("/home/user is owned by %d:%d, want the override's 1000:1000", e.Dir.UID, e.Dir.GID)
		}
		return nil
	})

	repo = newRepo(t)
	opts.Strict = true
	_, err = Commit(context.Background(), repo, namedTar(t, hdrs...), opts)
	if err == nil || err.Error() != want[0]+" (and 1 more such lines)" {
		t.Errorf("strict commit: error %v, want %q", err, want[0])
	}
	n := objectCounts(t, repo)
	if n[ostree.ObjDirTree]+n[ostree.ObjDirMeta]+n[ostree.ObjCommit] > 0 {
		t.Errorf("a refused strict commit wrote tree or commit objects: %v", n)
	}
	if _, ok, _ := repo.ReadRef("main"); ok {
		t.Error("a refused strict commit wrote the ref")
	}
}
