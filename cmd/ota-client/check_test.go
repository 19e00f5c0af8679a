package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/update"
)

// publish signs the device's commits with the key PREFIX.key, trusts PREFIX.ostree.pub on
// the device, signs the summary and serves the repository on 127.0.0.1; client.yaml points
// at it. It returns the key prefix.
func (d device) publish(t *testing.T) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "release")
	must(t, otaBuild, "keygen", "-o", key)
	writeFiles(t, d.sysroot, map[string]string{"etc/ostree/trusted.ed25519.d/release.ostree.pub": readFile(t, key+".ostree.pub")})
	for _, c := range d.commits {
		must(t, otaBuild, "sign", "--repo", d.repo, "--sign-key", key+".key", c)
	}
	must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
	srv := httptest.NewServer(http.FileServer(http.Dir(d.repo)))
	t.Cleanup(srv.Close)
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + srv.URL + "\nref: myos/stable\n"})
	return key
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// checkJSON runs check --json and decodes its report.
func checkJSON(t *testing.T, d device) update.CheckResult {
	t.Helper()
	var res update.CheckResult
	out := mustClient(t, "--sysroot", d.sysroot, "check", "--json").stdout
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCheck: with v1 deployed and v2 published, check reports v2, and the delta from v1
// once ota-build delta made one; the text form says the same.
func TestCheck(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	before := snapshot(t, d.sysroot)
	res := checkJSON(t, d)
	if !res.Available || res.Remote.Checksum != d.commits[1] || res.Remote.Version != "2.0" || res.Remote.Subject != "release 2.0" ||
		res.Remote.Timestamp.Unix() != 1700000001 || res.Default == nil || *res.Default != d.commits[0] || res.Delta != "" || res.DownloadSize != nil {
		t.Errorf("check: %+v", res)
	}
	must(t, otaBuild, "delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1], "--zstd-parts=false")
	must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
	res = checkJSON(t, d)
	if res.Delta != d.commits[0]+"-"+d.commits[1] {
		t.Errorf("check after ota-build delta: delta %q", res.Delta)
	}
	// The download is the delta's parts, as ota-build wrote them.
	parts, size := globSize(t, filepath.Join(d.repo, "deltas/*/*", "[0-9]*"))
	if parts == 0 || res.DownloadSize == nil || *res.DownloadSize != size || res.SpaceNeeded == nil || *res.SpaceNeeded <= size {
		t.Errorf("check after ota-build delta: download %v, space %v; the parts have %d bytes", res.DownloadSize, res.SpaceNeeded, size)
	}
	text := mustClient(t, "--sysroot", d.sysroot, "check").stdout
	for _, want := range []string{"update available: myos/stable", "remote:    " + d.commits[1] + " 2.0 2023-11-14T22:13:21Z release 2.0",
		"delta:     " + d.commits[0] + "-" + d.commits[1], fmt.Sprintf("download:  %d\n", size)} {
		if !strings.Contains(text, want) {
			t.Errorf("check lacks %q:\n%s", want, text)
		}
	}
	// With zstd parts (ota-build delta's default when zstd is there), the download is those.
	t.Run("zstd parts", func(t *testing.T) {
		requireTool(t, "zstd")
		os.RemoveAll(filepath.Join(d.repo, "deltas"))
		must(t, otaBuild, "delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1], "--zstd-parts")
		must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
		zsts, zsize := globSize(t, filepath.Join(d.repo, "deltas/*/*", "[0-9]*.zst"))
		if res = checkJSON(t, d); zsts == 0 || res.DownloadSize == nil || *res.DownloadSize != zsize {
			t.Errorf("check of a delta with zstd parts: download %v; the zstd parts have %d bytes", res.DownloadSize, zsize)
		}
	})
	if after := snapshot(t, d.sysroot); !slices.Equal(before, after) {
		t.Errorf("check changed the sysroot")
	}
}

// globSize returns how many files match pattern and their total size.
func globSize(t *testing.T, pattern string) (n int, size int64) {
	t.Helper()
	files, _ := filepath.Glob(pattern)
	for _, p := range files {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		size += st.Size()
	}
	return len(files), size
}

// TestCheckUpToDate: with v2 the default, check reports no update and a download of 0.
func TestCheckUpToDate(t *testing.T) {
	d := newDevice(t, 2)
	d.publish(t)
	if res := checkJSON(t, d); res.Available || res.Remote.Checksum != d.commits[1] || res.DownloadSize == nil || *res.DownloadSize != 0 {
		t.Errorf("check: %+v", res)
	}
}

// TestCheckRefusals: an untrusted summary signature, an unsigned summary or commit, a
// tampered commit object and a downgrade are each refused with one line and exit 1, and
// leave the sysroot as it was.
func TestCheckRefusals(t *testing.T) {
	d := newDevice(t, 2)
	key := d.publish(t)
	objects := func(c, suffix string) string { return filepath.Join(d.repo, "objects", c[:2], c[2:]+"."+suffix) }
	other := filepath.Join(t.TempDir(), "other")
	must(t, otaBuild, "keygen", "-o", other)
	// Each case changes the served repository, runs check, and undoes its change.
	for _, tc := range []struct {
		name   string
		change func(t *testing.T) (undo func())
		want   string
	}{
		{"summary signed by an untrusted key", func(t *testing.T) func() {
			must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", other+".key")
			return func() { must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key") }
		}, "/summary: no signature by a trusted key"},
		{"unsigned summary", func(t *testing.T) func() {
			must(t, otaBuild, "summary", "--repo", d.repo)
			return func() { must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key") }
		}, "summary is not signed"},
		{"unsigned commit", func(t *testing.T) func() {
			return hide(t, objects(d.commits[1], "commitmeta"))
		}, "commit " + d.commits[1] + " is not signed"},
		{"commit signed by an untrusted key", func(t *testing.T) func() {
			p := objects(d.commits[1], "commitmeta")
			undo := hide(t, p)
			must(t, otaBuild, "sign", "--repo", d.repo, "--sign-key", other+".key", d.commits[1])
			return func() { os.Remove(p); undo() }
		}, "commit " + d.commits[1] + ": no signature by a trusted key"},
		{"tampered commit", func(t *testing.T) func() {
			p := objects(d.commits[1], "commit")
			data := readFile(t, p)
			undo := hide(t, p)
			tampered := strings.Replace(data, "release 2.0", "release 2.1", 1)
			writeFiles(t, filepath.Dir(p), map[string]string{filepath.Base(p): tampered})
			return func() { os.Remove(p); undo() }
		}, "commit " + d.commits[1] + ": the server's object has checksum"},
		{"downgrade", func(t *testing.T) func() {
			ref := filepath.Join(d.repo, "refs/heads/myos/stable")
			writeFiles(t, filepath.Dir(ref), map[string]string{"stable": d.commits[0] + "\n"})
			must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
			return func() {
				writeFiles(t, filepath.Dir(ref), map[string]string{"stable": d.commits[1] + "\n"})
				must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
			}
		}, "commit " + d.commits[0] + ": downgrade: timestamp 2023-11-14T22:13:20Z is earlier than 2023-11-14T22:13:21Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustClient(t, "--sysroot", d.sysroot, "check")
			before := snapshot(t, d.sysroot)
			undo := tc.change(t)
			r := client("--sysroot", d.sysroot, "check", "--json")
			undo()
			stderr := strings.TrimSpace(r.stderr)
			t.Log(stderr)
			if r.code != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "\n") || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", r.code, r.stdout, stderr, tc.want)
			}
			if after := snapshot(t, d.sysroot); !slices.Equal(before, after) {
				t.Errorf("check changed the sysroot")
			}
		})
	}
	// allow-downgrade lets the older commit through, reported as an available update.
	writeFiles(t, filepath.Join(d.repo, "refs/heads/myos"), map[string]string{"stable": d.commits[0] + "\n"})
	must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
	yaml := readFile(t, filepath.Join(d.sysroot, "etc/ota/client.yaml"))
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": yaml + "allow-downgrade: true\n"})
	if res := checkJSON(t, d); !res.Available || res.Remote.Checksum != d.commits[0] {
		t.Errorf("check with allow-downgrade: %+v", res)
	}
}

// hide renames p away and returns the function that puts it back.
func hide(t *testing.T, p string) func() {
	t.Helper()
	if err := os.Rename(p, p+".hidden"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(p+".hidden", p); err != nil {
			t.Fatal(err)
		}
	}
}
