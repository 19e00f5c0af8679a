package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// buildReport is the part of build --json the tests read.
type buildReport struct {
	Commit struct {
		Checksum, Version string
		New               bool
	}
	Summary struct {
		Path   string
		Signed bool
	}
	Deltas []struct {
		From, To, Path string
		New            bool
	}
	Bundle *struct {
		Path string
		New  bool
	}
	Image *struct {
		Image, Bmap, Zstd string
		Partitions        []struct{ Start, Size int64 }
		New               bool
	}
}

// quickstart runs the README's run command with OUT=out and returns the reports of its two
// releases.
func quickstart(t *testing.T, out string) (r1, r2 buildReport) {
	t.Helper()
	cmd := exec.Command("bash", "../../examples/quickstart/run.sh")
	cmd.Env = append(os.Environ(), "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("examples/quickstart/run.sh: %v\n%s", err, b)
	}
	return readReport(t, filepath.Join(out, "report-1.0.json")), readReport(t, filepath.Join(out, "report-2.0.json"))
}

func readReport(t *testing.T, p string) buildReport {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var r buildReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return r
}

// repoState lists a repository's files (summary excluded) with their sizes.
func repoState(t *testing.T, repo string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, _ := d.Info()
		fmt.Fprintf(&b, "%s %d\n", strings.TrimPrefix(p, repo), info.Size())
		return nil
	})
	return b.String()
}

// TestQuickstart runs the README's first command on a fresh output directory and checks
// what it built with the real tools, then that a second run makes nothing new and that a
// changed file makes exactly one new commit and the configured deltas (issue 5,
// acceptance 1 and 2).
func TestQuickstart(t *testing.T) {
	requireTool(t, "ostree", "mke2fs", "debugfs", "e2fsck", "sfdisk", "zstd")
	out := t.TempDir()
	r1, r2 := quickstart(t, out)
	repo := filepath.Join(out, "repo")
	if !r1.Commit.New || !r2.Commit.New || r1.Commit.Checksum == r2.Commit.Checksum {
		t.Fatalf("two releases: %+v %+v", r1.Commit, r2.Commit)
	}
	must(t, "ostree", "fsck", "--repo="+repo)
	log := must(t, "ostree", "log", "--repo="+repo, "quickstart/aarch64/stable").stdout
	if !strings.Contains(log, "Version: 2.0") || !strings.Contains(log, "Version: 1.0") {
		t.Errorf("ostree log:\n%s", log)
	}
	if len(r2.Deltas) != 2 || r2.Bundle == nil || r2.Image == nil || !r2.Summary.Signed {
		t.Fatalf("report of 2.0: %+v", r2)
	}
	for _, d := range r2.Deltas {
		if _, err := os.Stat(filepath.Join(d.Path, "superblock")); err != nil || !d.New {
			t.Errorf("delta %+v: %v", d, err)
		}
	}
	deltas := must(t, "ostree", "static-delta", "list", "--repo="+repo).stdout
	if !strings.Contains(deltas, r1.Commit.Checksum+"-"+r2.Commit.Checksum) {
		t.Errorf("ostree static-delta list lacks 1.0-2.0:\n%s", deltas)
	}
	for _, p := range []string{r2.Summary.Path, r2.Summary.Path + ".sig", r2.Bundle.Path, r2.Image.Image, r2.Image.Bmap, r2.Image.Zstd} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("report lists %s: %v", p, err)
		}
	}
	img := r2.Image.Image
	must(t, "sfdisk", "--verify", img)
	root := r2.Image.Partitions[1]
	must(t, "e2fsck", "-fn", extract(t, img, root.Start, root.Size))

	// Again: nothing new.
	before := repoState(t, repo)
	r1b, r2b := quickstart(t, out)
	if r1b.Commit.New || r2b.Commit.New || r2b.Commit.Checksum != r2.Commit.Checksum || r2b.Image.New || r2b.Bundle.New {
		t.Errorf("second run made something new: %+v %+v", r1b, r2b)
	}
	for _, d := range r2b.Deltas {
		if d.New {
			t.Errorf("second run made delta %s again", d.Path)
		}
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("second run changed the repository:\nbefore\n%s\nafter\n%s", before, after)
	}

	// One changed file, a new version: one new commit, the configured deltas.
	os.WriteFile(filepath.Join(out, "rootfs/etc/hostname"), []byte("changed\n"), 0o644)
	r := runCmd(t, []string{"OUT=" + out}, nil, otaBuild, "build", "-f", "../../examples/quickstart/ota.yaml", "--version", "2.1", "--json")
	if r.code != 0 {
		t.Fatalf("build 2.1: %s", r.stderr)
	}
	var r3 buildReport
	json.Unmarshal([]byte(r.stdout), &r3)
	if !r3.Commit.New || len(r3.Deltas) != 2 {
		t.Fatalf("build 2.1: %+v", r3)
	}
	for _, d := range r3.Deltas {
		if !d.New || (d.From != "" && d.From != r2.Commit.Checksum) {
			t.Errorf("delta %+v, want new ones from scratch and from 2.0", d)
		}
	}
	commits := must(t, "ostree", "log", "--repo="+repo, "quickstart/aarch64/stable").stdout
	if n := strings.Count(commits, "\ncommit ") + 1; n != 3 {
		t.Errorf("%d commits on the branch, want 3:\n%s", n, commits)
	}
}

