package main

// Compatibility tests against the real ostree binary (2022.7): repositories written by
// ota-build must pass ostree fsck, check out to the committed tree, pull over HTTP, and hold
// exactly the objects `ostree commit` would have written for the same tree.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// compatTimestamp is the commit time the tests pass with --timestamp or SOURCE_DATE_EPOCH
// (2023-11-14 22:13:20 UTC).
const compatTimestamp = "1700000000"

// bigSize is the size of the fixture's large file: beyond ota-build's 4 MiB in-memory limit,
// so its content goes through the streaming path.
const bigSize = 5 << 20

// deepLevels is the depth of the fixture's deep path.
const deepLevels = 40

// TestCompatFixtureWithRealOstree commits a tree with every kind of file with ota-build and
// checks the repository with the real ostree: fsck, checkout (identical tree), log and HTTP
// pulls into bare-user and archive repositories.
func TestCompatFixtureWithRealOstree(t *testing.T) {
	requireTool(t, "ostree")
	tmp := t.TempDir()
	fx := makeFixture(t, tmp)
	repo := filepath.Join(tmp, "repo")
	otaInit(t, repo)
	const subject, body, version = "Compat fixture ☃", "Body line one\nline two", "2024.1-rc.1"
	cs := otaCommit(t, nil, repo, "dir="+fx.dir, "-s", subject, "-m", body, "--version", version)
	listing := ostreeLs(t, repo)

	t.Run("fsck", func(t *testing.T) {
		ostreeFsck(t, repo)
		ota(t, "fsck", "--repo", repo)
		if got := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main").stdout); got != cs {
			t.Errorf("ostree rev-parse main = %s, ota-build printed %s", got, cs)
		}
	})

	t.Run("listing", func(t *testing.T) {
		// Spot checks of what ostree reads from the tree (the full comparison with
		// `ostree commit` is TestCompatSameTreeAsOstreeCommit).
		lines := make(map[string]string)
		for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
			path := l[strings.Index(l, " /")+1:]
			path, _, _ = strings.Cut(path, " -> ")
			lines[path] = l
		}
		want := map[string]string{
			"/usr/bin/suid":      "-04755 0 0 ",
			"/usr/bin/sgid":      "-02755 0 0 ",
			"/usr/bin/suid-sgid": "-06750 0 0 ",
			"/tmp":               "d01777 0 0 ",
			"/data/big.bin":      fmt.Sprintf("-00644 0 0 %d ", bigSize),
			"/etc/empty.conf":    "-00644 0 0      0 ",
		}
		if fx.owners {
			want["/home/user"] = "d00750 1000 1000 "
			want["/home/user/group-only"] = "-00640 0 1000 "
			want["/home/user/link"] = "l00777 1000 1000 "
		}
		deep := "/deep"
		for i := 1; i <= deepLevels; i++ {
			deep += fmt.Sprintf("/d%02d", i)
		}
		want[deep+"/leaf.txt"] = "-00644 0 0 "
		want["/日本語/ファイル.txt"] = "-00644 0 0 "
		want["/ünïcødé ☃"] = "-00644 0 0 "
		for p, prefix := range want {
			if l, ok := lines[p]; !ok {
				t.Errorf("ostree ls does not list %s", p)
			} else if !strings.HasPrefix(l, prefix) {
				t.Errorf("ostree ls: %q, want it to start with %q", l, prefix)
			}
		}
		for p, target := range map[string]string{"/usr/bin/abs": "/usr/bin/tool", "/usr/bin/rel": "../bin/tool",
			"/lib": "usr/lib", "/dangling": "does/not/exist"} {
			if l := lines[p]; !strings.HasPrefix(l, "l00777 ") || !strings.HasSuffix(l, " "+p+" -> "+target) {
				t.Errorf("ostree ls: %q, want symlink %s -> %s", l, p, target)
			}
		}
		// Hard links are one content object.
		f := func(p string) string { return strings.Fields(lines[p])[4] }
		if a, b, c := f("/usr/lib/libshared.so"), f("/usr/lib/libshared.so.1"), f("/usr/sbin/libshared-elsewhere"); a != b || a != c {
			t.Errorf("hard-linked files have different content objects: %s %s %s", a, b, c)
		}
		if fx.xattrs && !strings.Contains(lines["/usr/lib/libshared.so.1"], "user.compat.linked") {
			t.Errorf("ostree ls: hard link lacks the xattr of its file: %q", lines["/usr/lib/libshared.so.1"])
		}
	})

	t.Run("checkout", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "checkout")
		opts := snapshotOpts{owners: true, special: true, xattrs: fx.xattrs}
		args := []string{"checkout", "--repo=" + repo, "main", out}
		if os.Geteuid() != 0 {
			// Only root can restore ownership, setuid bits and xattrs.
			args = []string{"checkout", "-U", "--repo=" + repo, "main", out}
			opts = snapshotOpts{}
		}
		must(t, "ostree", args...)
		compareTrees(t, snapshot(t, fx.dir, opts), snapshot(t, out, opts))
		// The hard-linked inputs must all hold the content of the file.
		for _, p := range []string{"usr/lib/libshared.so", "usr/lib/libshared.so.1", "usr/sbin/libshared-elsewhere"} {
			if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != "shared by three hard links\n" {
				t.Errorf("checkout %s: %q, %v", p, b, err)
			}
		}
	})

	t.Run("log", func(t *testing.T) {
		out := must(t, "ostree", "log", "--repo="+repo, "main").stdout
		for _, want := range []string{"commit " + cs, "Version: " + version, "    " + subject,
			"    Body line one", "    line two", "Date:  2023-11-14 22:13:20 +0000"} {
			if !strings.Contains(out, want) {
				t.Errorf("ostree log lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Parent:") {
			t.Errorf("ostree log shows a parent for the first commit:\n%s", out)
		}
		v := strings.TrimSpace(must(t, "ostree", "show", "--repo="+repo, "--print-metadata-key=version", "main").stdout)
		if v != "'"+version+"'" {
			t.Errorf("ostree show --print-metadata-key=version = %s, want '%s'", v, version)
		}
	})

	t.Run("pull", func(t *testing.T) {
		url := serveDir(t, repo)
		for _, mode := range []string{"bare-user", "archive"} {
			t.Run(mode, func(t *testing.T) {
				client := filepath.Join(t.TempDir(), "client")
				must(t, "ostree", "init", "--repo="+client, "--mode="+mode)
				must(t, "ostree", "remote", "add", "--repo="+client, "--no-gpg-verify", "origin", url)
				must(t, "ostree", "pull", "--repo="+client, "origin", "main")
				ostreeFsck(t, client)
				got := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+client, "origin:main").stdout)
				if got != cs {
					t.Errorf("pulled origin:main = %s, want %s", got, cs)
				}
				pulled := must(t, "ostree", "ls", "-R", "-C", "-X", "--repo="+client, "origin:main").stdout
				diffListings(t, "source", listing, mode+" client", pulled)
			})
		}
	})
}

