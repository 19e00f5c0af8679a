package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDeltaZstdParts: delta --zstd-parts names the zstd command and its version in its
// report; delta show reports the zstd parts' sizes and total, in text and in JSON; the real
// ostree still pulls the delta over HTTP and applies it offline (it ignores the zstd
// parts).
func TestDeltaZstdParts(t *testing.T) {
	requireTool(t, "zstd", "ostree")
	zstdPath, _ := exec.LookPath("zstd")
	repo, base, next := xzRepo(t)
	r := runCmd(t, nil, nil, otaBuild, "delta", "--repo", repo, "--to", "main", "--zstd-parts", "--json")
	if r.code != 0 {
		t.Fatalf("delta --zstd-parts: exit %d: %s", r.code, r.stderr)
	}
	var rep struct {
		Path        string
		ZstdEncoder string `json:"zstd_encoder"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report %q: %v", r.stdout, err)
	}
	if want := regexp.MustCompile(`^zstd \d+\.\d+\.\d+ \(` + regexp.QuoteMeta(zstdPath) + `\)$`); !want.MatchString(rep.ZstdEncoder) {
		t.Errorf("zstd_encoder %q, want %s", rep.ZstdEncoder, want)
	}
	st, err := os.Stat(filepath.Join(rep.Path, "0.zst"))
	if err != nil {
		t.Fatal(err)
	}
	name := base + "-" + next
	var show struct {
		Parts []struct {
			ZstdBytes int64 `json:"zstd_bytes"`
		}
		ZstdBytes int64 `json:"zstd_bytes"`
	}
	if err := json.Unmarshal([]byte(ota(t, "delta", "show", "--repo", repo, "--json", name).stdout), &show); err != nil {
		t.Fatal(err)
	}
	if len(show.Parts) != 1 || show.Parts[0].ZstdBytes != st.Size() || show.ZstdBytes != st.Size() {
		t.Errorf("delta show --json: %+v, want one zstd part of %d bytes", show, st.Size())
	}
	text := ota(t, "delta", "show", "--repo", repo, name).stdout
	for _, want := range []string{"; zstd part " + strconv.FormatInt(st.Size(), 10) + " bytes\n", "\nZstd parts: 1, " + strconv.FormatInt(st.Size(), 10) + " bytes\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("delta show lacks %q:\n%s", want, text)
		}
	}

	ota(t, "summary", "--repo", repo)
	want := must(t, "ostree", "ls", "-R", "-C", "--repo="+repo, next).stdout
	url := serveDir(t, repo)
	for _, how := range []string{"pull", "apply-offline"} {
		client := filepath.Join(t.TempDir(), "client")
		must(t, "ostree", "init", "--repo="+client, "--mode=bare-user")
		must(t, "ostree", "pull-local", "--repo="+client, repo, base)
		if how == "pull" {
			must(t, "ostree", "remote", "add", "--repo="+client, "--no-gpg-verify", "origin", url)
			must(t, "ostree", "pull", "--repo="+client, "--require-static-deltas", "origin", "main")
		} else {
			must(t, "ostree", "static-delta", "apply-offline", "--repo="+client, filepath.Join(rep.Path, "superblock"))
		}
		must(t, "ostree", "fsck", "--repo="+client)
		if got := must(t, "ostree", "ls", "-R", "-C", "--repo="+client, next).stdout; got != want {
			t.Errorf("ostree %s: tree\n%s\nwant\n%s", how, got, want)
		}
	}

	// Without zstd parts, show says nothing of them.
	os.RemoveAll(filepath.Join(repo, "deltas"))
	ota(t, "delta", "--repo", repo, "--to", "main", "--zstd-parts=false")
	if text := ota(t, "delta", "show", "--repo", repo, name).stdout; strings.Contains(strings.ToLower(text), "zstd") {
		t.Errorf("delta show of a delta without zstd parts:\n%s", text)
	}
	if out := ota(t, "delta", "show", "--repo", repo, "--json", name).stdout; strings.Contains(out, "zstd") {
		t.Errorf("delta show --json of a delta without zstd parts: %s", out)
	}
}

// TestDeltaZstdMissing: --zstd-parts without the zstd command, or with --zstd naming one
// that does not exist, is a one-line error naming it, and nothing is written.
func TestDeltaZstdMissing(t *testing.T) {
	repo, _, _ := xzRepo(t)
	before := repoState(t, repo)
	missing := filepath.Join(t.TempDir(), "nonexistent")
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"PATH=" + t.TempDir()}, nil, `ota-build: zstd parts: zstd command "zstd": executable file not found in $PATH`},
		{nil, []string{"--zstd", missing}, `ota-build: zstd parts: zstd command "` + missing + `": no such file or directory`},
	} {
		args := append([]string{"delta", "--repo", repo, "--to", "main", "--zstd-parts", "--xz", "builtin"}, tc.args...)
		r := runCmd(t, tc.env, nil, otaBuild, args...)
		if r.code == 0 || r.stderr != tc.want+"\n" {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("the repository changed:\n%s", after)
	}
}

// TestDeltaZstdDefault: without --zstd-parts, a delta gets zstd parts when the zstd
// command is there; without it, xz parts only and a one-line warning saying how to get them
// or silence it; an inline delta gets none and no warning; --zstd-parts=false refuses them,
// and with --zstd as well is a usage error.
func TestDeltaZstdDefault(t *testing.T) {
	requireTool(t, "zstd")
	noZstd := []string{"PATH=" + t.TempDir()}
	const warning = `ota-build: warning: zstd parts: zstd command "zstd": executable file not found in $PATH: this delta gets xz parts only, which take ota-client about 50% more CPU to apply; install zstd, or pass --zstd-parts=false` + "\n"
	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		zstd    bool
		warning string
	}{
		{"zstd in PATH", nil, nil, true, ""},
		{"no zstd in PATH", noZstd, nil, false, warning},
		{"inline", noZstd, []string{"--inline"}, false, ""},
		{"refused", nil, []string{"--zstd-parts=false"}, false, ""},
		{"refused, no zstd in PATH", noZstd, []string{"--zstd-parts=false"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, base, next := xzRepo(t)
			args := append([]string{"delta", "--repo", repo, "--to", "main", "--xz", "builtin", "--json"}, tc.args...)
			r := runCmd(t, tc.env, nil, otaBuild, args...)
			if r.code != 0 || r.stderr != tc.warning {
				t.Fatalf("exit %d, stderr %q; want 0 and %q", r.code, r.stderr, tc.warning)
			}
			var rep struct {
				Path        string
				ZstdEncoder string `json:"zstd_encoder"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("report %q: %v", r.stdout, err)
			}
			show := ota(t, "delta", "show", "--repo", repo, "--json", base+"-"+next).stdout
			if got := strings.Contains(show, `"zstd_bytes"`); got != tc.zstd || (rep.ZstdEncoder != "") != tc.zstd {
				t.Errorf("zstd parts %v (encoder %q), want %v: %s", got, rep.ZstdEncoder, tc.zstd, show)
			}
		})
	}
	repo, _, _ := xzRepo(t)
	r := runCmd(t, nil, nil, otaBuild, "delta", "--repo", repo, "--to", "main", "--zstd-parts=false", "--zstd", "zstd")
	if want := "ota-build: delta: --zstd names the command of zstd parts, and --zstd-parts=false refuses them (see ota-build delta --help)\n"; r.code != 2 || r.stderr != want {
		t.Errorf("--zstd-parts=false --zstd: exit %d, stderr %q; want 2 and %q", r.code, r.stderr, want)
	}
}

