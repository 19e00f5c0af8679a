package main

// Acceptance 6: bad input to `ota-build commit` fails with a one-line error naming the
// problem, a non-zero exit status, and a repository left exactly as it was (refs, history,
// and a clean `ostree fsck` by the real ostree).

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// accTimestamp is the fixed commit time of the acceptance tests, so commits are reproducible.
const accTimestamp = "1700000000"

// accWriteTree creates a small tree at root: a few directories, text files and a symlink.
func accWriteTree(t *testing.T, root string) {
	t.Helper()
	files := map[string]string{
		"etc/hostname":    "device\n",
		"etc/os-release":  "ID=test\nVERSION_ID=1\n",
		"usr/bin/app":     "#!/bin/sh\necho app\n",
		"usr/lib/libx.so": strings.Repeat("library ", 500),
		"var/lib/state":   "",
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../usr/bin/app", filepath.Join(root, "etc/app")); err != nil {
		t.Fatal(err)
	}
}

// accRepo creates an archive repository at dir/repo holding one good commit on "main" and
// returns the repository path and the commit checksum.
func accRepo(t *testing.T, dir string) (repo, commit string) {
	t.Helper()
	repo = filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "good-tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	r := ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree,
		"-s", "good", "--timestamp", accTimestamp)
	return repo, r.lastLine()
}

// accRefs returns the contents of every file under the repository's refs/ directory, keyed
// by path relative to the repository.
func accRefs(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(repo, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		out[rel] = string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("reading refs of %s: %v", repo, err)
	}
	return out
}

// accSameRefs fails the test unless the refs snapshots are equal.
func accSameRefs(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if w, ok := after[k]; !ok {
			t.Errorf("ref file %s disappeared (was %q)", k, v)
		} else if w != v {
			t.Errorf("ref file %s changed: %q -> %q", k, v, w)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("new ref file %s = %q", k, v)
		}
	}
}

// accOstreeFsck runs the real `ostree fsck` on the repository and fails the test on any
// problem it reports.
func accOstreeFsck(t *testing.T, repo string) {
	t.Helper()
	r := runCmd(t, nil, nil, "ostree", "fsck", "--repo="+repo)
	if r.code != 0 {
		t.Errorf("ostree fsck --repo=%s: exit %d\n%s%s", repo, r.code, r.stdout, r.stderr)
	}
}

// accCommitCount returns the number of commits `ostree log` shows for a branch.
func accCommitCount(t *testing.T, repo, branch string) int {
	t.Helper()
	r := must(t, "ostree", "log", "--repo="+repo, branch)
	n := 0
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "commit ") {
			n++
		}
	}
	return n
}

// accOneLineError fails the test unless the command failed with exactly one line on stderr,
// "ota-build: ...", containing every one of wants.
func accOneLineError(t *testing.T, r result, wants ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("exit status 0, want failure; stdout:\n%s", r.stdout)
	}
	if !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not exactly one line: %q", r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "ota-build: ") {
		t.Errorf("stderr does not start with \"ota-build: \": %q", r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not mention %q", r.stderr, w)
		}
	}
}

// accMember is one member of a tarball made by accTar.
type accMember struct {
	name     string
	typ      byte
	data     string
	linkname string
}