// TestCompatSameTreeAsOstreeCommit commits the fixture with the real `ostree commit` and
// with ota-build, from the directory and from tarballs of it (plain, on stdin and as a file,
// and compressed with gzip, xz, zstd and bzip2), and requires the same root dirtree and
// dirmeta and the same object for every path.
func TestCompatSameTreeAsOstreeCommit(t *testing.T) {
	requireTool(t, "ostree", "tar")
	tmp := t.TempDir()
	fx := makeFixture(t, tmp)

	ref := filepath.Join(tmp, "ostree-repo")
	must(t, "ostree", "init", "--repo="+ref, "--mode=archive")
	must(t, "ostree", "commit", "--repo="+ref, "--tree=dir="+fx.dir, "-b", "main", "--timestamp=2023-11-14T22:13:20Z", "-s", "real ostree")
	wantRoot, wantListing := ostreeRootLine(t, ref), ostreeLs(t, ref)

	tarball := []byte(must(t, "tar", "--xattrs", "--xattrs-include=*", "-C", fx.dir, "-cf", "-", ".").stdout)
	tarFile := filepath.Join(tmp, "fixture.tar")
	if err := os.WriteFile(tarFile, tarball, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		tool  string   // compressor command, if any
		args  []string // its arguments; it reads the tarball on stdin
		tree  string   // --tree argument
		stdin bool     // feed the (compressed) tarball on stdin
	}{
		{name: "dir", tree: "dir=" + fx.dir},
		{name: "tar-stdin", tree: "tar=-", stdin: true},
		{name: "tar-file", tree: "tar=" + tarFile},
		{name: "tar.gz", tool: "gzip", args: []string{"-1", "-c"}, tree: "tar=-", stdin: true},
		{name: "tar.xz", tool: "xz", args: []string{"-0", "-T1", "-c"}, tree: "tar=-", stdin: true},
		{name: "tar.zst", tool: "zstd", args: []string{"-1", "-q", "-c"}, tree: "tar=-", stdin: true},
		{name: "tar.bz2", tool: "bzip2", args: []string{"-1", "-c"}, tree: "tar=-", stdin: true},
	}
	commits := make([]string, len(tests))
	t.Run("inputs", func(t *testing.T) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				input := tarball
				if tc.tool != "" {
					requireTool(t, tc.tool)
					r := runCmd(t, nil, tarball, tc.tool, tc.args...)
					if r.code != 0 {
						t.Fatalf("%s %v: exit %d\n%s", tc.tool, tc.args, r.code, r.stderr)
					}
					input = []byte(r.stdout)
				}
				if !tc.stdin {
					input = nil
				}
				repo := filepath.Join(t.TempDir(), "repo")
				otaInit(t, repo)
				commits[i] = otaCommit(t, input, repo, tc.tree, "-s", "real ostree")
				ostreeFsck(t, repo)
				if got := ostreeRootLine(t, repo); got != wantRoot {
					t.Errorf("root directory (dirtree, dirmeta):\n\tostree commit: %s\n\tota-build:     %s", wantRoot, got)
				}
				diffListings(t, "ostree commit", wantListing, "ota-build ("+tc.name+")", ostreeLs(t, repo))
			})
		}
	})
	// Same tree, timestamp and subject: the same commit, whatever the input form.
	for i, tc := range tests {
		if commits[i] != "" && commits[0] != "" && commits[i] != commits[0] {
			t.Errorf("commit from %s = %s, from %s = %s", tc.name, commits[i], tests[0].name, commits[0])
		}
	}
}