// TestBuildManifestErrors: a bad manifest gives one file:line message and writes nothing
// (issue 5, acceptance 3).
func TestBuildManifestErrors(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for p, body := range map[string]string{
		"boot/vmlinuz-6.1.0-t": "kernel", "etc/os-release": "ID=t\n", "usr/bin/app": "app",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755)
		os.WriteFile(filepath.Join(rootfs, p), []byte(body), 0o644)
	}
	ota(t, "keygen", "--output", filepath.Join(dir, "key"))
	os.WriteFile(filepath.Join(dir, "bad.key"), []byte("not a key\n"), 0o600)
	base := "repo:\n  path: repo\ncommit:\n  rootfs: rootfs\n  branch: t/stable\n  version: ${VERSION}\n  owner: {uid: 0, gid: 0}\n  sign-keys:\n    - key.key\n"
	manifest := filepath.Join(dir, "ota.yaml")
	write := func(s string) { os.WriteFile(manifest, []byte(s), 0o644) }
	build := func(version string) result {
		return runCmd(t, nil, nil, otaBuild, "build", "-f", manifest, "--version", version)
	}
	write(base)
	if r := build("1.0"); r.code != 0 {
		t.Fatalf("valid manifest: %s", r.stderr)
	}
	repo := filepath.Join(dir, "repo")
	before := repoState(t, repo)
	for _, tc := range []struct {
		name, manifest, version, want string
	}{
		{"unknown key", base + "imgae:\n  board: qemu-aarch64\n", "1.1", `ota.yaml:10: unknown key "imgae"`},
		{"wrong type", strings.Replace(base, "owner: {uid: 0, gid: 0}", "owner: {uid: root, gid: 0}", 1), "1.1", "ota.yaml:7: cannot unmarshal !!str `root` into uint32"},
		{"missing rootfs", strings.Replace(base, "rootfs: rootfs", "rootfs: nowhere", 1), "1.1", "ota.yaml:4: commit.rootfs: stat " + filepath.Join(dir, "nowhere") + ": no such file or directory"},
		{"bad key file", strings.Replace(base, "- key.key", "- bad.key", 1), "1.1", "ota.yaml:9: " + filepath.Join(dir, "bad.key")},
		{"version exists with another tree", base, "1.0", `ota.yaml:6: version "1.0" already exists on t/stable`},
		{"unset variable", strings.Replace(base, "path: repo", "path: ${NO_SUCH_VARIABLE}", 1), "1.1", "ota.yaml:2: ${NO_SUCH_VARIABLE} is not set"},
		{"unknown board", base + "image:\n  board: nope\n  output: x.img\n", "1.1", `ota.yaml:11: unknown board "nope"`},
		// Issue 9, item 10: found before the commit, deltas, summary and bundle are written.
		{"image smaller than the layout", base + "deltas:\n  from-last: 1\n  bundle: {output: b.bundle}\nimage:\n  board: qemu-aarch64\n  output: x.img\n  size: 1MiB\n",
			"1.1", "ota.yaml:16: image.size: image size 1.0 MiB leaves no room for partition root, which starts at 68.0 MiB"},
		{"branch escapes", strings.Replace(base, "branch: t/stable", `branch: "../../evil"`, 1), "1.1", `ota.yaml:5: commit.branch: invalid ref name "../../evil"`},
		{"rootfs not a tarball", strings.Replace(base, "rootfs: rootfs", "rootfs: bad.key", 1), "1.1", "ota.yaml:4: commit.rootfs: " + filepath.Join(dir, "bad.key")},
		{"second key bad", strings.Replace(base, "- key.key", "- key.key\n    - bad.key", 1), "1.1", "ota.yaml:10: " + filepath.Join(dir, "bad.key")},
		{"karg with a newline", base + "image:\n  board: qemu-aarch64\n  output: x.img\n  kargs: [\"quiet\\nbootcmd=x\"]\n", "1.1", "ota.yaml:13: image.kargs: kernel argument"},
		{"bundle below a file", base + "deltas:\n  bundle: {output: bad.key/b.bundle}\n", "1.1", "ota.yaml:11: deltas.bundle.output: " + filepath.Join(dir, "bad.key") + " is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.manifest)
			if tc.name == "version exists with another tree" {
				os.WriteFile(filepath.Join(rootfs, "usr/bin/app"), []byte("changed"), 0o644)
				defer os.WriteFile(filepath.Join(rootfs, "usr/bin/app"), []byte("app"), 0o644)
			}
			r := build(tc.version)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want one line containing %q", r.code, r.stderr, tc.want)
			}
			if after := repoState(t, repo); after != before {
				t.Errorf("the repository changed:\n%s", after)
			}
			if _, err := os.Stat(filepath.Join(dir, "x.img")); err == nil {
				t.Errorf("an image was written")
			}
		})
	}
}

