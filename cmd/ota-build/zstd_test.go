package main

import (
	"encoding/json"
	"fmt"
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
	ota(t, "delta", "--repo", repo, "--to", "main")
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

// TestBuildZstdParts: build with deltas.zstd-parts gives its deltas zstd parts, and the
// bundle none (its parts are inline); the report names the zstd command; a delta made
// before without them is made again once the manifest asks for them.
func TestBuildZstdParts(t *testing.T) {
	requireTool(t, "zstd")
	zstdPath, _ := exec.LookPath("zstd")
	manifest := deltasManifest(t, `"1.0"`, "")
	type deltaReport struct {
		Path        string
		New         bool
		ZstdEncoder string `json:"zstd_encoder"`
	}
	build := func() (deltas []deltaReport, bundle deltaReport) {
		t.Helper()
		r := runCmd(t, nil, nil, otaBuild, "build", "-f", manifest, "--json")
		if r.code != 0 {
			t.Fatalf("build: exit %d: %s", r.code, r.stderr)
		}
		var rep struct {
			Deltas []deltaReport
			Bundle deltaReport
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("report %q: %v", r.stdout, err)
		}
		if len(rep.Deltas) != 1 {
			t.Fatalf("report: %d deltas, want the one from scratch", len(rep.Deltas))
		}
		return rep.Deltas, rep.Bundle
	}
	hasZstd := func(d deltaReport) bool {
		_, err := os.Stat(filepath.Join(d.Path, "0.zst"))
		return err == nil
	}

	deltas, _ := build()
	if !deltas[0].New || deltas[0].ZstdEncoder != "" || hasZstd(deltas[0]) {
		t.Errorf("without zstd-parts: %+v, zstd part %v", deltas[0], hasZstd(deltas[0]))
	}
	// The deltas section ends the manifest.
	f, err := os.OpenFile(manifest, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "  zstd-parts: true\n  zstd: %s\n", zstdPath)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	deltas, bundle := build()
	if !deltas[0].New || !strings.HasSuffix(deltas[0].ZstdEncoder, "("+zstdPath+")") || !hasZstd(deltas[0]) {
		t.Errorf("zstd-parts: true: the delta %+v, zstd part %v; want it made again with zstd parts", deltas[0], hasZstd(deltas[0]))
	}
	if bundle.ZstdEncoder != "" {
		t.Errorf("the bundle names a zstd encoder: %+v", bundle)
	}
	if deltas, _ = build(); deltas[0].New {
		t.Errorf("an unchanged manifest made the delta with zstd parts again: %+v", deltas[0])
	}
}