// TestCompatTarOwnershipAsNonRoot commits, as an unprivileged user, a GNU tar made as root
// with files owned by uid/gid 1000, a setuid binary and a security.capability xattr, and
// checks that the commit carries the tar's ownership, modes and xattr: in `ostree ls`, and
// in a checkout by the real ostree as root. The same tarball committed as root must give
// the same commit.
func TestCompatTarOwnershipAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: to build the tarball's fixture and to switch to uid 65534")
	}
	requireTool(t, "ostree", "tar", "setpriv", "setcap", "getcap")
	tmp := t.TempDir()
	// Let uid 65534 reach the test's directory (t.TempDir makes it and its parent 0700).
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	src := filepath.Join(tmp, "src")
	for _, d := range []string{src, src + "/usr", src + "/usr/bin", src + "/home", src + "/home/user"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		setMeta(t, d, 0o755, 0, 0, true)
	}
	setMeta(t, src+"/home/user", 0o700, 1000, 1000, true)
	write := func(p, content string, mode uint32, uid, gid int) string {
		t.Helper()
		full := filepath.Join(src, p)
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		setMeta(t, full, mode, uid, gid, true)
		return full
	}
	write("home/user/notes.txt", "owned by 1000\n", 0o640, 1000, 1000)
	write("usr/bin/sudo", "setuid root\n", 0o4755, 0, 0)
	write("usr/bin/userprog", "setuid 1000, setgid 1000\n", 0o6755, 1000, 1000)
	ping := write("usr/bin/ping", "needs cap_net_raw\n", 0o755, 0, 0)
	must(t, "setcap", "cap_net_raw+ep", ping)
	capValue := getXattr(t, ping, "security.capability")

	tarFile := filepath.Join(tmp, "rootfs.tar")
	must(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", src, "-cf", tarFile, ".")
	if err := os.Chmod(tarFile, 0o644); err != nil {
		t.Fatal(err)
	}

	// The unprivileged user's repository.
	nobody := filepath.Join(tmp, "nobody")
	if err := os.Mkdir(nobody, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(nobody, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) result {
		t.Helper()
		all := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", otaBuild}, args...)
		r := runCmd(t, nil, nil, "setpriv", all...)
		if r.code != 0 {
			t.Fatalf("setpriv ... ota-build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	repo := filepath.Join(nobody, "repo")
	asNobody("init", "--repo", repo)
	cs := asNobody("commit", "--repo", repo, "-b", "main", "--tree", "tar="+tarFile,
		"--timestamp", compatTimestamp, "-s", "rootfs").lastLine()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(repo, "refs/heads/main"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 65534 {
		t.Fatalf("refs/heads/main is owned by uid %d: ota-build did not run as 65534", st.Uid)
	}
	ostreeFsck(t, repo)

	t.Run("ls", func(t *testing.T) {
		out := must(t, "ostree", "ls", "-R", "-X", "--repo="+repo, "main").stdout
		lines := make(map[string]string)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			lines[l[strings.Index(l, " /")+1:]] = l
		}
		var capBytes []string
		for _, b := range capValue {
			capBytes = append(capBytes, fmt.Sprintf("0x%02x", b))
		}
		want := map[string][]string{
			"/home/user":           {"d00700 1000 1000 "},
			"/home/user/notes.txt": {"-00640 1000 1000 "},
			"/usr/bin/sudo":        {"-04755 0 0 "},
			"/usr/bin/userprog":    {"-06755 1000 1000 "},
			"/usr/bin/ping": {"-00755 0 0 ",
				"(b'security.capability', [byte " + strings.Join(capBytes, ", ") + "])"},
		}
		for p, parts := range want {
			l, ok := lines[p]
			if !ok {
				t.Errorf("ostree ls does not list %s:\n%s", p, out)
				continue
			}
			if !strings.HasPrefix(l, parts[0]) {
				t.Errorf("ostree ls: %q, want it to start with %q", l, parts[0])
			}
			for _, s := range parts[1:] {
				if !strings.Contains(l, s) {
					t.Errorf("ostree ls: %q lacks %q", l, s)
				}
			}
		}
	})

	t.Run("checkout", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "checkout")
		must(t, "ostree", "checkout", "--repo="+repo, "main", out)
		if got := must(t, "getcap", filepath.Join(out, "usr/bin/ping")).stdout; !strings.Contains(got, "cap_net_raw") {
			t.Errorf("getcap of the checked-out ping: %q, want cap_net_raw", got)
		}
		if got := getXattr(t, filepath.Join(out, "usr/bin/ping"), "security.capability"); !bytes.Equal(got, capValue) {
			t.Errorf("checked-out security.capability = %x, want %x", got, capValue)
		}
		for p, want := range map[string]struct{ mode, uid, gid uint32 }{
			"home/user":           {unix.S_IFDIR | 0o700, 1000, 1000},
			"home/user/notes.txt": {unix.S_IFREG | 0o640, 1000, 1000},
			"usr/bin/sudo":        {unix.S_IFREG | 0o4755, 0, 0},
			"usr/bin/userprog":    {unix.S_IFREG | 0o6755, 1000, 1000},
			"usr/bin/ping":        {unix.S_IFREG | 0o755, 0, 0},
		} {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(out, p), &st); err != nil {
				t.Error(err)
				continue
			}
			if st.Mode != want.mode || st.Uid != want.uid || st.Gid != want.gid {
				t.Errorf("checkout %s: mode %o uid %d gid %d, want mode %o uid %d gid %d",
					p, st.Mode, st.Uid, st.Gid, want.mode, want.uid, want.gid)
			}
		}
	})

	t.Run("same-as-root", func(t *testing.T) {
		rootRepo := filepath.Join(t.TempDir(), "repo")
		otaInit(t, rootRepo)
		if got := otaCommit(t, nil, rootRepo, "tar="+tarFile, "-s", "rootfs"); got != cs {
			t.Errorf("commit as root = %s, as uid 65534 = %s: ownership depends on who commits", got, cs)
		}
	})
}

// TestCompatReproducible commits the same input with the same SOURCE_DATE_EPOCH (and no
// --timestamp) several times and requires the same commit checksum each time.
func TestCompatReproducible(t *testing.T) {
	requireTool(t, "ostree", "tar")
	tmp := t.TempDir()
	fx := makeFixture(t, tmp)
	tarFile := filepath.Join(tmp, "fixture.tar")
	must(t, "tar", "--xattrs", "--xattrs-include=*", "-C", fx.dir, "-cf", tarFile, ".")

	commitEnv := func(t *testing.T, epoch, repo, tree string, extra ...string) string {
		t.Helper()
		args := append([]string{"commit", "--repo", repo, "-b", "main", "--tree", tree, "-s", "reproducible",
			"--version", "1.0"}, extra...)
		r := runCmd(t, []string{"SOURCE_DATE_EPOCH=" + epoch}, nil, otaBuild, args...)
		if r.code != 0 {
			t.Fatalf("SOURCE_DATE_EPOCH=%s ota-build %s: exit %d\n%s", epoch, strings.Join(args, " "), r.code, r.stderr)
		}
		return r.lastLine()
	}
	freshRepo := func(t *testing.T) string {
		t.Helper()
		repo := filepath.Join(t.TempDir(), "repo")
		otaInit(t, repo)
		return repo
	}

	results := make(map[string]string)
	for _, in := range []struct{ name, tree string }{{"dir", "dir=" + fx.dir}, {"tar", "tar=" + tarFile}} {
		t.Run(in.name, func(t *testing.T) {
			repo1, repo2 := freshRepo(t), freshRepo(t)
			c1 := commitEnv(t, compatTimestamp, repo1, in.tree)
			c2 := commitEnv(t, compatTimestamp, repo2, in.tree)
			if c1 != c2 {
				t.Errorf("same input and SOURCE_DATE_EPOCH, two fresh repositories: %s and %s", c1, c2)
			}
			results[in.name] = c1
			if date := must(t, "ostree", "log", "--repo="+repo1, "main").stdout; !strings.Contains(date, "Date:  2023-11-14 22:13:20 +0000") {
				t.Errorf("ostree log does not show SOURCE_DATE_EPOCH as the date:\n%s", date)
			}
			s1, err1 := os.ReadFile(filepath.Join(repo1, "summary"))
			s2, err2 := os.ReadFile(filepath.Join(repo2, "summary"))
			if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
				t.Errorf("summary files of the two repositories differ (%v, %v)", err1, err2)
			}
			// Again into the first repository, on the same branch, without a parent.
			if c3 := commitEnv(t, compatTimestamp, repo1, in.tree, "--parent", "none"); c3 != c1 {
				t.Errorf("recommit into the same repository with --parent none: %s, first commit %s", c3, c1)
			}
			// The timestamp really comes from SOURCE_DATE_EPOCH.
			if c4 := commitEnv(t, "1700000001", freshRepo(t), in.tree); c4 == c1 {
				t.Errorf("a different SOURCE_DATE_EPOCH gives the same commit %s", c4)
			}
			ostreeFsck(t, repo1)
		})
	}
	if results["dir"] != "" && results["tar"] != "" && results["dir"] != results["tar"] {
		t.Errorf("same tree as a directory (%s) and as a tarball (%s) gives different commits", results["dir"], results["tar"])
	}
}