// TestBuildZstdParts: build gives its deltas zstd parts when the zstd command is there,
// and the bundle none (its parts are inline); without the command, xz parts only and a
// warning in the report; the report names the zstd command; a delta made before without
// them is made again once they can be made; deltas.zstd-parts: false keeps the deltas
// there.
func TestBuildZstdParts(t *testing.T) {
	requireTool(t, "zstd")
	zstdPath, _ := exec.LookPath("zstd")
	manifest := deltasManifest(t, `"1.0"`, "")
	type deltaReport struct {
		Path        string
		New         bool
		ZstdEncoder string `json:"zstd_encoder"`
	}
	var warnings []string
	build := func(env ...string) (deltas []deltaReport, bundle deltaReport) {
		t.Helper()
		r := runCmd(t, env, nil, otaBuild, "build", "-f", manifest, "--json")
		if r.code != 0 {
			t.Fatalf("build: exit %d: %s", r.code, r.stderr)
		}
		var rep struct {
			Deltas   []deltaReport
			Bundle   deltaReport
			Warnings []string
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("report %q: %v", r.stdout, err)
		}
		if len(rep.Deltas) != 1 {
			t.Fatalf("report: %d deltas, want the one from scratch", len(rep.Deltas))
		}
		warnings = rep.Warnings
		return rep.Deltas, rep.Bundle
	}
	hasZstd := func(d deltaReport) bool {
		_, err := os.Stat(filepath.Join(d.Path, "0.zst"))
		return err == nil
	}

	deltas, _ := build("PATH=" + t.TempDir())
	if !deltas[0].New || deltas[0].ZstdEncoder != "" || hasZstd(deltas[0]) {
		t.Errorf("without the zstd command: %+v, zstd part %v", deltas[0], hasZstd(deltas[0]))
	}
	want := `deltas: zstd parts: zstd command "zstd": executable file not found in $PATH: this delta gets xz parts only, which take ota-client about 50% more CPU to apply; install zstd, or set deltas.zstd-parts: false`
	if len(warnings) != 1 || warnings[0] != want {
		t.Errorf("without the zstd command: warnings %q, want %q", warnings, want)
	}
	deltas, bundle := build()
	if !deltas[0].New || !strings.HasSuffix(deltas[0].ZstdEncoder, "("+zstdPath+")") || !hasZstd(deltas[0]) || len(warnings) != 0 {
		t.Errorf("with the zstd command: the delta %+v, zstd part %v, warnings %q; want it made again with zstd parts", deltas[0], hasZstd(deltas[0]), warnings)
	}
	if bundle.ZstdEncoder != "" {
		t.Errorf("the bundle names a zstd encoder: %+v", bundle)
	}
	for _, line := range []string{"  zstd-parts: true\n  zstd: " + zstdPath + "\n", "  zstd-parts: false\n"} {
		// The deltas section ends the manifest.
		m := deltasManifest(t, `"1.0"`, line)
		os.Rename(m, manifest)
		if deltas, _ = build(); deltas[0].New || !hasZstd(deltas[0]) {
			t.Errorf("%q: the delta %+v, zstd part %v; want the delta with zstd parts kept", line, deltas[0], hasZstd(deltas[0]))
		}
	}
}
