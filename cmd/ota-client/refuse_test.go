package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// refusal is one case of TestRefusals: a device, a server or bundle tampered with, and the
// commands that must refuse it.
type refusal struct {
	name     string
	deployed int  // versions newDevice deploys: 1 (v1 is the default) or 2 (v2 is)
	delta    bool // publish the static delta v1→v2, which update then uses
	zstd     bool // with delta: the delta has zstd parts (--zstd-parts), which update uses
	// tamper changes the served repository (or makes e.bundle, or the device's
	// filesystem) and returns what puts the genuine state back.
	tamper func(t *testing.T, e *refusalEnv) (undo func())
	// cmds are the commands that must refuse, in order, on the same sysroot (default:
	// update, then pull); "BUNDLE" stands for e.bundle, "COMMIT0" and "COMMIT1" for v1's
	// and v2's checksums.
	cmds [][]string
	// want is in the one line every command prints, once.
	want func(t *testing.T, e *refusalEnv) string
}

// TestRefusals (acceptance 4): each thing a client must refuse is refused by update and
// pull (apply-bundle for bundles, deploy where it applies), with exit 1 and one line
// saying why, and leaves the sysroot unchanged (see checkUnchanged). Once the server is
// honest again (or the space is there), update finishes: a refusal leaves nothing behind
// that a later update would trip over.
func TestRefusals(t *testing.T) {
	v := func(e *refusalEnv, i int) string { return e.d.commits[i] }
	for _, tc := range []refusal{
		{name: "unsigned commit", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() { return hide(t, e.object(v(e, 1), "commitmeta")) },
			want:   func(t *testing.T, e *refusalEnv) string { return "commit " + v(e, 1) + " is not signed" }},
		{name: "unsigned commit in the repository (deploy)", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				// The commit, complete but without its signature, as an ostree pull that
				// does not verify signatures leaves it.
				undo := hide(t, e.object(v(e, 1), "commitmeta"))
				defer undo()
				must(t, "ostree", "pull-local", "--repo="+filepath.Join(e.d.sysroot, "ostree/repo"), e.d.repo, v(e, 1))
				// The signature is back on the server: update adds it to the commit, which
				// it finds complete, and deploys it.
				return func() {}
			},
			cmds: [][]string{{"deploy", "COMMIT1"}},
			want: func(t *testing.T, e *refusalEnv) string { return "commit " + v(e, 1) + ": not signed" }},
		{name: "commit signed by an untrusted key", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				p := e.object(v(e, 1), "commitmeta")
				undo := hide(t, p)
				must(t, otaBuild, "sign", "--repo", e.d.repo, "--sign-key", e.other+".key", v(e, 1))
				return func() { os.Remove(p); undo() }
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return "commit " + v(e, 1) + ": no signature by a trusted key"
			}},
		{name: "tampered summary", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() { return flip(t, filepath.Join(e.d.repo, "summary"), 0.5) },
			want:   func(t *testing.T, e *refusalEnv) string { return "/summary: no signature by a trusted key" }},
		{name: "tampered large object", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				return flip(t, e.fileObject(t, 1, "usr/share/app/data.bin"), 0.5)
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return "file object " + e.fileChecksum(t, 1, "usr/share/app/data.bin") + " is corrupt (checksum mismatch)"
			}},
		{name: "tampered small object", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				return flip(t, e.fileObject(t, 1, "usr/share/app/version"), 1)
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return "file object " + e.fileChecksum(t, 1, "usr/share/app/version") + " is corrupt"
			}},
		{name: "tampered delta part", deployed: 1, delta: true,
			tamper: func(t *testing.T, e *refusalEnv) func() { return flip(t, filepath.Join(e.deltaDir(), "0"), 0.5) },
			want: func(t *testing.T, e *refusalEnv) string {
				// The part as served, named by the digest the client found.
				sum := sha256.Sum256([]byte(readFile(t, filepath.Join(e.deltaDir(), "0"))))
				return fmt.Sprintf("/0: sha256 %x, expected ", sum)
			}},
		{name: "tampered zstd delta part", deployed: 1, delta: true, zstd: true,
			tamper: func(t *testing.T, e *refusalEnv) func() { return flip(t, filepath.Join(e.deltaDir(), "0.zst"), 0.5) },
			want: func(t *testing.T, e *refusalEnv) string {
				sum := sha256.Sum256([]byte(readFile(t, filepath.Join(e.deltaDir(), "0.zst"))))
				return fmt.Sprintf("/0.zst: sha256 %x, expected ", sum)
			}},
		{name: "tampered delta superblock", deployed: 1, delta: true,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				return flip(t, filepath.Join(e.deltaDir(), "superblock"), 0.5)
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return "static delta " + v(e, 0) + "-" + v(e, 1) + ": the superblock does not match the summary's digest"
			}},
		{name: "downgrade", deployed: 2,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				// v1, deployed by ostree, signed as ota-client's pull leaves it: deploy
				// refuses it as a downgrade, not as unsigned.
				must(t, otaBuild, "sign", "--repo", filepath.Join(e.d.sysroot, "ostree/repo"), "--sign-key", e.key+".key", v(e, 0))
				return e.setRef(t, v(e, 0))
			},
			cmds: [][]string{{"update"}, {"pull"}, {"deploy", "COMMIT0"}},
			want: func(t *testing.T, e *refusalEnv) string {
				return "downgrade: timestamp 2023-11-14T22:13:20Z is earlier than 2023-11-14T22:13:21Z"
			}},
		{name: "dirtree entry ..", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				return e.badTree(t, func(root ostree.DirTree) ostree.DirTree {
					return ostree.DirTree{Dirs: []ostree.TreeDir{{Name: "..", Tree: root.Dirs[0].Tree, Meta: root.Dirs[0].Meta}}}
				})
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return `(/evil): dirtree: entry "..": file name ".." is not allowed`
			}},
		{name: "dirtree entry containing /", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				return e.badTree(t, func(root ostree.DirTree) ostree.DirTree {
					c, _ := ostree.ParseChecksum(e.fileChecksum(t, 1, "usr/share/app/version"))
					return ostree.DirTree{Files: []ostree.TreeFile{{Name: "etc/shadow", Checksum: c}}}
				})
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return `(/evil): dirtree: entry "etc/shadow": file name contains a /`
			}},
		{name: "dirtree entry .. in a static delta", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				undo := e.badTree(t, func(root ostree.DirTree) ostree.DirTree {
					return ostree.DirTree{Dirs: []ostree.TreeDir{{Name: "..", Tree: root.Dirs[0].Tree, Meta: root.Dirs[0].Meta}}}
				})
				must(t, "ostree", "static-delta", "generate", "--repo="+e.d.repo, "--from="+v(e, 0), "--to=myos/stable")
				must(t, otaBuild, "summary", "--repo", e.d.repo, "--sign-key", e.key+".key")
				return undo
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return `: dirtree: entry "..": file name ".." is not allowed`
			}},
		{name: "oversize object declared by the server", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				// The server says 5 GiB, more than update.DefaultMaxObject: the client must
				// not start the download.
				rel, _ := filepath.Rel(e.d.repo, e.fileObject(t, 1, "usr/share/app/data.bin"))
				return e.srv.hook("/"+rel, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "5368709120")
					w.Write(make([]byte, 4096))
				})
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return "object " + e.fileChecksum(t, 1, "usr/share/app/data.bin") + ": 5368709120 bytes, more than the 4294967296 allowed"
			}},
		{name: "oversize object declared by its header", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				// The size in a .filez header is not covered by the checksum: 5 GiB of
				// content declared, a few bytes sent.
				p := e.fileObject(t, 1, "usr/share/app/version")
				data := []byte(readFile(t, p))
				binary.BigEndian.PutUint64(data[8:16], 5<<30)
				return replace(t, p, data)
			},
			want: func(t *testing.T, e *refusalEnv) string {
				return "object " + e.fileChecksum(t, 1, "usr/share/app/version") + ": 5368709120 bytes of content, more than the 4294967296 allowed"
			}},
		{name: "not enough space for objects", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() { return e.smallFilesystem(t, 1<<20) },
			want: func(t *testing.T, e *refusalEnv) string {
				return "not enough space in " + filepath.Join(e.d.sysroot, "ostree/repo")
			}},
		{name: "not enough space for the delta", deployed: 1, delta: true,
			tamper: func(t *testing.T, e *refusalEnv) func() { return e.smallFilesystem(t, 1<<20) },
			want: func(t *testing.T, e *refusalEnv) string {
				return "not enough space for the static delta " + v(e, 0) + "-" + v(e, 1) + " in " + filepath.Join(e.d.sysroot, "ostree/repo")
			}},
		{name: "unsigned bundle", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				undo := hide(t, e.object(v(e, 1), "commitmeta"))
				defer undo()
				must(t, otaBuild, "bundle", "--repo", e.d.repo, "--from", v(e, 0), "--to", v(e, 1), "-o", e.bundle)
				return e.genuineBundle(t, v(e, 0), v(e, 1))
			},
			cmds: [][]string{{"apply-bundle", "BUNDLE"}},
			want: func(t *testing.T, e *refusalEnv) string {
				return "commit " + v(e, 1) + " is not signed by a trusted key"
			}},
		{name: "bundle signed by an untrusted key", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				p := e.object(v(e, 1), "commitmeta")
				undo := hide(t, p)
				defer func() { os.Remove(p); undo() }()
				must(t, otaBuild, "sign", "--repo", e.d.repo, "--sign-key", e.other+".key", v(e, 1))
				must(t, otaBuild, "bundle", "--repo", e.d.repo, "--from", v(e, 0), "--to", v(e, 1), "--sign-key", e.other+".key", "-o", e.bundle)
				return e.genuineBundle(t, v(e, 0), v(e, 1))
			},
			cmds: [][]string{{"apply-bundle", "BUNDLE"}},
			want: func(t *testing.T, e *refusalEnv) string {
				return "update.bundle: its signature is not by a trusted key"
			}},
		{name: "tampered bundle", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				must(t, otaBuild, "bundle", "--repo", e.d.repo, "--from", v(e, 0), "--to", v(e, 1), "-o", e.bundle)
				flip(t, e.bundle, 0.5)
				return e.genuineBundle(t, v(e, 0), v(e, 1))
			},
			cmds: [][]string{{"apply-bundle", "BUNDLE"}},
			want: func(t *testing.T, e *refusalEnv) string { return "update.bundle: part 0: checksum or size mismatch" }},
		{name: "tampered signed bundle", deployed: 1,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				genuine := e.genuineBundle(t, v(e, 0), v(e, 1))
				genuine()
				flip(t, e.bundle, 0.5)
				return genuine
			},
			cmds: [][]string{{"apply-bundle", "BUNDLE"}},
			want: func(t *testing.T, e *refusalEnv) string {
				return "update.bundle: its signature is not by a trusted key"
			}},
		{name: "downgrade bundle", deployed: 2,
			tamper: func(t *testing.T, e *refusalEnv) func() {
				must(t, otaBuild, "bundle", "--repo", e.d.repo, "--from", "empty", "--to", v(e, 0), "--sign-key", e.key+".key", "-o", e.bundle)
				return e.genuineBundle(t, "empty", v(e, 1))
			},
			cmds: [][]string{{"apply-bundle", "BUNDLE"}},
			want: func(t *testing.T, e *refusalEnv) string {
				return "downgrade: timestamp 2023-11-14T22:13:20Z is earlier than 2023-11-14T22:13:21Z"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deltaArgs := []string{"--zstd-parts=false"} // ota-build's default would add zstd parts
			if tc.zstd {
				deltaArgs = []string{"--zstd-parts"}
			}
			e := newRefusalEnv(t, tc.deployed, tc.delta, deltaArgs...)
			undo := tc.tamper(t, e)
			before := e.state(t)
			cmds := tc.cmds
			if cmds == nil {
				cmds = [][]string{{"update"}, {"pull"}}
			}
			want := tc.want(t, e)
			for _, cmd := range cmds {
				e.refused(t, cmd, want)
			}
			undo()
			e.checkUnchanged(t, before)
			// Honest again, the update goes through.
			retry := []string{"update"}
			if cmds[0][0] == "apply-bundle" {
				retry = []string{"apply-bundle", e.bundle}
			}
			mustClient(t, append([]string{"--sysroot", e.d.sysroot}, retry...)...)
			if got := e.d.ostreeStatus(t); len(got) == 0 || !strings.HasPrefix(got[0], v(e, 1)+".") {
				t.Errorf("after %v: ostree admin status %v, want %s the default", retry, got, v(e, 1))
			}
			must(t, "ostree", "fsck", "--repo="+filepath.Join(e.d.sysroot, "ostree/repo"))
		})
	}
}

