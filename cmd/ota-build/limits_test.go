package main

// Issue 9, items 3, 4, 11 and 12 (first part): names, symlink targets and xattrs that do
// not deploy are refused at commit and reported by fsck; override and skip-list lines
// that match nothing warn (or fail with --strict); tarball errors name the tarball.

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
)

// limitsTar returns a plain PAX tar of the headers, each regular file holding "x"s.
func limitsTar(t *testing.T, hdrs ...tar.Header) []byte {
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
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// limitsFile is a regular file member with SCHILY xattrs.
func limitsFile(name string, xattrs map[string]string) tar.Header {
	h := tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1, PAXRecords: map[string]string{}}
	for k, v := range xattrs {
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	return h
}

// limitsSymlink is a symlink member.
func limitsSymlink(name, target string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
}

// limitsRefused runs a commit that must fail as limitsFailed checks, writing nothing: the
// repository keeps the same files (no new objects).
func limitsRefused(t *testing.T, repo string, stdin []byte, args []string, wants ...string) {
	t.Helper()
	before := repoState(t, repo)
	limitsFailed(t, repo, stdin, args, wants...)
	if after := repoState(t, repo); after != before {
		t.Errorf("the refused commit changed the repository:\n%s\nwas:\n%s", after, before)
	}
}

// limitsFailed runs a commit into the repository of accRepo that must exit 1 with one line
// holding wants, leaving the same refs and history and a clean ostree fsck.
func limitsFailed(t *testing.T, repo string, stdin []byte, args []string, wants ...string) {
	t.Helper()
	refs := accRefs(t, repo)
	r := runCmd(t, nil, stdin, otaBuild, append([]string{"commit", "--repo", repo, "-b", "main",
		"--timestamp", accTimestamp}, args...)...)
	t.Logf("exit %d, stderr: %s", r.code, strings.TrimSpace(r.stderr))
	accOneLineError(t, r, wants...)
	if r.code != 1 {
		t.Errorf("exit status %d, want 1", r.code)
	}
	accSameRefs(t, refs, accRefs(t, repo))
	if n := accCommitCount(t, repo, "main"); n != 1 {
		t.Errorf("ostree log shows %d commits on main, want 1", n)
	}
	accOstreeFsck(t, repo)
}

// A file name that is not UTF-8 is refused at commit from a tarball, from standard input
// and from a directory, naming the source and the path with its bad bytes escaped (item 3).
func TestCommitRefusesNonUTF8Name(t *testing.T) {
	requireTool(t, "ostree")
	const bad = "usr/bin/bad\xff\xfename"
	want := `"/usr/bin/bad\xff\xfename": file name is not valid UTF-8`
	t.Run("tar", func(t *testing.T) {
		dir := t.TempDir()
		repo, _ := accRepo(t, dir)
		p := accWriteFile(t, dir, "bad.tar", limitsTar(t, limitsFile(bad, nil), limitsFile("etc/ok", nil)))
		limitsRefused(t, repo, nil, []string{"--tree", "tar=" + p}, p+": "+want)
	})
	t.Run("stdin", func(t *testing.T) {
		repo, _ := accRepo(t, t.TempDir())
		limitsRefused(t, repo, limitsTar(t, limitsFile(bad, nil)), []string{"--tree", "tar=-"}, "standard input: "+want)
	})
	t.Run("dir", func(t *testing.T) {
		dir := t.TempDir()
		repo, _ := accRepo(t, dir)
		// The committed tree again, whose objects the repository has, plus the bad name.
		tree := filepath.Join(dir, "good-tree")
		accWriteFile(t, filepath.Join(tree, "usr/bin"), "bad\xff\xfename", []byte("x"))
		limitsRefused(t, repo, nil, []string{"--tree", "dir=" + tree}, tree+": "+want)
	})
}

// limitsRepo writes, with the internal/ostree API and so past commit's checks, a commit on
// main of an archive repository at dir whose root holds the given files.
func limitsRepo(t *testing.T, dir string, files map[string]ostree.FileHeader) string {
	t.Helper()
	repoPath := filepath.Join(dir, "repo")
	ota(t, "init", "--repo", repoPath)
	repo, err := ostree.Open(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	var root ostree.DirTree
	for name, h := range files {
		data := ""
		if !h.IsSymlink() {
			data = "content\n"
		}
		c, err := ostree.ContentChecksum(&h, strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.WriteContent(c, &h, strings.NewReader(data), int64(len(data)), 6); err != nil {
			t.Fatal(err)
		}
		root.Files = append(root.Files, ostree.TreeFile{Name: name, Checksum: c})
	}
	meta := ostree.DirMeta{Mode: ostree.ModeDir | 0o755}
	m, err1 := repo.WriteObject(ostree.ObjDirMeta, meta.Marshal())
	tree, err2 := repo.WriteObject(ostree.ObjDirTree, root.Marshal())
	cm := ostree.Commit{Subject: "bypass", RootTree: tree, RootMeta: m, Timestamp: 1700000000}
	c, err3 := repo.WriteObject(ostree.ObjCommit, cm.Marshal())
	if err := errors.Join(err1, err2, err3, repo.WriteRef("main", c)); err != nil {
		t.Fatal(err)
	}
	return repoPath
}

// A repository whose dirtree holds a name that is not UTF-8 (written past commit's check)
// fails ota-build fsck, naming the path, as it fails the real ostree fsck (item 3).
func TestFsckNonUTF8NameAgreesWithOstree(t *testing.T) {
	requireTool(t, "ostree")
	repo := limitsRepo(t, t.TempDir(), map[string]ostree.FileHeader{
		"bad\xff\xfename": {Mode: ostree.ModeRegular | 0o644}})
	r := runCmd(t, nil, nil, otaBuild, "fsck", "--repo", repo)
	if r.code != 1 || !strings.Contains(r.stderr, `"/bad\xff\xfename": dirtree `) ||
		!strings.Contains(r.stderr, "file name is not valid UTF-8") {
		t.Errorf("ota-build fsck: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	o := runCmd(t, nil, nil, "ostree", "fsck", "--repo="+repo)
	t.Logf("ostree fsck: exit %d: %s", o.code, strings.TrimSpace(o.stderr))
	if o.code == 0 {
		t.Errorf("the real ostree fsck accepts the repository:\n%s", o.stdout)
	}
}

// Content beyond the limits of Linux and ext4 is refused at commit naming the tarball and
// the path (item 4), and so is an xattr with an empty name, which was dropped before.
// The same content made in a directory is refused too where the filesystem can hold it.
func TestCommitRefusesUndeployable(t *testing.T) {
	requireTool(t, "ostree")
	long := func(n int) string { return strings.Repeat("n", n) }
	cases := []struct {
		name   string
		member tar.Header
		want   string
		// mkdir creates the same content in a directory, failing where the filesystem
		// refuses it.
		mkdir func(p string) error
	}{
		{"5000-byte symlink target", limitsSymlink("usr/lib/l", long(5000)),
			`"/usr/lib/l": symlink target is 5000 bytes, more than the 4095 Linux allows`,
			func(p string) error { return os.Symlink(long(5000), filepath.Join(p, "usr/lib/l")) }},
		{"empty symlink target", limitsSymlink("usr/lib/l", ""), `"/usr/lib/l": symlink with an empty target`,
			func(p string) error { return os.Symlink("", filepath.Join(p, "usr/lib/l")) }},
		{"200 KB xattr", limitsFile("usr/lib/f", map[string]string{"user.big": long(200 << 10)}),
			`"/usr/lib/f": xattr "user.big": value is 204800 bytes, more than the 65536 Linux allows`,
			func(p string) error { return limitsXattrFile(p, "user.big", 200<<10) }},
		{"xattrs over one ext4 block", limitsFile("usr/lib/f", map[string]string{"user.a": long(3000), "user.b": long(1100)}),
			`"/usr/lib/f": xattrs take 4144 bytes in ext4, more than the 4064 of one 4 KiB block`,
			func(p string) error {
				if err := limitsXattrFile(p, "user.a", 3000); err != nil {
					return err
				}
				return unix.Setxattr(filepath.Join(p, "usr/lib/f"), "user.b", make([]byte, 1100), 0)
			}},
		{"256-byte xattr name", limitsFile("usr/lib/f", map[string]string{"user." + long(251): "v"}),
			`"/usr/lib/f": xattr name "user.nnn`,
			func(p string) error { return limitsXattrFile(p, "user."+long(251), 1) }},
		{"empty xattr name", limitsFile("usr/lib/f", map[string]string{"": "v"}),
			"tar member usr/lib/f: PAX record for an xattr with an empty name",
			func(p string) error { return limitsXattrFile(p, "", 1) }},
	}
	for _, tc := range cases {
		t.Run(tc.name+" from a tarball", func(t *testing.T) {
			dir := t.TempDir()
			repo, _ := accRepo(t, dir)
			p := accWriteFile(t, dir, "rootfs.tar", limitsTar(t, tc.member))
			limitsRefused(t, repo, nil, []string{"--tree", "tar=" + p}, p+": ", tc.want)
		})
		t.Run(tc.name+" from a directory", func(t *testing.T) {
			dir := t.TempDir()
			repo, _ := accRepo(t, dir)
			tree := filepath.Join(dir, "good-tree")
			os.MkdirAll(filepath.Join(tree, "usr/lib"), 0o755)
			if err := tc.mkdir(tree); err != nil {
				var errno unix.Errno
				errors.As(err, &errno)
				t.Skipf("the filesystem refuses to create it (%v), as Linux should", errno)
			}
			limitsRefused(t, repo, nil, []string{"--tree", "dir=" + tree}, tree+": ", tc.want)
		})
	}
}

// limitsXattrFile creates usr/lib/f under root with an xattr of size bytes.
func limitsXattrFile(root, name string, size int) error {
	p := filepath.Join(root, "usr/lib/f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		return err
	}
	return unix.Setxattr(p, name, bytes.Repeat([]byte("v"), size), 0)
}

// limitsUserXattrs skips the test unless the filesystem of dir takes user.* xattrs.
func limitsUserXattrs(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "xattr-probe")
	os.WriteFile(p, nil, 0o644)
	defer os.Remove(p)
	if err := unix.Setxattr(p, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("%s does not take user.* xattrs, which ostree checkout sets: %v", dir, err)
	}
}

// Content exactly at each limit commits, from a tarball and from a directory, passes both
// fscks, and the real ostree checks it out with the symlink target and xattrs intact
// (checkout sets user.* xattrs, so it needs a filesystem taking them).
func TestCommitAtLimitsChecksOut(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	limitsUserXattrs(t, dir)
	long := func(n int) string { return strings.Repeat("n", n) }
	target, name255, xname := long(4095), long(255), "user."+long(250)
	// 4 + 20 + 4040 = 4064 bytes: exactly one ext4 xattr block.
	block := map[string]string{"user.a": long(4040)}
	tarball := accWriteFile(t, dir, "rootfs.tar", limitsTar(t,
		limitsSymlink("l", target), limitsFile(name255, nil), limitsFile("block", block),
		limitsFile("xname", map[string]string{xname: "v"})))
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	for _, err := range []error{
		os.Symlink(target, filepath.Join(tree, "l")),
		os.WriteFile(filepath.Join(tree, name255), []byte("x"), 0o644),
		os.WriteFile(filepath.Join(tree, "block"), []byte("x"), 0o644),
		unix.Setxattr(filepath.Join(tree, "block"), "user.a", []byte(block["user.a"]), 0),
		os.WriteFile(filepath.Join(tree, "xname"), []byte("x"), 0o644),
		unix.Setxattr(filepath.Join(tree, "xname"), xname, []byte("v"), 0),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range []string{"tar=" + tarball, "dir=" + tree} {
		t.Run(src[:3], func(t *testing.T) {
			sub := t.TempDir()
			repo := filepath.Join(sub, "repo")
			ota(t, "init", "--repo", repo)
			ota(t, "commit", "--repo", repo, "-b", "main", "--tree", src, "--timestamp", accTimestamp)
			ota(t, "fsck", "--repo", repo)
			accOstreeFsck(t, repo)
			out := filepath.Join(sub, "out")
			must(t, "ostree", "checkout", "--repo="+repo, "main", out)
			if got, err := os.Readlink(filepath.Join(out, "l")); err != nil || got != target {
				t.Errorf("checked-out symlink: %d bytes, %v", len(got), err)
			}
			if _, err := os.Stat(filepath.Join(out, name255)); err != nil {
				t.Error(err)
			}
			for f, xs := range map[string]map[string]string{"block": block, "xname": {xname: "v"}} {
				for n, v := range xs {
					if got := getXattr(t, filepath.Join(out, f), n); string(got) != v {
						t.Errorf("checked-out %s: xattr %.20s... is %d bytes, want %d", f, n, len(got), len(v))
					}
				}
			}
		})
	}
}

// A repository holding content beyond the limits (written past commit's checks) passes
// the real ostree fsck but cannot be checked out; ota-build fsck reports it, naming each
// path (item 4).
func TestFsckReportsUndeployable(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	limitsUserXattrs(t, dir)
	for _, tc := range []struct {
		name string
		h    ostree.FileHeader
		want string
	}{
		{"link", ostree.FileHeader{Mode: ostree.ModeSymlink | 0o777, LinkTarget: strings.Repeat("t", 5000)},
			`refs/heads/main: "/link": symlink target is 5000 bytes, more than the 4095 Linux allows`},
		{"big", ostree.FileHeader{Mode: ostree.ModeRegular | 0o644, Xattrs: []ostree.Xattr{{Name: "user.big", Value: make([]byte, 200<<10)}}},
			`refs/heads/main: "/big": xattr "user.big": value is 204800 bytes, more than the 65536 Linux allows`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := t.TempDir()
			repo := limitsRepo(t, sub, map[string]ostree.FileHeader{tc.name: tc.h})
			r := runCmd(t, nil, nil, otaBuild, "fsck", "--repo", repo)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("ota-build fsck: exit %d, stderr:\n%s\nwant %q", r.code, r.stderr, tc.want)
			}
			co := runCmd(t, nil, nil, "ostree", "checkout", "--repo="+repo, "main", filepath.Join(sub, "out"))
			t.Logf("ostree checkout: exit %d: %s", co.code, strings.TrimSpace(co.stderr))
			if co.code == 0 {
				t.Errorf("the real ostree checks out content ota-build fsck calls undeployable")
			}
		})
	}
}

// Override and skip-list lines that match nothing print a warning naming file:line and
// the commit goes ahead; with --strict the commit fails with that line and writes nothing
// (item 11).
func TestCommitUnmatchedOverrideLines(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	repo, good := accRepo(t, dir)
	tree := filepath.Join(dir, "good-tree")
	// The override matching a file changes nothing, so that the commit needs no new
	// objects: a refused commit's orphan objects are another matter (issue 9, item 9).
	ov := accWriteFile(t, dir, "overrides.txt", []byte("/etc/hostname mode=0644\n/usr/bin/missing uid=0\n"))
	skip := accWriteFile(t, dir, "skip.txt", []byte("# leftovers\n/var/cache\n/var/lib/state\n"))
	args := []string{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + tree, "--timestamp", accTimestamp,
		"--overrides", ov, "--skip-list", skip}
	wantOv := ov + `:2: "/usr/bin/missing" matches nothing in the tree`
	wantSkip := skip + `:2: "/var/cache" matches nothing in the tree`

	before := repoState(t, repo)
	r := runCmd(t, nil, nil, otaBuild, append(args, "--strict")...)
	accOneLineError(t, r, wantOv, "(and 1 more such lines)")
	if after := repoState(t, repo); after != before {
		t.Errorf("a refused --strict commit changed the repository:\n%s\nwas:\n%s", after, before)
	}
	if head := crashRef(t, repo); head != good {
		t.Errorf("main is %s, want %s", head, good)
	}

	r = runCmd(t, nil, nil, otaBuild, args...)
	if r.code != 0 {
		t.Fatalf("commit: exit %d: %s", r.code, r.stderr)
	}
	for _, w := range []string{"ota-build: warning: " + wantOv + "\n", "ota-build: warning: " + wantSkip + "\n"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	accOstreeFsck(t, repo)
}

// The manifest's commit.strict makes build fail on an override line that matches nothing,
// writing nothing; without it build warns. Errors in those files still name the manifest's
// line and the file's (item 11).
func TestBuildStrictOverrides(t *testing.T) {
	dir := t.TempDir()
	accWriteTree(t, filepath.Join(dir, "rootfs"))
	accWriteFile(t, dir, "overrides.txt", []byte("/etc/hostname mode=0600\n/usr/bin/missing uid=0\n"))
	accWriteFile(t, dir, "skip.txt", []byte("../escape\n"))
	base := "repo:\n  path: repo\ncommit:\n  rootfs: rootfs\n  branch: t/stable\n  version: ${VERSION}\n" +
		"  bootable: false\n  overrides: overrides.txt\n"
	manifest := filepath.Join(dir, "ota.yaml")
	build := func(m, version string) result {
		accWriteFile(t, dir, "ota.yaml", []byte(m))
		return runCmd(t, nil, nil, otaBuild, "build", "-f", manifest, "--version", version)
	}
	want := filepath.Join(dir, "overrides.txt") + `:2: "/usr/bin/missing" matches nothing in the tree`
	r := build(base, "1.0")
	if r.code != 0 || !strings.Contains(r.stderr, "ota-build: warning: "+want+"\n") {
		t.Fatalf("build: exit %d, stderr:\n%s\nwant the warning %q", r.code, r.stderr, want)
	}
	repo := filepath.Join(dir, "repo")
	before := repoState(t, repo)
	for _, tc := range []struct{ name, manifest, version, want string }{
		{"strict, new version", base + "  strict: true\n", "1.1", want},
		{"strict, same version", base + "  strict: true\n", "1.0", want},
		{"bad skip-list line", base + "  skip-list: skip.txt\n", "1.1",
			"ota.yaml:9: " + filepath.Join(dir, "skip.txt") + ":1: ../escape: path escapes the tree root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := build(tc.manifest, tc.version)
			accOneLineError(t, r, tc.want)
			if after := repoState(t, repo); after != before {
				t.Errorf("the failed build changed the repository:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// Errors about a tarball's content name the tarball, or standard input, whether the tar
// reader finds them (truncated in a file's data) or the commit does (a member below a
// symlink) (item 12).
func TestCommitErrorsNameTarball(t *testing.T) {
	requireTool(t, "ostree")
	big := tar.Header{Name: "usr/lib/big", Typeflag: tar.TypeReg, Size: 100000}
	truncated := limitsTar(t, big)[:50000]
	conflict := limitsTar(t, limitsSymlink("lib", "usr/lib"), limitsFile("lib/x", nil))
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", truncated, "tar member usr/lib/big: unexpected EOF (truncated tarball?)"},
		{"symlink conflict", conflict, "/lib/x: /lib is a symlink, not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repo, _ := accRepo(t, dir)
			p := accWriteFile(t, dir, "rootfs.tar", tc.data)
			// The members before the error are stored (see issue 9, item 9): this checks
			// the message, the refs and the history only.
			limitsFailed(t, repo, nil, []string{"--tree", "tar=" + p}, p+": "+tc.want)
			limitsFailed(t, repo, tc.data, []string{"--tree", "tar=-"}, "standard input: "+tc.want)
		})
	}
}
