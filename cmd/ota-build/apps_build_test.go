package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// appsManifest is an ota.yaml with an OS and the application hello, whose tree is hello/.
const appsManifest = `repo:
  path: repo
commit:
  rootfs: rootfs
  branch: t/stable
  version: ${VERSION}
  sign-keys: [key.key]
deltas:
  from-last: 1
summary:
  sign: true
apps:
  - name: hello
    rootfs: hello
    arch: aarch64
    os-versions: ["1.*", "2.0"]
    exec: bin/hello --port 80
    deltas: {from-last: 1}
`

// appsBuildDir writes an OS rootfs, the application's tree (bin/hello holding hello) and a
// signing key into a new directory.
func appsBuildDir(t *testing.T, hello string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range map[string]string{
		"rootfs/boot/vmlinuz-6.1.0-t": "kernel", "rootfs/etc/os-release": "ID=t\n",
		"rootfs/usr/bin/app": "app", "hello/bin/hello": hello,
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(body), 0o755)
	}
	sigKeygen(t, dir, "key")
	return dir
}

// appsReport is the part of build --json about applications.
type appsReport struct {
	Commit struct{ Checksum string }
	Apps   []struct {
		Name   string
		Commit struct {
			Checksum, Branch, Version, Parent string
			Signatures                        int
			New                               bool
		}
		Deltas []struct {
			From, To, Path string
			New            bool
		}
	}
}

// TestBuildApps: build commits the manifest's application to apps/NAME/ARCH/CHANNEL of the
// OS's repository with commit --app's metadata and the OS's key, makes its delta from the
// previous version, and writes one summary listing both; the real ostree agrees (issue 17).
func TestBuildApps(t *testing.T) {
	requireTool(t, "ostree")
	dir := appsBuildDir(t, "hello 1\n")
	manifest := filepath.Join(dir, "ota.yaml")
	os.WriteFile(manifest, []byte(appsManifest), 0o644)
	repo := filepath.Join(dir, "repo")
	build := func(version string) appsReport {
		t.Helper()
		var rep appsReport
		r := ota(t, "build", "-f", manifest, "--version", version, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("build --json: %v\n%s", err, r.stdout)
		}
		if len(rep.Apps) != 1 {
			t.Fatalf("build %s reports apps %+v", version, rep.Apps)
		}
		return rep
	}
	r1 := build("1.0")
	os.WriteFile(filepath.Join(dir, "hello/bin/hello"), []byte("hello 2\n"), 0o755)
	r2 := build("2.0")

	const ref = "apps/hello/aarch64/stable"
	a1, a2 := r1.Apps[0], r2.Apps[0]
	if a2.Name != "hello" || a2.Commit.Branch != ref || a2.Commit.Version != "2.0" || !a2.Commit.New ||
		a2.Commit.Parent != a1.Commit.Checksum || a2.Commit.Signatures != 1 || a1.Commit.Version != "1.0" {
		t.Errorf("apps of 1.0 and 2.0: %+v %+v", a1, a2)
	}
	if len(a1.Deltas) != 0 || len(a2.Deltas) != 1 || a2.Deltas[0].From != a1.Commit.Checksum ||
		a2.Deltas[0].To != a2.Commit.Checksum || !a2.Deltas[0].New {
		t.Errorf("app deltas of 1.0 and 2.0: %+v %+v", a1.Deltas, a2.Deltas)
	}
	if _, err := os.Stat(filepath.Join(a2.Deltas[0].Path, "superblock")); err != nil {
		t.Error(err)
	}

	ostreeFsck(t, repo)
	if got := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, ref).stdout); got != a2.Commit.Checksum {
		t.Errorf("%s is %s, report says %s", ref, got, a2.Commit.Checksum)
	}
	for key, want := range map[string]string{"ota.app.name": "'hello'", "ota.app.os-versions": "'1.*,2.0'",
		"ota.app.exec": "'bin/hello --port 80'", "version": "'2.0'"} {
		if got := strings.TrimSpace(must(t, "ostree", "show", "--repo="+repo, "--print-metadata-key="+key, ref).stdout); got != want {
			t.Errorf("ostree show --print-metadata-key=%s %s = %s, want %s", key, ref, got, want)
		}
	}
	if got := must(t, "ostree", "cat", "--repo="+repo, ref, "/bin/hello").stdout; got != "hello 2\n" {
		t.Errorf("ostree cat %s /bin/hello = %q", ref, got)
	}
	if r := sigVerify(t, repo, ref, filepath.Join(dir, "key.pub")); r.code != 0 {
		t.Errorf("ota-build verify %s: exit %d: %s", ref, r.code, r.stderr)
	}
	deltas := must(t, "ostree", "static-delta", "list", "--repo="+repo).stdout
	if !strings.Contains(deltas, a1.Commit.Checksum+"-"+a2.Commit.Checksum) {
		t.Errorf("ostree static-delta list lacks the app's 1.0-2.0:\n%s", deltas)
	}
	view := must(t, "ostree", "summary", "--view", "--repo="+repo).stdout
	for _, want := range []string{"* t/stable", "* " + ref, a2.Commit.Checksum, r2.Commit.Checksum,
		"'" + a1.Commit.Checksum + "-" + a2.Commit.Checksum + "'"} {
		if !strings.Contains(view, want) {
			t.Errorf("ostree summary --view lacks %q:\n%s", want, view)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "summary.sig")); err != nil {
		t.Error(err)
	}

	// Again: the app's version exists with the same tree, nothing new.
	r3 := build("2.0")
	if a := r3.Apps[0]; a.Commit.New || a.Commit.Checksum != a2.Commit.Checksum || len(a.Deltas) != 1 || a.Deltas[0].New {
		t.Errorf("rebuild of 2.0: %+v", a)
	}
}