// accTarBytes returns a plain tar of the members.
func accTarBytes(t *testing.T, members []accMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o644, Linkname: m.linkname,
			Format: tar.FormatPAX}
		switch m.typ {
		case tar.TypeReg:
			h.Size = int64(len(m.data))
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeChar:
			h.Devmajor, h.Devminor, h.Mode = 1, 3, 0o666
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(m.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// accWriteFile writes data to dir/name and returns the path.
func accWriteFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// accChownTree gives everything under root to uid:gid.
func accChownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// accMediumTree writes a tree whose gzip tarball is a few tens of KiB, half of it random.
func accMediumTree(t *testing.T, root string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		data := make([]byte, 1500+i*100)
		for j := range data {
			if j%2 == 0 {
				data[j] = byte(rng.Uint32())
			} else {
				data[j] = 'a' + byte(j%26)
			}
		}
		p := filepath.Join(root, "d"+string(rune('a'+i%4)), "file"+string(rune('a'+i)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommitBadInputOneLineErrorRepoUnchanged is acceptance 6: each kind of bad input to
// `ota-build commit` gives exactly one stderr line "ota-build: ..." naming the problem (a
// path, member or key file), a non-zero exit status, and leaves the repository (one good
// commit on main) with the same refs, the same history in `ostree log`, and a clean
// `ostree fsck`.
func TestCommitBadInputOneLineErrorRepoUnchanged(t *testing.T) {
	requireTool(t, "ostree")
	type setup struct {
		args  []string // after "commit --repo REPO"
		repo  string   // --repo, when not the good repository
		env   []string
		wants []string // substrings of the error line
		user  bool     // run as uid/gid 65534 through setpriv
		after func(t *testing.T)
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir, repo string) setup
	}{
		{"missing tree dir", func(t *testing.T, dir, repo string) setup {
			p := filepath.Join(dir, "no-such-rootfs")
			return setup{args: []string{"-b", "main", "--tree", "dir=" + p}, wants: []string{p}}
		}},
		{"missing tarball", func(t *testing.T, dir, repo string) setup {
			p := filepath.Join(dir, "no-such-rootfs.tar.gz")
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{p}}
		}},
		{"unreadable file in tree", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			secret := filepath.Join(tree, "etc", "shadow")
			accWriteFile(t, filepath.Dir(secret), "shadow", []byte("root:*:19000::::::\n"))
			if err := os.Chmod(secret, 0); err != nil {
				t.Fatal(err)
			}
			return setup{args: []string{"-b", "main", "--tree", "dir=" + tree}, user: true,
				wants: []string{"etc/shadow", "permission denied"}}
		}},
		{"unreadable directory in tree", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			locked := filepath.Join(tree, "root")
			if err := os.MkdirAll(filepath.Join(locked, ".ssh"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(locked, 0); err != nil {
				t.Fatal(err)
			}
			return setup{args: []string{"-b", "main", "--tree", "dir=" + tree}, user: true,
				wants: []string{locked, "permission denied"}}
		}},
		{"truncated tar.gz", func(t *testing.T, dir, repo string) setup {
			requireTool(t, "tar")
			tree := filepath.Join(dir, "tree")
			accMediumTree(t, tree)
			full := filepath.Join(dir, "rootfs.tar.gz")
			must(t, "tar", "-czf", full, "-C", tree, ".")
			data, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) < 10000 {
				t.Fatalf("tarball is only %d bytes", len(data))
			}
			p := accWriteFile(t, dir, "half.tar.gz", data[:len(data)/2])
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"truncated"}}
		}},
		{"truncated plain tar", func(t *testing.T, dir, repo string) setup {
			requireTool(t, "tar")
			tree := filepath.Join(dir, "tree")
			accMediumTree(t, tree)
			full := filepath.Join(dir, "rootfs.tar")
			must(t, "tar", "-cf", full, "-C", tree, ".")
			data, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			p := accWriteFile(t, dir, "half.tar", data[:len(data)/2])
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"truncated"}}
		}},
		{"truncated plain tar at a member boundary", func(t *testing.T, dir, repo string) setup {
			data := accTarBytes(t, []accMember{{name: "etc/", typ: tar.TypeDir},
				{name: "etc/a", typ: tar.TypeReg, data: "a\n"}, {name: "etc/b", typ: tar.TypeReg, data: "b\n"}})
			// Header+block of etc/, header+block of etc/a: cut before etc/b.
			p := accWriteFile(t, dir, "cut.tar", data[:3*512])
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"truncated"}}
		}},
		{"corrupt tar header", func(t *testing.T, dir, repo string) setup {
			data := accTarBytes(t, []accMember{{name: "etc/a", typ: tar.TypeReg, data: "a\n"},
				{name: "etc/b", typ: tar.TypeReg, data: "b\n"}})
			// Overwrite the size, mtime and checksum fields of the second header.
			for i := 1024 + 124; i < 1024+156; i++ {
				data[i] ^= 0x5a
			}
			p := accWriteFile(t, dir, "corrupt.tar", data)
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"corrupt"}}
		}},
		{"random garbage as tarball", func(t *testing.T, dir, repo string) setup {
			rng := rand.New(rand.NewPCG(3, 4))
			data := make([]byte, 8192)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			data[0], data[1] = 'x', 'y' // no compression magic
			p := accWriteFile(t, dir, "garbage.tar", data)
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"corrupt"}}
		}},
		{"corrupt tar.gz data", func(t *testing.T, dir, repo string) setup {
			raw := accTarBytes(t, []accMember{{name: "etc/a", typ: tar.TypeReg, data: strings.Repeat("config line\n", 2000)},
				{name: "etc/b", typ: tar.TypeReg, data: "b\n"}})
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(raw)
			zw.Close()
			data := gz.Bytes()
			for i := len(data) / 2; i < len(data)/2+8; i++ {
				data[i] ^= 0xff
			}
			p := accWriteFile(t, dir, "corrupt.tar.gz", data)
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"corrupt"}}
		}},
		{"tar member ../evil", func(t *testing.T, dir, repo string) setup {
			in := filepath.Join(dir, "in", "sub")
			if err := os.MkdirAll(in, 0o755); err != nil {
				t.Fatal(err)
			}
			p := accWriteFile(t, in, "evil.tar", accTarBytes(t, []accMember{
				{name: "etc/ok", typ: tar.TypeReg, data: "ok\n"},
				{name: "../evil", typ: tar.TypeReg, data: "pwned\n"}}))
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"../evil"},
				after: func(t *testing.T) { accNoEvil(t, dir, in, repo) }}
		}},
		{"tar member a/../../evil", func(t *testing.T, dir, repo string) setup {
			p := accWriteFile(t, dir, "evil.tar", accTarBytes(t, []accMember{
				{name: "a/", typ: tar.TypeDir},
				{name: "a/../../evil", typ: tar.TypeReg, data: "pwned\n"}}))
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"a/../../evil"},
				after: func(t *testing.T) { accNoEvil(t, dir, dir, repo) }}
		}},
		{"tar hard link to ../evil", func(t *testing.T, dir, repo string) setup {
			p := accWriteFile(t, dir, "evil.tar", accTarBytes(t, []accMember{
				{name: "etc/ok", typ: tar.TypeReg, data: "ok\n"},
				{name: "etc/link", typ: tar.TypeLink, linkname: "../evil"}}))
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p}, wants: []string{"etc/link", "../evil"},
				after: func(t *testing.T) { accNoEvil(t, dir, dir, repo) }}
		}},
		{"tar with char device dev/null", func(t *testing.T, dir, repo string) setup {
			p := accWriteFile(t, dir, "dev.tar", accDevTar(t))
			return setup{args: []string{"-b", "main", "--tree", "tar=" + p},
				wants: []string{"dev/null", "--skip-special"}}
		}},
		{"wrong key passphrase", func(t *testing.T, dir, repo string) setup {
			prefix := filepath.Join(dir, "enc")
			r := runCmd(t, []string{"OTA_SIGN_PASSPHRASE=correct horse"}, nil, otaBuild, "keygen", "--output", prefix, "--encrypt")
			if r.code != 0 {
				t.Fatalf("keygen --encrypt: exit %d: %s", r.code, r.stderr)
			}
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			return setup{args: []string{"-b", "main", "--tree", "dir=" + tree, "--sign-key", prefix + ".key"},
				env: []string{"OTA_SIGN_PASSPHRASE=battery staple"}, wants: []string{prefix + ".key", "passphrase"}}
		}},
		{"missing key file", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			key := filepath.Join(dir, "no-such.key")
			return setup{args: []string{"-b", "main", "--tree", "dir=" + tree, "--sign-key", key}, wants: []string{key}}
		}},
		{"non-existent repo", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			missing := filepath.Join(dir, "no-such-repo")
			return setup{repo: missing, args: []string{"-b", "main", "--tree", "dir=" + tree}, wants: []string{missing},
				after: func(t *testing.T) {
					if _, err := os.Lstat(missing); err == nil {
						t.Errorf("%s was created", missing)
					}
				}}
		}},
		{"invalid branch name with space", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			return setup{args: []string{"--branch=bad name", "--tree", "dir=" + tree}, wants: []string{"bad name"}}
		}},
		{"invalid branch name ../escape", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			return setup{args: []string{"--branch=../escape", "--tree", "dir=" + tree}, wants: []string{"../escape"},
				after: func(t *testing.T) {
					for _, p := range []string{filepath.Join(repo, "refs", "escape"), filepath.Join(repo, "escape")} {
						if _, err := os.Lstat(p); err == nil {
							t.Errorf("%s was created", p)
						}
					}
				}}
		}},
		{"invalid branch name trailing slash", func(t *testing.T, dir, repo string) setup {
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			return setup{args: []string{"--branch=os/", "--tree", "dir=" + tree}, wants: []string{`"os/"`}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repo, good := accRepo(t, dir)
			s := tc.setup(t, dir, repo)
			target := repo
			if s.repo != "" {
				target = s.repo
			}
			args := append([]string{"commit", "--repo", target}, s.args...)
			refsBefore := accRefs(t, repo)
			countBefore := accCommitCount(t, repo, "main")
			if countBefore != 1 {
				t.Fatalf("start state: %d commits on main, want 1", countBefore)
			}

			var r result
			if s.user {
				r = accRunAsNobody(t, dir, repo, s.env, args...)
			} else {
				r = runCmd(t, s.env, nil, otaBuild, args...)
			}
			t.Logf("exit %d, stderr: %s", r.code, strings.TrimSpace(r.stderr))
			accOneLineError(t, r, s.wants...)
			if r.stdout != "" {
				t.Errorf("a failed commit printed to stdout: %q", r.stdout)
			}

			accSameRefs(t, refsBefore, accRefs(t, repo))
			if n := accCommitCount(t, repo, "main"); n != countBefore {
				t.Errorf("ostree log shows %d commits on main, want %d", n, countBefore)
			}
			if head := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main").stdout); head != good {
				t.Errorf("main is %s, want %s", head, good)
			}
			accOstreeFsck(t, repo)
			if s.after != nil {
				s.after(t)
			}
		})
	}
}