// TestCompatTarHardlinkXattrs is the smallest case of a hard-linked file with an xattr in a
// GNU tar: tar writes the xattr records on the first member only (the later ones are type
// '1' members without PAX xattr records), yet every link is the same inode, as extraction
// and the real `ostree commit --tree=tar=` show. ota-build must give every link the xattr.
func TestCompatTarHardlinkXattrs(t *testing.T) {
	requireTool(t, "ostree", "tar")
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	for _, d := range []string{src, src + "/a", src + "/b"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		setMeta(t, d, 0o755, 0, 0, os.Geteuid() == 0)
	}
	one := filepath.Join(src, "a/one")
	if err := os.WriteFile(one, []byte("linked\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setMeta(t, one, 0o644, 0, 0, os.Geteuid() == 0)
	for _, l := range []string{"a/two", "b/three"} {
		if err := os.Link(one, filepath.Join(src, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(one, "user.compat.k", []byte("v"), 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			t.Skipf("filesystem refuses user.* xattrs: %v", err)
		}
		t.Fatal(err)
	}
	tarFile := filepath.Join(tmp, "links.tar")
	must(t, "tar", "--xattrs", "--xattrs-include=*", "-C", src, "-cf", tarFile, ".")

	ref := filepath.Join(tmp, "ostree-repo")
	must(t, "ostree", "init", "--repo="+ref, "--mode=archive")
	must(t, "ostree", "commit", "--repo="+ref, "--tree=tar="+tarFile, "-b", "main")
	want := ostreeLs(t, ref)
	if n := strings.Count(want, "user.compat.k"); n != 3 {
		t.Fatalf("real ostree commit --tree=tar= gives %d of the 3 links the xattr:\n%s", n, want)
	}
	for _, tree := range []string{"dir=" + src, "tar=" + tarFile} {
		t.Run(tree[:3], func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			otaInit(t, repo)
			otaCommit(t, nil, repo, tree)
			diffListings(t, "ostree commit --tree=tar", want, "ota-build --tree "+tree[:3], ostreeLs(t, repo))
		})
	}
}
