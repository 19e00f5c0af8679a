package main

// Compatibility tests against the real ostree binary (2022.7): repositories written by
// ota-build must pass ostree fsck, check out to the committed tree, pull over HTTP, and hold
// exactly the objects `ostree commit` would have written for the same tree.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// compatTimestamp is the commit time the tests pass with --timestamp or SOURCE_DATE_EPOCH
// (2023-11-14 22:13:20 UTC).
const compatTimestamp = "1700000000"

// fixture is a tree on disk built by makeFixture.
type fixture struct {
	dir string
	// xattrs reports whether the fixture carries user.* extended attributes (the
	// filesystem may refuse them).
	xattrs bool
	// owners reports whether some files are owned by uid/gid 1000 (only root can chown).
	owners bool
}

// bigSize is the size of the fixture's large file: beyond ota-build's 4 MiB in-memory limit,
// so its content goes through the streaming path.
const bigSize = 5 << 20

// deepLevels is the depth of the fixture's deep path.
const deepLevels = 40

// makeFixture builds, under parent, a tree with every kind of file OSTree stores: regular,
// empty and executable files, setuid/setgid files, a sticky directory, absolute, relative and
// dangling symlinks, hard links (within and across directories), user.* xattrs (when the
// filesystem supports them), empty directories, a 40-level deep path, non-ASCII names, a
// 5 MiB file and (as root) files, directories and a symlink owned by uid/gid 1000.
func makeFixture(t *testing.T, parent string) fixture {
	t.Helper()
	fx := fixture{dir: filepath.Join(parent, "fixture"), owners: os.Geteuid() == 0}
	root := fx.dir

	dir := func(p string, mode uint32, uid, gid int) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.Mkdir(full, 0o700); err != nil {
			t.Fatal(err)
		}
		setMeta(t, full, mode, uid, gid, fx.owners)
	}
	file := func(p string, content []byte, mode uint32, uid, gid int) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.WriteFile(full, content, 0o600); err != nil {
			t.Fatal(err)
		}
		setMeta(t, full, mode, uid, gid, fx.owners)
	}
	symlink := func(p, target string, uid, gid int) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
		if fx.owners {
			if err := os.Lchown(full, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	hardlink := func(p, existing string) {
		t.Helper()
		if err := os.Link(filepath.Join(root, existing), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}

	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	setMeta(t, root, 0o755, 0, 0, fx.owners)

	dir("etc", 0o755, 0, 0)
	file("etc/hostname", []byte("device\n"), 0o644, 0, 0)
	file("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640, 0, 42)
	file("etc/empty.conf", nil, 0o644, 0, 0)
	dir("usr", 0o755, 0, 0)
	dir("usr/bin", 0o755, 0, 0)
	dir("usr/lib", 0o755, 0, 0)
	dir("usr/sbin", 0o755, 0, 0)
	file("usr/bin/tool", []byte("#!/bin/sh\necho tool\n"), 0o755, 0, 0)
	file("usr/bin/empty-exec", nil, 0o755, 0, 0)
	file("usr/bin/suid", []byte("setuid binary\n"), 0o4755, 0, 0)
	file("usr/bin/sgid", []byte("setgid binary\n"), 0o2755, 0, 0)
	file("usr/bin/suid-sgid", []byte("setuid and setgid\n"), 0o6750, 0, 0)
	file("usr/lib/libshared.so", []byte("shared by three hard links\n"), 0o644, 0, 0)
	hardlink("usr/lib/libshared.so.1", "usr/lib/libshared.so")
	hardlink("usr/sbin/libshared-elsewhere", "usr/lib/libshared.so")
	file("usr/lib/same-content-a", []byte("identical content, separate files\n"), 0o644, 0, 0)
	file("usr/lib/same-content-b", []byte("identical content, separate files\n"), 0o644, 0, 0)
	symlink("usr/bin/abs", "/usr/bin/tool", 0, 0)
	symlink("usr/bin/rel", "../bin/tool", 0, 0)
	symlink("lib", "usr/lib", 0, 0)
	symlink("dangling", "does/not/exist", 0, 0)
	dir("tmp", 0o1777, 0, 0)
	dir("var", 0o755, 0, 0)
	dir("var/empty", 0o755, 0, 0)
	dir("var/lib", 0o755, 0, 0)
	dir("var/lib/private", 0o700, 0, 0)

	p := "deep"
	dir(p, 0o755, 0, 0)
	for i := 1; i <= deepLevels; i++ {
		p += fmt.Sprintf("/d%02d", i)
		dir(p, 0o755, 0, 0)
	}
	file(p+"/leaf.txt", []byte("forty levels down\n"), 0o644, 0, 0)

	file("ünïcødé ☃", []byte("non-ASCII name\n"), 0o644, 0, 0)
	dir("日本語", 0o755, 0, 0)
	file("日本語/ファイル.txt", []byte("こんにちは\n"), 0o644, 0, 0)

	big := make([]byte, bigSize)
	rand.NewChaCha8([32]byte{'o', 't', 'a'}).Read(big)
	dir("data", 0o755, 0, 0)
	file("data/big.bin", big, 0o644, 0, 0)

	dir("home", 0o755, 0, 0)
	dir("home/user", 0o750, 1000, 1000)
	file("home/user/.profile", []byte("export PS1='$ '\n"), 0o644, 1000, 1000)
	file("home/user/group-only", []byte("gid 1000, uid 0\n"), 0o640, 0, 1000)
	symlink("home/user/link", ".profile", 1000, 1000)
	dir("home/user/empty", 0o700, 1000, 1000)

	// user.* xattrs: on files (several, one with binary bytes), on a hard-linked file, on
	// a setuid file and on directories (symlinks cannot carry user.* attributes).
	xattrs := []struct{ path, name, value string }{
		{"etc/hostname", "user.compat.note", "hello"},
		{"etc/hostname", "user.compat.a-first", "sorted before note"},
		{"usr/bin/tool", "user.compat.bin", "\x00\x01\x02\xff\x00"},
		{"usr/bin/suid", "user.compat.suid", "kept with setuid"},
		{"usr/lib/libshared.so", "user.compat.linked", "on every hard link"},
		{"usr", "user.compat.dir", "directory attribute"},
		{"var/empty", "user.compat.empty", "on an empty directory"},
		{".", "user.compat.root", "on the root directory"},
	}
	fx.xattrs = true
	for _, x := range xattrs {
		err := unix.Setxattr(filepath.Join(root, x.path), x.name, []byte(x.value), 0)
		if errors.Is(err, unix.ENOTSUP) {
			t.Logf("filesystem of %s refuses user.* xattrs (%v): the xattr part of the fixture is left out", root, err)
			fx.xattrs = false
			break
		}
		if err != nil {
			t.Fatalf("setxattr %s %s: %v", x.path, x.name, err)
		}
	}
	if !fx.owners {
		t.Log("not running as root: the fixture has no files owned by uid/gid 1000")
	}
	return fx
}

// setMeta sets the owner (when chown is allowed) and then the raw mode bits, so that chown
// does not clear setuid/setgid.
func setMeta(t *testing.T, path string, mode uint32, uid, gid int, chown bool) {
	t.Helper()
	if chown {
		if err := os.Lchown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// node is what the tests compare of one file of a tree on disk.
type node struct {
	typ      byte // d, -, l
	mode     uint32
	uid, gid uint32
	size     int64
	sum      [32]byte
	link     string
	xattrs   string // the user.* attributes, "name=hex" sorted, ";"-separated
}

func (n node) String() string {
	s := fmt.Sprintf("%c%05o %d:%d size=%d", n.typ, n.mode, n.uid, n.gid, n.size)
	switch n.typ {
	case '-':
		s += fmt.Sprintf(" sha256=%x", n.sum[:6])
	case 'l':
		s += " -> " + n.link
	}
	if n.xattrs != "" {
		s += " xattrs{" + n.xattrs + "}"
	}
	return s
}

// snapshotOpts says which parts of the files a snapshot records.
type snapshotOpts struct {
	owners  bool // uid/gid
	special bool // setuid, setgid and sticky bits (else only rwx bits)
	xattrs  bool // user.* extended attributes
}

// snapshot describes every file under root, keyed by path relative to root ("." for root).
func snapshot(t *testing.T, root string, o snapshotOpts) map[string]node {
	t.Helper()
	out := make(map[string]node)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{mode: st.Mode & 0o7777}
		if !o.special {
			n.mode &= 0o777
		}
		if o.owners {
			n.uid, n.gid = st.Uid, st.Gid
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.typ = 'd'
		case unix.S_IFREG:
			n.typ = '-'
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.size, n.sum = int64(len(data)), sha256.Sum256(data)
		case unix.S_IFLNK:
			n.typ = 'l'
			if n.link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected file type %o", p, st.Mode&unix.S_IFMT)
		}
		if o.xattrs && n.typ != 'l' {
			n.xattrs = userXattrs(t, p)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// userXattrs returns the user.* extended attributes of a file as sorted "name=hex" pairs.
func userXattrs(t *testing.T, p string) string {
	t.Helper()
	sz, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return ""
	}
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var pairs []string
	for _, name := range strings.Split(string(buf[:sz]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		pairs = append(pairs, name+"="+fmt.Sprintf("%x", getXattr(t, p, name)))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ";")
}

// getXattr returns the value of extended attribute name of file p (not following symlinks).
func getXattr(t *testing.T, p, name string) []byte {
	t.Helper()
	sz, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		t.Fatalf("lgetxattr %s %s: %v", p, name, err)
	}
	val := make([]byte, sz)
	sz, err = unix.Lgetxattr(p, name, val)
	if err != nil {
		t.Fatalf("lgetxattr %s %s: %v", p, name, err)
	}
	return val[:sz]
}

// compareTrees fails the test with every difference between two snapshots.
func compareTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var diffs []string
	for _, p := range paths {
		w, wok := want[p]
		g, gok := got[p]
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("%s: missing from checkout (want %v)", p, w))
		case !wok:
			diffs = append(diffs, fmt.Sprintf("%s: not in the input (got %v)", p, g))
		case w != g:
			diffs = append(diffs, fmt.Sprintf("%s:\n\twant %v\n\tgot  %v", p, w, g))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("checked-out tree differs from the input in %d path(s):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}

// diffListings fails the test unless two `ostree ls` listings are equal, showing the lines
// only one of them has.
func diffListings(t *testing.T, wantName, want, gotName, got string) {
	t.Helper()
	if want == got {
		return
	}
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			fmt.Fprintf(&b, "\n\tonly in %s: %s", wantName, l)
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			fmt.Fprintf(&b, "\n\tonly in %s:  %s", gotName, l)
		}
	}
	if b.Len() == 0 {
		b.WriteString("\n\t(same lines, different order)")
	}
	t.Errorf("ostree ls listings of %s and %s differ:%s", wantName, gotName, b.String())
}

// otaInit creates an archive repository with ota-build.
func otaInit(t *testing.T, repo string) {
	t.Helper()
	ota(t, "init", "--repo", repo)
}

// otaCommit commits with ota-build at the fixed test timestamp and returns the checksum.
func otaCommit(t *testing.T, stdin []byte, repo, tree string, extra ...string) string {
	t.Helper()
	args := append([]string{"commit", "--repo", repo, "-b", "main", "--tree", tree, "--timestamp", compatTimestamp}, extra...)
	r := runCmd(t, nil, stdin, otaBuild, args...)
	if r.code != 0 {
		t.Fatalf("ota-build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	cs := r.lastLine()
	if len(cs) != 64 {
		t.Fatalf("ota-build commit printed %q as its last line, want a checksum", cs)
	}
	return cs
}

// ostreeFsck runs the real `ostree fsck`, failing the test unless it finds no error.
func ostreeFsck(t *testing.T, repo string) {
	t.Helper()
	r := must(t, "ostree", "fsck", "--repo="+repo)
	if out := r.stdout + r.stderr; !strings.Contains(out, "no errors found") {
		t.Errorf("ostree fsck --repo=%s:\n%s", repo, out)
	}
}

// ostreeLs returns the real `ostree ls -R -C -X` listing of ref main, which holds every
// object's checksum, mode, owner, size, xattrs and symlink target.
func ostreeLs(t *testing.T, repo string) string {
	t.Helper()
	return must(t, "ostree", "ls", "-R", "-C", "-X", "--repo="+repo, "main").stdout
}

// ostreeRootLine returns the first line of `ostree ls -C REPO main /`: the root directory
// with its dirtree and dirmeta checksums.
func ostreeRootLine(t *testing.T, repo string) string {
	t.Helper()
	out := must(t, "ostree", "ls", "-C", "--repo="+repo, "main", "/").stdout
	line, _, _ := strings.Cut(out, "\n")
	if !strings.HasSuffix(line, " /") || !strings.HasPrefix(line, "d") {
		t.Fatalf("ostree ls -C main /: first line %q is not the root directory", line)
	}
	return line
}

// serveDir serves dir over HTTP on 127.0.0.1 with python's http.server until the test ends,
// returning the base URL.
func serveDir(t *testing.T, dir string) string {
	t.Helper()
	const python = "/usr/bin/python3" // Debian's python, which has the Debian packages
	requireTool(t, python)
	for attempt := 1; ; attempt++ {
		url, err := startHTTPServer(t, python, dir)
		if err == nil {
			return url
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("%v; retrying on another port", err)
	}
}

// startHTTPServer starts python's http.server on a free port and waits until it accepts
// connections; the server is killed when the test ends.
func startHTTPServer(t *testing.T, python, dir string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", port)

	cmd := exec.Command(python, "-m", "http.server", "--bind", "127.0.0.1", port, "--directory", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting http.server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			return "", fmt.Errorf("http.server on port %s exited: %v\n%s", port, err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
			})
			return "http://" + addr + "/", nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("http.server on %s does not accept connections: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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