// TestServeQuickstartPull: the real ostree pulls the quickstart's branch from ota-build
// serve into a fresh repository, and for the next release uses the static delta from the
// release it holds (issue 5, acceptance 4).
func TestServeQuickstartPull(t *testing.T) {
	requireTool(t, "ostree", "mke2fs", "debugfs")
	out := t.TempDir()
	r1, r2 := quickstart(t, out)
	srv := startServe(t, filepath.Join(out, "repo"))
	dst := filepath.Join(t.TempDir(), "device")
	must(t, "ostree", "--repo="+dst, "init", "--mode=bare-user")
	must(t, "ostree", "--repo="+dst, "remote", "add", "--no-gpg-verify", "origin", srv.url)
	must(t, "ostree", "--repo="+dst, "pull", "origin", "quickstart/aarch64/stable@"+r1.Commit.Checksum)
	logged := len(srv.stderr.String())
	must(t, "ostree", "--repo="+dst, "pull", "origin", "quickstart/aarch64/stable")
	if got := strings.TrimSpace(must(t, "ostree", "--repo="+dst, "rev-parse", "origin:quickstart/aarch64/stable").stdout); got != r2.Commit.Checksum {
		t.Errorf("pulled %s, want %s", got, r2.Commit.Checksum)
	}
	must(t, "ostree", "fsck", "--repo="+dst)
	access := srv.stderr.String()[logged:]
	delta := regexp.MustCompile(`GET /deltas/\S+-\S+/superblock `)
	if !delta.MatchString(access) || strings.Contains(access, ".filez") {
		t.Errorf("the second pull did not use the 1.0-2.0 delta alone:\n%s", access)
	}
}