// TestAllowDowngrade: allow-downgrade: true in client.yaml lets update and apply-bundle
// deploy an older commit than the default.
func TestAllowDowngrade(t *testing.T) {
	for _, cmd := range []string{"update", "apply-bundle"} {
		t.Run(cmd, func(t *testing.T) {
			e := newRefusalEnv(t, 2, false)
			yaml := readFile(t, filepath.Join(e.d.sysroot, "etc/ota/client.yaml"))
			writeFiles(t, e.d.sysroot, map[string]string{"etc/ota/client.yaml": yaml + "allow-downgrade: true\n"})
			args := []string{"--sysroot", e.d.sysroot, "update"}
			if cmd == "update" {
				e.setRef(t, e.d.commits[0])
			} else {
				must(t, otaBuild, "bundle", "--repo", e.d.repo, "--from", "empty", "--to", e.d.commits[0], "--sign-key", e.key+".key", "-o", e.bundle)
				args = []string{"--sysroot", e.d.sysroot, "apply-bundle", e.bundle}
			}
			mustClient(t, args...)
			if got := e.d.ostreeStatus(t); len(got) == 0 || !strings.HasPrefix(got[0], e.d.commits[0]+".") {
				t.Errorf("ostree admin status after the downgrade: %v, want %s the default", got, e.d.commits[0])
			}
		})
	}
}