// TestBuildAppsManifestErrors: an invalid application names its line in ota.yaml, and
// nothing is written.
func TestBuildAppsManifestErrors(t *testing.T) {
	dir := appsBuildDir(t, "hello 1\n")
	manifest := filepath.Join(dir, "ota.yaml")
	repo := filepath.Join(dir, "repo")
	os.WriteFile(manifest, []byte(appsManifest), 0o644)
	ota(t, "build", "-f", manifest, "--version", "1.0")
	before := repoState(t, repo)
	os.WriteFile(filepath.Join(dir, "hello/bin/hello"), []byte("changed\n"), 0o755)
	for _, tc := range []struct{ name, from, to, version, want string }{
		{"no arch", "    arch: aarch64\n", "", "1.1", "ota.yaml:13: apps[0]: arch is required"},
		{"name escapes", "name: hello", `name: ".."`, "1.1", `ota.yaml:13: apps[0]: application name ".."`},
		{"channel escapes", "    arch: aarch64\n", "    arch: aarch64\n    channel: a/b\n", "1.1", `ota.yaml:16: apps[0]: application ref "apps/hello/aarch64/a/b"`},
		{"bad pattern", `["1.*", "2.0"]`, "\n      - \"1.*\"\n      - \"[\"", "1.1", `ota.yaml:18: apps[0]: os-versions: "["`},
		{"missing rootfs", "rootfs: hello", "rootfs: nowhere", "1.1", "ota.yaml:14: apps[0]: rootfs: stat " + filepath.Join(dir, "nowhere")},
		{"second app on the same branch", "    deltas: {from-last: 1}\n", "    deltas: {from-last: 1}\n  - {name: hello, rootfs: hello, arch: aarch64}\n", "1.1", "ota.yaml:19: apps[1]: apps/hello/aarch64/stable is also the branch of apps[0]"},
		{"version exists with another tree", "", "", "1.0", `ota.yaml:13: apps[0]: version "1.0" already exists on apps/hello/aarch64/stable`},
		{"own version exists with another tree", "exec:", "version: \"1.0\"\n    exec:", "1.1", `ota.yaml:17: apps[0]: version "1.0" already exists on apps/hello/aarch64/stable`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(manifest, []byte(strings.Replace(appsManifest, tc.from, tc.to, 1)), 0o644)
			if tc.version == "1.0" { // the OS tree of 1.0 is unchanged: only the app's differs
				os.WriteFile(manifest, []byte(appsManifest), 0o644)
			}
			r := runCmd(t, nil, nil, otaBuild, "build", "-f", manifest, "--version", tc.version)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want one line containing %q", r.code, r.stderr, tc.want)
			}
			if after := repoState(t, repo); after != before {
				t.Errorf("the repository changed:\n%s", after)
			}
		})
	}
}

// TestCommitAppFlags: commit --app writes the branch and metadata build's apps: writes,
// and refuses what an application cannot be with a usage error naming the flag.
func TestCommitAppFlags(t *testing.T) {
	requireTool(t, "ostree")
	dir := appsBuildDir(t, "hello\n")
	repo := filepath.Join(dir, "repo")
	otaInit(t, repo)
	tree := "dir=" + filepath.Join(dir, "hello")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"arch without app", []string{"-b", "x", "--arch", "aarch64"}, "--arch needs --app"},
		{"no arch", []string{"--app", "hello"}, "--app needs --arch"},
		{"bad name", []string{"--app", "a..b", "--arch", "aarch64"}, `--app: application name "a..b"`},
		{"bootable", []string{"--app", "hello", "--arch", "aarch64", "--bootable"}, "--app and --bootable: an application is not a bootable tree"},
		{"bad channel", []string{"--app", "hello", "--arch", "aarch64", "--channel", "a/b"}, `application ref "apps/hello/aarch64/a/b"`},
		{"other branch", []string{"--app", "hello", "--arch", "aarch64", "-b", "x"}, "--branch x: an application's branch is apps/hello/aarch64/stable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, nil, nil, otaBuild, append([]string{"commit", "--repo", repo, "--tree", tree}, tc.args...)...)
			convOneLine(t, r, 2, tc.want)
		})
	}
	ota(t, "commit", "--repo", repo, "--tree", tree, "--app", "hello", "--arch", "aarch64", "--channel", "beta",
		"--os-versions", "1.*", "--exec", "bin/hello", "--version", "1.0")
	for key, want := range map[string]string{"ota.app.name": "'hello'", "ota.app.os-versions": "'1.*'", "ota.app.exec": "'bin/hello'"} {
		if got := strings.TrimSpace(must(t, "ostree", "show", "--repo="+repo, "--print-metadata-key="+key, "apps/hello/aarch64/beta").stdout); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
}