// accDevTar returns a tar holding a regular file and the character device dev/null.
func accDevTar(t *testing.T) []byte {
	return accTarBytes(t, []accMember{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/hostname", typ: tar.TypeReg, data: "device\n"},
		{name: "dev/", typ: tar.TypeDir},
		{name: "dev/null", typ: tar.TypeChar},
	})
}

// accNoEvil fails the test if a file named "evil" appeared anywhere under dir (other than
// the tarball itself), next to the tarball's directory, next to the repository or in the
// parent of the working directory.
func accNoEvil(t *testing.T, dir, tarDir, repo string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "evil" {
			t.Errorf("%s was written", p)
		}
		return nil
	})
	wd, _ := os.Getwd()
	for _, p := range []string{filepath.Join(tarDir, "..", "evil"), filepath.Join(repo, "..", "evil"),
		filepath.Join(wd, "..", "evil"), filepath.Join(wd, "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
}

// accRunAsNobody runs ota-build as uid/gid 65534 (through setpriv), with the repository
// given to that user and dir made traversable; it skips the test unless running as root.
func accRunAsNobody(t *testing.T, dir, repo string, env []string, args ...string) result {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user (root can read any file)")
	}
	requireTool(t, "setpriv")
	// t.TempDir's directories are 0700: let the unprivileged user reach the tree and repo.
	for p := dir; p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()); p = filepath.Dir(p) {
		if p == os.TempDir() {
			break
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	accChownTree(t, repo, 65534, 65534)
	full := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", otaBuild}, args...)
	return runCmd(t, env, nil, "setpriv", full...)
}

// TestCommitSkipSpecial checks the other half of the device-node case: the tar with
// dev/null that fails without --skip-special commits with it, leaving dev/null out and
// keeping dev/ and the other files.
func TestCommitSkipSpecial(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	repo, good := accRepo(t, dir)
	p := accWriteFile(t, dir, "dev.tar", accDevTar(t))

	r := runCmd(t, nil, nil, otaBuild, "commit", "--repo", repo, "-b", "main", "--tree", "tar="+p)
	accOneLineError(t, r, "dev/null", "--skip-special")

	c := ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "tar="+p, "--skip-special",
		"--timestamp", accTimestamp).lastLine()
	if head := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main").stdout); head != c {
		t.Errorf("main is %s, want the new commit %s", head, c)
	}
	if n := accCommitCount(t, repo, "main"); n != 2 {
		t.Errorf("ostree log shows %d commits, want 2", n)
	}
	if parent := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main^").stdout); parent != good {
		t.Errorf("parent is %s, want %s", parent, good)
	}
	ls := must(t, "ostree", "ls", "--repo="+repo, "-R", c).stdout
	if strings.Contains(ls, "/dev/null") {
		t.Errorf("dev/null was committed:\n%s", ls)
	}
	for _, want := range []string{"/dev\n", "/etc/hostname\n"} {
		if !strings.Contains(ls, want) {
			t.Errorf("ostree ls does not list %q:\n%s", strings.TrimSpace(want), ls)
		}
	}
	accOstreeFsck(t, repo)
}

// TestExitStatusErrorsHavePrefix: the commands that fail through an exit status of their
// own (verify with no valid signature, fsck finding problems) print their final error line
// with the same "ota-build: " prefix as every other error, as main intends for cli.ExitCoder
// errors.
func TestExitStatusErrorsHavePrefix(t *testing.T) {
	dir := t.TempDir()
	repo, c := accRepo(t, dir)
	prefix := filepath.Join(dir, "k")
	ota(t, "keygen", "--output", prefix)

	t.Run("verify unsigned commit", func(t *testing.T) {
		r := runCmd(t, nil, nil, otaBuild, "verify", "--repo", repo, "--pubkey", prefix+".pub", "main")
		accOneLineError(t, r, c)
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
	})
	t.Run("fsck corrupt object", func(t *testing.T) {
		h := c
		obj := filepath.Join(repo, "objects", h[:2], h[2:]+".commit")
		data, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(obj, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCmd(t, nil, nil, otaBuild, "fsck", "--repo", repo)
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		if !strings.Contains(r.stderr, obj) {
			t.Errorf("fsck does not name the corrupt object %s:\n%s", obj, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ota-build: ") {
			t.Errorf("final error line %q does not start with \"ota-build: \"", last)
		}
	})
}
