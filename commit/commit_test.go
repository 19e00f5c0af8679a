package commit

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
	"github.com/otakit/ota/internal/sign"
)

// member is one tar member of a test tree.
type member struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
}

func tarOf(t *testing.T, ms []member) rootfs.Source {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: m.mode, Uid: m.uid, Linkname: m.link, Size: int64(len(m.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, m.body)
	}
	tw.Close()
	src, err := rootfs.OpenTar(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func newRepo(t *testing.T) *ostree.Repo {
	t.Helper()
	r, err := ostree.Init(t.TempDir(), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var epoch = time.Unix(1700000000, 0)

func commitTar(t *testing.T, repo *ostree.Repo, ms []member, opts Options) (Result, error) {
	t.Helper()
	if opts.Branch == "" {
		opts.Branch = "main"
	}
	if opts.Timestamp.IsZero() {
		opts.Timestamp = epoch
	}
	return Commit(context.Background(), repo, tarOf(t, ms), opts)
}

// listing returns "path mode uid target size" lines of a commit's tree.
func listing(t *testing.T, repo *ostree.Repo, c ostree.Checksum) string {
	t.Helper()
	var b strings.Builder
	err := repo.Walk(c, "/", true, func(e ostree.TreeEntry) error {
		if e.Dir != nil {
			b.WriteString(e.Path + " d" + octal(e.Dir.Mode) + "\n")
			return nil
		}
		obj, err := repo.OpenContent(e.Checksum)
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(obj)
		obj.Close()
		b.WriteString(e.Path + " " + octal(e.Header.Mode) + " " + e.Header.LinkTarget + string(data) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func octal(m uint32) string { return fmt.Sprintf("%o", m) }

func TestTreeRules(t *testing.T) {
	cases := []struct {
		name    string
		members []member
		opts    Options
		want    []string // lines that must appear in the listing
		absent  []string // paths that must not appear
		wantErr string
	}{
		{name: "missing parents are created", members: []member{{name: "a/b/c.txt", body: "x"}},
			want: []string{"/a d40755", "/a/b/c.txt 100644 x"}},
		{name: "later duplicate wins", members: []member{{name: "f", body: "old"}, {name: "f", body: "new", mode: 0o600}},
			want: []string{"/f 100600 new"}},
		{name: "hard link shares content", members: []member{{name: "f", body: "data"}, {name: "g", typ: tar.TypeLink, link: "f"}},
			want: []string{"/f 100644 data", "/g 100644 data"}},
		{name: "special file rejected", members: []member{{name: "dev/null", typ: tar.TypeChar}},
			wantErr: "/dev/null: a character device cannot be stored"},
		{name: "special file skipped", members: []member{{name: "dev/null", typ: tar.TypeChar}, {name: "f", body: "x"}},
			opts: Options{SkipSpecial: true}, want: []string{"/f 100644 x"}, absent: []string{"/dev/null"}},
		{name: "file over non-empty directory", members: []member{{name: "d/x", body: "1"}, {name: "d", body: "2"}},
			wantErr: "/d: replaces a non-empty directory"},
		{name: "file as parent", members: []member{{name: "f", body: "1"}, {name: "f/x", body: "2"}},
			wantErr: "not a directory"},
		{name: "symlinks", members: []member{{name: "l", typ: tar.TypeSymlink, link: "/etc/passwd", mode: 0o777}},
			want: []string{"/l 120777 /etc/passwd"}},
		{name: "setuid kept", members: []member{{name: "su", body: "x", mode: 0o4755}},
			want: []string{"/su 104755 x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := newRepo(t)
			res, err := commitTar(t, repo, c.members, c.opts)
			if failedAsWanted(t, repo, err, c.wantErr) {
				return
			}
			l := listing(t, repo, res.Commit)
			for _, w := range c.want {
				if !strings.Contains(l, w+"\n") {
					t.Errorf("listing lacks %q:\n%s", w, l)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(l, a+" ") {
					t.Errorf("listing has %q:\n%s", a, l)
				}
			}
		})
	}
}

func TestOwnershipOptions(t *testing.T) {
	repo := newRepo(t)
	ov, err := rootfs.ParseOverrides(strings.NewReader("/home/u uid=1000 gid=1000\n/f mode=0600\n"), "ov")
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(0), uint32(0)
	ms := []member{{name: "home/u", typ: tar.TypeDir, mode: 0o755, uid: 5}, {name: "f", body: "x", uid: 7}, {name: "g", typ: tar.TypeLink, link: "f"}}
	res, err := commitTar(t, repo, ms, Options{OwnerUID: &uid, OwnerGID: &gid, Overrides: ov})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]uint32{}
	repo.Walk(res.Commit, "/", true, func(e ostree.TreeEntry) error {
		if e.Dir != nil {
			got[e.Path] = [3]uint32{e.Dir.UID, e.Dir.GID, e.Dir.Mode}
		} else {
			got[e.Path] = [3]uint32{e.Header.UID, e.Header.GID, e.Header.Mode}
		}
		return nil
	})
	want := map[string][3]uint32{
		"/home/u": {1000, 1000, ostree.ModeDir | 0o755},
		"/f":      {0, 0, ostree.ModeRegular | 0o600},
		"/g":      {0, 0, ostree.ModeRegular | 0o600}, // a hard link shares /f's inode
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: got %v, want %v", p, got[p], w)
		}
	}
}

func TestParentAndSignatures(t *testing.T) {
	repo := newRepo(t)
	first, err := commitTar(t, repo, []member{{name: "f", body: "1"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Parent != nil {
		t.Fatal("first commit has a parent")
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	s, _ := sign.FromCryptoSigner(priv)
	second, err := commitTar(t, repo, []member{{name: "f", body: "2"}}, Options{Signers: []*Signer{s, s}})
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent == nil || *second.Parent != first.Commit {
		t.Fatalf("parent = %v, want %s", second.Parent, first.Commit)
	}
	cm, data, err := repo.ReadCommit(second.Commit)
	if err != nil || !cm.HasParent {
		t.Fatal(err)
	}
	// The same key twice signs once: one signature per key.
	sigs, err := Signatures(repo, second.Commit)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("signatures: %d, %v", len(sigs), err)
	}
	if err := sign.Verify([]ed25519.PublicKey{pub}, data, sigs); err != nil {
		t.Fatal(err)
	}
	if c, _ := repo.Resolve("main^"); c != first.Commit {
		t.Fatalf("main^ = %s", c)
	}
	// Only the changed file is new in the second commit.
	if second.FilesWritten != 1 {
		t.Fatalf("second commit wrote %d content objects, want 1", second.FilesWritten)
	}
}

func TestReproducible(t *testing.T) {
	ms := []member{{name: "a", body: "1"}, {name: "b/c", body: "2", mode: 0o755}, {name: "l", typ: tar.TypeSymlink, link: "a"}}
	var sums []ostree.Checksum
	for range 2 {
		res, err := commitTar(t, newRepo(t), ms, Options{Version: "1", Workers: 3})
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, res.Commit)
	}
	if sums[0] != sums[1] {
		t.Fatalf("same input gave %s and %s", sums[0], sums[1])
	}
}

// A large streamed file goes through the spill path and must round-trip exactly.
func TestLargeStreamedFile(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", (inlineMax+12345)/16)
	repo := newRepo(t)
	res, err := commitTar(t, repo, []member{{name: "big", body: big}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var c ostree.Checksum
	repo.Walk(res.Commit, "/big", false, func(e ostree.TreeEntry) error { c = e.Checksum; return nil })
	obj, err := repo.OpenContent(c)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, _ := io.ReadAll(obj)
	if string(data) != big {
		t.Fatalf("content differs: %d bytes, want %d", len(data), len(big))
	}
	if problems, err := repo.Fsck(context.Background()); err != nil || len(problems) > 0 {
		t.Fatalf("fsck: %v %v", problems, err)
	}
}

func TestInvalidBranch(t *testing.T) {
	_, err := commitTar(t, newRepo(t), nil, Options{Branch: "../x"})
	if err == nil || !strings.Contains(err.Error(), "invalid branch") {
		t.Fatalf("err = %v", err)
	}
	var sfe *SpecialFileError
	if errors.As(err, &sfe) {
		t.Fatal("wrong error type")
	}
}

// Commits into every repository mode the process may write read back identically, and
// the real ostree accepts them when it is installed.
func TestRepositoryModes(t *testing.T) {
	ms := []member{{name: "etc/conf", body: "k=v\n"}, {name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755},
		{name: "lib/l", typ: tar.TypeSymlink, link: "../bin/tool", mode: 0o777}, {name: "bin/t2", typ: tar.TypeLink, link: "bin/tool"}}
	modes := []ostree.Mode{ostree.ModeArchive, ostree.ModeBareUser, ostree.ModeBareUserOnly}
	if os.Geteuid() == 0 {
		modes = append(modes, ostree.ModeBare)
	}
	var want string
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			repo, err := ostree.Init(t.TempDir(), m)
			if err != nil {
				t.Fatal(err)
			}
			res, err := commitTar(t, repo, ms, Options{})
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
				t.Skipf("filesystem lacks user xattrs: %v", err)
			} else if err != nil {
				t.Fatal(err)
			}
			problems, err := repo.Fsck(context.Background())
			if err != nil || len(problems) > 0 {
				t.Fatalf("fsck: %v %v", problems, err)
			}
			l := listing(t, repo, res.Commit)
			if want == "" { // archive mode runs first and sets the reference
				want = l
			}
			w := want
			if m == ostree.ModeBareUserOnly { // canonical permissions drop setuid
				w = strings.ReplaceAll(w, "104755", "100755")
			}
			if l != w {
				t.Errorf("listing differs from archive mode:\n%s\nwant\n%s", l, w)
			}
			if _, err := exec.LookPath("ostree"); err == nil {
				if out, err := exec.Command("ostree", "fsck", "--repo="+repo.Path).CombinedOutput(); err != nil {
					t.Fatalf("ostree fsck: %v\n%s", err, out)
				}
			}
		})
	}
}

// Commits to one repository from several goroutines are serialised by the repository lock
// and all land.
func TestConcurrentCommits(t *testing.T) {
	repo := newRepo(t)
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := commitTar(t, repo, []member{{name: "f", body: strings.Repeat("x", i+1)}},
				Options{Branch: fmt.Sprintf("b%d", i)})
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	refs, err := repo.ListRefs()
	if err != nil || len(refs) != 4 {
		t.Fatalf("refs: %v %v", refs, err)
	}
	if problems, err := repo.Fsck(context.Background()); err != nil || len(problems) > 0 {
		t.Fatalf("fsck: %v %v", problems, err)
	}
}

// failedAsWanted reports whether a commit failed with an error containing wantErr, leaving
// the branch alone; it fails the test on any other outcome except success when wantErr is
// empty.
func failedAsWanted(t *testing.T, repo *ostree.Repo, err error, wantErr string) bool {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("err = %v, want %q", err, wantErr)
	}
	if _, ok, _ := repo.ReadRef("main"); ok {
		t.Fatal("failed commit moved the branch")
	}
	return true
}

// repoFiles lists every file of a repository with its size.
func repoFiles(t *testing.T, repo *ostree.Repo) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(repo.Path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			fmt.Fprintf(&b, "%s %d\n", p, info.Size())
		}
		return err
	})
	return b.String()
}

func TestDryRunAndSkipIfUnchanged(t *testing.T) {
	big := strings.Repeat("x", inlineMax+1)
	ms := []member{{name: "a", body: "1"}, {name: "big", body: big}, {name: "l", typ: tar.TypeSymlink, link: "a"}}
	repo := newRepo(t)
	before := repoFiles(t, repo)
	dry, err := commitTar(t, repo, ms, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after := repoFiles(t, repo); after != before || dry.Commit != (ostree.Checksum{}) {
		t.Fatalf("dry run wrote to the repository (commit %s):\n%s", dry.Commit, after)
	}
	real, err := commitTar(t, repo, ms, Options{SkipIfUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	if real.Unchanged || real.RootTree != dry.RootTree || real.RootMeta != dry.RootMeta {
		t.Fatalf("real commit %+v, dry run %+v", real, dry)
	}
	before = repoFiles(t, repo)
	again, err := commitTar(t, repo, ms, Options{SkipIfUnchanged: true, Version: "2"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Unchanged || again.Commit != real.Commit || repoFiles(t, repo) != before {
		t.Fatalf("unchanged tree: %+v, want the parent %s and nothing written", again, real.Commit)
	}
	changed, err := commitTar(t, repo, append(ms, member{name: "new", body: "n"}), Options{SkipIfUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	if changed.Unchanged || changed.Parent == nil || *changed.Parent != real.Commit {
		t.Fatalf("changed tree: %+v", changed)
	}
}

// TestSigningIsIdempotent: committing the same tree again with the same key (the same
// commit, as a rerun after a kill makes it) and AddSignatures with a key that already
// signed leave the .commitmeta byte for byte as it was; a new key adds one signature.
func TestSigningIsIdempotent(t *testing.T) {
	repo := newRepo(t)
	ms := []member{{name: "f", body: "1"}}
	_, priv, _ := ed25519.GenerateKey(nil)
	s, _ := sign.FromCryptoSigner(priv)
	opts := Options{NoParent: true, Signers: []*Signer{s}}
	first, err := commitTar(t, repo, ms, opts)
	if err != nil {
		t.Fatal(err)
	}
	metaFile := filepath.Join(repo.Path, "objects", first.Commit.String()[:2], first.Commit.String()[2:]+".commitmeta")
	meta := func() []byte {
		t.Helper()
		b, err := os.ReadFile(metaFile)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := meta()
	again, err := commitTar(t, repo, ms, opts)
	if err != nil || again.Commit != first.Commit {
		t.Fatalf("second commit %s (%v), want the same commit %s", again.Commit, err, first.Commit)
	}
	if got := meta(); !bytes.Equal(got, want) {
		t.Fatalf("re-committing changed the .commitmeta: %d bytes, was %d", len(got), len(want))
	}
	_, data, err := repo.ReadCommit(first.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := AddSignatures(repo, first.Commit, data, []*Signer{s, s}); err != nil || n != 0 {
		t.Fatalf("AddSignatures with the same key: %d added, %v", n, err)
	}
	if got := meta(); !bytes.Equal(got, want) {
		t.Fatalf("signing again changed the .commitmeta: %d bytes, was %d", len(got), len(want))
	}
	_, priv2, _ := ed25519.GenerateKey(nil)
	s2, _ := sign.FromCryptoSigner(priv2)
	if n, err := AddSignatures(repo, first.Commit, data, []*Signer{s, s2}); err != nil || n != 1 {
		t.Fatalf("AddSignatures with a second key: %d added, %v", n, err)
	}
	if sigs, err := Signatures(repo, first.Commit); err != nil || len(sigs) != 2 {
		t.Fatalf("%d signatures after a second key, want 2 (%v)", len(sigs), err)
	}
}
